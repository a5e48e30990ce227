"""``chute web``'s access log writes gunicorn's own lines (only cheaper)."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path
from typing import Any

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from web.accesslog import AccessLogger


class Answer:
    def __init__(self, status: str, sent: int | None):
        self.status, self.sent = status, sent
        self.headers = [("Content-Type", "application/json")]


class Asked:
    headers = [("HOST", "api.example"), ("X-ODD", "1")]


def line(logger_class: type[glogging.Logger], path: Path, environ: dict[str, Any], answer: Answer,
         log_format: str | None = None) -> str:  # fmt: skip
    cfg = Config()
    cfg.set("accesslog", str(path))
    if log_format is not None:
        cfg.set("access_log_format", log_format)
    logger = logger_class(cfg)
    logger.now = lambda: "[23/Nov/2026:08:00:00 +0000]"  # the same second for both
    try:
        logger.access(answer, Asked(), environ, datetime.timedelta(microseconds=1500))
    finally:
        for handler in logging.getLogger("gunicorn.access").handlers:
            handler.close()
    return path.read_text()


ENVIRONS = [
    {"REMOTE_ADDR": "203.0.113.9", "HTTP_USER_AGENT": "wrk"},
    {"HTTP_REFERER": "https://app.example/x?a=%41", "HTTP_AUTHORIZATION": "Basic dXNlcjpwdw=="},
    {"REMOTE_ADDR": "::1", "HTTP_AUTHORIZATION": "Bearer chute_secret"},
]


@pytest.mark.parametrize("extra", ENVIRONS)
@pytest.mark.parametrize("answer", [Answer("200 OK", 512), Answer("404 NOT FOUND", 0), Answer("500 X", None)])
@pytest.mark.parametrize("log_format", [None, '%(h)s %(s)s %({x-odd}i)s %(M)s'])
def test_the_lines_are_gunicorns(tmp_path: Path, extra: dict[str, str], answer: Answer, log_format: str | None) -> None:
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/v1/jobs/job_1?x=%25", "PATH_INFO": "/v1/jobs/job_1",
               "QUERY_STRING": "x=%25", "SERVER_PROTOCOL": "HTTP/1.1", **extra}  # fmt: skip
    ours = line(AccessLogger, tmp_path / "ours.log", environ, answer, log_format)
    theirs = line(glogging.Logger, tmp_path / "theirs.log", environ, answer, log_format)
    assert ours == theirs and ours.count("\n") == 1

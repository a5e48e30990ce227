"""An upload's staged bytes are durable under the names its job reads before the job exists.

A file's fsync makes its bytes durable, not its name: the rename into the upload's directory and
that directory's own entry in ``uploads/`` are durable only once those directories are synced.
Both ways in (the chunked upload's complete and the one-shot ``POST /v1/jobs``) go through
``models.staging.sync_upload``; these tests record what it syncs, and when.
"""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import make_url

from models import staging
from models.settings import Settings
from tests.conftest import TenantKeys
from tests.support.uploading import chunked_upload


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> list[tuple[Path, int]]:
    """Every path fsynced through ``models.staging``, with the number of committed jobs then."""
    seen: list[tuple[Path, int]] = []
    real = os.fsync
    database = make_url(settings.database_url).database
    assert database is not None

    def fsync(fd: int) -> None:
        # A reader of its own: the request's session holds SQLite's write lock meanwhile.
        with contextlib.closing(sqlite3.connect(database)) as reader:
            (jobs,) = reader.execute("SELECT count(*) FROM jobs").fetchone()
        seen.append((Path(os.readlink(f"/proc/self/fd/{fd}")), jobs))
        real(fd)

    monkeypatch.setattr(staging.os, "fsync", fsync)
    return seen


def _expected(settings: Settings, upload_id: str) -> set[Path]:
    directory = staging.upload_dir(settings.staging_dir, upload_id).resolve()
    return {*directory.glob("*.chunk"), directory, directory.parent}


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads open files' paths from /proc")
def test_a_one_shot_upload_syncs_its_file_and_both_directories_before_its_job_exists(
    client: FlaskClient, tenant: TenantKeys, settings: Settings, stub_broker: Any, synced: list[tuple[Path, int]]
) -> None:
    form = {"file": [(io.BytesIO(b"durable bytes"), "note.txt")]}
    response = client.post("/v1/jobs", data=form, headers=tenant.headers, content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    upload_id = response.get_json()["jobs"][0]["upload_id"]

    expected = _expected(settings, upload_id)
    assert len(expected) == 3  # the chunk, its directory, uploads/
    assert {path for path, _ in synced} == expected
    assert all(jobs == 0 for _, jobs in synced)  # all before the job's row was committed


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads open files' paths from /proc")
def test_a_chunked_upload_syncs_its_chunks_and_both_directories_at_complete(
    api: Any, settings: Settings, stub_broker: Any, synced: list[tuple[Path, int]]
) -> None:
    upload = chunked_upload(api, b"x" * 10_000, filename="three.bin", chunk_size=4096)

    expected = _expected(settings, upload["upload_id"])
    assert len(expected) == 5  # three chunks, their directory, uploads/
    assert {path for path, _ in synced} == expected
    assert all(jobs == 0 for _, jobs in synced)

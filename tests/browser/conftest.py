"""Browser tests: real headless Chromium (tests/support/browser.py) against chute web and chute
worker as real processes on this run's PostgreSQL database and RabbitMQ queues.

Objects are kept in a directory store here, which chute itself serves: a page can then show a
thumbnail by fetching it with its credential. (On S3 a derivative is a presigned redirect to
another origin, which a script may not read; images there need download links signed for a
plain ``<img src>``.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack, _require_services
from tests.support import services
from tests.support.browser import browser_context, page, page_errors  # noqa: F401
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    _require_services()
    log_dir = tmp_path_factory.mktemp("browser")
    with services.postgres_database() as database_url, services.rabbitmq_prefix() as prefix:
        env = services.chute_env(
            os.environ,
            database_url=database_url,
            broker_url=services.RABBITMQ_URL,
            storage_url=f"file://{log_dir / 'objects'}",
            staging_dir=str(log_dir / "staging"),
            queue_prefix=prefix,
            webhook_allowed_hosts="loopback",
            webhook_timeout_seconds="3",
            min_chunk_size="256",
            sweep_interval_seconds="0",
        )
        services.run_migrations(env)
        keys = services.issue_api_key(env, "browser")
        other = services.issue_api_key(env, "other")
        with WebhookReceiver(secret=keys["webhook_secret"]) as receiver:
            web, base_url = services.start_web(env, log_dir)
            worker = None
            try:
                worker = services.start_worker(env, log_dir, processes=1, threads=4)
                stack = Stack(env, base_url, web, worker, None, log_dir, keys, other, receiver)  # type: ignore[arg-type]
                yield stack
                worker = stack.worker
            finally:
                for process in (web, worker):
                    if process is not None:
                        process.stop()

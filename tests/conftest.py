"""Fixtures for unit and web tests: fresh settings, database and directories per test, on the
StubBroker with an in-process worker. The end-to-end tests (tests/e2e) use real services.

The environment is set before any chute module is imported: actors read the settings once,
when their module is imported, to declare queues and middleware.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from queue import Queue

import pytest

os.environ.update(
    {
        "CHUTE_BROKER_URL": "stub://",
        "CHUTE_MIN_BACKOFF_MS": "20",
        "CHUTE_MAX_BACKOFF_MS": "200",
        "CHUTE_MAX_RETRIES": "3",
        "CHUTE_WEBHOOK_ALLOWED_HOSTS": "loopback",
        "CHUTE_WEBHOOK_TIMEOUT_SECONDS": "2",
        "CHUTE_WEBHOOK_SCHEDULE": "0,0.05,0.05",
        "CHUTE_SWEEP_INTERVAL_SECONDS": "0",
        "CHUTE_EXTRACT_ISOLATION": "false",
        "CHUTE_MIN_CHUNK_SIZE": "16",
        "CHUTE_SECRET_KEY": "test-secret-key",
    }
)

import dramatiq  # noqa: E402
from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402

import actors.pipeline  # noqa: E402,F401  (declares every actor on the StubBroker)
from actors.broker import broker as the_broker  # noqa: E402
from models.db import database, session_scope  # noqa: E402
from models.schema import Base  # noqa: E402
from models.settings import Settings, configure  # noqa: E402
from models.tenant import issue_key  # noqa: E402
from tests.support import services  # noqa: E402
from web import create_app  # noqa: E402

pytest_plugins = ["tests.support.webhook_receiver"]


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings on a fresh SQLite database and fresh staging and object directories."""
    base = Settings.from_env()
    current = configure(
        dataclasses.replace(
            base,
            database_url=f"sqlite:///{tmp_path}/chute.db",
            storage_url=f"file://{tmp_path}/objects",
            staging_dir=str(tmp_path / "staging"),
        )
    )
    Base.metadata.create_all(database().engine)
    yield current
    database().dispose()


@pytest.fixture
def on_postgres(settings: Settings) -> Iterator[str]:
    """The settings moved to a fresh PostgreSQL database with chute's tables; yields its URL."""
    with services.postgres_database() as url:
        configure(dataclasses.replace(settings, database_url=url))
        try:
            Base.metadata.create_all(database().engine)
            yield url
        finally:
            database().dispose()
            configure(settings)


def _fresh_queues(broker: dramatiq.Broker) -> None:
    """Give every declared queue a new, empty ``Queue``. A stub worker that is stopped while it
    holds a message it fetched leaves that message counted as unfinished for ever (the stub
    broker cannot requeue), and every later test's ``join`` on that queue would time out."""
    broker.flush_all()
    for name in list(broker.queues):
        broker.queues[name] = Queue()


@pytest.fixture
def stub_broker(settings: Settings) -> Iterator[dramatiq.Broker]:
    broker = the_broker
    _fresh_queues(broker)
    yield broker
    _fresh_queues(broker)


@pytest.fixture
def stub_worker(stub_broker: dramatiq.Broker) -> Iterator[dramatiq.Worker]:
    worker = dramatiq.Worker(stub_broker, worker_threads=2, worker_timeout=50)
    worker.start()
    yield worker
    worker.stop()
    # A Worker leaves its hook middleware on the broker; the next test's worker brings its own.
    stub_broker.middleware[:] = [m for m in stub_broker.middleware if type(m).__name__ != "_WorkerMiddleware"]


@pytest.fixture
def drain(stub_broker: dramatiq.Broker, stub_worker: dramatiq.Worker):  # type: ignore[no-untyped-def]
    """Run every queued message, and the ones they send, until all queues are empty."""

    def run(timeout: float = 30.0) -> None:
        for _ in range(20):
            for queue in list(stub_broker.queues):
                stub_broker.join(queue, timeout=int(timeout * 1000), fail_fast=False)
            stub_worker.join()
            if all(stub_broker.queues[q].unfinished_tasks == 0 for q in stub_broker.queues):
                return

    return run


@pytest.fixture
def app(settings: Settings, stub_broker: dramatiq.Broker) -> Flask:
    application = create_app(settings)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclasses.dataclass
class TenantKeys:
    name: str
    tenant_id: str
    api_key: str
    webhook_secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@pytest.fixture
def tenant(settings: Settings) -> TenantKeys:
    with session_scope() as session:
        issued = issue_key(session, "acme")
    return TenantKeys(issued.tenant, issued.tenant_id, issued.api_key, issued.webhook_secret)


@pytest.fixture
def other_tenant(settings: Settings) -> TenantKeys:
    with session_scope() as session:
        issued = issue_key(session, "globex")
    return TenantKeys(issued.tenant, issued.tenant_id, issued.api_key, issued.webhook_secret)


@pytest.fixture
def tesseract() -> None:
    """OCR tests need Tesseract and its English data: on a laptop without them they skip; under CI they fail."""
    from actors.extraction.ocr import probe

    engine = probe(("eng",))
    if not engine.available:
        if os.environ.get("CI") == "true":
            pytest.fail(f"OCR cannot run: {engine.problem}")
        pytest.skip(f"OCR cannot run: {engine.problem}")

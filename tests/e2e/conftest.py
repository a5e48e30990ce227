"""End-to-end fixtures: chute web (gunicorn) and chute worker (Dramatiq CLI) as real processes,
on this run's own PostgreSQL database and RabbitMQ queues, storing into moto's S3 server
behind a TCP proxy the tests can cut, and calling a real webhook receiver.

Without RabbitMQ or PostgreSQL these tests skip on a laptop, but fail under CI (CI=true).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import services
from tests.support.webhook_receiver import WebhookReceiver

#: Bucket the e2e stack stores into (moto starts empty; chute web creates it).
BUCKET = "chute-e2e"
#: The ops page's credential in the e2e stack.
ADMIN_TOKEN = "e2e-admin-token"


@dataclass
class Stack:
    env: dict[str, str]
    base_url: str
    web: services.ServiceProcess
    worker: services.ServiceProcess
    proxy: services.TcpProxy
    log_dir: Path
    keys: dict[str, str]
    other_keys: dict[str, str]
    receiver: WebhookReceiver

    def call(self, method: str, path: str, *, key: dict[str, str] | None = None, **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {(key or self.keys)['api_key']}", **kwargs.pop("headers", {})}
        response = requests.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.content

    def restart_worker(self) -> None:
        self.worker.stop()
        self.worker = services.start_worker(self.env, self.log_dir, processes=1, threads=4)


def _require_services() -> None:
    missing = [name for name, port in (("RabbitMQ", 5672), ("PostgreSQL", 5432))
               if not services.port_open("127.0.0.1", port)]  # fmt: skip
    if missing:
        message = f"{', '.join(missing)} not reachable on 127.0.0.1"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI must run the end-to-end tests)")
        pytest.skip(message)


@contextlib.contextmanager
def running_stack(log_dir: Path, storage_url: str, proxy: Any = None, **settings: str) -> Iterator[Stack]:
    """chute web and chute worker on a fresh database and queue prefix, storing at ``storage_url``,
    with the e2e settings (short webhook and retry timings), a tenant's key and another's."""
    with services.postgres_database() as database_url, services.rabbitmq_prefix() as prefix:
        env = services.chute_env(
            os.environ,
            database_url=database_url,
            broker_url=services.RABBITMQ_URL,
            storage_url=storage_url,
            staging_dir=str(log_dir / "staging"),
            queue_prefix=prefix,
            webhook_allowed_hosts="loopback",
            webhook_timeout_seconds="3",
            webhook_schedule="0,0.3,0.5,1",
            min_chunk_size="256",
            min_backoff_ms="300",
            max_backoff_ms="2000",
            max_retries="12",
            sweep_interval_seconds="0",
            secret_key="e2e-secret-key",
            redis_url=os.environ.get("CHUTE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
            rate_limit_prefix=prefix,
            **settings,
        )
        web = worker = receiver = None
        try:
            services.run_migrations(env)
            keys = services.issue_api_key(env, "e2e")
            other = services.issue_api_key(env, "other")
            receiver = WebhookReceiver(secret=keys["webhook_secret"]).start()
            web, base_url = services.start_web(env, log_dir)
            worker = services.start_worker(env, log_dir, processes=1, threads=4)
            stack = Stack(env, base_url, web, worker, proxy, log_dir, keys, other, receiver)
            yield stack
            worker = stack.worker
        finally:
            for process in (web, worker):
                if process is not None:
                    process.stop()
            if receiver is not None:
                receiver.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    _require_services()
    log_dir = tmp_path_factory.mktemp("e2e")
    moto = services.MotoServer(log_dir).start()
    proxy = services.TcpProxy(moto.port)
    try:
        with running_stack(
            log_dir,
            services.s3_url("127.0.0.1", proxy.port, BUCKET),
            proxy,
            admin_token=ADMIN_TOKEN,
            # The same S3 server under another name, as clients outside would reach it.
            storage_public_url=f"http://localhost:{proxy.port}",
        ) as stack:
            yield stack
    finally:
        proxy.close()
        moto.stop()

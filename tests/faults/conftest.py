"""The fault suite's stack: chute web and worker on a private RabbitMQ node and a private
PostgreSQL cluster (never the machine's shared ones, which scenarios would disturb), storing into
moto's S3 server behind a proxy that can cut and slow connections, calling a webhook receiver.

Every test here is marked ``faults``: CI runs them; on a laptop ``pytest -m "not faults"``
skips them, and they skip by themselves where rabbitmq-server or PostgreSQL's initdb is missing
(under CI=true they fail instead).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from tests.faults.history import Bucket, Checker, History, check
from tests.support import services
from tests.support.private_nodes import PrivatePostgres, PrivateRabbit, postgres_missing, rabbitmq_missing
from tests.support.uploading import chunked_upload
from tests.support.webhook_receiver import Reply, WebhookReceiver

BUCKET = "chute-faults"

#: Settings of the stack under test: quick retries, a busy sweeper and short thresholds, so that
#: each fault heals within seconds (the same code paths as the production defaults).
SETTINGS = {
    # One key sends every test's chunks, retries and bursts, past the default 600 writes a
    # minute on a fast machine: the limits have their own tests, the faults are tested here.
    **{f"rate_limit_{name}": "100000/second" for name in
       ("tenant", "read", "write", "upload", "replay", "anonymous", "public")},  # fmt: skip
    "webhook_allowed_hosts": "loopback",
    "webhook_timeout_seconds": "3",
    "webhook_schedule": "0,0.5,1,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2",
    "min_chunk_size": "256",
    "min_backoff_ms": "300",
    "max_backoff_ms": "2000",
    "max_retries": "30",
    "sweep_interval_seconds": "1",
    "requeue_after_seconds": "3",
    "resend_after_seconds": "10",
    "stall_after_seconds": "60",
    "part_size": str(5 * 1024 * 1024),
    "max_stage_crashes": "2",
    "database_statement_timeout_seconds": "3",
    "database_connect_timeout_seconds": "2",
    "database_pool_timeout_seconds": "3",
    "broker_blocked_timeout_seconds": "1",
    "stage_time_limit_ms": "120000",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)


def _require_tools() -> None:
    missing = rabbitmq_missing() or postgres_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the fault suite needs its private services: {missing}")
        pytest.skip(f"the fault suite needs its private services: {missing}")


@dataclass
class FaultStack:
    env: dict[str, str]
    base_url: str
    web: services.ServiceProcess
    worker: services.ServiceProcess
    proxy: services.TcpProxy
    moto: services.MotoServer
    rabbit: PrivateRabbit
    postgres: PrivatePostgres
    receiver: WebhookReceiver
    keys: dict[str, str]
    tenant_id: str
    log_dir: Path
    staging_dir: Path
    worker_lock: threading.RLock = field(default_factory=threading.RLock)

    def call(self, method: str, path: str, *, timeout: float = 30, **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.keys['api_key']}", **kwargs.pop("headers", {})}
        response = requests.request(method, self.base_url + path, headers=headers, timeout=timeout, **kwargs)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.content

    def upload(self, history: History, data: bytes, name: str, *, chunk_size: int = 64 * 1024,
               complete: bool = True, **expect: Any) -> dict[str, Any]:  # fmt: skip
        """A chunked upload with a webhook; recorded in ``history`` once its complete got a 202."""
        out = chunked_upload(self.call, data, filename=name, chunk_size=chunk_size, complete=complete,
                             webhook_url=self.receiver.url())  # fmt: skip
        if complete:
            history.record(out["job_id"], out["upload_id"], data, **expect)
        return out

    def checker(self) -> Checker:
        bucket = Bucket(f"http://127.0.0.1:{self.moto.port}", BUCKET)
        return Checker(self.call, bucket, self.receiver, self.staging_dir, self.tenant_id)

    def check(self, history: History, **kwargs: Any) -> list[str]:
        return check(history, self.checker(), **kwargs)

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        """Read the private database directly (scenarios aim their faults with it)."""
        with psycopg.connect(self.postgres.url.replace("+psycopg", ""), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(query, args)  # type: ignore[arg-type]
            return list(cursor.fetchall()) if cursor.description else []

    def job_row(self, job_id: str) -> dict[str, Any]:
        columns = ("status", "stage", "run_owner", "uploaded_at", "assembled_at", "parts", "upload_id")
        rows = self.sql(f"SELECT {', '.join(columns)} FROM jobs WHERE id = %s", job_id)
        return dict(zip(columns, rows[0], strict=True)) if rows else {}

    def start_worker(self) -> None:
        with self.worker_lock:  # a scenario's killer thread may be restarting it too
            self.worker = services.start_worker(self.env, self.log_dir, processes=1, threads=6)

    def ensure_worker(self) -> None:
        """Start the worker again if it died (Dramatiq's CLI exits when one of its processes is killed)."""
        with self.worker_lock:
            if not self.worker.alive():
                self.worker.stop()
                self.start_worker()

    def restart_worker(self) -> None:
        with self.worker_lock:
            self.worker.stop()
            self.start_worker()

    def heal(self) -> None:
        """Undo every fault a scenario may have left (each scenario heals its own; this is the net)."""
        self.proxy.restore()
        self.receiver.default = Reply()
        if self.rabbit.alarm_raised:
            self.rabbit.memory_alarm(False)
        if not services.port_open("127.0.0.1", self.rabbit.port):
            self.rabbit.start_app()
        if (self.postgres.data / "postmaster.pid").exists():
            self.postgres.resume(self.postgres.pids())
        self.ensure_worker()


@pytest.fixture(scope="session")
def fault_stack() -> Iterator[FaultStack]:
    _require_tools()
    root = Path(tempfile.mkdtemp(prefix="chute-faults-"))
    os.chmod(root, 0o755)  # the rabbitmq and postgres users reach their directories through it
    log_dir = root / "logs"
    log_dir.mkdir()
    rabbit = PrivateRabbit(root / "rabbitmq")
    postgres = PrivatePostgres(root / "postgres")
    started: list[Any] = []
    web = worker = None
    try:
        with ThreadPoolExecutor(3) as pool:  # each takes seconds to start on a loaded machine: at once
            starting = [pool.submit(service.start) for service in (postgres, rabbit, services.MotoServer(log_dir))]
            wait(starting)
        for future in starting:
            if future.exception() is None:
                started.append(future.result())
        moto = starting[2].result()
        for future in starting[:2]:
            future.result()
        proxy = services.TcpProxy(moto.port)
        staging_dir = root / "staging"
        env = services.chute_env(os.environ, database_url=postgres.url, broker_url=rabbit.url,
                                 storage_url=services.s3_url("127.0.0.1", proxy.port, BUCKET),
                                 staging_dir=str(staging_dir), **SETTINGS)  # fmt: skip
        services.run_migrations(env)
        keys = services.issue_api_key(env, "faults")
        receiver = WebhookReceiver(secret=keys["webhook_secret"]).start()
        with ThreadPoolExecutor(2) as pool:
            web_start = pool.submit(services.start_web, env, log_dir, workers=1, threads=16)
            worker_start = pool.submit(services.start_worker, env, log_dir, processes=1, threads=6)
        web, base_url = web_start.result()
        worker = worker_start.result()
        stack = FaultStack(env, base_url, web, worker, proxy, moto, rabbit, postgres, receiver, keys, "", log_dir,
                           staging_dir)  # fmt: skip
        stack.tenant_id = stack.sql("SELECT id FROM tenants WHERE name = 'faults'")[0][0]
        yield stack
        web, worker = stack.web, stack.worker
    finally:
        for process in (web, worker):
            if process is not None:
                process.stop()
        for service in reversed(started):
            try:
                service.stop()
            except (OSError, subprocess.SubprocessError) as e:
                print(f"stopping {type(service).__name__} failed: {e}")
        if "proxy" in locals():
            proxy.close()
        if "receiver" in locals():
            receiver.close()


@pytest.fixture
def stack(fault_stack: FaultStack) -> Iterator[FaultStack]:
    """The shared stack, healed after each scenario whatever it broke."""
    fault_stack.heal()
    yield fault_stack
    fault_stack.heal()


@pytest.fixture
def history() -> History:
    return History()

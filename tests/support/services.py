"""Real services on loopback for the end-to-end tests and the benchmarks.

Each run gets its own PostgreSQL database and its own RabbitMQ queue prefix, so runs never
see each other's rows or messages, and a crashed run leaves nothing that breaks the next
(stale databases and queues of dead runs are dropped by the next run). The S3 endpoint is
moto's server in a subprocess (fresh per session: it keeps objects in memory), optionally
behind a TCP proxy that a test can cut to simulate an outage.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import urllib3

#: The services this machine and CI run (DESIGN.md).
POSTGRES_ADMIN_URL = os.environ.get("CHUTE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RABBITMQ_URL = os.environ.get("CHUTE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
#: Prefix of the databases and queues the tests make, so stale ones can be found and dropped.
TEST_PREFIX = "chute_test_"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


# --- PostgreSQL ------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database; yields its SQLAlchemy URL and drops it afterwards."""
    import psycopg

    name = f"{TEST_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        _drop_stale_databases(conn)
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drop_stale_databases(conn) -> None:  # type: ignore[no-untyped-def]
    """Drop test databases whose run (named by pid) is no longer alive."""
    rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (TEST_PREFIX + "%",)).fetchall()
    for (name,) in rows:
        pid = name[len(TEST_PREFIX) :].split("_", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# --- RabbitMQ --------------------------------------------------------------------------

#: The queues Dramatiq makes per stage queue.
STAGE_QUEUES = ("assemble", "upload", "extract", "notify")
#: Queues that are not stages (webhook deliveries run on their own queue).
OTHER_QUEUES = ("webhooks",)


def queue_names(prefix: str) -> list[str]:
    return [f"{prefix}{queue}{suffix}" for queue in STAGE_QUEUES + OTHER_QUEUES for suffix in ("", ".DQ", ".XQ")]


@contextlib.contextmanager
def rabbitmq_prefix() -> Iterator[str]:
    """A queue prefix of this run's own; its queues are deleted afterwards."""
    prefix = f"{TEST_PREFIX}{os.getpid()}_{secrets.token_hex(3)}."
    try:
        yield prefix
    finally:
        delete_queues(queue_names(prefix))


def delete_queues(names: list[str]) -> None:
    import pika

    try:
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    except Exception:
        return
    try:
        for name in names:
            channel = connection.channel()
            with contextlib.suppress(Exception):
                channel.queue_delete(name)
            with contextlib.suppress(Exception):
                channel.close()
    finally:
        with contextlib.suppress(Exception):
            connection.close()


def queue_depth(name: str) -> int:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        return int(connection.channel().queue_declare(name, passive=True).method.message_count)
    finally:
        connection.close()


def rabbitmq_available() -> bool:
    return port_open("127.0.0.1", 5672)


# --- S3 (moto's server) and a TCP proxy that can cut it off ---------------------------


@dataclass
class ServiceProcess:
    """A subprocess with its log file; stopped with SIGTERM, then SIGKILL."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    #: The source tree it runs from (``python -m`` imports from its working directory first).
    cwd: Path = REPO

    def start(self) -> ServiceProcess:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.cwd, start_new_session=True
        )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or an OOM kill would."""
        if self.process is not None and self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 15) -> None:
        if self.process is not None and self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if hasattr(self, "log"):
            self.log.close()

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class MotoServer:
    """moto's S3 server on loopback, in its own process."""

    log_dir: Path
    port: int = field(default_factory=free_port)
    service: ServiceProcess | None = None

    def start(self) -> MotoServer:
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        self.service = ServiceProcess("moto", argv, env, self.log_dir / "moto.log").start()
        wait_until(lambda: port_open("127.0.0.1", self.port), 30, what="moto server")
        return self

    def stop(self) -> None:
        if self.service:
            self.service.stop()


def s3_url(host: str, port: int, bucket: str) -> str:
    return f"s3://testing:testing-secret@{host}:{port}/{bucket}?secure=0&region=us-east-1"


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; ``cut()`` drops every connection and refuses new ones;
    ``slow(seconds)`` delays every block forwarded (a congested or failing network path)."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.delay = 0.0
        self.port = free_port()
        self.up = threading.Event()
        self.up.set()
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.settimeout(0.1)
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            if not self.up.is_set():
                client.close()  # refused while cut
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                if not self.up.is_set():  # cut while this one was being connected
                    client.close()
                    upstream.close()
                    continue
                self.sockets.update((client, upstream))
            for a, b, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(a, b, up), daemon=True).start()

    def forward(self, data: bytes, upstream: bool) -> tuple[bytes, bool]:
        """What to send on of ``data``, and whether to keep the connection (subclasses break it)."""
        return data, True

    def _pipe(self, source: socket.socket, sink: socket.socket, upstream: bool = False) -> None:
        try:
            while data := source.recv(65536):
                if self.delay:
                    time.sleep(self.delay)
                data, keep = self.forward(data, upstream)
                sink.sendall(data)
                if not keep:
                    break
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self.lock:
                self.sockets.discard(source)
                self.sockets.discard(sink)

    def cut(self) -> None:
        with self.lock:
            self.up.clear()
            for s in list(self.sockets):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.up.set()
        self.delay = 0.0

    def slow(self, seconds: float) -> None:
        """Delay each forwarded block by ``seconds`` (0 for full speed again)."""
        self.delay = seconds

    def close(self) -> None:
        self.closing.set()
        self.cut()
        self.thread.join(2)
        self.listener.close()


# --- chute itself, as real processes -------------------------------------------------


def chute_env(base: Mapping[str, str], **settings: str) -> dict[str, str]:
    """The environment of a chute process: ``settings`` as CHUTE_* variables."""
    env = {k: v for k, v in base.items() if not k.startswith("CHUTE_")}
    env.update({f"CHUTE_{k.upper()}": str(v) for k, v in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_web(env: dict[str, str], log_dir: Path, *, workers: int = 1, threads: int = 8) -> tuple[ServiceProcess, str]:
    port = free_port()
    argv = [sys.executable, "-m", "web.cli", "web", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--threads", str(threads)]  # fmt: skip
    web = ServiceProcess("web", argv, env, log_dir / "web.log").start()
    base_url = f"http://127.0.0.1:{port}"
    http = urllib3.PoolManager()

    def healthy() -> bool:
        if not web.alive():
            raise RuntimeError(f"chute web exited:\n{web.tail()}")
        try:
            return http.request("GET", base_url + "/healthz", timeout=1, retries=False).status == 200
        except urllib3.exceptions.HTTPError:
            return False

    wait_until(healthy, 60, what="chute web")
    return web, base_url


def start_worker(env: dict[str, str], log_dir: Path, *, processes: int = 1, threads: int = 4,
                 pin_metrics_port: bool = True) -> ServiceProcess:  # fmt: skip
    """``chute worker``; ``pin_metrics_port=False`` lets it find its exporter port itself."""
    worker_env = {**env, "dramatiq_prom_port": str(free_port()), "dramatiq_prom_host": "127.0.0.1"}
    if not pin_metrics_port:
        worker_env = dict(env)
    argv = [sys.executable, "-m", "web.cli", "worker", "--processes", str(processes), "--threads", str(threads)]
    worker = ServiceProcess("worker", argv, worker_env, log_dir / "worker.log").start()
    wait_until(lambda: b"Worker process is ready" in worker.log_path.read_bytes() or not worker.alive(), 60,
               what="chute worker")  # fmt: skip
    if not worker.alive():
        raise RuntimeError(f"chute worker exited:\n{worker.tail()}")
    return worker


def issue_api_key(env: dict[str, str], tenant: str, repo: Path = REPO) -> dict[str, str]:
    """A new API key of ``tenant`` (created with it), by ``chute keys create`` of the tree at ``repo``."""
    import json

    out = subprocess.run(
        [sys.executable, "-m", "web.cli", "keys", "create", "--tenant", tenant, "--json"],
        env=env, cwd=repo, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return dict(json.loads(out.stdout))


def run_migrations(env: dict[str, str], repo: Path = REPO) -> None:
    """``chute migrate`` of the tree at ``repo`` (another checkout has its own migrations)."""
    subprocess.run([sys.executable, "-m", "web.cli", "migrate"], env=env, cwd=repo, check=True,
                   capture_output=True, timeout=120)  # fmt: skip

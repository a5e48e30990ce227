"""A private RabbitMQ node and a private PostgreSQL cluster, started and stopped by a test run.

Fault tests stop, pause and alarm their broker and database; the machine's shared RabbitMQ
(5672) and PostgreSQL (5432) serve other test runs and must never be touched. Each private
service gets its own free ports and its own directory under a temporary root, and runs as its
system user (the Debian wrappers run RabbitMQ as ``rabbitmq``; initdb refuses root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.services import free_port, port_open, wait_until

#: Seconds a private node gets to start on a loaded machine.
START_TIMEOUT = 120


def _run(argv: list[str], timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=timeout)


def _own(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        for root, dirs, files in os.walk(path):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(name, entry.pw_uid, entry.pw_gid)


def rabbitmq_missing() -> str | None:
    """Why a private RabbitMQ node cannot start here, or None."""
    for tool in ("rabbitmq-server", "rabbitmqctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (initdb, pg_ctl)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def postgres_missing() -> str | None:
    if postgres_bin() is None:
        return "no initdb under /usr/lib/postgresql/*/bin"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a postgres user to run initdb as"
    return None


@dataclass
class PrivateRabbit:
    """A RabbitMQ node of our own: own name, ports, Mnesia and log directories, no plugins."""

    root: Path
    name: str = field(default_factory=lambda: f"chute_faults_{os.getpid()}_{secrets.token_hex(3)}@localhost")
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    #: Whether ``memory_alarm(True)`` was the last call (saves a slow ``rabbitmqctl status``).
    alarm_raised: bool = False

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self) -> PrivateRabbit:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "enabled_plugins").write_text("[].\n")
        _own(self.root, "rabbitmq")
        env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_PID_FILE": str(self.root / "node.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "no-config"),  # not the machine's /etc/rabbitmq
        }
        with open(self.root / "server.out", "ab") as log:  # the server keeps its own copy of the descriptor
            self.process = subprocess.Popen(["rabbitmq-server"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)  # fmt: skip
        self.await_port()
        return self

    def await_port(self) -> None:
        def up() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited:\n{self.tail()}")
            return port_open("127.0.0.1", self.port)

        wait_until(up, START_TIMEOUT, interval=0.5, what=f"RabbitMQ node {self.name}")
        self.ctl("await_startup")

    def ctl(self, *args: str, check: bool = True) -> str:
        return _run(["rabbitmqctl", "-n", self.name, *args], check=check).stdout

    def stop_app(self) -> None:
        """The broker refuses connections (the Erlang node stays up, so start_app is quick)."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.await_port()

    def memory_alarm(self, on: bool) -> None:
        """Raise (or clear) a memory alarm: publishers are blocked, consumers go on."""
        self.ctl("set_vm_memory_high_watermark", "0.000001" if on else "0.4")
        self.alarm_raised = on

    def alarmed(self) -> bool:
        return "Memory alarm" in self.ctl("status", check=False)

    def queue_depth(self, queue: str) -> int:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
        finally:
            connection.close()

    def delete_queue(self, queue: str) -> None:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            connection.channel().queue_delete(queue)
        finally:
            connection.close()

    def tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.root / "server.out").read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process is None:
            return
        _run(["rabbitmqctl", "-n", self.name, "stop"], check=False, timeout=60)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of our own (initdb + pg_ctl) on a free port, run as ``postgres``."""

    root: Path
    port: int = field(default_factory=free_port)
    database: str = "chute"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.database}"

    def _as_postgres(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        bin_dir = postgres_bin()
        assert bin_dir is not None
        command = [str(bin_dir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return _run(command, timeout=timeout)

    def start(self) -> PrivatePostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        _own(self.root, "postgres")
        self._as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.pg_ctl("start")
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        return self

    def pg_ctl(self, action: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._as_postgres("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-m", "fast",
                          "-o", options, action)  # fmt: skip

    def restart(self) -> None:
        self.pg_ctl("restart")

    def pids(self) -> list[int]:
        """The postmaster and every backend and helper it forked."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == postmaster:
                    children.append(int(Path(stat).parent.name))
        return [postmaster, *children]

    def pause(self) -> list[int]:
        """Freeze the whole cluster (as a paused container): connections stay open, nothing answers."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        return pids

    def resume(self, pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self.resume(self.pids())
            self.pg_ctl("stop")

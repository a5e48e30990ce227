"""What every benchmark shares: the report (one JSON line, then a table), timing statistics,
a peak-RSS sampler for process trees, and the loopback services chute runs on.

A report compares chute with a ceiling measured in the same run: the machine is shared and
noisy, so absolute times drift between runs while the ratio to the ceiling stays put.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The repository root: ``tests.support`` (the loopback service helpers) lives there.
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # ``chute bench`` may run from another directory
    sys.path.insert(0, str(REPO))

MiB = 1024 * 1024
#: RSS sampling period (seconds).
RSS_INTERVAL = 0.05

#: Benchmarks measure chute's paths, not its rate limits: none apply unless a benchmark sets them.
UNLIMITED = {f"rate_limit_{kind}": "" for kind in ("tenant", "read", "write", "upload", "replay", "anonymous")}


# --- statistics ----------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100), linear between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def steady_rate(stamps: Sequence[float], low: float = 0.1, high: float = 0.9) -> float:
    """Completions per second between the ``low`` and ``high`` fractions of a batch.

    Dropping the head (workers starting, prefetch filling) and the tail (the last few
    stragglers on idle threads) leaves the drain rate at saturation.
    """
    ordered = sorted(stamps)
    if len(ordered) < 4:
        span = ordered[-1] - ordered[0] if len(ordered) > 1 else math.nan
        return (len(ordered) - 1) / span if span and span > 0 else math.nan
    i, j = int(len(ordered) * low), int(math.ceil(len(ordered) * high)) - 1
    span = ordered[j] - ordered[i]
    return (j - i) / span if span > 0 else math.nan


def swung(values: Sequence[float], factor: float) -> bool:
    """Whether the largest of some rounds' figures is ``factor`` times the smallest or more: the
    rounds then measured different conditions, and their median stands for none of them."""
    return len(values) >= 2 and min(values) > 0 and max(values) / min(values) >= factor


def ratio(value: float, ceiling: float) -> float:
    return value / ceiling if ceiling and not math.isnan(ceiling) else math.nan


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --- peak RSS of process trees -------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (through /proc/<pid>/task/<tid>/children)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                continue
    return out


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Samples VmRSS of process trees every ``RSS_INTERVAL`` s in a thread; keeps the peaks.

    ``peak_process_mib`` is the largest RSS any single process reached (the "any chute process
    under 150 MiB" target); ``peak_total_mib`` the largest sum over the trees at one instant.
    """

    def __init__(self, roots: Sequence[int]):
        self.roots = list(roots)
        self.peak_process_kib = 0
        self.peak_total_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        total = 0
        for root in self.roots:
            for pid in descendants(root):
                kib = rss_kib(pid)
                total += kib
                self.peak_process_kib = max(self.peak_process_kib, kib)
        self.peak_total_kib = max(self.peak_total_kib, total)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(RSS_INTERVAL)

    def reset(self) -> None:
        self.peak_process_kib = self.peak_total_kib = 0

    def __enter__(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sample()

    @property
    def peak_process_mib(self) -> float:
        return self.peak_process_kib / 1024

    @property
    def peak_total_mib(self) -> float:
        return self.peak_total_kib / 1024


# --- the report ----------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: chute's figure beside its ceiling, the ratio and its target."""

    metric: str
    chute: float
    ceiling: float | None = None
    unit: str = ""
    #: The least ratio chute / ceiling the issue asks for (or, with ``limit``, an upper bound).
    target: float | None = None
    #: An absolute upper bound on the chute figure (peak RSS), instead of a ratio target.
    limit: float | None = None
    #: The largest ratio chute / ceiling the issue allows, where lower is better (latency, CPU).
    most: float | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.ceiling is None else ratio(self.chute, self.ceiling)

    @property
    def met(self) -> bool | None:
        if self.limit is not None:
            return self.chute < self.limit
        if self.target is not None and self.ratio is not None:
            return self.ratio >= self.target
        if self.most is not None and self.ratio is not None:
            return self.ratio <= self.most
        return None


@dataclass
class Report:
    bench: str
    quick: bool
    #: Flat figures, named ``<what>_<unit>``; every one a positive number after a good run.
    figures: dict[str, float | None] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    #: What the second column is: a ceiling, or a peer (another implementation of the same work).
    ceiling_label: str = "ceiling"

    def add(self, row: Row, chute_key: str, ceiling_key: str | None = None) -> None:
        """Add a table row and its figures (and the ratio, as ``<chute_key>_ratio``)."""
        self.rows.append(row)
        self.figures[chute_key] = _round(row.chute)
        if ceiling_key is not None and row.ceiling is not None:
            self.figures[ceiling_key] = _round(row.ceiling)
            if row.ratio is not None:
                self.figures[f"{chute_key}_ratio"] = _round(row.ratio)

    def as_json(self) -> dict[str, Any]:
        targets = {}
        for row in self.rows:
            if row.target is not None:
                targets[row.metric] = {"ratio": _round(row.ratio), "target": row.target, "met": row.met}
            elif row.limit is not None:
                targets[row.metric] = {"value": _round(row.chute), "limit": row.limit, "met": row.met}
            elif row.most is not None:
                targets[row.metric] = {"ratio": _round(row.ratio), "most": row.most, "met": row.met}
        return {
            "bench": self.bench,
            "quick": self.quick,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(),
            "settings": self.settings,
            "figures": self.figures,
            "targets": targets,
            "notes": self.notes,
        }

    def table(self) -> str:
        header = ("metric", "chute", self.ceiling_label, "ratio", "target", "")
        lines = [header]
        for row in self.rows:
            target = ""
            if row.target is not None:
                target = f">= {row.target:g}"
            elif row.limit is not None:
                target = f"< {row.limit:g} {row.unit}"
            elif row.most is not None:
                target = f"<= {row.most:g}"
            met = {True: "ok", False: "SHORT", None: ""}[row.met]
            lines.append(
                (
                    row.metric,
                    f"{_fmt(row.chute)} {row.unit}".strip(),
                    "" if row.ceiling is None else f"{_fmt(row.ceiling)} {row.unit}".strip(),
                    "" if row.ratio is None else f"{row.ratio:.2f}",
                    target,
                    met,
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        out = [f"{self.bench}{' (quick)' if self.quick else ''}"]
        for n, line in enumerate(lines):
            out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        out.extend(f"note: {note}" for note in self.notes)
        return "\n".join(out)

    def emit(self, json_only: bool = False) -> None:
        """Print the JSON line (always first, always one line), then the table."""
        print(json.dumps(self.as_json(), separators=(", ", ": "), default=str), flush=True)
        if not json_only:
            print(self.table(), flush=True)


def _round(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return round(value, 4) if abs(value) < 100 else round(value, 1)


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def machine() -> dict[str, Any]:
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "mem_gib": round(mem_kib / MiB, 1),
        "python": platform.python_version(),
        "host": platform.node(),
    }


def log(message: str) -> None:
    """Progress on stderr, so stdout stays one JSON line plus the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- services ------------------------------------------------------------------------------


def services_available() -> bool:
    from tests.support.services import port_open, rabbitmq_available

    return rabbitmq_available() and port_open("127.0.0.1", 5432)


@contextlib.contextmanager
def workdir(name: str) -> Iterator[Path]:
    """A scratch directory (logs, staging) removed afterwards; ``BENCH_KEEP=1`` keeps it."""
    path = Path(tempfile.mkdtemp(prefix=f"chute-bench-{name}-"))
    try:
        yield path
    finally:
        if os.environ.get("BENCH_KEEP"):
            log(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


@dataclass
class ChuteStack:
    """The environment of chute processes on loopback services started for one benchmark."""

    root: Path
    env: dict[str, str]
    database_url: str
    queue_prefix: str
    storage_url: str
    staging_dir: Path
    #: The S3 server's pid (0 with a directory store), for CPU accounting.
    moto_pid: int = 0
    #: The source tree chute's processes run from: this one, or another checkout to compare with.
    repo: Path = REPO


def chute_stack(
    stack: contextlib.ExitStack, root: Path, *, s3: bool, repo: Path = REPO, **settings: Any
) -> ChuteStack:
    """A fresh database (migrated), a queue prefix, and an S3 server (moto) or a directory store.

    ``repo`` is the source tree whose chute runs on it (its own migrations too): another checkout
    (``git worktree add``) to measure before and after a change in one run. Everything started
    here is stopped when ``stack`` closes, whatever happens.
    """
    from tests.support.services import (
        RABBITMQ_URL,
        MotoServer,
        chute_env,
        postgres_database,
        rabbitmq_prefix,
        run_migrations,
        s3_url,
    )

    database_url = stack.enter_context(postgres_database())
    prefix = stack.enter_context(rabbitmq_prefix())
    moto_started: threading.Thread | None = None
    if s3:
        moto = MotoServer(root)
        moto_started = threading.Thread(target=moto.start, daemon=True)  # boots while the migrations run

        def stop_moto() -> None:
            moto_started.join(60)  # a start still under way must finish before it can be stopped
            moto.stop()

        stack.callback(stop_moto)
        moto_started.start()
        storage_url = s3_url("127.0.0.1", moto.port, "bench")
        moto_pid = 0
    else:
        storage_url, moto_pid = f"file://{root / 'objects'}", 0
    staging = root / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    env = chute_env(
        os.environ,
        database_url=database_url,
        broker_url=RABBITMQ_URL,
        storage_url=storage_url,
        staging_dir=str(staging),
        queue_prefix=prefix,
        webhook_allowed_hosts="loopback",
        **{**UNLIMITED, **{k: str(v) for k, v in settings.items()}},
    )
    env["PYTHONWARNINGS"] = "ignore"
    run_migrations(env, repo)
    if moto_started is not None:
        moto_started.join()
        if moto.service is None or not moto.service.alive():
            raise RuntimeError("the S3 server (moto) did not start")
        assert moto.service.process is not None
        moto_pid = moto.service.process.pid
    return ChuteStack(root, env, database_url, prefix, storage_url, staging, moto_pid, repo)


def start_service(
    stack: contextlib.ExitStack,
    name: str,
    argv: list[str],
    env: dict[str, str],
    log_dir: Path,
    ready: Callable[[Any], bool],
    timeout: float = 60,
    cwd: Path = REPO,
) -> Any:
    """Start a process (its own session, log in ``log_dir/<name>.log``, run in ``cwd``) and wait
    until ``ready``.

    It is registered with ``stack`` before the wait, so it is stopped even if it never gets ready.
    """
    from tests.support.services import ServiceProcess, wait_until

    service = ServiceProcess(name, argv, env, log_dir / f"{name}.log", cwd=cwd)
    stack.callback(service.stop)
    service.start()

    def check() -> bool:
        if not service.alive():
            raise RuntimeError(f"{name} exited:\n{service.tail()}")
        return ready(service)

    wait_until(check, timeout, what=name)
    return service


def gunicorn_argv(app: str, bind: str, *, workers: int, threads: int) -> list[str]:
    """The gunicorn command line of ``chute web`` (web/cli.py), for any WSGI app."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--worker-class",
        "gthread",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--bind",
        bind,
        "--timeout",
        "120",
        "--graceful-timeout",
        "30",
        "--access-logfile",
        "-",
        app,
    ]


def http_ready(url: str) -> Callable[[Any], bool]:
    import urllib3

    http = urllib3.PoolManager()

    def ready(_: Any) -> bool:
        try:
            return http.request("GET", url, timeout=1, retries=False).status == 200
        except urllib3.exceptions.HTTPError:
            return False

    return ready


def start_web(
    stack: contextlib.ExitStack, chute: ChuteStack, *, workers: int, threads: int, name: str = "web"
) -> tuple[Any, str]:
    """``chute web`` (gunicorn, gthread) on a free port; returns the process and its base URL."""
    from tests.support.services import free_port

    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "web.cli",
        "web",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
    ]
    base_url = f"http://127.0.0.1:{port}"
    web = start_service(stack, name, argv, chute.env, chute.root, http_ready(base_url + "/healthz"), cwd=chute.repo)
    return web, base_url


def start_worker(
    stack: contextlib.ExitStack, chute: ChuteStack, *, processes: int, threads: int, name: str = "worker"
) -> Any:
    """``chute worker`` (Dramatiq CLI) until every worker process says it is ready."""
    return start_dramatiq(
        stack,
        [sys.executable, "-m", "web.cli", "worker"],
        chute.env,
        chute.root,
        processes=processes,
        threads=threads,
        name=name,
        cwd=chute.repo,
    )


def start_dramatiq(
    stack: contextlib.ExitStack,
    command: list[str],
    env: dict[str, str],
    log_dir: Path,
    *,
    processes: int,
    threads: int,
    name: str,
    cwd: Path = REPO,
) -> Any:
    from tests.support.services import free_port

    argv = [*command, "--processes", str(processes), "--threads", str(threads)]
    worker_env = {**env, "dramatiq_prom_port": str(free_port()), "dramatiq_prom_host": "127.0.0.1"}
    log_path = log_dir / f"{name}.log"

    def ready(_: Any) -> bool:
        try:
            return log_path.read_bytes().count(b"Worker process is ready") >= processes
        except OSError:
            return False

    return start_service(stack, name, argv, worker_env, log_dir, ready, cwd=cwd)


class Api:
    """A small client of chute's HTTP API (urllib3, keep-alive, thread-safe)."""

    def __init__(self, base_url: str, api_key: str, *, maxsize: int = 16):
        import urllib3

        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.http = urllib3.PoolManager(maxsize=maxsize, retries=False, timeout=urllib3.Timeout(10, 120))

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        expect: int | tuple[int, ...] = (200, 201, 202),
    ) -> Any:
        """One request; the decoded JSON answer. Raises RuntimeError on an unexpected status."""
        all_headers = {**self.headers, **(headers or {})}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        response = self.http.request(method, self.base_url + path, body=body, headers=all_headers)
        statuses = (expect,) if isinstance(expect, int) else expect
        if response.status not in statuses:
            raise RuntimeError(f"{method} {path}: {response.status} {response.data[:300]!r}")
        return json.loads(response.data) if response.data else None


def db_transactions(database_url: str) -> int:
    """Transactions committed and rolled back so far in the database of ``database_url``."""
    import psycopg

    from tests.support.services import POSTGRES_ADMIN_URL

    name = database_url.rsplit("/", 1)[-1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchone()
    return int(row[0]) if row else 0


def stop_all(services: Sequence[Any]) -> None:
    """Stop services in reverse order, each even if another one fails to stop."""
    for service in reversed(services):
        with contextlib.suppress(Exception):
            service.stop()


class Profiler:
    """``py-spy record`` of a process tree while the ``with`` runs, when ``BENCH_PROFILE`` names a
    directory: ``<dir>/<name>.txt`` gets collapsed stacks (flamegraph.pl or speedscope read them).

    By default only the thread holding the GIL is sampled (``--gil``: where Python burns CPU);
    ``BENCH_PROFILE_IDLE=1`` records every thread, waiting ones too (latency hunting);
    ``BENCH_PROFILE_NATIVE=1`` adds the C frames (time inside the driver, the interpreter, libc).
    Without ``BENCH_PROFILE`` (the normal case) this does nothing.
    """

    def __init__(self, name: str, pid: int):
        self.name, self.pid = name, pid
        self.process: Any = None

    def __enter__(self) -> Profiler:
        import subprocess

        directory = os.environ.get("BENCH_PROFILE")
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not directory or not Path(spy).exists():
            return self
        Path(directory).mkdir(parents=True, exist_ok=True)
        argv = [
            spy,
            "record",
            "--pid",
            str(self.pid),
            "--subprocesses",
            "--format",
            "raw",
            "--rate",
            "200",
            "-o",
            str(Path(directory) / f"{self.name}.txt"),
        ]
        argv.append("--idle" if os.environ.get("BENCH_PROFILE_IDLE") else "--gil")
        if os.environ.get("BENCH_PROFILE_NATIVE"):
            argv.append("--native")
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal
        import subprocess

        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _cpu_ticks() -> dict[int, tuple[str, int]]:
    """Every process: pid → (name, utime + stime in clock ticks)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        out[int(entry)] = (name, int(fields[11]) + int(fields[12]))
    return out


class CpuAccount:
    """CPU seconds spent by named process trees (and PostgreSQL, RabbitMQ, Redis, the rest) in a ``with``.

    On a shared machine "other" includes other people's work; the named trees are ours.
    """

    def __init__(self, trees: dict[str, int]):
        self.trees = trees
        self.seconds: dict[str, float] = {}
        self.wall = 0.0

    def __enter__(self) -> CpuAccount:
        self.before = _cpu_ticks()
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        after = _cpu_ticks()
        self.wall = time.monotonic() - self.started
        owner = {pid: name for name, root in self.trees.items() for pid in descendants(root)}
        owner[os.getpid()] = "bench"
        hz = os.sysconf("SC_CLK_TCK")
        totals: dict[str, float] = {}
        for pid, (comm, ticks) in after.items():
            spent = ticks - self.before.get(pid, (comm, 0))[1]
            if spent <= 0:
                continue
            if pid in owner:
                name = owner[pid]
            elif comm == "postgres":
                name = "postgres"
            elif comm.startswith("beam") or comm in ("erl_child_setup", "inet_gethost"):
                name = "rabbitmq"
            elif comm == "redis-server":
                name = "redis"
            else:
                name = "other"
            totals[name] = totals.get(name, 0.0) + spent / hz
        self.seconds = totals

    def per(self, count: int, unit: float = 1000.0) -> dict[str, float]:
        """CPU per item (ms by default) for each tree."""
        return {name: round(value * unit / max(count, 1), 2) for name, value in sorted(self.seconds.items())}

"""sse: how many live-progress streams one web process holds, and what they cost.

chute: ``chute web`` with ONE gunicorn worker process (gthread, 8 API threads plus
``CHUTE_SSE_MAX_STREAMS`` threads for streams) on PostgreSQL. A single client process opens
``GET /v1/events`` streams on plain non-blocking sockets, level by level (each stream reads
its ``ready`` event before it counts as held). At each level it measures:

- the web process's RSS and threads, and RSS per stream over the empty process;
- fan-out: a job's progress is committed through chute's own code (``report_progress``, which
  NOTIFYs); the time until every open stream has the event (median of a few commits, and the
  slowest stream);
- the API's latency with those streams open: ``GET /v1/jobs/{id}`` p50, against the same
  endpoint with no stream open measured in the same run (the ceiling).

Past the cap, the next stream must get 503 with Retry-After; the run checks that too. Loopback
only, bounded in count and time; it stops everything it started.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import socket
import time
from collections.abc import Sequence
from typing import Any

from bench.harness import (
    Api,
    Report,
    Row,
    chute_stack,
    descendants,
    log,
    median,
    rss_kib,
    services_available,
    start_web,
    workdir,
)

#: Stream counts measured (the last is the process's cap, CHUTE_SSE_MAX_STREAMS).
LEVELS, QUICK_LEVELS = (0, 100, 250, 500, 1000), (0, 20, 50)
#: Progress commits timed per level, and GET requests per latency sample.
COMMITS, REQUESTS = 5, 100
#: Longest wait for anything one step expects (a loaded, shared machine).
DEADLINE = 120.0


class Streams:
    """Many SSE connections read by one selector: counts each stream's events by name."""

    def __init__(self, host: str, port: int, api_key: str):
        self.address = (host, port)
        self.request = (f"GET /v1/events HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {api_key}\r\n"
                        "Accept: text/event-stream\r\n\r\n").encode()  # fmt: skip
        self.selector = selectors.DefaultSelector()
        self.buffers: dict[socket.socket, bytes] = {}
        self.seen: dict[socket.socket, list[tuple[float, str]]] = {}

    def open(self, count: int) -> None:
        """Open ``count`` more streams and wait until each has its ``ready`` event."""
        fresh = []
        for _ in range(count):
            sock = socket.create_connection(self.address, timeout=30)
            sock.sendall(self.request)
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)
            self.buffers[sock], self.seen[sock] = b"", []
            fresh.append(sock)
        self.wait(lambda: all(any(name == "ready" for _, name in self.seen[s]) for s in fresh), "ready events")

    def wait(self, done: Any, what: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} within {DEADLINE}s")
            self.pump(0.05)

    def pump(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            data = sock.recv(65536)
            if not data:
                raise RuntimeError("the server closed a stream")
            now = time.monotonic()
            self.buffers[sock] += data
            for line in self.buffers[sock].split(b"\n"):
                if line.startswith(b"event: "):
                    self.seen[sock].append((now, line[7:].decode().strip()))
            self.buffers[sock] = self.buffers[sock].rsplit(b"\n", 1)[-1]

    def count(self) -> int:
        return len(self.seen)

    def close(self) -> None:
        for sock in list(self.seen):
            with contextlib.suppress(OSError):
                sock.close()
        self.selector.close()


def over_the_cap(base_url: str, api_key: str) -> tuple[int, str]:
    import urllib3

    response = urllib3.PoolManager().request("GET", base_url + "/v1/events", retries=False, preload_content=False,
                                             headers={"Authorization": f"Bearer {api_key}"}, timeout=30)  # fmt: skip
    status, retry_after = response.status, response.headers.get("Retry-After", "")
    response.release_conn()
    return status, retry_after


def api_p50(api: Api, job_id: str) -> float:
    samples = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        api.call("GET", f"/v1/jobs/{job_id}")
        samples.append((time.perf_counter() - started) * 1000)
    return median(samples)


def fan_out(streams: Streams, job_id: str, step: list[float]) -> tuple[float, float]:
    """Commit a progress change through chute's code; ms until every stream has it (median, slowest)."""
    from models import job as jobs
    from models.db import session_scope

    medians, slowest = [], []
    for _ in range(COMMITS):
        before = {s: len(events) for s, events in streams.seen.items()}
        step[0] = min(step[0] + 0.01, 0.99)
        with session_scope() as session:
            jobs.report_progress(session, job_id, "upload", step[0])
        committed = time.monotonic()
        streams.wait(lambda seen=before: all(len(e) > seen[s] for s, e in streams.seen.items()), "progress event")
        arrivals = [(streams.seen[s][before[s]][0] - committed) * 1000 for s in streams.seen]
        medians.append(median(arrivals))
        slowest.append(max(arrivals))
    return median(medians), median(slowest)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few streams (smoke test)")
    parser.add_argument("--json-only", action="store_true")
    parser.add_argument("--levels", type=int, nargs="+", help="stream counts to measure")
    args = parser.parse_args(argv)
    if not services_available():
        print("bench sse: PostgreSQL and RabbitMQ must answer on 127.0.0.1", flush=True)
        return 1
    levels = sorted(set(args.levels or (QUICK_LEVELS if args.quick else LEVELS)) | {0})
    cap = levels[-1]
    report = Report("sse", args.quick, settings={"web_workers": 1, "api_threads": 8, "sse_max_streams": cap})
    with workdir("sse") as root, contextlib.ExitStack() as stack:
        chute = chute_stack(stack, root, s3=False, sse_max_streams=cap, sse_max_streams_per_tenant=cap,
                            sse_heartbeat_seconds=30)  # fmt: skip
        from models.settings import Settings, configure
        from tests.support.services import issue_api_key

        configure(Settings.from_env(chute.env))
        key = issue_api_key(chute.env, "bench")["api_key"]
        web, base_url = start_web(stack, chute, workers=1, threads=8)
        worker_pid = next(p for p in descendants(web.process.pid) if p != web.process.pid)
        api = Api(base_url, key)
        job_id = processing_job(api)
        host, port = base_url.removeprefix("http://").split(":")
        streams = Streams(host, int(port), key)
        stack.callback(streams.close)
        step = [0.0]
        api_p50(api, job_id)  # warm-up: the first requests pay for imports, pools and caches
        base_rss = rss_kib(worker_pid)
        ceiling_p50 = api_p50(api, job_id)
        for level in levels[1:]:
            streams.open(level - streams.count())
            log(f"{level} streams open")
            rss = rss_kib(worker_pid)
            threads = len(os.listdir(f"/proc/{worker_pid}/task"))
            fan_median, fan_slowest = fan_out(streams, job_id, step)
            p50 = api_p50(api, job_id)
            report.add(Row(f"{level} streams: RSS", rss / 1024, unit="MiB"), f"rss_{level}_mib")
            if not args.quick:  # a few streams are within the RSS noise
                report.add(Row(f"{level} streams: RSS per stream", (rss - base_rss) / level, unit="KiB"),
                           f"rss_per_stream_{level}_kib")  # fmt: skip
            report.figures[f"threads_{level}"] = threads
            report.add(Row(f"{level} streams: fan-out, median stream", max(fan_median, 0.001), unit="ms"),
                       f"fanout_{level}_ms")  # fmt: skip
            report.add(Row(f"{level} streams: fan-out, slowest stream", max(fan_slowest, 0.001), unit="ms"),
                       f"fanout_slowest_{level}_ms")  # fmt: skip
            report.add(Row(f"{level} streams: GET /v1/jobs/{{id}} p50", p50, ceiling_p50, "ms"),
                       f"api_p50_{level}_ms", "api_p50_idle_ms")  # fmt: skip
        status, retry_after = over_the_cap(base_url, key)
        held = streams.count() if status == 503 and retry_after else 0
        report.figures["streams_held"] = held
        report.notes.append(f"one web process held {held} streams; stream {held + 1} got {status} "
                            f"(Retry-After: {retry_after or 'none'})")  # fmt: skip
        report.notes.append("RSS per stream: above the process with no stream open; fan-out: commit of a "
                            "progress change until the stream's socket had it (LISTEN/NOTIFY, then the hub)")
        report.notes.append(f"API latency: median of {REQUESTS} sequential requests; ratio = chute / idle, "
                            "so above 1 is slower")
    report.emit(args.json_only)
    return 0 if held == cap else 1


def processing_job(api: Api) -> str:
    """A job that is processing (no worker runs: the benchmark moves its progress itself)."""
    from models import job as jobs
    from models.db import session_scope

    data = b"sse benchmark\n" * 100
    created = api.call("POST", "/v1/uploads", json_body={"filename": "s.txt", "size": len(data)})
    api.call("PUT", f"/v1/uploads/{created['upload_id']}/chunks/0", body=data)
    job_id = str(api.call("POST", f"/v1/uploads/{created['upload_id']}/complete", expect=(202, 503))["job_id"])
    with session_scope() as session:
        jobs.begin_stage(session, job_id, "upload", 5)
    return job_id


if __name__ == "__main__":
    raise SystemExit(main())

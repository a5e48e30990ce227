"""pipeline: small jobs end to end, against a bare four-actor no-op Dramatiq pipeline.

chute: 10 KB text files and 100 KB JPEGs (half each) go through ``chute web`` (resumable
upload: create, one chunk, complete) and ``chute worker`` (assemble → upload to moto's S3
server → extract, thumbnails in the isolated child → notify) on RabbitMQ with publisher
confirms and PostgreSQL, ending in a webhook to a receiver in this process.

- saturation: ``--jobs`` uploads are completed while no worker runs (the assemble queue
  fills), then the worker starts; jobs/s is the drain rate between the 10th and the 90th
  percentile of webhook arrivals (worker start-up and stragglers left out).
- latency: with the worker idle, ``--latency-jobs`` completes are sent at a moderate fixed
  rate (open loop); latency runs from the start of the ``complete`` call to the webhook's
  arrival at the receiver.

Ceiling: the same measurements on :mod:`bench.noop_pipeline` (four no-op actors, the last
one sends a UDP datagram instead of the webhook), same broker, confirms, processes × threads;
saturation from a pre-filled queue, latency from the start of the publish to the datagram.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dramatiq

from bench.harness import (
    Api,
    CpuAccount,
    Profiler,
    Report,
    Row,
    RssSampler,
    chute_stack,
    db_transactions,
    log,
    median,
    percentile,
    services_available,
    start_dramatiq,
    start_web,
    start_worker,
    steady_rate,
    workdir,
)

#: Target: chute's saturation throughput ≥ this fraction of the no-op pipeline's.
THROUGHPUT_TARGET = 0.3
#: Size of the text files (bytes).
TEXT_SIZE = 10 * 1024
#: Client threads that prepare uploads and send completes (the web has 2 × 8 threads).
CLIENT_THREADS = 8


def text_file(seed: int) -> bytes:
    rnd = random.Random(seed)
    words = ["intake", "chute", "pipeline", "bucket", "webhook", "chunk", "stage", "queue", "latency"]
    out = io.StringIO()
    while out.tell() < TEXT_SIZE:
        out.write(" ".join(rnd.choice(words) for _ in range(12)) + ".\n")
    return out.getvalue().encode()[:TEXT_SIZE]


def jpeg_file() -> bytes:
    """A 1024×768 photo-like JPEG of about 100 KB (a gradient under noise)."""
    from PIL import Image

    size = (1024, 768)
    image = Image.blend(
        Image.radial_gradient("L").resize(size).convert("RGB"), Image.effect_noise(size, 20).convert("RGB"), 0.2
    )
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


# --- chute ---------------------------------------------------------------------------------


class Chute:
    """chute's side: uploads prepared ahead, completes timed, webhooks matched by job id."""

    def __init__(self, api: Api, receiver: Any, pool: ThreadPoolExecutor, mix: str):
        self.api, self.receiver, self.pool, self.mix = api, receiver, pool, mix
        self.files = {"text": text_file(1), "jpeg": jpeg_file()}
        self.kind_of_job: dict[str, str] = {}

    def prepare(self, count: int) -> list[tuple[str, str]]:
        """``count`` uploads with their one chunk received: [(upload_id, kind)], not yet complete."""

        kinds = {"both": ("text", "jpeg"), "text": ("text",), "jpeg": ("jpeg",)}[self.mix]

        def one(n: int) -> tuple[str, str]:
            kind = kinds[n % len(kinds)]
            data = self.files[kind]
            created = self.api.call(
                "POST",
                "/v1/uploads",
                json_body={
                    "filename": f"file-{n}.{'txt' if kind == 'text' else 'jpg'}",
                    "size": len(data),
                    "webhook_url": self.receiver.url("/hook"),
                },
            )
            self.api.call("PUT", f"/v1/uploads/{created['upload_id']}/chunks/0", body=data)
            return created["upload_id"], kind

        return list(self.pool.map(one, range(count)))

    def complete(self, upload: tuple[str, str]) -> tuple[str, float]:
        """Complete one upload; (job_id, monotonic time the call started)."""
        started = time.monotonic()
        job_id = self.api.call("POST", f"/v1/uploads/{upload[0]}/complete")["job_id"]
        self.kind_of_job[job_id] = upload[1]
        return job_id, started

    def arrivals(self) -> dict[str, tuple[float, str]]:
        """job_id → (arrival time, event type) of every webhook received so far."""
        out = {}
        for request in self.receiver.requests:
            event = json.loads(request.body)
            out[event["data"]["job_id"]] = (request.received_at, event["type"])
        return out

    def wait(self, job_ids: Sequence[str], timeout: float) -> dict[str, tuple[float, str]]:
        wanted = set(job_ids)
        deadline = time.monotonic() + timeout
        while True:
            got = self.arrivals()
            if wanted <= got.keys():
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(wanted - got.keys())} of {len(wanted)} webhooks missing after {timeout}s")
            time.sleep(0.05)


def run_chute(args: argparse.Namespace, report: Report, stack: contextlib.ExitStack, root: Any) -> dict[str, Any]:
    from tests.support.services import issue_api_key
    from tests.support.webhook_receiver import WebhookReceiver

    chute = chute_stack(stack, root, s3=True)
    receiver = stack.enter_context(WebhookReceiver())
    web, base_url = start_web(stack, chute, workers=args.web_workers, threads=args.web_threads)
    key = issue_api_key(chute.env, "bench")
    pool = stack.enter_context(ThreadPoolExecutor(CLIENT_THREADS))
    side = Chute(Api(base_url, key["api_key"], maxsize=CLIENT_THREADS), receiver, pool, args.mix)

    log(f"pipeline/chute: preparing {args.jobs + args.latency_jobs} uploads")
    uploads = side.prepare(args.jobs + args.latency_jobs)
    batch, later = uploads[: args.jobs], uploads[args.jobs :]
    log(f"pipeline/chute: completing {len(batch)} jobs with no worker running")
    with Profiler("pipeline-web-complete", web.process.pid):
        queued = [job_id for job_id, _ in pool.map(side.complete, batch)]
    log("pipeline/chute: starting the worker")

    worker = start_worker(stack, chute, processes=args.processes, threads=args.threads)
    sampler = stack.enter_context(RssSampler([worker.process.pid, web.process.pid]))
    trees = {"worker": worker.process.pid, "web": web.process.pid, "moto": chute.moto_pid}
    transactions = db_transactions(chute.database_url)
    with Profiler("pipeline-worker", worker.process.pid), CpuAccount(trees) as cpu:
        arrivals = side.wait(queued, timeout=60 + args.jobs)
    time.sleep(0.6)  # PostgreSQL's statistics lag by up to 500 ms
    report.settings["chute_db_transactions_per_job"] = round(
        (db_transactions(chute.database_url) - transactions) / len(queued), 1
    )
    report.settings["chute_cpu_ms_per_job"] = cpu.per(len(queued))
    failed = sum(1 for job_id in queued if arrivals[job_id][1] != "job.completed")
    if failed:
        report.notes.append(f"chute: {failed} of {len(queued)} saturation jobs did not complete")
    rate = steady_rate([arrivals[job_id][0] for job_id in queued])
    log(f"pipeline/chute: {rate:.1f} jobs/s at saturation")

    latency_rate = args.rate or max(1.0, min(20.0, 0.25 * rate))
    starts = open_loop(side.complete, later, latency_rate, pool)
    arrivals = side.wait(list(starts), timeout=60 + len(later))
    latencies: dict[str, list[float]] = {"all": [], "text": [], "jpeg": []}
    for job_id, started in starts.items():
        ms = (arrivals[job_id][0] - started) * 1000
        latencies["all"].append(ms)
        latencies[side.kind_of_job[job_id]].append(ms)
    return {
        "rate": rate,
        "latency_rate": latency_rate,
        "latencies": latencies,
        "steps": latency_steps(chute.database_url, starts, arrivals, side.kind_of_job),
        "peak_process_mib": sampler.peak_process_mib,
    }


#: The job row's timestamps, in the order a job passes them (a step a kind skips takes 0 ms).
STEP_COLUMNS = ("created_at", "enqueued_at", "started_at", "assembled_at", "uploaded_at", "extracted_at",
                "completed_at")  # fmt: skip


def latency_steps(database_url: str, starts: dict[str, float], arrivals: dict[str, tuple[float, str]],
                  kind_of_job: dict[str, str]) -> dict[str, dict[str, float]]:  # fmt: skip
    """Where the latency jobs' time went: per kind, the median ms between the ``complete`` call,
    each of the job row's timestamps and the webhook's arrival.

    The row's times are the database's clock and the call's and the webhook's this process's:
    both are this machine's, taken here as wall-clock time. ``started_at`` is the first stage's
    start, so a later stage's step also holds the queue hop before it. ``enqueued_at`` is written
    once the broker confirmed the publish, which may come after assemble started: that step can
    be negative.
    """
    import psycopg

    columns = ", ".join(f"extract(epoch from {name})" for name in STEP_COLUMNS)
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT id, {columns} FROM jobs WHERE id = ANY(%s)", (list(starts),)).fetchall()
    wall = time.time() - time.monotonic()
    names = ["complete", *(name.removesuffix("_at") for name in STEP_COLUMNS), "webhook"]
    steps: dict[str, dict[str, list[float]]] = {}
    for job_id, *stamps in rows:
        times: list[float | None] = [starts[job_id] + wall, *(None if t is None else float(t) for t in stamps),
                                     arrivals[job_id][0] + wall]  # fmt: skip
        kind = steps.setdefault(kind_of_job[job_id], {})
        last, since = 0, starts[job_id] + wall
        for n, at in enumerate(times[1:], start=1):
            if at is None:  # a step the job does not record: the next one counts from the last
                continue
            kind.setdefault(f"{names[last]}→{names[n]}", []).append((at - since) * 1000)
            last, since = n, at
    return {kind: {step: round(median(ms), 1) for step, ms in by_step.items()} for kind, by_step in steps.items()}


def open_loop(
    send: Callable[[Any], tuple[str, float]], items: Sequence[Any], rate: float, pool: ThreadPoolExecutor
) -> dict[str, float]:
    """Send ``items`` at ``rate`` per second whatever the answers take; {id: start time}."""
    futures = []
    begin = time.monotonic()
    for n, item in enumerate(items):
        delay = begin + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        futures.append(pool.submit(send, item))
    return dict(f.result() for f in futures)


# --- the ceiling ---------------------------------------------------------------------------


class UdpArrivals:
    """Records the datagrams of the no-op pipeline's last actor: {job id: arrival time}."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.1)
        self.port = self.socket.getsockname()[1]
        self.arrivals: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.socket.recv(256)
            except TimeoutError:
                continue
            except OSError:
                return
            self.arrivals[data.decode()] = time.monotonic()

    def wait(self, ids: Sequence[str], timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while not set(ids) <= self.arrivals.keys():
            if time.monotonic() > deadline:
                missing = len(set(ids) - self.arrivals.keys())
                raise TimeoutError(f"{missing} of {len(ids)} no-op jobs missing after {timeout}s")
            time.sleep(0.02)
        return dict(self.arrivals)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.socket.close()


def run_ceiling(args: argparse.Namespace, stack: contextlib.ExitStack, root: Any) -> dict[str, Any]:
    from tests.support.services import RABBITMQ_URL, rabbitmq_prefix

    prefix = stack.enter_context(rabbitmq_prefix())
    udp = UdpArrivals()
    stack.callback(udp.close)
    os.environ.update(
        BENCH_NOOP_PREFIX=prefix, BENCH_NOOP_REPORT=f"127.0.0.1:{udp.port}", BENCH_NOOP_BROKER_URL=RABBITMQ_URL
    )
    from bench import noop_pipeline

    stack.callback(noop_pipeline.broker.close)
    pool = stack.enter_context(ThreadPoolExecutor(4))

    def publish(job_id: str) -> tuple[str, float]:
        started = time.monotonic()
        for attempt in range(3):  # a shared broker may refuse a connection now and then
            try:
                noop_pipeline.job_pipeline(job_id).run()
                break
            except dramatiq.errors.BrokerConnectionError:
                if attempt == 2:
                    raise
                time.sleep(0.2)
        return job_id, started

    count = args.noop_jobs
    log(f"pipeline/ceiling: publishing {count} no-op pipelines with no worker running")
    batch = [f"noop-{n}" for n in range(count)]
    list(pool.map(publish, batch))
    worker = start_dramatiq(
        stack,
        [sys.executable, "-m", "dramatiq", "bench.noop_pipeline"],
        dict(os.environ),
        root,
        processes=args.processes,
        threads=args.threads,
        name="noop-worker",
    )
    with CpuAccount({"worker": worker.process.pid}) as cpu:
        arrivals = udp.wait(batch, timeout=60 + count / 50)
    cpu_per_job = cpu.per(count)
    rate = steady_rate([arrivals[job_id] for job_id in batch])
    log(f"pipeline/ceiling: {rate:.0f} jobs/s at saturation")
    return {"rate": rate, "publish": publish, "pool": pool, "udp": udp, "cpu_ms_per_job": cpu_per_job}


def ceiling_latency(ceiling: dict[str, Any], count: int, rate: float) -> list[float]:
    ids = [f"noop-latency-{n}" for n in range(count)]
    starts = open_loop(ceiling["publish"], ids, rate, ceiling["pool"])
    arrivals = ceiling["udp"].wait(ids, timeout=60)
    return [(arrivals[job_id] - started) * 1000 for job_id, started in starts.items()]


# --- main ----------------------------------------------------------------------------------


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke mode for CI")
    parser.add_argument("--json-only", action="store_true", help="print the JSON line only")
    parser.add_argument("--jobs", type=int, help="chute jobs in the saturation batch (default 600; quick 24)")
    parser.add_argument("--noop-jobs", type=int, help="no-op jobs in the ceiling's batch (default 6000; quick 300)")
    parser.add_argument("--latency-jobs", type=int, help="jobs sent at the moderate rate (default 150; quick 8)")
    parser.add_argument("--rate", type=float, help="the moderate rate, jobs/s (default: 1/4 of chute's saturation)")
    parser.add_argument("--mix", choices=("both", "text", "jpeg"), default="both", help="kinds of file (default both)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (chute's default 2)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process (chute's default 8)")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=8)
    args = parser.parse_args(argv)
    args.jobs = args.jobs or (24 if args.quick else 600)
    args.noop_jobs = args.noop_jobs or (300 if args.quick else 6000)
    args.latency_jobs = args.latency_jobs or (8 if args.quick else 150)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(list(argv or []))
    if not services_available():
        print("pipeline: RabbitMQ (127.0.0.1:5672) and PostgreSQL (127.0.0.1:5432) are needed", file=sys.stderr)
        return 2
    report = Report("pipeline", args.quick)
    report.settings = {
        "jobs": args.jobs,
        "noop_jobs": args.noop_jobs,
        "latency_jobs": args.latency_jobs,
        "worker": f"{args.processes}x{args.threads}",
        "web": f"{args.web_workers}x{args.web_threads}",
        "files": {"both": "10 KB text + 100 KB JPEG, half each", "text": "10 KB text", "jpeg": "100 KB JPEG"}[args.mix],
        "confirms": True,
    }
    with workdir("pipeline") as root:
        # One side at a time, each stopped before the other starts: they share two cores.
        with contextlib.ExitStack() as stack:
            chute = run_chute(args, report, stack, root)
        with contextlib.ExitStack() as stack:
            ceiling = run_ceiling(args, stack, root)
            noop_latencies = ceiling_latency(ceiling, args.latency_jobs, chute["latency_rate"])
    lat = chute["latencies"]
    report.settings["latency_rate_per_s"] = round(chute["latency_rate"], 2)
    report.settings["latency_steps_p50_ms"] = chute["steps"]
    report.settings["noop_cpu_ms_per_job"] = ceiling["cpu_ms_per_job"]
    report.add(
        Row("saturation", chute["rate"], ceiling["rate"], "jobs/s", target=THROUGHPUT_TARGET),
        "jobs_per_s",
        "noop_jobs_per_s",
    )
    for p in (50, 99):
        report.add(
            Row(f"latency p{p}", percentile(lat["all"], p), percentile(noop_latencies, p), "ms"),
            f"latency_p{p}_ms",
            f"noop_latency_p{p}_ms",
        )
    for kind in ("text", "jpeg") if args.mix == "both" else ():
        report.add(Row(f"latency p50 {kind}", median(lat[kind]), unit="ms"), f"latency_p50_{kind}_ms")
        report.add(Row(f"latency p99 {kind}", percentile(lat[kind], 99), unit="ms"), f"latency_p99_{kind}_ms")
    report.add(Row("peak RSS, one process", chute["peak_process_mib"], unit="MiB", limit=150), "peak_rss_mib")
    report.notes.append(
        f"latency at {chute['latency_rate']:.1f} jobs/s: complete call → webhook (chute), publish → last actor (no-op)"
    )
    for kind, steps in chute["steps"].items():
        report.notes.append(f"{kind} jobs, p50 of each step (ms): " + ", ".join(f"{k} {v:g}" for k, v in steps.items()))
    report.emit(args.json_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""peers: chute beside the tutorials' Flask + Celery + Redis script doing the same work.

Both sides get the same files (10 KB text, 100 KB JPEG), one multipart POST each (chute's
one-shot ``POST /v1/jobs``, the peer's ``POST /jobs``), the same S3 server (moto), the same
webhook receiver (in this process), the same worker shape (2 processes × 8 threads: chute's
Dramatiq worker; two Celery workers with 8 threads each) and the same web command line
(gunicorn, 2 × 8 gthread). Rounds alternate (chute, peer, chute, peer…) and every figure is
the median over the rounds, so a burst of load from elsewhere hits both sides:

- jobs/s: ``--jobs`` files are submitted while no worker runs, then the worker starts; the
  batch's jobs divided by the time from the worker being ready to the last webhook. Once on
  the mixed batch (half text, half JPEG), once on text only. Not the rate between the 10th and
  90th percentile of arrivals (kept in the JSON as ``steady_jobs_per_s``): a Celery chain puts
  each next stage at the back of one FIFO queue, so the peer runs every job's first stages
  before any webhook and then sends all webhooks in one burst, which that window would
  count as its drain rate.
- latency: submit → webhook, ``--latency-jobs`` mixed jobs sent at ``--rate`` jobs/s (open
  loop) to an idle worker; p50 and p99 of each round.
- CPU per job: CPU time of the web, worker and S3 server process trees over the mixed batch
  (submission and drain) divided by its jobs; the broker's and database's are in the JSON.
- status GET: ``wrk`` (or the Python driver) on the status of a completed job, 16 connections,
  chute's ``GET /v1/jobs/{id}`` against the peer's ``GET /jobs/<id>`` and the bare Flask app
  (:mod:`bench.bare_app`, chute's job JSON from memory).
- ingest: one ``--ingest-mib`` file over one connection and over four through tus, chute's
  ``/v1/tus`` against @tus/server (npm), the same tus-js-client for both (:mod:`bench.tus`,
  alternating rounds too). Without node or tests/js's packages it says so and skips that part.

Targets (issue 13) are printed beside the ratios; nothing here asserts them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.api import _median_result, drive
from bench.harness import (
    Api,
    ChuteStack,
    CpuAccount,
    Profiler,
    Report,
    Row,
    RssSampler,
    chute_stack,
    gunicorn_argv,
    http_ready,
    log,
    median,
    percentile,
    services_available,
    start_service,
    start_web,
    start_worker,
    steady_rate,
    swung,
    workdir,
)
from bench.pipeline import jpeg_file, open_loop, text_file

#: Issue 13's targets: chute / peer jobs/s at least this, on the mixed batch and on text only.
JOBS_TARGET = 1.0
#: ...p50 latency at most this multiple of the peer's.
LATENCY_MOST = 1.5
#: ...CPU per job (web + worker + S3 server) at most this multiple of the peer's.
CPU_MOST = 1.2
#: ...status GET req/s at least this fraction of the peer's status endpoint.
STATUS_TARGET = 0.7
#: ...and at least this fraction of the bare Flask app's.
STATUS_BARE_TARGET = 0.5
#: Peak RSS of any chute process, MiB (the pipeline, ingest and store benchmarks check it too).
RSS_LIMIT = 150
#: A server whose fastest status GET round ran this many times its slowest is named in a note.
STATUS_SWING = 2.0
#: Client threads submitting jobs (the web has 2 × 8 threads).
CLIENT_THREADS = 8
#: The files, by kind: (name extension, content type).
KINDS = {"text": ("txt", "text/plain"), "jpeg": ("jpg", "image/jpeg")}


class Arrivals:
    """Webhooks received so far, by job id, parsed once each: {job_id: (arrival time, event type)}."""

    def __init__(self, receiver: Any):
        self.receiver = receiver
        self.seen: dict[str, tuple[float, str]] = {}
        self._parsed = 0

    def poll(self) -> dict[str, tuple[float, str]]:
        requests = self.receiver.requests
        for request in requests[self._parsed :]:
            event = json.loads(request.body)
            self.seen[event["data"]["job_id"]] = (request.received_at, event["type"])
        self._parsed = len(requests)
        return self.seen

    def wait(self, job_ids: Sequence[str], timeout: float) -> dict[str, tuple[float, str]]:
        deadline = time.monotonic() + timeout
        while not set(job_ids) <= self.poll().keys():
            if time.monotonic() > deadline:
                missing = len(set(job_ids) - self.seen.keys())
                raise TimeoutError(f"{missing} of {len(job_ids)} webhooks missing after {timeout:g} s")
            time.sleep(0.05)
        return self.seen


@dataclass
class Side:
    """One implementation under test: where it takes files and shows status, how its worker starts."""

    name: str
    base_url: str
    submit_path: str
    headers: dict[str, str]
    web_pid: int
    #: The job id in the answer to a submission.
    job_id_of: Callable[[Any], str]
    status_path: Callable[[str], str]
    #: Starts the worker (named after its argument), returns the running service.
    start_worker: Callable[[str], Any]
    #: A completed JPEG job, for the status GET.
    done_job: str = ""


@dataclass
class Bench:
    """What both sides share in one run."""

    args: argparse.Namespace
    root: Path
    arrivals: Arrivals
    webhook_url: str
    moto_pid: int
    pool: ThreadPoolExecutor
    http: Any
    files: dict[str, bytes] = field(default_factory=lambda: {"text": text_file(1), "jpeg": jpeg_file()})
    #: Submissions sent a second time after the server dropped a kept-alive connection, by side.
    resent: dict[str, int] = field(default_factory=dict)

    def submit(self, side: Side, item: tuple[int, str]) -> tuple[str, float]:
        """One file in one multipart POST; (job id, monotonic time the call started).

        A POST that meets a reset connection is sent once more on a new one, and counted: gunicorn's
        gthread worker (the peer's web serves clients with it directly) can reset a kept-alive
        connection just as a request arrives on it (benoitc/gunicorn#1698). A job the server
        created before the reset is then one extra job, whose webhook the bench ignores.
        """
        import urllib3

        n, kind = item
        extension, content_type = KINDS[kind]
        started = time.monotonic()
        fields = {"file": (f"file-{n}.{extension}", self.files[kind], content_type), "webhook_url": self.webhook_url}
        url = side.base_url + side.submit_path
        try:
            response = self.http.request("POST", url, fields=fields, headers=side.headers)
        except urllib3.exceptions.ProtocolError:
            self.resent[side.name] = self.resent.get(side.name, 0) + 1
            response = self.http.request("POST", url, fields=fields, headers=side.headers)
        if response.status != 202:
            raise RuntimeError(f"{side.name}: POST {side.submit_path}: {response.status} {response.data[:300]!r}")
        return side.job_id_of(json.loads(response.data)), started


def items(mix: str, count: int, start: int = 0) -> list[tuple[int, str]]:
    kinds = ("text", "jpeg") if mix == "both" else (mix,)
    return [(n, kinds[n % len(kinds)]) for n in range(start, start + count)]


def batch_rate(stamps: Sequence[float], started: float) -> float:
    """Jobs per second over the whole drain: every job, from ``started`` to the last arrival."""
    span = max(stamps) - started
    return len(stamps) / span if span > 0 else math.nan


def saturation(bench: Bench, side: Side, mix: str, tag: str) -> tuple[Any, dict[str, Any]]:
    """Submit a batch with no worker running, start the worker, time the drain; (worker, figures)."""
    batch = items(mix, bench.args.jobs)
    with Profiler(f"peers-{side.name}-{tag}-submit", side.web_pid), CpuAccount({"web": side.web_pid}) as submit_cpu:
        submitted = list(bench.pool.map(lambda item: bench.submit(side, item), batch))
    job_ids = [job_id for job_id, _ in submitted]
    worker = side.start_worker(tag)
    ready_at = time.monotonic()
    trees = {"web": side.web_pid, "worker": worker.process.pid, "moto": bench.moto_pid}
    with (
        Profiler(f"peers-{side.name}-{tag}-worker", worker.process.pid),
        RssSampler([side.web_pid, worker.process.pid]) as rss,
        CpuAccount(trees) as drain_cpu,
    ):
        arrivals = bench.arrivals.wait(job_ids, timeout=60 + len(job_ids))
    cpu: dict[str, float] = {}
    for account in (submit_cpu, drain_cpu):
        for name, seconds in account.seconds.items():
            cpu[name] = cpu.get(name, 0.0) + seconds
    per_job = {name: round(seconds * 1000 / len(job_ids), 2) for name, seconds in sorted(cpu.items())}
    failed = sum(1 for job_id in job_ids if arrivals[job_id][1] != "job.completed")
    jpegs = [job_id for (_, kind), job_id in zip(batch, job_ids, strict=True) if kind == "jpeg"]
    side.done_job = jpegs[0] if jpegs else side.done_job
    stamps = [arrivals[job_id][0] for job_id in job_ids]
    rate = batch_rate(stamps, ready_at)
    cpu_ms = sum(per_job.get(name, 0.0) for name in ("web", "worker", "moto"))
    log(f"peers/{side.name} {tag}: {rate:.1f} jobs/s, {cpu_ms:.1f} ms CPU/job")
    return worker, {
        "jobs_per_s": rate,
        "steady_jobs_per_s": steady_rate(stamps),
        "cpu_ms_per_job": per_job,
        "cpu_ms": cpu_ms,
        "failed": failed,
        "peak_rss_mib": rss.peak_process_mib,
    }


def latency(bench: Bench, side: Side, start: int) -> dict[str, float]:
    """Mixed jobs at a fixed rate to a running, idle worker: p50 and p99 of submit → webhook, ms."""
    batch = items("both", bench.args.latency_jobs, start)
    starts = open_loop(lambda item: bench.submit(side, item), batch, bench.args.rate, bench.pool)
    arrivals = bench.arrivals.wait(list(starts), timeout=60 + len(batch))
    ms = [(arrivals[job_id][0] - started) * 1000 for job_id, started in starts.items()]
    return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99)}


def pipeline_round(bench: Bench, side: Side, n: int) -> dict[str, Any]:
    """One side's round: the text batch, the mixed batch, then latency on the still-running worker."""
    load = os.getloadavg()[0]
    # Workers are stopped here between batches, and by the run's exit stack if a wait fails.
    # Latency is measured on the worker that has just run the mixed batch: warm, as in service.
    worker, text = saturation(bench, side, "text", f"{n}-text")
    worker.stop()
    worker, mixed = saturation(bench, side, "both", f"{n}-mixed")
    lat = latency(bench, side, start=bench.args.jobs)
    worker.stop()
    log(f"peers/{side.name} round {n}: p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms")
    return {
        "load_1m": load,
        "mixed_jobs_per_s": mixed["jobs_per_s"],
        "text_jobs_per_s": text["jobs_per_s"],
        "cpu_ms_per_job": mixed["cpu_ms"],
        "cpu_ms_per_job_by_tree": mixed["cpu_ms_per_job"],
        "text_cpu_ms_per_job": text["cpu_ms"],
        "failed": mixed["failed"] + text["failed"],
        "peak_rss_mib": max(mixed["peak_rss_mib"], text["peak_rss_mib"]),
        **lat,
    }


# --- setup ---------------------------------------------------------------------------------


def chute_side(bench_stack: contextlib.ExitStack, chute: ChuteStack, args: argparse.Namespace) -> Side:
    from tests.support.services import issue_api_key

    web, base_url = start_web(bench_stack, chute, workers=args.web_workers, threads=args.web_threads)
    key = issue_api_key(chute.env, "bench")["api_key"]

    def worker(tag: str) -> Any:
        return start_worker(bench_stack, chute, processes=args.processes, threads=args.threads, name=f"worker-{tag}")

    return Side(
        "chute",
        base_url,
        "/v1/jobs",
        {"Authorization": f"Bearer {key}"},
        web.process.pid,
        job_id_of=lambda answer: str(answer["jobs"][0]["job_id"]),
        status_path=lambda job_id: f"/v1/jobs/{job_id}",
        start_worker=worker,
    )


def peer_side(stack: contextlib.ExitStack, chute: ChuteStack, args: argparse.Namespace) -> Side:
    from bench.peers.stack import start_peer

    peer = start_peer(
        stack,
        chute,
        web_workers=args.web_workers,
        web_threads=args.web_threads,
        processes=args.processes,
        threads=args.threads,
    )
    return Side(
        "peer",
        peer.base_url,
        "/jobs",
        {},
        peer.web.process.pid,
        job_id_of=lambda answer: str(answer["job_id"]),
        status_path=lambda job_id: f"/jobs/{job_id}",
        start_worker=lambda tag: peer.start_worker(stack, tag),
    )


def start_bare(stack: contextlib.ExitStack, chute: ChuteStack, side: Side, args: argparse.Namespace) -> Side:
    """The bare Flask app answering chute's status route with chute's job JSON from memory."""
    from tests.support.services import free_port

    job = Api(side.base_url, "").call("GET", side.status_path(side.done_job), headers=side.headers)
    (chute.root / "job.json").write_text(json.dumps(job))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    bare = start_service(
        stack,
        "bare",
        gunicorn_argv("bench.bare_app:app", f"127.0.0.1:{port}", workers=args.web_workers, threads=args.web_threads),
        {**chute.env, "BENCH_BARE_JOB": str(chute.root / "job.json")},
        chute.root,
        http_ready(url + "/healthz"),
    )
    return Side("bare", url, "", {}, bare.process.pid, str, side.status_path, lambda tag: None, side.done_job)


def status_get(bench: Bench, side: Side, n: int) -> dict[str, Any]:
    """wrk on the side's completed job, after the disk has written back what the rounds before left.

    chute's status GETs come right after the pipeline rounds (staged files, PostgreSQL's WAL,
    thousands of small objects): their writeback, falling on chute's measurement and not on
    the bare app's, cost chute's server up to a fifth more CPU per GET in a scratch measurement.
    """
    os.sync()
    paths = [side.status_path(side.done_job)]
    name = f"{side.name}-status-{n}"
    return dict(drive(name, side.base_url, "GET", paths, side.headers, b"", bench.args, bench.root, side.web_pid))


# --- main ----------------------------------------------------------------------------------


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench peers", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke mode for CI")
    parser.add_argument("--json-only", action="store_true", help="print the JSON line only")
    parser.add_argument("--rounds", type=int, help="alternating rounds, medians reported (default 3; quick 1)")
    parser.add_argument("--jobs", type=int, help="jobs in each saturation batch (default 300; quick 12)")
    parser.add_argument("--latency-jobs", type=int, help="jobs sent at the fixed rate (default 60; quick 6)")
    parser.add_argument("--rate", type=float, default=4.0, help="rate of the latency jobs, jobs/s (default 4)")
    parser.add_argument("--seconds", type=float, help="status GET load per measurement (default 5; quick 1)")
    parser.add_argument("--warmup", type=float, help="warm-up load before each (default 1; quick 0)")
    parser.add_argument("--connections", type=int, default=16, help="status GET keep-alive connections (default 16)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (chute's default 2)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process (chute's default 8)")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=8)
    parser.add_argument("--ingest-mib", type=int, help="the file sent through tus (default 1024; quick 16)")
    args = parser.parse_args(argv)
    args.ingest_mib = args.ingest_mib or (16 if args.quick else 1024)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.jobs = args.jobs or (12 if args.quick else 300)
    args.latency_jobs = args.latency_jobs or (6 if args.quick else 60)
    args.seconds = args.seconds or (1.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.0 if args.quick else 1.0)
    return args


def missing_services() -> str | None:
    from bench.peers.stack import REDIS_HOST, REDIS_PORT, redis_available

    if not services_available():
        return "RabbitMQ (127.0.0.1:5672) and PostgreSQL (127.0.0.1:5432) are needed"
    if not redis_available():
        return f"Redis ({REDIS_HOST}:{REDIS_PORT}) is needed for the Celery peer"
    if importlib.util.find_spec("celery") is None:
        return "the Celery peer needs the bench extra: pip install -e '.[bench]'"
    return None


def measure(args: argparse.Namespace, report: Report) -> dict[str, list[dict[str, Any]]]:
    """Every round of every side: {"chute": [...], "peer": [...], "chute_status": [...], ...}."""
    import urllib3

    from tests.support.webhook_receiver import WebhookReceiver

    rounds: dict[str, list[dict[str, Any]]] = {}
    with workdir("peers") as root, contextlib.ExitStack() as stack:
        log("peers: starting a database, an S3 server (moto) and a webhook receiver")
        chute = chute_stack(stack, root, s3=True)
        receiver = stack.enter_context(WebhookReceiver())
        bench = Bench(
            args,
            root,
            Arrivals(receiver),
            receiver.url("/hook"),
            chute.moto_pid,
            stack.enter_context(ThreadPoolExecutor(CLIENT_THREADS)),
            urllib3.PoolManager(maxsize=CLIENT_THREADS, retries=False, timeout=urllib3.Timeout(10, 60)),
        )
        sides = [chute_side(stack, chute, args), peer_side(stack, chute, args)]
        log("peers: chute's web and the peer's web are up")
        bare: Side | None = None
        report.settings["load_average_start"] = os.getloadavg()
        for n in range(args.rounds):
            log(f"peers: round {n + 1} of {args.rounds}, load average {os.getloadavg()[0]:.2f}")
            for side in sides:
                rounds.setdefault(side.name, []).append(pipeline_round(bench, side, n))
            bare = bare or start_bare(stack, chute, sides[0], args)
            for side in (*sides, bare):
                rounds.setdefault(f"{side.name}_status", []).append(status_get(bench, side, n))
        report.settings["load_average_end"] = os.getloadavg()
        report.settings["submissions_resent_after_a_reset"] = dict(bench.resent)
    return rounds


def fill(report: Report, rounds: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    """The table: medians over rounds, chute beside the peer, with the issue's targets."""

    def med(side: str, key: str) -> float:
        return median([r[key] for r in rounds[side]])

    rows = [
        ("jobs/s, mixed batch", "mixed_jobs_per_s", "jobs/s", {"target": JOBS_TARGET}),
        ("jobs/s, text only", "text_jobs_per_s", "jobs/s", {"target": JOBS_TARGET}),
        (f"latency p50 at {args.rate:g} jobs/s", "p50_ms", "ms", {"most": LATENCY_MOST}),
        (f"latency p99 at {args.rate:g} jobs/s", "p99_ms", "ms", {}),
        ("CPU per job, web + worker + S3", "cpu_ms_per_job", "ms", {"most": CPU_MOST}),
    ]
    for metric, key, unit, target in rows:
        report.add(Row(metric, med("chute", key), med("peer", key), unit, **target), key, f"peer_{key}")
    status = {name: _median_result(rounds[f"{name}_status"]) for name in ("chute", "peer", "bare")}
    chute_get, peer_get, bare_get = (status[name]["requests_per_s"] for name in ("chute", "peer", "bare"))
    report.add(
        Row("status GET req/s", chute_get, peer_get, "req/s", target=STATUS_TARGET),
        "status_requests_per_s",
        "peer_status_requests_per_s",
    )
    report.add(
        Row("status GET req/s vs bare Flask", chute_get, bare_get, "req/s", target=STATUS_BARE_TARGET),
        "status_vs_bare_requests_per_s",
        "bare_status_requests_per_s",
    )
    report.add(
        Row("peak RSS, one process", med("chute", "peak_rss_mib"), med("peer", "peak_rss_mib"), "MiB", limit=RSS_LIMIT),
        "peak_rss_mib",
        "peer_peak_rss_mib",
    )
    report.settings["cpu_ms_per_job_by_tree"] = {
        side: rounds[side][len(rounds[side]) // 2]["cpu_ms_per_job_by_tree"] for side in ("chute", "peer")
    }
    report.settings["status_cpu_ms_per_request"] = {name: r["cpu_ms_per_request"] for name, r in status.items()}
    report.settings["every_round"] = rounds
    for side in ("chute", "peer"):
        failed = sum(r["failed"] for r in rounds[side])
        if failed:
            report.notes.append(f"{side}: {failed} jobs ended in another event than job.completed")
    for name, result in status.items():
        if result["errors"]:
            report.notes.append(f"{name} status GET: {result['errors']} errors (non-2xx or socket)")
        swing = status_swing_note(name, [r["requests_per_s"] for r in rounds[f"{name}_status"]])
        if swing is not None:
            report.notes.append(swing)
    report.notes.append(
        "medians over alternating rounds; latency is submit → webhook; CPU per job is the mixed batch's "
        "(submission + drain); the status GET is of a completed JPEG job"
    )


def status_swing_note(name: str, rates: Sequence[float]) -> str | None:
    """A warning when one server's status GET ran far faster in one round than in another: its
    median then stands for no round, and a ratio made of it says little (a target "met" too)."""
    if not swung(rates, STATUS_SWING):
        return None
    return (f"{name} status GET: {min(rates):,.0f}–{max(rates):,.0f} req/s across rounds, with the same code: "
            "its median stands for no round, so the ratios made of it say little")


def ingest(args: argparse.Namespace, report: Report) -> None:
    """chute's tus ingest against @tus/server (:mod:`bench.tus`), over one and four connections;
    skipped, and said so in the report, where node or the npm packages are missing."""
    from bench import tus

    missing = tus.node_missing()
    if missing:
        log(f"peers: ingest against @tus/server skipped: {missing}")
        report.notes.append(f"ingest against @tus/server skipped: {missing}")
        return
    tus_args = tus.parse(["--size-mib", str(args.ingest_mib), "--rounds", str(args.rounds),
                          "--web-workers", str(args.web_workers), "--web-threads", str(args.web_threads)])  # fmt: skip
    report.settings["ingest_load_average_start"] = os.getloadavg()
    seconds = tus.measure(tus_args)
    report.settings["ingest_load_average_end"] = os.getloadavg()
    report.settings["ingest_seconds_per_round"] = {f"{server}_{n}conn": [round(t, 2) for t in times]
                                                   for (server, n), times in seconds.items()}  # fmt: skip
    tus.add_rows(report, tus_args, seconds, prefix="ingest (tus) ")
    report.notes.append("ingest: chute's /v1/tus against @tus/server (npm), tus-js-client for both; "
                        + tus.PARALLEL_NOTE.format(n=tus_args.parallel))  # fmt: skip
    report.notes.extend("ingest: " + note for note in tus.disk_notes(seconds))


def rounds_table(rounds: dict[str, list[dict[str, Any]]]) -> str:
    """Every round's figures, side by side, with the 1-minute load average when it started."""
    header = ("round", "side", "load", "mixed jobs/s", "text jobs/s", "p50 ms", "p99 ms", "CPU ms/job", "status req/s")
    lines = [header]
    for n in range(len(rounds["chute"])):
        for side in ("chute", "peer", "bare"):
            status = rounds[f"{side}_status"][n]["requests_per_s"]
            if side == "bare":
                lines.append((str(n + 1), side, "", "", "", "", "", "", f"{status:,.0f}"))
                continue
            r = rounds[side][n]
            lines.append(
                (
                    str(n + 1),
                    side,
                    f"{r['load_1m']:.2f}",
                    f"{r['mixed_jobs_per_s']:.1f}",
                    f"{r['text_jobs_per_s']:.1f}",
                    f"{r['p50_ms']:.0f}",
                    f"{r['p99_ms']:.0f}",
                    f"{r['cpu_ms_per_job']:.1f}",
                    f"{status:,.0f}",
                )
            )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(list(argv or []))
    problem = missing_services()
    if problem:
        print(f"peers: {problem}", file=sys.stderr)
        return 2
    report = Report("peers", args.quick, ceiling_label="peer")
    report.settings = {
        "rounds": args.rounds,
        "jobs": args.jobs,
        "latency_jobs": args.latency_jobs,
        "latency_rate_per_s": args.rate,
        "worker": f"{args.processes}x{args.threads} (peer: {args.processes} Celery workers, threads pool)",
        "web": f"{args.web_workers}x{args.web_threads} gthread",
        "files": "10 KB text and 100 KB JPEG, one multipart POST each",
        "status_tool": "wrk" if loadgen.wrk_available() else "python (wrk not installed)",
        "connections": args.connections,
    }
    rounds = measure(args, report)
    fill(report, rounds, args)
    ingest(args, report)
    report.emit(args.json_only)
    if not args.json_only:
        print("\nevery round (load: 1-minute load average at the start of the side's round)", flush=True)
        print(rounds_table(rounds), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

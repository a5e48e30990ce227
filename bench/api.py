"""api: requests/s and latency of three hot endpoints under gunicorn, against a bare Flask app.

chute: ``chute web`` with the production worker settings (2 workers × 8 gthread threads) on
PostgreSQL; ``GET /v1/jobs/{id}`` of a completed job that has a delivered webhook,
``PUT /v1/uploads/{id}/chunks/{n}`` of 1 MiB with its ``Content-Digest`` spread over 16
uploads × 16 chunks (a PUT re-sends a chunk, which replaces it), and the one-shot
``POST /v1/jobs`` of one 10 KB text file (each makes a job, staged and published; no worker
runs, so they wait in the queue). The POST's multipart body is the same every time, so its
boundary is too: Werkzeug compiles the parser's patterns once, where a browser's new boundary
per request costs about 0.2 ms more (bench/README, tenth session).

Ceiling: :mod:`bench.bare_app` under the same gunicorn command line: the same routes, the
same job JSON from memory, the chunk body read and dropped, the form parsed and dropped.

Floor of the read: a second ``chute web`` of this tree on the same database, whose status read
of the finished job is answered from memory after the first (:mod:`bench.status_floor`), GETs
only: what chute's GET costs without its PostgreSQL round trip, everything else unchanged.

Load: ``wrk`` (or the Python fallback of :mod:`bench.loadgen`) in a second process, closed
loop over 16 keep-alive connections (one per server thread), after a short warm-up; chute and
the bare app alternate over ``--rounds`` rounds and every figure is the median.

Before and after a change: ``--compare-with <tree>`` also runs the chute of another checkout
(``git worktree add /tmp/before <commit>``) on a database of its own, with the same settings and
the same requests; each round measures it, then this tree, then the bare app, so load from
elsewhere on a shared machine falls on all of them, and the table adds this tree beside it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import loadgen, status_floor
from bench.harness import (
    REPO,
    Api,
    ChuteStack,
    CpuAccount,
    MiB,
    Profiler,
    Report,
    Row,
    chute_stack,
    gunicorn_argv,
    http_ready,
    log,
    median,
    services_available,
    start_service,
    start_web,
    start_worker,
    workdir,
)

#: Target: chute's requests/s ≥ this fraction of the bare endpoint's.
THROUGHPUT_TARGET = 0.5
UPLOADS, CHUNKS = 16, 16


def completed_job(stack: contextlib.ExitStack, chute: Any, api: Api) -> str:
    """A 10 KB text job run to completion (worker started and stopped here), webhook delivered."""
    from tests.support.services import wait_until
    from tests.support.webhook_receiver import WebhookReceiver

    receiver = stack.enter_context(WebhookReceiver())
    data = b"chute api benchmark\n" * 512
    created = api.call(
        "POST",
        "/v1/uploads",
        json_body={"filename": "report.txt", "size": len(data), "webhook_url": receiver.url("/hook")},
    )
    api.call("PUT", f"/v1/uploads/{created['upload_id']}/chunks/0", body=data)
    job_id = str(api.call("POST", f"/v1/uploads/{created['upload_id']}/complete")["job_id"])
    worker = start_worker(stack, chute, processes=1, threads=2)
    try:
        wait_until(lambda: api.call("GET", f"/v1/jobs/{job_id}")["status"] == "completed", 60, what="the job")
        receiver.wait_for(1, timeout=30)
    finally:
        worker.stop()
    return job_id


def chunk_targets(api: Api) -> list[str]:
    paths = []
    for _ in range(UPLOADS):
        created = api.call(
            "POST", "/v1/uploads", json_body={"filename": "chunks.bin", "size": CHUNKS * MiB, "chunk_size": MiB}
        )
        paths += [f"/v1/uploads/{created['upload_id']}/chunks/{n}" for n in range(CHUNKS)]
    return paths


def drive(
    name: str,
    base_url: str,
    method: str,
    paths: list[str],
    headers: dict[str, str],
    body: bytes,
    args: argparse.Namespace,
    root: Path,
    pid: int,
) -> dict[str, Any]:
    load = loadgen.Load(
        base_url, method, paths, headers, body, connections=args.connections, threads=2, seconds=args.warmup
    )
    if args.warmup > 0:
        loadgen.run(load, root)
    load.seconds = args.seconds
    log(f"api: {name} for {args.seconds:g} s")
    with Profiler(f"api-{name}", pid), CpuAccount({"server": pid}) as cpu:
        result = loadgen.run(load, root)
    result["cpu_ms_per_request"] = cpu.per(result["requests"])
    result["cpu_busy"] = round(sum(cpu.seconds.values()) / cpu.wall / (os.cpu_count() or 1), 2)
    log(f"api: {name}: {result['requests_per_s']:.0f} req/s, p50 {result['p50_ms']:.1f} ms")
    return result


def _median_result(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-figure medians over rounds, CPU per request too (each tree's own median).

    CPU per request moves by 1.5× between rounds on this VM (1.4–2.6 ms for one chute server
    within five minutes), apart from its throughput, so it is a median of its own rather than
    the figure of the round whose throughput was the median; every round's is kept beside it.
    """
    out: dict[str, Any] = {k: median([r[k] for r in runs]) for k in ("requests_per_s", "p50_ms", "p99_ms", "cpu_busy")}
    out["errors"] = sum(r["errors"] for r in runs)
    cpu = [r["cpu_ms_per_request"] for r in runs]
    out["cpu_ms_per_request"] = {t: round(median([c.get(t, 0.0) for c in cpu]), 2) for t in sorted(set().union(*cpu))}
    out["server_cpu_ms_rounds"] = [r["cpu_ms_per_request"].get("server") for r in runs]
    return out


@dataclass
class Target:
    """One server under load: a chute (this tree's or another checkout's) or the bare app."""

    name: str
    base_url: str
    pid: int
    key: str = ""
    job_id: str = ""
    paths: tuple[str, ...] = ()
    #: The chute's processes' environment (None: the bare app).
    chute: ChuteStack | None = None


def start_chute(stack: contextlib.ExitStack, root: Path, name: str, repo: Path, args: argparse.Namespace) -> Target:
    """``chute web`` of the tree at ``repo`` on a fresh database, with a completed job and 256 chunk targets."""
    from tests.support.services import issue_api_key

    (root / name).mkdir()
    # The POSTs' jobs are never run: no quota on them may end the measurement.
    chute: ChuteStack = chute_stack(stack, root / name, s3=False, repo=repo, max_request_size=2 * MiB,
                                    quota_jobs_in_flight=10**9)  # fmt: skip
    web, base_url = start_web(stack, chute, workers=args.web_workers, threads=args.web_threads, name=f"web-{name}")
    key = issue_api_key(chute.env, "bench", repo)["api_key"]
    api = Api(base_url, key)
    job_id = completed_job(stack, chute, api)
    return Target(name, base_url, web.process.pid, key, job_id, tuple(chunk_targets(api)), chute)


def start_floor(stack: contextlib.ExitStack, chute: Target, args: argparse.Namespace) -> Target:
    """A second ``chute web`` of this tree on the same database whose status read of a finished
    job is answered from memory (:mod:`bench.status_floor`): GETs only, of the same job."""
    assert chute.chute is not None
    env = {**chute.chute.env, "GUNICORN_CMD_ARGS": status_floor.GUNICORN_CMD_ARGS}
    floor_stack = dataclasses.replace(chute.chute, env=env)
    web, base_url = start_web(stack, floor_stack, workers=args.web_workers, threads=args.web_threads, name="web-floor")
    return Target("floor", base_url, web.process.pid, chute.key, chute.job_id)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench api", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke mode for CI")
    parser.add_argument("--json-only", action="store_true", help="print the JSON line only")
    parser.add_argument("--seconds", type=float, help="load per measurement (default 6; quick 1)")
    parser.add_argument("--warmup", type=float, help="warm-up load before each (default 1; quick 0)")
    parser.add_argument(
        "--rounds", type=int, help="alternating chute/bare rounds, median reported (default 3; quick 1)"
    )
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections (default 16)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers (production: 2)")
    parser.add_argument("--web-threads", type=int, default=8, help="gthread threads (production: 8)")
    parser.add_argument(
        "--compare-with", type=Path, metavar="TREE",
        help="another checkout of chute (git worktree add TREE <commit>): measured in the same rounds, before this one",
    )  # fmt: skip
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.seconds = args.seconds or (1.0 if args.quick else 6.0)
    args.warmup = args.warmup if args.warmup is not None else (0.0 if args.quick else 1.0)
    if args.compare_with is not None:
        args.compare_with = args.compare_with.resolve()
        if not (args.compare_with / "web" / "cli.py").is_file():
            parser.error(f"--compare-with {args.compare_with}: not a chute source tree (no web/cli.py)")
    return args


#: The endpoints measured: (key, label, target). The one-shot POST has none: the bare app parses
#: the form and drops it, where chute stages the file durably, records the job and publishes it.
ENDPOINTS = (("get", "GET /v1/jobs/{id}", THROUGHPUT_TARGET), ("put", "PUT chunk 1 MiB", THROUGHPUT_TARGET),
             ("post", "POST /v1/jobs, one 10 KB file", None))  # fmt: skip


def one_shot_form() -> tuple[bytes, str]:
    """The body of a one-shot ``POST /v1/jobs`` with one 10 KB text file, and its content type."""
    import urllib3

    data = b"chute api benchmark\n" * 512
    return urllib3.encode_multipart_formdata({"file": ("report.txt", data, "text/plain")})


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(list(argv or []))
    if not services_available():
        print("api: RabbitMQ (127.0.0.1:5672) and PostgreSQL (127.0.0.1:5432) are needed", file=sys.stderr)
        return 2
    from tests.support.services import free_port

    report = Report("api", args.quick)
    report.settings = {
        "web": f"{args.web_workers}x{args.web_threads} gthread",
        "connections": args.connections,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "tool": "wrk" if loadgen.wrk_available() else "python (wrk not installed)",
        "chunk": "1 MiB with Content-Digest",
        "one_shot": "POST /v1/jobs, one 10 KB text file (multipart, the same boundary every time)",
        "database": "postgresql",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    if args.compare_with is not None:
        report.settings["compare_with"] = str(args.compare_with)
    body = b"x" * MiB
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
    form, form_type = one_shot_form()
    with workdir("api") as root, contextlib.ExitStack() as stack:
        targets: list[Target] = []
        if args.compare_with is not None:
            targets.append(start_chute(stack, root, "before", args.compare_with, args))
        chute = start_chute(stack, root, "chute", REPO, args)
        targets.append(chute)
        targets.append(start_floor(stack, chute, args))
        job_json = Api(chute.base_url, chute.key).call("GET", f"/v1/jobs/{chute.job_id}")
        (root / "job.json").write_text(json.dumps(job_json))

        port = free_port()
        bare_url = f"http://127.0.0.1:{port}"
        bare = start_service(
            stack,
            "bare",
            gunicorn_argv(
                "bench.bare_app:app", f"127.0.0.1:{port}", workers=args.web_workers, threads=args.web_threads
            ),
            {**os.environ, "PYTHONWARNINGS": "ignore", "BENCH_BARE_JOB": str(root / "job.json")},
            root,
            http_ready(bare_url + "/healthz"),
        )
        # The bare app takes any key and serves the same paths: chute's job id and chunk targets.
        targets.append(Target("bare", bare_url, bare.process.pid, chute.key, chute.job_id, chute.paths))

        # Rounds alternate the servers (before, chute, floor, bare, before, chute, …), so a burst of load
        # from elsewhere on a shared machine hits each; each figure is the median over the rounds.
        rounds: dict[str, list[dict[str, Any]]] = {}
        for n in range(args.rounds):
            for target in targets:
                auth = {"Authorization": f"Bearer {target.key}"}
                put_headers = {**auth, "Content-Digest": digest, "Content-Type": "application/octet-stream"}
                job = [f"/v1/jobs/{target.job_id}"]
                get = drive(f"{target.name}-get-{n}", target.base_url, "GET", job, auth, b"", args, root, target.pid)
                rounds.setdefault(f"{target.name}_get", []).append(get)
                if not target.paths:  # the floor: its GET is all it is for
                    continue
                put = drive(f"{target.name}-put-{n}", target.base_url, "PUT", list(target.paths), put_headers, body,
                            args, root, target.pid)  # fmt: skip
                # chute's PUTs leave ~300 MiB of chunks to write back, the bare app's none: flushed
                # here, outside any measurement, the writeback does not fall on the next server's GETs.
                os.sync()
                rounds.setdefault(f"{target.name}_put", []).append(put)
                post = drive(f"{target.name}-post-{n}", target.base_url, "POST", ["/v1/jobs"],
                             {**auth, "Content-Type": form_type}, form, args, root, target.pid)  # fmt: skip
                rounds.setdefault(f"{target.name}_post", []).append(post)
        results = {name: _median_result(runs) for name, runs in rounds.items()}

    for what, label, least in ENDPOINTS:
        chute_r, bare_r = results[f"chute_{what}"], results[f"bare_{what}"]
        report.add(
            Row(f"{label} req/s", chute_r["requests_per_s"], bare_r["requests_per_s"], "req/s", target=least),
            f"{what}_requests_per_s",
            f"bare_{what}_requests_per_s",
        )
        report.add(
            Row(f"{label} p50", chute_r["p50_ms"], bare_r["p50_ms"], "ms"), f"{what}_p50_ms", f"bare_{what}_p50_ms"
        )
        report.add(
            Row(f"{label} p99", chute_r["p99_ms"], bare_r["p99_ms"], "ms"), f"{what}_p99_ms", f"bare_{what}_p99_ms"
        )
    floor, bare_get = results["floor_get"], results["bare_get"]
    report.add(Row("GET /v1/jobs/{id} req/s, its read from memory", floor["requests_per_s"], bare_get["requests_per_s"],
                   "req/s"), "floor_get_requests_per_s", "bare_get_requests_per_s")  # fmt: skip
    report.notes.append(
        "read from memory: a second chute web of this tree whose status read of the (finished) job is answered "
        "from memory after the first (bench/status_floor.py): the GET without its PostgreSQL round trip, "
        "for comparison only"
    )
    if args.compare_with is not None:
        compare(report, results)
    for name, result in results.items():
        if result["errors"]:
            report.notes.append(f"{name}: {result['errors']} errors (non-2xx or socket)")
    report.settings["cpu_ms_per_request"] = {k: v["cpu_ms_per_request"] for k, v in results.items()}
    report.settings["cpu_busy_fraction"] = {k: v["cpu_busy"] for k, v in results.items()}
    report.settings["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report.notes.append("latency is at saturation (closed loop, one connection per server thread)")
    report.notes.append(
        f"load average (1, 5, 15 min) at start {report.settings['load_average_at_start']}, "
        f"at end {report.settings['load_average_at_end']}: figures under load are indicative"
    )
    report.emit(args.json_only)
    return 0


def compare(report: Report, results: dict[str, dict[str, Any]]) -> None:
    """Rows of this tree beside ``--compare-with``'s (in the ceiling column), and their figures."""
    for what, label, _ in ENDPOINTS:
        now, before = results[f"chute_{what}"], results[f"before_{what}"]
        report.add(Row(f"{label} req/s, this vs before", now["requests_per_s"], before["requests_per_s"], "req/s"),
                   f"{what}_requests_per_s_now", f"before_{what}_requests_per_s")  # fmt: skip
        report.add(Row(f"{label} p50, this vs before", now["p50_ms"], before["p50_ms"], "ms"),
                   f"{what}_p50_ms_now", f"before_{what}_p50_ms")  # fmt: skip
        report.add(Row(f"{label} p99, this vs before", now["p99_ms"], before["p99_ms"], "ms"),
                   f"{what}_p99_ms_now", f"before_{what}_p99_ms")  # fmt: skip
    report.notes.append("rows 'this vs before': the second column is --compare-with's chute, not a ceiling")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

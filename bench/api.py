"""api: requests/s and latency of two hot endpoints under gunicorn, against a bare Flask app.

chute: ``chute web`` with the production worker settings (2 workers × 8 gthread threads) on
PostgreSQL; ``GET /v1/jobs/{id}`` of a completed job that has a delivered webhook, and
``PUT /v1/uploads/{id}/chunks/{n}`` of 1 MiB with its ``Content-Digest`` spread over 16
uploads × 16 chunks (a PUT re-sends a chunk, which replaces it).

Ceiling: :mod:`bench.bare_app` under the same gunicorn command line: the same routes, the
same job JSON from memory, the chunk body read and dropped.

Load: ``wrk`` (or the Python fallback of :mod:`bench.loadgen`) in a second process, closed
loop over 16 keep-alive connections (one per server thread), after a short warm-up; chute and
the bare app alternate over ``--rounds`` rounds and every figure is the median.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.harness import (
    Api,
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
    """Per-figure medians over rounds (CPU per request from the median round by throughput)."""
    middle = sorted(runs, key=lambda r: r["requests_per_s"])[len(runs) // 2]
    out = {key: median([r[key] for r in runs]) for key in ("requests_per_s", "p50_ms", "p99_ms")}
    out["errors"] = sum(r["errors"] for r in runs)
    out["cpu_ms_per_request"], out["cpu_busy"] = middle["cpu_ms_per_request"], middle["cpu_busy"]
    return out


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
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.seconds = args.seconds or (1.0 if args.quick else 6.0)
    args.warmup = args.warmup if args.warmup is not None else (0.0 if args.quick else 1.0)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(list(argv or []))
    if not services_available():
        print("api: RabbitMQ (127.0.0.1:5672) and PostgreSQL (127.0.0.1:5432) are needed", file=sys.stderr)
        return 2
    from tests.support.services import free_port, issue_api_key

    report = Report("api", args.quick)
    report.settings = {
        "web": f"{args.web_workers}x{args.web_threads} gthread",
        "connections": args.connections,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "tool": "wrk" if loadgen.wrk_available() else "python (wrk not installed)",
        "chunk": "1 MiB with Content-Digest",
        "database": "postgresql",
    }
    body = b"x" * MiB
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
    with workdir("api") as root, contextlib.ExitStack() as stack:
        chute = chute_stack(stack, root, s3=False, max_request_size=2 * MiB)
        web, base_url = start_web(stack, chute, workers=args.web_workers, threads=args.web_threads)
        key = issue_api_key(chute.env, "bench")["api_key"]
        api = Api(base_url, key)
        job_id = completed_job(stack, chute, api)
        job_json = api.call("GET", f"/v1/jobs/{job_id}")
        (root / "job.json").write_text(json.dumps(job_json))
        paths = chunk_targets(api)

        port = free_port()
        bare_url = f"http://127.0.0.1:{port}"
        bare = start_service(
            stack,
            "bare",
            gunicorn_argv(
                "bench.bare_app:app", f"127.0.0.1:{port}", workers=args.web_workers, threads=args.web_threads
            ),
            {**chute.env, "BENCH_BARE_JOB": str(root / "job.json")},
            root,
            http_ready(bare_url + "/healthz"),
        )

        auth = {"Authorization": f"Bearer {key}"}
        put_headers = {**auth, "Content-Digest": digest, "Content-Type": "application/octet-stream"}
        # Rounds alternate chute and the bare app, so a burst of load from elsewhere on a shared
        # machine hits both; each figure is the median over the rounds.
        rounds: dict[str, list[dict[str, Any]]] = {}
        for n in range(args.rounds):
            for target, url, pid in (("chute", base_url, web.process.pid), ("bare", bare_url, bare.process.pid)):
                get = drive(f"{target}-get-{n}", url, "GET", [f"/v1/jobs/{job_id}"], auth, b"", args, root, pid)
                put = drive(f"{target}-put-{n}", url, "PUT", paths, put_headers, body, args, root, pid)
                rounds.setdefault(f"{target}_get", []).append(get)
                rounds.setdefault(f"{target}_put", []).append(put)
        results = {name: _median_result(runs) for name, runs in rounds.items()}

    for what, label in (("get", "GET /v1/jobs/{id}"), ("put", "PUT chunk 1 MiB")):
        chute_r, bare_r = results[f"chute_{what}"], results[f"bare_{what}"]
        report.add(
            Row(
                f"{label} req/s", chute_r["requests_per_s"], bare_r["requests_per_s"], "req/s", target=THROUGHPUT_TARGET
            ),
            f"{what}_requests_per_s",
            f"bare_{what}_requests_per_s",
        )
        report.add(
            Row(f"{label} p50", chute_r["p50_ms"], bare_r["p50_ms"], "ms"), f"{what}_p50_ms", f"bare_{what}_p50_ms"
        )
        report.add(
            Row(f"{label} p99", chute_r["p99_ms"], bare_r["p99_ms"], "ms"), f"{what}_p99_ms", f"bare_{what}_p99_ms"
        )
        for target in ("chute", "bare"):
            errors = results[f"{target}_{what}"]["errors"]
            if errors:
                report.notes.append(f"{target} {label}: {errors} errors (non-2xx or socket)")
    report.settings["cpu_ms_per_request"] = {k: v["cpu_ms_per_request"] for k, v in results.items()}
    report.settings["cpu_busy_fraction"] = {k: v["cpu_busy"] for k, v in results.items()}
    report.notes.append("latency is at saturation (closed loop, one connection per server thread)")
    report.emit(args.json_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

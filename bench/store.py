"""store: the assemble and upload stages of a large file to the S3 server on loopback.

chute: the file is uploaded through ``chute web`` in 8 MiB chunks (not timed), completed, and
``chute worker`` verifies the chunks (assemble) and streams them to moto's S3 server as
multipart parts straight from the chunk files (upload). The time is the job's own record:
from ``started_at`` (assemble begins) to ``uploaded_at`` (the object is complete). The
worker's peak RSS is sampled at two file sizes: it must not grow with the file.

Ceiling: the ``minio`` client's own ``fput_object`` of the same file (same part size, its
default parallelism) to the same server, in the same run. Objects are deleted after each run
(moto keeps them in memory). Figures are medians of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bench.harness import (
    Api,
    MiB,
    Profiler,
    Report,
    Row,
    RssSampler,
    chute_stack,
    log,
    median,
    services_available,
    start_web,
    start_worker,
    workdir,
)

#: Targets: chute's store ≥ this fraction of the client's own put_object; any worker under this.
THROUGHPUT_TARGET = 0.8
RSS_LIMIT_MIB = 150
MB = 1_000_000
#: chute's default part size (CHUTE_PART_SIZE) and upload chunk size.
PART_SIZE = CHUNK_SIZE = 8 * MiB


def make_file(path: Path, size: int) -> None:
    block = os.urandom(CHUNK_SIZE)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            left -= f.write(block[: min(left, len(block))])


def minio_client(storage_url: str) -> Any:
    from minio import Minio

    parts = urlsplit(storage_url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return Minio(
        parts.netloc.rsplit("@", 1)[-1],
        access_key=parts.username,
        secret_key=parts.password,
        secure=False,
        region=query.get("region", "us-east-1"),
    )


def upload_through_api(api: Api, path: Path, size: int) -> str:
    """Send the file as chunks over 4 connections, complete it; the job id."""
    created = api.call("POST", "/v1/uploads", json_body={"filename": "big.bin", "size": size, "chunk_size": CHUNK_SIZE})
    upload_id = created["upload_id"]

    def put(index: int) -> None:
        with open(path, "rb") as f:
            f.seek(index * CHUNK_SIZE)
            api.call("PUT", f"/v1/uploads/{upload_id}/chunks/{index}", body=f.read(CHUNK_SIZE))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(put, range(created["chunk_count"])))
    return str(api.call("POST", f"/v1/uploads/{upload_id}/complete")["job_id"])


def job_times(database_url: str, job_id: str) -> dict[str, Any] | None:
    import psycopg

    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT status, started_at, assembled_at, uploaded_at, object_key, error_code FROM jobs WHERE id = %s",
            (job_id,),
        ).fetchone()
    if row is None:
        return None
    return dict(zip(("status", "started_at", "assembled_at", "uploaded_at", "object_key", "error"), row, strict=True))


def wait_stored(database_url: str, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = job_times(database_url, job_id)
        if row and row["status"] == "failed":
            raise RuntimeError(f"job {job_id} failed: {row['error']}")
        if row and row["uploaded_at"] is not None:
            return row
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} not stored after {timeout}s")


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench store", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke mode for CI")
    parser.add_argument("--json-only", action="store_true", help="print the JSON line only")
    parser.add_argument("--size-mib", type=int, help="the large file (default 1024; quick 32)")
    parser.add_argument("--small-size-mib", type=int, help="the smaller file, for RSS growth (default 256; quick 16)")
    parser.add_argument("--repeat", type=int, help="runs per figure, median reported (default 3; quick 1)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    args.size_mib = args.size_mib or (32 if args.quick else 1024)
    args.small_size_mib = args.small_size_mib or (16 if args.quick else 256)
    args.repeat = args.repeat or (1 if args.quick else 3)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(list(argv or []))
    if not services_available():
        print("store: RabbitMQ (127.0.0.1:5672) and PostgreSQL (127.0.0.1:5432) are needed", file=sys.stderr)
        return 2
    from tests.support.services import issue_api_key

    report = Report("store", args.quick)
    report.settings = {
        "sizes_mib": [args.small_size_mib, args.size_mib],
        "part_mib": PART_SIZE // MiB,
        "repeat": args.repeat,
        "worker": f"{args.processes}x{args.threads}",
        "server": "moto (S3 on loopback)",
        "ceiling": "minio fput_object, same part size, default num_parallel_uploads (3)",
    }
    figures: dict[int, dict[str, list[float]]] = {}
    peaks: dict[int, float] = {}
    with workdir("store") as root, contextlib.ExitStack() as stack:
        chute = chute_stack(stack, root, s3=True, part_size=PART_SIZE)
        web, base_url = start_web(stack, chute, workers=2, threads=8)
        worker = start_worker(stack, chute, processes=args.processes, threads=args.threads)
        api = Api(base_url, issue_api_key(chute.env, "bench")["api_key"], maxsize=4)
        client = minio_client(chute.storage_url)
        bucket = urlsplit(chute.storage_url).path.strip("/")
        sampler = stack.enter_context(RssSampler([worker.process.pid]))
        for size_mib in (args.small_size_mib, args.size_mib):
            size = size_mib * MiB
            source = root / f"source-{size_mib}.bin"
            make_file(source, size)
            runs: dict[str, list[float]] = {"store": [], "assemble": [], "upload": [], "ceiling": []}
            peak = 0.0
            for n in range(args.repeat):
                log(f"store: {size_mib} MiB, run {n + 1} of {args.repeat}")
                job_id = upload_through_api(api, source, size)
                sampler.reset()
                with Profiler(f"store-worker-{size_mib}-{n}", worker.process.pid):
                    row = wait_stored(chute.database_url, job_id, timeout=60 + size_mib)
                peak = max(peak, sampler.peak_process_mib)
                runs["store"].append((row["uploaded_at"] - row["started_at"]).total_seconds())
                runs["assemble"].append((row["assembled_at"] - row["started_at"]).total_seconds())
                runs["upload"].append((row["uploaded_at"] - row["assembled_at"]).total_seconds())
                client.remove_object(bucket, row["object_key"])
                started = time.perf_counter()
                client.fput_object(bucket, "ceiling.bin", str(source), part_size=PART_SIZE)
                runs["ceiling"].append(time.perf_counter() - started)
                client.remove_object(bucket, "ceiling.bin")
            source.unlink()
            figures[size_mib] = runs
            peaks[size_mib] = peak
    for size_mib in (args.size_mib, args.small_size_mib):
        size, runs = size_mib * MiB, figures[size_mib]
        suffix = "" if size_mib == args.size_mib else "_small"
        report.add(
            Row(
                f"store {size_mib} MiB",
                size / median(runs["store"]) / MB,
                size / median(runs["ceiling"]) / MB,
                "MB/s",
                target=THROUGHPUT_TARGET if size_mib == args.size_mib else None,
            ),
            f"mb_per_s{suffix}",
            f"put_object_mb_per_s{suffix}",
        )
        report.add(
            Row(f"  assemble {size_mib} MiB", size / median(runs["assemble"]) / MB, unit="MB/s"),
            f"assemble_mb_per_s{suffix}",
        )
        report.add(
            Row(f"  upload {size_mib} MiB", size / median(runs["upload"]) / MB, unit="MB/s"), f"upload_mb_per_s{suffix}"
        )
    for size_mib in (args.small_size_mib, args.size_mib):
        report.add(
            Row(f"peak RSS worker, {size_mib} MiB file", peaks[size_mib], unit="MiB", limit=RSS_LIMIT_MIB),
            f"peak_rss_mib_{size_mib}",
        )
    growth = round(peaks[args.size_mib] - peaks[args.small_size_mib], 1)
    report.settings["rss_growth_mib"] = growth  # may be negative: not a figure
    report.notes.append(f"worker RSS growth from {args.small_size_mib} to {args.size_mib} MiB: {growth} MiB")
    report.emit(args.json_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

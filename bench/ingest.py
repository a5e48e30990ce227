"""ingest: a large file uploaded in 8 MiB chunks to ``chute web`` under gunicorn, against the disk.

chute: ``POST /v1/uploads``, then every chunk ``PUT`` with its ``Content-Digest`` over 1 and
over 4 parallel keep-alive connections, timed from the first PUT to the last answer; the
upload is then cancelled (its chunks removed). The web processes' peak RSS is sampled at two
file sizes: it must not grow with the file (streaming).

Ceiling: raw sequential write of the same number of bytes to the staging disk in 8 MiB
blocks, then one fsync, in the same run. Every figure is the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
    workdir,
)

#: Targets: chute's ingest ≥ this fraction of the raw disk write; any web process under this.
THROUGHPUT_TARGET = 0.8
RSS_LIMIT_MIB = 150
MB = 1_000_000


def raw_write(directory: Path, size: int, block: bytes) -> float:
    """Seconds to write ``size`` bytes sequentially in ``block``-sized writes, then fsync."""
    path = directory / f"raw-{os.getpid()}.bin"
    view = memoryview(block)
    try:
        started = time.perf_counter()
        with open(path, "wb", buffering=0) as f:
            left = size
            while left > 0:
                left -= f.write(view[: min(left, len(view))])
            os.fsync(f.fileno())
        return time.perf_counter() - started
    finally:
        path.unlink(missing_ok=True)


def digest_header(data: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


def upload_file(api: Api, size: int, chunk_size: int, block: bytes, connections: int) -> float:
    """Upload ``size`` bytes (``block`` repeated) in chunks over ``connections`` and complete it
    (chunks durable on disk); seconds taken."""
    created = api.call("POST", "/v1/uploads", json_body={"filename": "big.bin", "size": size, "chunk_size": chunk_size})
    upload_id, count = created["upload_id"], created["chunk_count"]
    digests = {len(block): digest_header(block)}
    last = size - (count - 1) * chunk_size
    if last != chunk_size:
        digests[last] = digest_header(block[:last])

    def put(index: int) -> None:
        body = block if index < count - 1 else block[:last]
        api.call(
            "PUT",
            f"/v1/uploads/{upload_id}/chunks/{index}",
            body=body,
            headers={"Content-Digest": digests[len(body)], "Content-Type": "application/octet-stream"},
        )

    try:
        with ThreadPoolExecutor(connections) as pool:
            started = time.perf_counter()
            list(pool.map(put, range(count)))
            # complete makes the chunks durable (one fsync pass), as the ceiling's fsync does
            api.call("POST", f"/v1/uploads/{upload_id}/complete")
            return time.perf_counter() - started
    finally:
        api.call("DELETE", f"/v1/uploads/{upload_id}")


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke mode for CI")
    parser.add_argument("--json-only", action="store_true", help="print the JSON line only")
    parser.add_argument("--size-mib", type=int, help="the large file (default 1024; quick 32)")
    parser.add_argument("--small-size-mib", type=int, help="the smaller file, for RSS growth (default 256; quick 16)")
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--connections", default="1,4", help="parallel connections to try (default 1,4)")
    parser.add_argument("--repeat", type=int, help="runs per figure, median reported (default 3; quick 1)")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=8)
    args = parser.parse_args(argv)
    args.size_mib = args.size_mib or (32 if args.quick else 1024)
    args.small_size_mib = args.small_size_mib or (16 if args.quick else 256)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.connections = [int(c) for c in str(args.connections).split(",")]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(list(argv or []))
    if not services_available():
        print("ingest: RabbitMQ (127.0.0.1:5672) and PostgreSQL (127.0.0.1:5432) are needed", file=sys.stderr)
        return 2
    from tests.support.services import issue_api_key

    chunk = args.chunk_mib * MiB
    block = os.urandom(chunk)
    report = Report("ingest", args.quick)
    report.settings = {
        "sizes_mib": [args.small_size_mib, args.size_mib],
        "chunk_mib": args.chunk_mib,
        "repeat": args.repeat,
        "web": f"{args.web_workers}x{args.web_threads}",
        "connections": args.connections,
        "ceiling": "sequential write in chunk-sized blocks + one fsync, staging disk",
    }
    results: dict[tuple[int, int], float] = {}
    peaks: dict[int, float] = {}
    with workdir("ingest") as root, contextlib.ExitStack() as stack:
        chute = chute_stack(stack, root, s3=False, max_request_size=chunk + MiB)
        web, base_url = start_web(stack, chute, workers=args.web_workers, threads=args.web_threads)
        api = Api(base_url, issue_api_key(chute.env, "bench")["api_key"], maxsize=max(args.connections))
        sampler = stack.enter_context(RssSampler([web.process.pid]))
        size = args.size_mib * MiB
        log(f"ingest: raw write of {args.size_mib} MiB x{args.repeat}")
        raw = median([raw_write(chute.staging_dir, size, block) for _ in range(args.repeat)])
        for size_mib in (args.small_size_mib, args.size_mib):
            sampler.reset()
            for connections in args.connections:
                log(f"ingest: {size_mib} MiB over {connections} connection(s) x{args.repeat}")
                with Profiler(f"ingest-web-{size_mib}-{connections}", web.process.pid):
                    times = [upload_file(api, size_mib * MiB, chunk, block, connections) for _ in range(args.repeat)]
                results[(size_mib, connections)] = median(times)
            peaks[size_mib] = sampler.peak_process_mib
    raw_mb_s = size / raw / MB
    for connections in args.connections:
        mb_s = size / results[(args.size_mib, connections)] / MB
        report.add(
            Row(f"{args.size_mib} MiB over {connections} conn", mb_s, raw_mb_s, "MB/s", target=THROUGHPUT_TARGET),
            f"mb_per_s_{connections}conn",
            "raw_write_mb_per_s",
        )
    for connections in args.connections:
        small = args.small_size_mib * MiB / results[(args.small_size_mib, connections)] / MB
        report.add(
            Row(f"{args.small_size_mib} MiB over {connections} conn", small, unit="MB/s"),
            f"mb_per_s_{connections}conn_small",
        )
    for size_mib in (args.small_size_mib, args.size_mib):
        report.add(
            Row(f"peak RSS web, {size_mib} MiB file", peaks[size_mib], unit="MiB", limit=RSS_LIMIT_MIB),
            f"peak_rss_mib_{size_mib}",
        )
    growth = round(peaks[args.size_mib] - peaks[args.small_size_mib], 1)
    report.settings["rss_growth_mib"] = growth  # may be negative: not a figure
    report.notes.append(
        f"RSS growth from {args.small_size_mib} to {args.size_mib} MiB: {growth} MiB (streaming: about 0)"
    )
    report.emit(args.json_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""``python -m bench tus``: one file through chute's tus endpoint against @tus/server.

The same client (tus-js-client, run with node: tests/js/tus_upload.mjs) sends the same file
to chute web (gunicorn, PostgreSQL, RabbitMQ; staging on the bench's scratch disk) and to
@tus/server with @tus/file-store writing to the same disk, over one connection and over four
(tus concatenation: four partial uploads in parallel, then the final one). Rounds alternate
the two servers, so drift on a shared machine hits both alike; medians are reported, with the
ratio chute / @tus/server and its target (at least 1.0).

chute does more per byte than @tus/server (a sha256 of every byte for its manifest, a
database row per PATCH, an fsync of the whole file before the job starts, and the job
itself); the target says that must still not make it slower.

Without node or tests/js/node_modules (``npm ci`` in tests/js), it says so and skips.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import (
    REPO,
    MiB,
    Profiler,
    Report,
    Row,
    chute_stack,
    log,
    median,
    services_available,
    start_service,
    start_web,
    swung,
    workdir,
)

JS_DIR = REPO / "tests" / "js"
#: MB (10^6 bytes) per second, as the other benchmarks report throughput.
MB = 1_000_000
#: chute / @tus/server throughput the issue asks for.
TARGET = 1.0


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench tus", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: smoke mode for CI")
    parser.add_argument("--json-only", action="store_true", help="print the JSON line only")
    parser.add_argument("--size-mib", type=int, help="the file (default 1024; quick 32)")
    parser.add_argument("--rounds", type=int, help="alternating rounds, median reported (default 3; quick 1)")
    parser.add_argument("--parallel", type=int, default=4, help="connections of the concatenated upload")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=8)
    args = parser.parse_args(argv)
    args.size_mib = args.size_mib or (32 if args.quick else 1024)
    args.rounds = args.rounds or (1 if args.quick else 3)
    return args


def node_missing() -> str | None:
    """Why the benchmark cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    for package in ("tus-js-client", "@tus/server", "@tus/file-store"):
        if not (JS_DIR / "node_modules" / package).is_dir():
            return f"{package} is not installed (run npm ci in tests/js)"
    return None


def upload(endpoint: str, files: list[Path], headers: dict[str, str], parallel: int) -> float:
    """Seconds tus-js-client took to send the file (creation to the last answer): one file in
    ``parallel`` concatenated parts, or several files at once, one connection each."""
    metadata = {"filename": files[0].name, "filetype": "application/octet-stream"}
    spec = {"endpoint": endpoint, "files": [str(f) for f in files], "headers": headers,
            "parallelUploads": parallel, "metadata": metadata, "retryDelays": None}  # fmt: skip
    done = subprocess.run([shutil.which("node") or "node", str(JS_DIR / "tus_upload.mjs"), json.dumps(spec)],
                          cwd=JS_DIR, capture_output=True, text=True, timeout=1800)  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    out: dict[str, Any] = json.loads(lines[-1]) if lines else {"ok": False, "error": done.stderr[-2000:]}
    if not out.get("ok"):
        raise RuntimeError(f"tus-js-client failed against {endpoint}: {out}")
    return float(out["seconds"])


def write_random(path: Path, size: int) -> None:
    block = os.urandom(8 * MiB)
    with open(path, "wb") as f:
        for start in range(0, size, len(block)):
            f.write(block[: min(len(block), size - start)])


def split(path: Path, parts: int) -> list[Path]:
    """``path`` cut in ``parts`` files beside it."""
    data_size = path.stat().st_size
    step = -(-data_size // parts)
    out = []
    with open(path, "rb") as f:
        for n in range(parts):
            part = path.with_name(f"{path.stem}.part{n}")
            part.write_bytes(f.read(step))
            out.append(part)
    return out


def durable_copy(path: Path, directory: Path) -> float:
    """Seconds to write ``path``'s bytes to a new file in ``directory`` and fsync it: the disk's own
    rate for a file made durable, as chute makes an upload before its job starts (@tus/server
    leaves it in the page cache). Written back as it is written, as chute's staging files are
    (``web.tus_store.ChecksumWriter``). A reference, not a ceiling: this copy writes as fast as the
    page cache takes it and then waits, while an upload paced by its network keeps the disk busy
    as the bytes arrive."""
    from web.tus_store import SYNC_FILE_RANGE, SYNC_FILE_RANGE_WRITE, WRITEBACK_STEP

    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "durable.bin"
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as source, open(target, "wb", buffering=0) as out:
        written = 0
        while block := source.read(WRITEBACK_STEP):
            out.write(block)
            if SYNC_FILE_RANGE is not None:
                SYNC_FILE_RANGE(out.fileno(), written, len(block), SYNC_FILE_RANGE_WRITE)
            written += len(block)
        os.fsync(out.fileno())
    took = time.perf_counter() - started
    target.unlink()
    return took


def empty(directory: Path) -> None:
    """Drop what an upload left, so the scratch disk holds one file at a time."""
    for child in directory.iterdir() if directory.exists() else ():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def measure(args: argparse.Namespace) -> dict[tuple[str, int], list[float]]:
    """Seconds of every round: {(server, connections): [...]}; server is "chute" or "peer".

    Parameters:
        args: ``size_mib``, ``rounds``, ``parallel``, ``web_workers``, ``web_threads`` (see ``parse``).
    """
    from tests.support.services import free_port, issue_api_key

    size = args.size_mib * MiB
    modes = (1, args.parallel)
    seconds: dict[tuple[str, int], list[float]] = {(s, m): [] for s in ("chute", "peer") for m in modes}
    seconds[("disk", 1)] = []
    with workdir("tus") as root, contextlib.ExitStack() as stack:
        chute = chute_stack(stack, root, s3=False)
        web, base_url = start_web(stack, chute, workers=args.web_workers, threads=args.web_threads)
        headers = {"Authorization": f"Bearer {issue_api_key(chute.env, 'bench')['api_key']}"}
        peer_dir = root / "tus-server"
        peer_dir.mkdir()
        port = free_port()
        peer_log = root / "tus-server.log"
        start_service(stack, "tus-server", ["node", str(JS_DIR / "tus_server.mjs"), str(port), str(peer_dir)],
                      {**os.environ}, root, lambda _: b"ready on" in peer_log.read_bytes())  # fmt: skip
        servers = {"chute": (base_url + "/v1/tus", headers, chute.staging_dir / "uploads"),
                   "peer": (f"http://127.0.0.1:{port}/files", {}, peer_dir)}  # fmt: skip
        path = root / "file.bin"
        write_random(path, size)
        # @tus/server has no concatenation: its parallel figure sends the file's quarters as
        # separate uploads at once (the same bytes over as many connections, less work).
        quarters = split(path, args.parallel)
        for round_ in range(args.rounds):
            order = ("chute", "peer") if round_ % 2 == 0 else ("peer", "chute")
            for server in order:
                endpoint, auth, leftovers = servers[server]
                for parallel in modes:
                    log(f"tus: round {round_ + 1}/{args.rounds}, {server}, {args.size_mib} MiB over {parallel} conn, "
                        f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
                    # Each upload starts with nothing dirty in the page cache: the file just written
                    # (the first round) or what the other server left unsynced would otherwise be
                    # written back during the upload, against whichever side runs then.
                    os.sync()
                    files, streams = (quarters, 1) if server == "peer" and parallel > 1 else ([path], parallel)
                    profiled = Profiler(f"tus-{parallel}-{round_}", web.process.pid) if server == "chute" else None
                    with profiled or contextlib.nullcontext():
                        took = upload(endpoint, files, auth, streams)
                    seconds[(server, parallel)].append(took)
                    empty(leftovers)
            os.sync()
            seconds[("disk", 1)].append(durable_copy(path, chute.staging_dir / "durable"))
    return seconds


def add_rows(report: Report, args: argparse.Namespace, seconds: dict[tuple[str, int], list[float]],
             prefix: str = "") -> None:  # fmt: skip
    """chute's and @tus/server's median MB/s, over one connection and over ``args.parallel``."""
    size = args.size_mib * MiB
    for parallel in (1, args.parallel):
        ours = size / median(seconds[("chute", parallel)]) / MB
        theirs = size / median(seconds[("peer", parallel)]) / MB
        how = "1 connection" if parallel == 1 else f"{parallel} connections (concatenation)"
        report.add(Row(f"{prefix}{args.size_mib} MiB over {how}", ours, theirs, "MB/s", target=TARGET),
                   f"chute_mb_per_s_{parallel}conn", f"tus_server_mb_per_s_{parallel}conn")  # fmt: skip
    if seconds.get(("disk", 1)):
        ours = size / median(seconds[("chute", 1)]) / MB
        disk = size / median(seconds[("disk", 1)]) / MB
        report.add(Row(f"{prefix}{args.size_mib} MiB over 1 connection, against the disk's durable write", ours, disk,
                       "MB/s"), "chute_mb_per_s_1conn_vs_disk", "disk_durable_mb_per_s")  # fmt: skip


#: What the report says about the parallel figure.
PARALLEL_NOTE = ("@tus/server has no concatenation: over {n} connections it gets the file's {n} parts as separate "
                 "uploads at once; chute gets partial uploads + a final one")  # fmt: skip


#: What the disk row means.
DISK_NOTE = ("disk = the file copied to the staging disk and fsynced, once per round: the disk's own durable "
             "rate, for reference (chute makes an upload durable before its job starts; @tus/server does not fsync)")


#: Slowest over fastest round of the disk row past which the report warns that the disk itself
#: changed speed during the run (a VM's disk that has used up its write budget, for one).
DISK_SWING = 2.0


def disk_swing_note(seconds: dict[tuple[str, int], list[float]]) -> str | None:
    """A warning when the disk's durable write took much longer in one round than in another:
    the rounds then measured different disks, and their medians compare little."""
    rounds = seconds.get(("disk", 1)) or []
    if not swung(rounds, DISK_SWING):
        return None
    return (f"the disk's own durable write took {min(rounds):.2f}–{max(rounds):.2f} s per round: the disk changed "
            "speed during the run (a VM's disk past its write budget does), so these rounds are not alike")


def disk_notes(seconds: dict[tuple[str, int], list[float]]) -> list[str]:
    """What the report says of the disk row: what it means, and whether the disk held its speed."""
    swing = disk_swing_note(seconds)
    return [DISK_NOTE] if swing is None else [DISK_NOTE, swing]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(list(argv or []))
    missing = node_missing()
    if missing:
        print(f"bench tus: skipped: {missing}", file=sys.stderr)
        return 0
    if not services_available():
        print("tus: RabbitMQ (127.0.0.1:5672) and PostgreSQL (127.0.0.1:5432) are needed", file=sys.stderr)
        return 2
    load_start = os.getloadavg()
    seconds = measure(args)
    report = Report("tus", args.quick)
    report.settings = {
        "size_mib": args.size_mib,
        "rounds": args.rounds,
        "web": f"{args.web_workers}x{args.web_threads}",
        "client": "tus-js-client (node), the same for both",
        "peer": "@tus/server + @tus/file-store on the same disk",
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "seconds_per_round": {f"{server}_{parallel}conn": [round(t, 2) for t in times]
                              for (server, parallel), times in seconds.items()},
    }  # fmt: skip
    add_rows(report, args, seconds)
    report.notes.append("ceiling = @tus/server (npm) measured in the same run; ratio = chute / @tus/server")
    report.notes.append(PARALLEL_NOTE.format(n=args.parallel))
    report.notes.extend(disk_notes(seconds))
    report.emit(args.json_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

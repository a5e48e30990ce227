"""Run extraction in a child process bounded in memory, CPU time, wall-clock time and output size.

A hostile file can exhaust memory or loop in a decoder; in a child process that costs the
child, not the Dramatiq worker. The caller runs in a worker *thread*, so the child is not a
plain ``os.fork`` of a threaded process: it comes from a multiprocessing **fork server**, a
single-threaded process started once that has already imported Pillow (with its plugins) and
pypdf. Children are kept warm for several files (:mod:`actors.extraction.pool`), one file at a
time, and replaced after any file they did not extract; the limits hold per file
(:mod:`actors.extraction.child`).

The child's reply is JSON written to a file, never a pickle: a child that a decoder exploit
took over must not be able to run code in the worker by what it sends back. This bounds
resources; it is not a security sandbox (no seccomp, same user).

Time is given per phase (:mod:`actors.extraction.budget`): parsing gets
``time_limit_seconds``; when the child announces tables or OCR over its pipe (a phase name as
bytes, never a pickle), the watchdog gives it that phase's budget plus a grace. The child
leads its own process group, so a kill also ends the Tesseract it may be running.
"""

from __future__ import annotations

import json
import multiprocessing.connection
import os
import signal
import time
import uuid
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from actors.extraction import child as child_side
from actors.extraction.budget import MAX_PHASE_NAME
from actors.extraction.limits import ExtractLimits
from actors.extraction.pool import POOL
from actors.extraction.result import Extraction
from models.errors import FileRejected, TransientError

#: Largest reply read back from a child; results are small (page text is budgeted).
MAX_REPLY_BYTES = 64 << 20

#: Exit signals that mean the child ran out of time (ours, or RLIMIT_CPU's).
_TIMEOUT_SIGNALS = frozenset({signal.SIGXCPU})

#: The exit code multiprocessing reports when the fork server lost a child's real one, which
#: happens under load (CPython issue 140867); the child's reply, written last, then decides.
LOST_EXIT_CODE = 255

#: The job's error code when the watchdog kills a child that overran a phase.
_TIMEOUT_CODES = {"parse": "extraction_timeout", "tables": "tables_timeout", "ocr": "ocr_timeout"}


@dataclass(frozen=True)
class ChildStats:
    """What one isolated extraction cost, as the child measured it (benchmarks read this)."""

    max_rss_kb: int
    cpu_seconds: float
    wall_seconds: float
    #: The largest of the child's own children (Tesseract), which ``max_rss_kb`` does not count.
    children_max_rss_kb: int = 0
    #: The child that extracted the file (warm children extract several).
    pid: int = 0


class ChildError(RuntimeError):
    """The child failed with an unexpected exception (a bug, not the file): retried like any other."""


def run_isolated(path: Path, out_dir: Path, limits: ExtractLimits) -> tuple[Extraction, ChildStats]:
    """Extract ``path`` in a sandbox child under ``limits``.

    Raises:
        FileRejected: the file's own rejection, or ``extraction_timeout`` (wall-clock or CPU
            limit; ``tables_timeout`` or ``ocr_timeout`` when those phases overran their own),
            ``extraction_limit_exceeded`` (memory or output size), ``extraction_crashed``
            (the child died of a signal or replied nonsense).
        TransientError: ``extraction_unavailable`` when no child could be started.
        ChildError: an unexpected exception in the child, or a child that exited without reply.
    """
    path, out_dir = Path(path).resolve(), Path(out_dir).resolve()
    reply_path = out_dir / f".extract-reply-{uuid.uuid4().hex}.json"
    child = POOL.take(limits)
    extracted = False
    started = time.monotonic()
    try:
        try:
            child.conn.send((str(path), str(out_dir), str(reply_path), limits))
        except OSError as exc:  # it died while idle, between the pool's check and now
            raise TransientError(f"the extraction child is gone: {exc}", code="extraction_unavailable") from exc
        overran = _watch(child.process, child.conn, limits)
        wall = time.monotonic() - started
        # A child that answered is still alive: its exit code is the one it would have had.
        exitcode = 0 if overran is None and child.process.exitcode is None else child.process.exitcode
        reply = None if overran else _read_reply(reply_path)
        extraction, stats = _outcome(exitcode, overran, reply, out_dir, limits, wall)
        extracted = True
        return extraction, replace(stats, pid=child.process.pid or 0)
    finally:
        reply_path.unlink(missing_ok=True)
        POOL.give_back(child, extracted)


def _watch(process: BaseProcess, conn: Connection, limits: ExtractLimits) -> str | None:
    """Wait for the child's answer, giving each phase its own time; None once it answered or
    exited, or the phase it overran (the child and its process group are killed then)."""
    budgets = {
        "tables": limits.tables_time_limit_seconds + child_side.PHASE_GRACE_SECONDS,
        "ocr": limits.ocr_time_limit_seconds + child_side.PHASE_GRACE_SECONDS,
    }
    now = time.monotonic()
    phase, deadline = "parse", now + limits.time_limit_seconds
    # Whatever the child says, it never gets more than every phase's budget together.
    end = now + limits.time_limit_seconds + sum(budgets.values())
    waiting: list[Any] = [process.sentinel, conn]
    seen: set[str] = set()
    while True:
        left = min(deadline, end) - time.monotonic()
        ready = multiprocessing.connection.wait(waiting, max(left, 0)) if left > 0 else []
        if conn in ready:
            try:
                message = conn.recv_bytes(MAX_PHASE_NAME)
            except (EOFError, OSError):  # the child closed it, or sent nonsense: stop listening
                waiting.remove(conn)
                continue
            if message == child_side.DONE:
                return None
            name = message.decode("ascii", "replace")
            if name in budgets and name not in seen:
                seen.add(name)
                phase, deadline = name, time.monotonic() + budgets[name]
            continue
        if process.sentinel in ready:
            process.join()
            return None
        _kill(process)
        return phase


def _kill(process: BaseProcess) -> None:
    """Kill the child's process group (it and any Tesseract it started), then reap it."""
    assert process.pid is not None
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # killed before it made its own group
        process.kill()
    process.join()


def _read_reply(reply_path: Path) -> dict[str, Any] | None:
    try:
        with open(reply_path, "rb") as fh:
            data = fh.read(MAX_REPLY_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(data) > MAX_REPLY_BYTES:
        return None
    try:
        reply = json.loads(data)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


def _outcome(
    exitcode: int | None,
    overran: str | None,
    reply: dict[str, Any] | None,
    out_dir: Path,
    limits: ExtractLimits,
    wall: float,
) -> tuple[Extraction, ChildStats]:
    """Turn the child's exit and reply into a result or the right exception."""
    if overran in ("tables", "ocr"):
        seconds = limits.tables_time_limit_seconds if overran == "tables" else limits.ocr_time_limit_seconds
        raise FileRejected(
            f"{overran} took longer than {seconds:g} s and did not stop",
            code=_TIMEOUT_CODES[overran],
            details={"time_limit_seconds": seconds},
        )
    if overran or (exitcode is not None and -exitcode in _TIMEOUT_SIGNALS):
        raise FileRejected(
            f"extraction took longer than {limits.time_limit_seconds:g} s",
            code="extraction_timeout",
            details={"time_limit_seconds": limits.time_limit_seconds},
        )
    if exitcode == -signal.SIGKILL:
        # Not our kill (that is the timeout above): the kernel's OOM killer.
        raise _limit_exceeded(limits)
    if exitcode is not None and exitcode < 0:
        # A decoder crashed (SIGSEGV, SIGABRT...) on this file: retrying would crash it again.
        raise FileRejected(f"extraction child died of signal {-exitcode}", code="extraction_crashed")
    if reply is None or exitcode not in (0, LOST_EXIT_CODE):
        # Our code replies for every exception, so this is the environment (e.g. the child
        # could not start its interpreter or write its reply), not the file: retry.
        raise ChildError(f"extraction child exited with code {exitcode} and no reply")
    if "rejected" in reply:
        rejected = reply["rejected"]
        raise FileRejected(
            str(rejected.get("message", "")),
            code=str(rejected.get("code", "extraction_crashed")),
            details=rejected.get("details") or {},
        )
    if "error" in reply:
        raise ChildError(f"extraction child failed: {reply['error']}\n{reply.get('traceback', '')}")
    if reply.get("limit_exceeded"):
        raise _limit_exceeded(limits)
    try:
        extraction = Extraction.from_json(reply["ok"])
        stats = reply.get("stats") or {}
        child_stats = ChildStats(
            int(stats.get("max_rss_kb", 0)),
            float(stats.get("cpu_seconds", 0.0)),
            wall,
            int(stats.get("children_max_rss_kb", 0)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FileRejected(f"extraction child replied nonsense: {exc}", code="extraction_crashed") from None
    _check_derivatives(extraction, out_dir)
    return extraction, child_stats


def _limit_exceeded(limits: ExtractLimits) -> FileRejected:
    return FileRejected(
        f"extraction needed more than {limits.memory_limit_mb} MB of memory or wrote too much",
        code="extraction_limit_exceeded",
        details={"memory_limit_mb": limits.memory_limit_mb},
    )


def _check_derivatives(extraction: Extraction, out_dir: Path) -> None:
    """Every derivative must be a regular file inside ``out_dir``: the caller uploads them, and a
    subverted child must not get, say, the worker's configuration uploaded as a "thumbnail"."""
    for derivative in extraction.derivatives:
        path = derivative.path
        if path.is_symlink() or not path.is_file() or path.resolve().parent != out_dir:
            raise FileRejected(f"derivative outside the output directory: {path}", code="extraction_crashed")

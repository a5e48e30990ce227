"""Run extraction in a child process bounded in memory, CPU time, wall-clock time and output size.

A hostile file can exhaust memory or loop in a decoder; in a child process that costs the
child, not the Dramatiq worker. The caller runs in a worker *thread*, so the child is not a
plain ``os.fork`` of a threaded process: it comes from a multiprocessing **fork server**, a
single-threaded process started once that has already imported Pillow and pypdf. Measured on
the 2-core dev machine: about 15 ms per child after a one-off ~250 ms server start, against
~175 ms for ``python -m`` in a fresh interpreter and ~70 ms for the ``spawn`` start method.

The child's reply is JSON written to a file, never a pickle: a child that a decoder exploit
took over must not be able to run code in the worker by what it sends back. This bounds
resources; it is not a security sandbox (no seccomp, same user).

Time is given per phase (:mod:`actors.extraction.budget`): parsing gets
``time_limit_seconds``; when the child announces tables or OCR over a pipe (a phase name as
bytes, never a pickle), the watchdog gives it that phase's budget plus a grace. The child
leads its own process group, so a kill also ends the Tesseract it may be running.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import resource
import signal
import threading
import time
import traceback
import uuid
import warnings
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, ForkServerProcess
from pathlib import Path
from typing import Any

from PIL import Image

from actors.extraction.budget import MAX_PHASE_NAME, PHASES, set_phase_listener
from actors.extraction.dispatch import extract_in_process
from actors.extraction.limits import ExtractLimits
from actors.extraction.result import Extraction
from models.errors import FileRejected, TransientError

logger = logging.getLogger(__name__)

#: Modules the fork server imports once, so each child starts with its decoders loaded.
#: ``__main__`` first, as multiprocessing's default, so children do not re-import it each time.
PRELOAD: list[str] = ["__main__", "actors.extraction.dispatch", "actors.extraction.sandbox"]

#: Largest file a child may write (RLIMIT_FSIZE): a text derivative of a PDF bomb stops here.
MAX_OUTPUT_FILE_BYTES = 1 << 30

#: Largest reply read back from a child; results are small (page text is budgeted).
MAX_REPLY_BYTES = 64 << 20

#: Seconds of CPU time the child gets beyond the wall-clock limit before SIGXCPU, so that
#: the wall-clock limit, which names the code ``extraction_timeout`` too, usually acts first.
CPU_GRACE_SECONDS = 1

#: Seconds a phase with its own budget (tables, OCR) may overrun it before the child is killed:
#: those phases stop themselves at the budget, so only native code stuck in a page meets this.
PHASE_GRACE_SECONDS = 5

#: Exit signals that mean the child ran out of time (ours, or RLIMIT_CPU's).
_TIMEOUT_SIGNALS = frozenset({signal.SIGXCPU})

#: The exit code multiprocessing reports when the fork server lost a child's real one, which
#: happens under load (CPython issue 140867); the child's reply, written last, then decides.
LOST_EXIT_CODE = 255

#: The job's error code when the watchdog kills a child that overran a phase.
_TIMEOUT_CODES = {"parse": "extraction_timeout", "tables": "tables_timeout", "ocr": "ocr_timeout"}

_context_lock = threading.Lock()
_context: ForkServerContext | None = None


@dataclass(frozen=True)
class ChildStats:
    """What one isolated extraction cost, as the child measured it (benchmarks read this)."""

    max_rss_kb: int
    cpu_seconds: float
    wall_seconds: float
    #: The largest of the child's own children (Tesseract), which ``max_rss_kb`` does not count.
    children_max_rss_kb: int = 0


class ChildError(RuntimeError):
    """The child failed with an unexpected exception (a bug, not the file): retried like any other."""


def run_isolated(path: Path, out_dir: Path, limits: ExtractLimits) -> tuple[Extraction, ChildStats]:
    """Extract ``path`` in a fresh child process under ``limits``.

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
    ctx = _fork_server()
    phases, phase_writer = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_child_main,
        args=(str(path), str(out_dir), str(reply_path), limits, phase_writer),
        name="chute-extract",
        daemon=True,
    )
    started = time.monotonic()
    try:
        try:
            process.start()
        except OSError as exc:
            raise TransientError(f"cannot start the extraction child: {exc}", code="extraction_unavailable") from exc
        finally:
            phase_writer.close()  # the child has its copy: EOF here once it exits
        overran = _watch(process, phases, limits)
        wall = time.monotonic() - started
        reply = None if overran else _read_reply(reply_path)
        return _outcome(process.exitcode, overran, reply, out_dir, limits, wall)
    finally:
        phases.close()
        reply_path.unlink(missing_ok=True)
        if process.exitcode is not None:
            process.close()


def _watch(process: ForkServerProcess, phases: Connection, limits: ExtractLimits) -> str | None:
    """Wait for the child, giving each phase its own time; None once it exited, or the phase
    it overran (the child and its process group are killed then)."""
    budgets = {
        "tables": limits.tables_time_limit_seconds + PHASE_GRACE_SECONDS,
        "ocr": limits.ocr_time_limit_seconds + PHASE_GRACE_SECONDS,
    }
    now = time.monotonic()
    phase, deadline = "parse", now + limits.time_limit_seconds
    # Whatever the child says, it never gets more than every phase's budget together.
    end = now + limits.time_limit_seconds + sum(budgets.values())
    waiting: list[Any] = [process.sentinel, phases]
    seen: set[str] = set()
    while True:
        left = min(deadline, end) - time.monotonic()
        ready = multiprocessing.connection.wait(waiting, max(left, 0)) if left > 0 else []
        if process.sentinel in ready:
            process.join()
            return None
        if not ready:
            _kill(process)
            return phase
        try:
            name = phases.recv_bytes(MAX_PHASE_NAME).decode("ascii", "replace")
        except (EOFError, OSError):  # the child closed it, or sent nonsense: stop listening
            waiting.remove(phases)
            continue
        if name in budgets and name not in seen:
            seen.add(name)
            phase, deadline = name, time.monotonic() + budgets[name]


def _kill(process: ForkServerProcess) -> None:
    """Kill the child's process group (it and any Tesseract it started), then reap it."""
    assert process.pid is not None
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # killed before it made its own group
        process.kill()
    process.join()


def _fork_server() -> ForkServerContext:
    """The fork server context, set up on first use (the server starts with the first child)."""
    global _context
    with _context_lock:
        if _context is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _context = ctx
        return _context


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


# --- The child side -------------------------------------------------------------------------


def _child_main(path: str, out_dir: str, reply_path: str, limits: ExtractLimits, phases: Connection) -> None:
    """Entry point of the child: lead a process group, confine, extract, write the JSON reply, exit."""
    os.setpgid(0, 0)
    _confine(limits)
    set_phase_listener(lambda name: phases.send_bytes(name.encode("ascii")))
    reply = _extract(Path(path), Path(out_dir), limits)
    usage, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    reply["stats"] = {
        "max_rss_kb": usage.ru_maxrss,
        "cpu_seconds": usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime,
        "children_max_rss_kb": children.ru_maxrss,
    }
    with open(reply_path, "w", encoding="utf-8") as fh:
        json.dump(reply, fh, default=str)


def _confine(limits: ExtractLimits) -> None:
    """Resource limits and strict decoding settings; safe to set globally in a single-threaded child."""
    memory = limits.memory_limit_mb * 1024 * 1024
    cpu = math.ceil(limits.total_time_limit_seconds) + PHASE_GRACE_SECONDS * len(PHASES) + CPU_GRACE_SECONDS
    _set_limit(resource.RLIMIT_AS, memory)
    _set_limit(resource.RLIMIT_CPU, cpu, hard=cpu + 1)
    _set_limit(resource.RLIMIT_FSIZE, MAX_OUTPUT_FILE_BYTES)
    _set_limit(resource.RLIMIT_CORE, 0)
    # Pillow warns between its limit and twice it, errors above: make both ours, and both errors.
    Image.MAX_IMAGE_PIXELS = limits.max_image_pixels
    warnings.simplefilter("error")
    # pypdf and pdfminer log every robustness fix on malformed files; hostile files make that a flood.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    logging.getLogger("pdfminer").setLevel(logging.ERROR)


def _set_limit(which: int, soft: int, hard: int | None = None) -> None:
    """Lower a limit, never above the current hard limit (raising it is not allowed)."""
    _, current_hard = resource.getrlimit(which)
    hard = soft if hard is None else hard
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(which, (soft, hard))


def _extract(path: Path, out_dir: Path, limits: ExtractLimits) -> dict[str, Any]:
    """The reply to write: ``ok``, ``rejected``, ``limit_exceeded`` or ``error``."""
    try:
        return {"ok": extract_in_process(path, out_dir, limits).to_json()}
    except FileRejected as exc:
        return {"rejected": {"code": exc.code, "message": exc.message, "details": exc.details}}
    except MemoryError:
        pass  # reply below, once the except block has released the frames that filled memory
    except OSError as exc:
        if exc.errno != errno.EFBIG:  # EFBIG: over RLIMIT_FSIZE (Python ignores SIGXFSZ)
            return _error(exc)
    except Exception as exc:
        return _error(exc)
    return {"limit_exceeded": True}


def _error(exc: BaseException) -> dict[str, Any]:
    return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}

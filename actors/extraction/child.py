"""The sandbox's child side: confined once, it extracts the files its parent sends, one at a time.

The parent (trusted) sends each request as a pickle: the file, the output directory, where to
write the reply, and the file's limits. The child answers only in bytes: a phase name when a
phase with its own budget starts, and :data:`DONE` once the file's JSON reply is written. A
child that a decoder exploit took over must not be able to run code in the worker by what it
sends back, so nothing from it is ever unpickled.

The resource limits are the process's own (RLIMIT_AS, RLIMIT_FSIZE, no core), set once, and
RLIMIT_CPU, moved on before each file so that every file gets the same CPU time whatever its
predecessors used (the hard limit covers the child's whole life of ``files_per_child`` files).
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import resource
import traceback
import warnings
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from PIL import Image

from actors.extraction.budget import PHASES, set_phase_listener
from actors.extraction.dispatch import extract_in_process
from actors.extraction.heap import reuse_freed_buffers
from actors.extraction.limits import ExtractLimits
from models.errors import FileRejected

#: What the child sends once a file's reply is written (not a phase name, so never mistaken for one).
DONE = b"done"

#: Largest file a child may write (RLIMIT_FSIZE): a text derivative of a PDF bomb stops here.
MAX_OUTPUT_FILE_BYTES = 1 << 30

#: Seconds of CPU time the child gets beyond the wall-clock limit before SIGXCPU, so that
#: the wall-clock limit, which names the code ``extraction_timeout`` too, usually acts first.
CPU_GRACE_SECONDS = 1

#: Seconds a phase with its own budget (tables, OCR) may overrun it before the child is killed:
#: those phases stop themselves at the budget, so only native code stuck in a page meets this.
PHASE_GRACE_SECONDS = 5

#: Linux resets a process's peak RSS (``VmHWM``) when this is written to ``/proc/self/clear_refs``,
#: so that each file's peak is its own, not the child's largest so far.
_CLEAR_PEAK = b"5"


def cpu_seconds_per_file(limits: ExtractLimits) -> int:
    """The CPU time one file may use: every phase's wall-clock budget, their graces, and a little more."""
    return math.ceil(limits.total_time_limit_seconds) + PHASE_GRACE_SECONDS * len(PHASES) + CPU_GRACE_SECONDS


def serve(conn: Connection, limits: ExtractLimits) -> None:
    """Entry point of a child: lead a process group, confine, then extract until the parent hangs up.

    ``limits`` are the ones the child is confined with; each request's own limits may differ
    only in what does not touch the process's limits (the parent keys its children by those).
    """
    os.setpgid(0, 0)  # a kill of the group also ends the Tesseract it may be running
    confine(limits)
    set_phase_listener(lambda name: conn.send_bytes(name.encode("ascii")))
    while True:
        try:
            path, out_dir, reply_path, file_limits = conn.recv()
        except EOFError:
            return
        _start_file(file_limits)
        before = _usage()
        reply = _extract(Path(path), Path(out_dir), file_limits)
        reply["stats"] = _stats(before)
        with open(reply_path, "w", encoding="utf-8") as fh:
            json.dump(reply, fh, default=str)
        conn.send_bytes(DONE)


def confine(limits: ExtractLimits) -> None:
    """Resource limits and strict decoding settings; safe to set globally in a single-threaded child."""
    # Each file's soft limit starts at the CPU time used so far rounded up: a second a file more.
    lifetime_cpu = (cpu_seconds_per_file(limits) + 1) * limits.files_per_child
    _set_limit(resource.RLIMIT_AS, limits.memory_limit_mb * 1024 * 1024)
    _set_limit(resource.RLIMIT_CPU, lifetime_cpu, hard=lifetime_cpu + 1)
    _set_limit(resource.RLIMIT_FSIZE, MAX_OUTPUT_FILE_BYTES)
    _set_limit(resource.RLIMIT_CORE, 0)
    reuse_freed_buffers()  # each file's image buffers are the next one's, not mapped afresh
    # Pillow warns between its limit and twice it, errors above: make both ours, and both errors.
    warnings.simplefilter("error")
    # pypdf and pdfminer log every robustness fix on malformed files; hostile files make that a flood.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    logging.getLogger("pdfminer").setLevel(logging.ERROR)


def _start_file(limits: ExtractLimits) -> None:
    """Give the next file its own CPU time (SIGXCPU past it) and pixel limit; reset the peak RSS."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = math.ceil(usage.ru_utime + usage.ru_stime)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + cpu_seconds_per_file(limits)
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    Image.MAX_IMAGE_PIXELS = limits.max_image_pixels
    try:
        with open("/proc/self/clear_refs", "wb") as fh:
            fh.write(_CLEAR_PEAK)
    except OSError:
        pass  # not Linux, or not allowed: the peak reported is then the child's largest so far


def _set_limit(which: int, soft: int, hard: int | None = None) -> None:
    """Lower a limit, never above the current hard limit (raising it is not allowed)."""
    _, current_hard = resource.getrlimit(which)
    hard = soft if hard is None else hard
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(which, (soft, hard))


def _usage() -> tuple[float, float]:
    """CPU seconds used so far by the child, and by the processes it waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _stats(before: tuple[float, float]) -> dict[str, Any]:
    """What this file cost: its peak RSS, CPU time (Tesseract's included), the largest Tesseract."""
    after = _usage()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "max_rss_kb": _peak_rss_kb(),
        "cpu_seconds": after[0] - before[0] + after[1] - before[1],
        "children_max_rss_kb": children.ru_maxrss,
    }


def _peak_rss_kb() -> int:
    """Peak RSS since the file started (``VmHWM``, reset per file), else the child's largest."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


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

"""Warm sandbox children: each extracts up to ``files_per_child`` files, one at a time.

A fresh child per file cost a fork of the fork server and, in each child, the imports Pillow
makes lazily (its format plugins): about a fifth of a loaded worker's samples. A child kept for
the next file costs a pipe round trip instead. What a file may leave behind in a child (a heap
grown by a large image, a decoder's state) is bounded by replacing it: after
``files_per_child`` files, and at once after any file it did not extract (a rejection, an
error, a timeout, a limit, a crash). Children idle longer than :data:`MAX_IDLE_SECONDS` are
ended, so a quiet worker does not hold them.

Children are keyed by the limits they were confined with (memory, CPU time, files per child):
a file is only ever given to a child confined with its own.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, ForkServerProcess

from actors.extraction import child as child_side
from actors.extraction.limits import ExtractLimits
from models.errors import TransientError

#: Modules the fork server imports once, so each child starts with its decoders loaded.
#: ``__main__`` first, as multiprocessing's default, so children do not re-import it each time;
#: ``preload`` loads what the libraries would otherwise import in every child.
PRELOAD: list[str] = ["__main__", "actors.extraction.preload", "actors.extraction.child"]

#: An idle child is ended once it has waited this long for a file.
MAX_IDLE_SECONDS = 60.0

_context_lock = threading.Lock()
_context: ForkServerContext | None = None


def fork_server() -> ForkServerContext:
    """The fork server context, set up on first use (the server starts with the first child)."""
    global _context
    with _context_lock:
        if _context is None:
            import multiprocessing

            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _context = ctx
        return _context


@dataclass
class Child:
    """One sandbox child and the parent's end of its pipe."""

    process: ForkServerProcess
    conn: Connection
    key: tuple[int, ...]
    #: Files it may extract in all, and has extracted.
    max_files: int
    files: int = 0
    idle_since: float = field(default_factory=time.monotonic)

    def end(self) -> None:
        """Kill the child's process group (it and any Tesseract it started), then reap it."""
        if self.process.exitcode is None:
            assert self.process.pid is not None
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:  # killed before it made its own group
                self.process.kill()
            self.process.join()
        self.conn.close()
        self.process.close()


def _key(limits: ExtractLimits) -> tuple[int, ...]:
    return limits.memory_limit_mb, child_side.cpu_seconds_per_file(limits), limits.files_per_child


class ChildPool:
    """Idle children, handed out one file at a time (thread-safe: worker threads share it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[Child] = []

    def take(self, limits: ExtractLimits) -> Child:
        """An idle child confined with ``limits``, or a new one.

        Raises:
            TransientError: ``extraction_unavailable`` when no child could be started.
        """
        key = _key(limits)
        stale: list[Child] = []
        found: Child | None = None
        with self._lock:
            now = time.monotonic()
            for candidate in list(self._idle):
                if now - candidate.idle_since > MAX_IDLE_SECONDS or candidate.process.exitcode is not None:
                    self._idle.remove(candidate)
                    stale.append(candidate)
                elif found is None and candidate.key == key:
                    self._idle.remove(candidate)
                    found = candidate
        for candidate in stale:
            candidate.end()
        return found if found is not None else self._start(limits, key)

    def give_back(self, child: Child, reusable: bool) -> None:
        """Keep ``child`` for another file if it extracted this one and has files left; else end it.

        A child that sent anything after its last answer is not kept either: its next file
        would read that as its own.
        """
        child.files += 1
        keep = reusable and child.files < child.max_files and child.process.exitcode is None
        if keep and child.conn.poll(0):
            keep = False
        if not keep:
            child.end()
            return
        child.idle_since = time.monotonic()
        with self._lock:
            self._idle.append(child)

    def warm(self, limits: ExtractLimits) -> None:
        """Start a child for ``limits`` and keep it idle (and with it the fork server).

        Raises:
            TransientError: ``extraction_unavailable`` when no child could be started.
        """
        child = self._start(limits, _key(limits))
        with self._lock:
            self._idle.append(child)

    def clear(self) -> None:
        """End every idle child (tests, and a forked process, which must not use its parent's)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for child in idle:
            child.end()

    @staticmethod
    def _start(limits: ExtractLimits, key: tuple[int, ...]) -> Child:
        ctx = fork_server()
        parent_end, child_end = ctx.Pipe(duplex=True)
        process = ctx.Process(target=child_side.serve, args=(child_end, limits), name="chute-extract", daemon=True)
        try:
            process.start()
        except OSError as exc:
            parent_end.close()
            raise TransientError(f"cannot start the extraction child: {exc}", code="extraction_unavailable") from exc
        finally:
            child_end.close()  # the child has its copy: EOF here once it exits
        return Child(process, parent_end, key, limits.files_per_child)


#: The process's children. A process forked from this one starts with none of them.
POOL = ChildPool()


def _forget_after_fork() -> None:
    POOL._idle = []  # the parent's children: not ours to use or to end
    POOL._lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)

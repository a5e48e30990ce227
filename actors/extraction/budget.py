"""Time budgets of the extraction phases: tables and OCR stop themselves at their own limits.

Extraction runs in phases: ``parse`` (pypdf or Pillow: the file's own facts and text layer),
then ``tables`` and ``ocr``. Each later phase has its own time limit (a setting), so a slow
OCR never eats the parse's time and the other way round. A phase announces its start through
:func:`start_phase`; in the sandbox's child that tells the parent, whose watchdog then gives
the child that phase's budget (plus a grace) before killing it, so even native code stuck in a
phase is bounded. Within the budget, a phase stops itself and says so in the result.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

#: The phases after parsing that have their own budget, in the order they run.
PHASES: tuple[str, ...] = ("tables", "ocr")

#: Longest phase name sent from the sandbox's child to its parent.
MAX_PHASE_NAME = 16


class BudgetExceeded(BaseException):
    """A phase ran out of time. A ``BaseException``, like ``KeyboardInterrupt``, so that a
    library's ``except Exception`` cannot swallow it halfway through a page."""


@dataclass
class Budget:
    """Seconds a phase may use, counted from its creation."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0


_listener: Callable[[str], None] | None = None


def set_phase_listener(listener: Callable[[str], None] | None) -> None:
    """Call ``listener(phase)`` whenever a phase starts (the sandbox's child does; nothing else)."""
    global _listener
    _listener = listener


def start_phase(name: str, seconds: float) -> Budget:
    """Announce phase ``name`` (one of :data:`PHASES`) and return its budget."""
    if name not in PHASES:
        raise ValueError(f"unknown phase {name!r}")
    if _listener is not None:
        _listener(name)
    return Budget(seconds)


@contextmanager
def interrupting(budget: Budget) -> Iterator[None]:
    """Raise :class:`BudgetExceeded` inside the block when ``budget`` runs out.

    Pure-Python parsers (pdfminer under pdfplumber) can spend a long time on one page; a
    ``SIGALRM`` timer interrupts them between bytecodes. Signals reach only the main thread,
    so elsewhere (a worker thread extracting without isolation) the block is not interrupted
    and callers rely on checking :attr:`Budget.expired` between pages.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if budget.expired:
        raise BudgetExceeded

    def expire(signum: int, frame: FrameType | None) -> None:
        raise BudgetExceeded

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(budget.remaining(), 0.001))  # 0 would disarm it
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

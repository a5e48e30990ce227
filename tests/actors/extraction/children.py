"""Targets for sandbox children in tests: a module that imports nothing heavy, so a child of the
fork server starts in milliseconds and the timings under test are the watchdog's, not imports'."""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection


def announce_then_sleep(phases: Connection, announce: bytes, seconds: float) -> None:
    """A child that says it entered a phase (as extraction does), then works for ``seconds``."""
    os.setpgid(0, 0)
    if announce:
        phases.send_bytes(announce)
    time.sleep(seconds)

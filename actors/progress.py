"""Progress writes worth their transaction: a stage reports at most every step or interval."""

from __future__ import annotations

import time


class ProgressThrottle:
    """Says when a progress update is worth writing: after ``step`` more of the stage, or after
    ``interval`` seconds, and never for the stage's end (advancing the stage records that).

    Parameters:
        step: Fraction of the stage between two writes.
        interval: Seconds after which any change is written.
    """

    def __init__(self, step: float = 0.1, interval: float = 1.0):
        self.step = step
        self.interval = interval
        self.last_fraction = 0.0
        self.last_time = time.monotonic()

    def due(self, fraction: float) -> bool:
        now = time.monotonic()
        if fraction >= 1.0:
            return False
        if fraction - self.last_fraction >= self.step or now - self.last_time >= self.interval:
            self.last_fraction, self.last_time = fraction, now
            return True
        return False

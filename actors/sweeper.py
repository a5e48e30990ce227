"""Sweeper: a worker-side timer that runs the periodic housekeeping of ``chute cleanup``."""

from __future__ import annotations

import logging
import threading

import dramatiq
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)


class Sweeper(Middleware):
    """Runs ``actors.cleanup.sweep()`` every ``interval`` seconds in each worker process.

    Every step of the sweep is idempotent, so several workers sweeping at once do no harm.

    Parameters:
        interval: Seconds between sweeps; 0 turns the sweeper off.
    """

    def __init__(self, *, interval: float):
        self.interval = interval
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.interval <= 0:
            return
        self.stopping.clear()
        self.thread = threading.Thread(target=self._loop, name="chute-sweeper", daemon=True)
        self.thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.stopping.set()

    def _loop(self) -> None:
        from actors.cleanup import sweep

        while not self.stopping.wait(self.interval):
            try:
                sweep()
            except Exception:
                log.exception("sweep failed; trying again in %ss", self.interval)

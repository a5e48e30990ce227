"""A worker-side start of the extraction sandbox, so the first file does not wait for it."""

from __future__ import annotations

import logging
import threading

import dramatiq
from dramatiq.middleware import Middleware

from actors.extraction import ExtractLimits
from actors.extraction.pool import POOL
from models.settings import current_settings

log = logging.getLogger(__name__)


class ExtractionWarmup(Middleware):
    """Starts the fork server and one sandbox child in each worker process as it boots.

    The fork server's start (its imports: the actors package, Pillow with its plugins, pypdf,
    pdfplumber) took most of a second on the dev machine, paid by the first PDF or image of
    each worker process; a thread of its own pays it at boot instead. Nothing happens with
    isolation off, or in a worker that does not consume the extract queue (the webhook group):
    there the fork server and its child would only cost CPU at boot and memory for good.
    """

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        settings = current_settings()
        consumed = worker.consumer_whitelist
        if not settings.extract_isolation or (consumed and settings.queue("extract") not in consumed):
            return
        limits = ExtractLimits.from_settings(settings)
        threading.Thread(target=self._warm, args=(limits,), name="chute-extract-warmup", daemon=True).start()

    @staticmethod
    def _warm(limits: ExtractLimits) -> None:
        try:
            POOL.warm(limits)
        except Exception:  # the first file starts them then, and reports what fails
            log.warning("could not start an extraction child ahead of time", exc_info=True)

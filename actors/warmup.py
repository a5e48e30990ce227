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


#: How long a booting worker process waits for its sandbox before it consumes anyway.
WARM_WAIT_SECONDS = 30.0


class ExtractionWarmup(Middleware):
    """Starts the fork server and one sandbox child in each worker process as it boots, before
    the process takes its first message.

    The fork server's start (its imports: the actors package, Pillow with its plugins, pypdf,
    pdfplumber) took most of a second on the dev machine. Paid by the first PDF or image of each
    worker process it delayed that file; paid in a thread beside the first messages it took that
    CPU from them (a tenth of a 300-job batch's worker samples on 2 cores). Paid before
    ``worker_boot`` it is a boot cost, as any worker's imports: Dramatiq starts consuming only
    after this hook, and says "ready" after that. The wait is bounded: a sandbox that does not
    start is started again (and its error reported) by the first file. Nothing happens with
    isolation off, or in a worker that does not consume the extract queue (the webhook group):
    there the fork server and its child would only cost CPU at boot and memory for good.
    """

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        settings = current_settings()
        consumed = worker.consumer_whitelist
        if not settings.extract_isolation or (consumed and settings.queue("extract") not in consumed):
            return
        limits = ExtractLimits.from_settings(settings)
        warming = threading.Thread(target=self._warm, args=(limits,), name="chute-extract-warmup", daemon=True)
        warming.start()
        warming.join(WARM_WAIT_SECONDS)
        if warming.is_alive():
            log.warning("the extraction sandbox did not start within %g s; consuming anyway", WARM_WAIT_SECONDS)

    @staticmethod
    def _warm(limits: ExtractLimits) -> None:
        try:
            POOL.warm(limits)
        except Exception:  # the first file starts them then, and reports what fails
            log.warning("could not start an extraction child ahead of time", exc_info=True)

"""JobTracking: the middleware that keeps the job row in step with its messages."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware, SkipMessage

from actors.metrics import job_ended
from actors.transient import is_transient
from models import job as jobs
from models.db import session_scope
from models.errors import ChuteError

log = logging.getLogger(__name__)


class JobTracking(Middleware):
    """Records stage, attempts and failure on the job of every stage message.

    Applies to actors declared with the ``job_stage`` option; their first argument is a
    job id. Before a message runs, the attempt is counted in the database (a SIGKILLed
    worker's message is redelivered without Dramatiq's retry counter moving, so only the
    database can stop a file that kills workers); a message for a job that is over is
    skipped. After a message fails for good (a permanent error, or retries exhausted),
    the job is marked failed with a specific code, its partial upload is aborted, and the
    notify stage is sent so the client hears of it.

    Must come *before* Retries in the middleware list: Dramatiq runs after-hooks in reverse
    order, and this one reads the ``message.failed`` that Retries sets.

    Parameters:
        max_attempts: Attempts of one stage before the job fails with ``too_many_attempts``.
    """

    def __init__(self, *, max_attempts: int):
        self.max_attempts = max_attempts

    @property
    def actor_options(self) -> set[str]:
        return {"job_stage"}

    def _stage(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> str | None:
        actor = broker.get_actor(message.actor_name)
        return actor.options.get("job_stage")

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        stage = self._stage(broker, message)
        if stage is None:
            return
        job_id = message.args[0]
        with session_scope() as session:
            verdict = jobs.begin_stage(session, job_id, stage, self.max_attempts)
        if verdict == jobs.StageVerdict.EXHAUSTED:
            log.error("job %s: %s started %d times, failing it", job_id, stage, self.max_attempts)
            job_ended("failed", "too_many_attempts")
            self._after_failure(broker, job_id)
            raise SkipMessage()
        if verdict == jobs.StageVerdict.SKIP:
            log.info("job %s is over or gone: skipping its %s message", job_id, stage)
            raise SkipMessage()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        stage = self._stage(broker, message)
        if stage is None or exception is None:
            return
        job_id = message.args[0]
        if not message.failed:
            log.warning("job %s: %s failed, will retry: %s", job_id, stage, exception)
            return
        if isinstance(exception, ChuteError):
            code, text = exception.code, exception.message
            # The client's reason (a corrupt file, a bad checksum): the job says why, so the
            # message is acked; only what chute could not handle is dead-lettered to .XQ.
            message.failed = False
        elif is_transient(exception):
            code, text = "retries_exhausted", f"{stage} kept failing: {exception}"
        else:
            code, text = "internal_error", f"{stage} failed unexpectedly: {type(exception).__name__}"
        with session_scope() as session:
            job = jobs.load_job(session, job_id, for_update=True)
            if job is None or job.terminal:
                return
            jobs.fail(job, code, text)
        job_ended("failed", code)
        log.info("job %s failed in %s with %s", job_id, stage, code)
        self._after_failure(broker, job_id)

    def _after_failure(self, broker: dramatiq.Broker, job_id: str) -> None:
        from actors.cleanup import release_job  # the stage modules import this one's broker

        release_job(job_id)
        broker.get_actor("notify").send(job_id)

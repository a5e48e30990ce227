"""JobTracking: the middleware that keeps the job row in step with its messages."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware, SkipMessage
from sqlalchemy.orm import Session

from actors.metrics import job_ended
from actors.transient import BookkeepingFailed, is_transient
from models import job as jobs
from models.db import session_scope
from models.errors import ChuteError

log = logging.getLogger(__name__)

#: A stage's ``job_prepare`` option: what it reads (and records) before its work, in the
#: transaction that records the run's start; its result is the ``StageStart.prepared``.
Prepare = Callable[[Session, jobs.JobSnapshot], Any]


@dataclass
class StageStart:
    """What a stage run starts from: the job as its start recorded it, and what the stage's
    ``job_prepare`` read in that same transaction (one read and one commit for both)."""

    job: jobs.JobSnapshot
    prepared: Any = None
    #: Set by the stage once its own last transaction ended the run (``jobs.advance_stage``), so
    #: that JobTracking does not spend a transaction recording the end again.
    closed: bool = False


@dataclass(frozen=True)
class Admission:
    """The run JobTracking admitted for the message a worker thread is processing."""

    message_id: str
    job_id: str
    run_id: str | None
    isolate: bool
    #: None when the run is to be isolated (its child reads the job itself).
    start: StageStart | None = None


_local = threading.local()


def current_admission() -> Admission | None:
    """The admission of this worker thread's current stage message (None outside a worker)."""
    return getattr(_local, "admission", None)


def process_owner() -> str:
    """``host:pid``: who runs a stage, as recorded on the job."""
    return f"{socket.gethostname()}:{os.getpid()}"


class JobTracking(Middleware):
    """Records the runs, crashes and failure on the job of every stage message.

    Applies to actors declared with the ``job_stage`` option; their first argument is a job
    id. Before a message runs, its run is recorded in the database (``jobs.begin_stage``); a
    run whose end was never recorded died with its process, which only the database can tell
    (a SIGKILLed worker's message comes back without Dramatiq's retry counter moving). Retries
    are left to Retries: each run's end is recorded here, so a retry is not a crash. A message
    for a job that is over is skipped; if the run cannot be recorded (the database is down) the
    message is retried without running. After a message fails for good (a permanent error, or
    retries exhausted) the job is marked failed with a specific code, unless another run of the
    same stage (a duplicate delivery) already finished it; its storage is released and the
    notify stage is sent so the client hears of it.

    Must come *before* Retries in the middleware list: Dramatiq runs after-hooks in reverse
    order, and this one reads the ``message.failed`` that Retries sets.
    """

    @property
    def actor_options(self) -> set[str]:
        return {"job_stage", "job_prepare"}

    def _stage(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> str | None:
        actor = broker.get_actor(message.actor_name)
        return actor.options.get("job_stage")

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        _local.admission = None
        stage = self._stage(broker, message)
        if stage is None:
            return
        job_id = message.args[0]
        prepare: Prepare | None = broker.get_actor(message.actor_name).options.get("job_prepare")
        try:
            with session_scope() as session:  # begin_stage's commit does not wait for the disk
                run = jobs.begin_stage(session, job_id, stage, process_owner())
                start = None
                if run.job is not None and not run.isolate:
                    ready = run.verdict == jobs.StageVerdict.RUN
                    start = StageStart(run.job, prepare(session, run.job) if ready and prepare else None)
        except Exception as e:
            raise BookkeepingFailed(f"job {job_id}: the start of {stage} could not be recorded: {e}") from None
        if run.verdict == jobs.StageVerdict.SKIP:
            log.info("job %s is over or gone: skipping its %s message", job_id, stage)
            raise SkipMessage()
        _local.admission = Admission(message.message_id, job_id, run.run_id, run.isolate, start)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        _local.admission = None

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        admission, _local.admission = current_admission(), None
        stage = self._stage(broker, message)
        if stage is None:
            return
        job_id = message.args[0]
        closed = admission is not None and admission.start is not None and admission.start.closed
        if admission is not None and admission.run_id is not None and not closed:
            with session_scope() as session:  # an error here is logged by Dramatiq; the next run counts a lost run
                jobs.finish_run(session, job_id, admission.run_id)
        if exception is None:
            return
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
            if jobs.stage_done(job, stage):
                log.info("job %s: a duplicate run of %s failed after another finished it: ignored", job_id, stage)
                return
            jobs.fail(job, code, text)
        job_ended("failed", code)
        log.info("job %s failed in %s with %s", job_id, stage, code)
        from actors.cancel import announce  # the stage modules import this one's broker
        from actors.cleanup import release_job

        release_job(job_id)
        announce(job_id)

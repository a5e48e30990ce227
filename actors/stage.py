"""What the stage actors share: how a stage actor is declared, and what its run starts from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from actors.broker import broker
from actors.isolation import run_alone
from actors.tracking import Prepare, StageStart, current_admission
from actors.transient import BookkeepingFailed
from models import job as jobs
from models.db import session_scope
from models.errors import ChuteError
from models.settings import current_settings

#: A stage's function: the job's id and what its run starts from.
StageFunction = Callable[[str, StageStart], None]


def stage_actor(
    stage: str, *, prepare: Prepare | None = None, **options: Any
) -> Callable[[StageFunction], dramatiq.Actor]:
    """Declare a stage actor on its own queue (ops see per stage what is backed up).

    Domain errors (``ChuteError``) are thrown, not retried: they fail the job at once. In a
    worker the stage runs only once JobTracking has recorded its run (the database's word
    on attempts and state comes first), and in a process of its own when an earlier run of it
    died with a process it shared (``actors.isolation``). ``prepare(session, job)`` reads what
    the stage needs from the database in the transaction that records the run's start, so the
    start, the stage's read and their commit are one round of statements; the function gets
    the job's snapshot and that read as a ``StageStart``. Called directly (tests, tools, an
    isolated run's child), the stage reads them itself first.
    """
    settings = current_settings()

    def decorate(fn: StageFunction) -> dramatiq.Actor:
        def run(job_id: str) -> None:
            message = CurrentMessage.get_current_message()
            if message is None:
                start = read_start(job_id, stage, prepare)
            else:
                admission = current_admission()
                if admission is None or admission.message_id != message.message_id:
                    raise BookkeepingFailed(f"job {job_id}: {stage} was not admitted by JobTracking; not running it")
                if admission.isolate and admission.run_id is not None:
                    run_alone(stage, job_id, admission.run_id)
                    return
                start = admission.start
            if start is not None:
                fn(job_id, start)

        run.__name__, run.__qualname__, run.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
        declare = dramatiq.actor(
            broker=broker,
            actor_name=stage,
            queue_name=settings.queue(stage),
            job_stage=stage,
            job_prepare=prepare,
            throws=(ChuteError,),
            **options,
        )
        return declare(run)

    return decorate


def read_start(job_id: str, stage: str, prepare: Prepare | None) -> StageStart | None:
    """What a run not admitted by JobTracking starts from (None: no such job)."""
    with session_scope() as session:
        job = jobs.snapshot(session, job_id)
        if job is None:
            return None
        ready = not job.terminal and not jobs.stage_done(job, stage)
        return StageStart(job, prepare(session, job) if ready and prepare else None)


def pass_over(stage: str) -> None:
    """Let the pipeline go past ``stage``, the next one, whose work the current stage recorded
    (``jobs.advance_stage(..., through=stage)``): the Pipelines middleware then sends the stage
    after it, and the skipped stage costs no message, no run and no transaction.

    Does nothing outside a worker, or when the current message's next stage is another one (a
    pipeline resumed further on).
    """
    message = CurrentMessage.get_current_message()
    target = message.options.get("pipe_target") if message is not None else None
    if message is None or target is None or target.get("actor_name") != stage:
        return
    following = target.get("options", {}).get("pipe_target")
    if following is None:
        del message.options["pipe_target"]
    else:
        message.options["pipe_target"] = following

"""What the stage actors share: how a stage actor is declared."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from actors.broker import broker
from actors.isolation import run_alone
from actors.tracking import current_admission
from actors.transient import BookkeepingFailed
from models.errors import ChuteError
from models.settings import current_settings


def stage_actor(stage: str, **options: Any) -> Callable[[Callable[[str], None]], dramatiq.Actor]:
    """Declare a stage actor on its own queue (ops see per stage what is backed up).

    Domain errors (``ChuteError``) are thrown, not retried: they fail the job at once. In a
    worker the stage runs only once JobTracking has recorded its run (the database's word
    on attempts and state comes first), and in a process of its own when an earlier run of it
    died with a process it shared (``actors.isolation``). Called directly (tests, tools), the
    function just runs.
    """
    settings = current_settings()

    def decorate(fn: Callable[[str], None]) -> dramatiq.Actor:
        @functools.wraps(fn)
        def run(job_id: str) -> None:
            message = CurrentMessage.get_current_message()
            if message is not None:
                admission = current_admission()
                if admission is None or admission.message_id != message.message_id:
                    raise BookkeepingFailed(f"job {job_id}: {stage} was not admitted by JobTracking; not running it")
                if admission.isolate and admission.run_id is not None:
                    run_alone(stage, job_id, admission.run_id)
                    return
            fn(job_id)

        declare = dramatiq.actor(
            broker=broker,
            actor_name=stage,
            queue_name=settings.queue(stage),
            job_stage=stage,
            throws=(ChuteError,),
            **options,
        )
        return declare(run)

    return decorate

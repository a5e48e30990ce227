"""What the stage actors share: how a stage actor is declared."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq

from actors.broker import broker
from models.errors import ChuteError
from models.settings import current_settings


def stage_actor(stage: str, **options: Any) -> Callable[[Callable[[str], None]], dramatiq.Actor]:
    """Declare a stage actor on its own queue (ops see per stage what is backed up).

    Domain errors (``ChuteError``) are thrown, not retried: they fail the job at once.
    """
    settings = current_settings()
    return dramatiq.actor(
        broker=broker,
        actor_name=stage,
        queue_name=settings.queue(stage),
        job_stage=stage,
        throws=(ChuteError,),
        **options,
    )

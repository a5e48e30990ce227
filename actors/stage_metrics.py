"""StageMetrics: how long each stage message waited in its queue and how long it ran."""

from __future__ import annotations

import time
from typing import Any

import dramatiq
from dramatiq.common import current_millis
from dramatiq.middleware import Middleware

from actors.metrics import QUEUE_WAIT_SECONDS, STAGE_SECONDS
from models.job import STAGES

#: The message option that carries when the message was put on its stage queue (epoch ms).
ENQUEUED_AT = "chute_enqueued_at"


class StageMetrics(Middleware):
    """Observes ``chute_stage_queue_wait_seconds`` and ``chute_stage_seconds`` per stage.

    A message's own ``message_timestamp`` is when its pipeline was built, so for later stages
    it counts the earlier stages too. Instead every enqueue of a stage message stamps it
    (``chute_enqueued_at``), including the move of a retry from the delay queue back to the
    stage queue, so the wait is the time on the stage queue alone — also the time it sat
    prefetched in a worker, which RabbitMQ shows as unacked, not ready.
    """

    def __init__(self) -> None:
        self.started: dict[str, float] = {}

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        if message.actor_name in STAGES and not delay:
            message.options[ENQUEUED_AT] = current_millis()

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        if message.actor_name not in STAGES:
            return
        enqueued = message.options.get(ENQUEUED_AT) or message.message_timestamp
        QUEUE_WAIT_SECONDS.labels(message.actor_name).observe(max(0, current_millis() - enqueued) / 1000)
        self.started[message.message_id] = time.perf_counter()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        started = self.started.pop(message.message_id, None)
        if started is not None:
            outcome = "ok" if exception is None else "error"
            STAGE_SECONDS.labels(message.actor_name, outcome).observe(time.perf_counter() - started)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        self.started.pop(message.message_id, None)

"""A webhook consumer that is down for a while: every event still arrives, under one id."""

from __future__ import annotations

import os
import time

from tests.faults.conftest import FaultStack
from tests.faults.history import History
from tests.support.webhook_receiver import Reply


def test_a_webhook_consumer_down_for_a_while(stack: FaultStack, history: History) -> None:
    """Held: the consumer answers 503 for a while (two minutes in the original run, seconds
    here on a faster retry schedule); each job's event is retried under one webhook-id."""
    stack.receiver.default = Reply.error(503)
    for i in range(4):
        stack.upload(history, os.urandom(10_000), f"hook-{i}.bin")
    time.sleep(4)  # the consumer's outage (a fault's length, not an assertion)
    stack.receiver.default = Reply()
    assert stack.check(history) == []

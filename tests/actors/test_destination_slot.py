"""An attempt waits a moment for a slot of its destination before it is put off."""

from __future__ import annotations

import dataclasses
import threading
import time

from actors.webhook_guards import destination_slot
from models.settings import Settings

URL = "http://127.0.0.1:9/hook"


def held_for(settings: Settings, seconds: float, held: threading.Event) -> threading.Thread:
    """Another delivery holding the destination's one slot for ``seconds``."""

    def hold() -> None:
        with destination_slot(URL, settings, wait=0) as acquired:
            assert acquired
            held.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(2)
    return thread


def test_a_slot_freed_within_the_wait_is_taken(settings: Settings) -> None:
    one = dataclasses.replace(settings, webhook_max_in_flight_per_destination=1, rate_limit_prefix="slot-a")
    holder = held_for(one, 0.1, threading.Event())
    started = time.monotonic()
    with destination_slot(URL, one, wait=2.0) as acquired:
        assert acquired
        assert 0.05 < time.monotonic() - started < 1.5
    holder.join()


def test_a_slot_held_past_the_wait_is_not(settings: Settings) -> None:
    one = dataclasses.replace(settings, webhook_max_in_flight_per_destination=1, rate_limit_prefix="slot-b")
    holder = held_for(one, 0.6, threading.Event())
    started = time.monotonic()
    with destination_slot(URL, one, wait=0.1) as acquired:
        assert not acquired
        assert time.monotonic() - started < 0.5
    holder.join()
    with destination_slot(URL, one, wait=0) as acquired:  # the holder's slot was given back, and no other taken
        assert acquired

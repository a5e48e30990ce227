"""What admits a webhook attempt: the endpoint's circuit breaker and a cap per destination.

The breaker's state is in the database (``models.endpoint``), shared by every worker and shown
to the tenant. The cap on deliveries in flight per destination (scheme, host and port: many
URLs of one consumer share its capacity) is Dramatiq's ``ConcurrentRateLimiter``, on Redis when
``CHUTE_REDIS_URL`` is set so that it holds across processes and hosts, else in process memory.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from urllib.parse import urlsplit

from dramatiq.rate_limits import ConcurrentRateLimiter, RateLimiterBackend
from dramatiq.rate_limits.backends import RedisBackend, StubBackend
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from actors.webhooks import Outcome
from models import endpoint
from models.db import session_scope
from models.settings import Settings, current_settings

#: A slot outlives the longest attempt (connect, read, and reading the answer), then lapses by
#: itself if its worker died holding it.
SLOT_TTL_FACTOR = 3
#: How long an attempt waits for a slot of its destination before it is put off, and how often
#: it looks (see ``destination_slot``).
SLOT_WAIT_SECONDS = 0.25
SLOT_POLL_SECONDS = 0.01


@cache
def _backend(redis_url: str) -> RateLimiterBackend:
    if redis_url:
        return RedisBackend(url=redis_url, socket_timeout=2, socket_connect_timeout=2)
    return StubBackend()


def destination(url: str) -> str:
    """``scheme://host:port`` of a URL: what the per-destination cap counts by."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


@contextlib.contextmanager
def destination_slot(url: str, settings: Settings | None = None, wait: float = SLOT_WAIT_SECONDS) -> Iterator[bool]:
    """Hold one of the destination's ``webhook_max_in_flight_per_destination`` slots; yields
    False (holding nothing) when they stay taken for ``wait`` seconds.

    A burst of events to one consumer finds its slots taken for a few milliseconds at a time;
    waiting that long beats putting the attempt off by seconds (a delayed message, and another
    transaction to read the event again). The wait is short, so a consumer that hangs still
    holds its own slots only, and the threads waiting for them give up quickly.
    """
    settings = settings or current_settings()
    limiter = ConcurrentRateLimiter(
        _backend(settings.redis_url),
        f"{settings.rate_limit_prefix}:webhook-destination:{destination(url)}",
        limit=settings.webhook_max_in_flight_per_destination,
        ttl=int((settings.webhook_timeout_seconds * SLOT_TTL_FACTOR + 5) * 1000),
    )
    deadline = time.monotonic() + wait
    while True:
        with limiter.acquire(raise_on_failure=False) as acquired:
            if acquired or time.monotonic() >= deadline:
                yield bool(acquired)
                return
        time.sleep(SLOT_POLL_SECONDS)


def breaker(settings: Settings) -> endpoint.Breaker:
    return endpoint.Breaker(
        threshold=settings.webhook_breaker_threshold,
        cooldown=settings.webhook_breaker_cooldown_seconds,
        max_cooldown=settings.webhook_breaker_max_cooldown_seconds,
    )


def breaker_closed(connection: Session | Connection, tenant_id: str, url: str) -> bool:
    """Whether an attempt to ``url`` may go with no more ado (its breaker is closed), read again
    (an attempt reads it with its event: ``delivery.Outgoing.breaker_closed``)."""
    return endpoint.breaker_closed(connection, tenant_id, url)


def admit(tenant_id: str, url: str) -> datetime | None:
    """For a breaker not known to be closed: None when an attempt to ``url`` may go now; else
    when to try again (the breaker is open). A transaction of its own: it may write (an
    endpoint's first row, or a probe's claim)."""
    with session_scope() as session:
        return endpoint.admit(session, tenant_id, url)


def record_outcome(session: Session, tenant_id: str, url: str, outcome: Outcome) -> None:
    """Count an attempt for the breaker, in the transaction that records the attempt. Answers
    that say nothing of the consumer's health (410, or the address guard refusing) are not counted."""
    if not outcome.ok and not outcome.retryable:
        return
    endpoint.record(session, tenant_id, url, outcome.ok, outcome.error, breaker(current_settings()))

"""notify: close the job and tell its owner, with a signed webhook that survives a day of downtime.

``notify(job_id)`` is the pipeline's last stage (it marks an extracted job completed) and is
also sent when a job fails or is cancelled. It snapshots the event body once, so every
retry is byte-identical under the same ``webhook-id``, and hands the delivery to
``deliver_webhook`` on a queue of its own (``webhooks``): a consumer that hangs holds webhook
workers only, never a stage's. ``chute worker`` runs that queue in a worker group of its own.

Each attempt is admitted by two guards first: the endpoint's circuit breaker
(``models.endpoint``: a consumer that keeps failing is paused and probed later) and a cap on
deliveries in flight per destination (Dramatiq's ``ConcurrentRateLimiter``, on Redis when
configured), so one tenant's dead consumer cannot take every webhook worker either. An attempt
that is not admitted is put off without counting.

Retries follow the ``webhook_schedule`` with jitter, as delayed messages rather than a sleeping
thread; a delay longer than ``MAX_HOP_SECONDS`` is taken in hops, because RabbitMQ closes the
channel of a consumer holding an unacked (delayed) message past its consumer_timeout (Dramatiq #827).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import dramatiq
import urllib3

from actors.broker import broker
from actors.metrics import job_ended, webhook_attempt
from actors.url_guard import UrlGuard
from actors.webhook_guards import admit, breaker_closed, destination_slot, record_outcome
from actors.webhooks import Outcome, deliver, event_id, headers
from models import delivery, job_ending
from models import job as jobs
from models.db import session_scope, utcnow
from models.errors import ChuteError
from models.settings import current_settings
from models.views import iso, job_view

log = logging.getLogger(__name__)

#: The longest a delayed message waits in one hop (RabbitMQ's consumer_timeout is 30 min).
MAX_HOP_SECONDS = 10 * 60
#: Jitter added to each scheduled delay, as a fraction of it, so retries do not stampede.
JITTER = 0.1
#: Seconds an attempt waits, with jitter, when its destination already has its fill in flight.
BUSY_DELAY = (0.5, 2.0)

settings = current_settings()


@cache
def _guard(allowed: tuple[str, ...]) -> UrlGuard:
    return UrlGuard(allowed)


@cache
def _pool(allowed: tuple[str, ...], timeout: float, maxsize: int) -> urllib3.PoolManager:
    """One guarded pool per allow-list and timeout, so deliveries reuse keep-alive connections: as
    many per destination as may be in flight to it, so that none is thrown away after its request."""
    return _guard(allowed).pool_manager(timeout, maxsize)


def url_guard() -> UrlGuard:
    """The SSRF guard for the current allow-list."""
    return _guard(current_settings().webhook_allowed_hosts)


@dramatiq.actor(broker=broker, actor_name="notify", queue_name=settings.queue("notify"), throws=(ChuteError,))
def notify(job_id: str) -> None:
    """Complete an extracted job, then deliver its ending as a webhook event."""
    with session_scope() as session:
        job, completed = job_ending.complete_or_read(session, job_id)
        if completed:
            job_ended("completed")
        if job is None or job.status not in jobs.TERMINAL or not job.webhook_url:
            return
        kind = f"job.{job.status}"
        # A job this call completed has no event yet; one that was over may (a duplicate notify).
        found = None if completed else job_ending.find_event(session, job_id, kind)
        if found is None:
            message_id, pending = event_id(), True
            data = job_view(job, delivery.WebhookState(delivery.PENDING, 0)).model_dump(mode="json")
            payload = json.dumps({"type": kind, "timestamp": iso(utcnow()), "data": data}, separators=(",", ":"))
            job_ending.add_event(session, job, kind, message_id, payload)
        else:
            message_id, pending = found
    if pending:
        deliver_webhook.send(message_id)


@dramatiq.actor(broker=broker, actor_name="deliver_webhook", queue_name=settings.queue("webhooks"), max_retries=0)
def deliver_webhook(message_id: str) -> None:
    """One attempt of one event, on the webhook queue (the schedule is ours, so Dramatiq does not retry it)."""
    attempt_delivery(message_id)


@dataclass(frozen=True)
class Prepared:
    """What one attempt sends."""

    message_id: str
    tenant_id: str
    url: str
    body: bytes
    secrets: list[str]
    #: None: the endpoint's breaker lets the attempt go; else when to try again.
    later: datetime | None
    #: The event's next attempt as read: a deferral applies only while it is unchanged.
    seen_next_attempt_at: datetime | None = None


def attempt_delivery(message_id: str) -> Outcome | None:
    """Make one attempt if one is due and admitted, record it, and schedule the next if it failed.

    Returns:
        The attempt's outcome; None when no attempt was made (not due, breaker open, destination busy).
    """
    cfg = current_settings()
    prepared = _prepare(message_id)
    if prepared is None:
        return None
    url, body, secrets = prepared.url, prepared.body, prepared.secrets
    if prepared.later is not None:
        _defer(prepared)
        return None
    with destination_slot(url) as acquired:
        if not acquired:
            _schedule(message_id, random.uniform(*BUSY_DELAY))
            return None
        outcome = _send(url, body, secrets, message_id, cfg.webhook_timeout_seconds)
    webhook_attempt(ok=outcome.ok, gone=outcome.gone, status_code=outcome.status_code,
                    seconds=outcome.duration_ms / 1000)  # fmt: skip
    next_delay: float | None = None
    if outcome.ok:
        attempts, status = _record_delivered(prepared, outcome), delivery.DELIVERED
    else:
        # Core statements, each built once (models.delivery): the event's row is locked by the
        # first UPDATE as SELECT … FOR UPDATE would, then the attempt and the breaker follow.
        with session_scope() as session:
            attempts, status = delivery.count_failed(session, message_id)
            if outcome.gone:
                status = delivery.GONE
            elif not outcome.retryable or attempts >= len(cfg.webhook_schedule):
                status = delivery.FAILED
            else:
                next_delay = cfg.webhook_schedule[attempts] * (1 + random.uniform(0, JITTER))
                next_delay = max(next_delay, outcome.retry_after or 0)
                delivery.set_next_attempt(session, message_id, utcnow() + timedelta(seconds=next_delay))
            if next_delay is None:
                delivery.set_status(session, message_id, status)
            delivery.add_attempt(session, message_id, url, outcome.status_code, outcome.error, outcome.duration_ms,
                                 outcome.response_excerpt)  # fmt: skip
            record_outcome(session, prepared.tenant_id, url, outcome)
    log.info(
        "webhook %s attempt %d to %s: %s (%s)", message_id, attempts, url, outcome.status_code or outcome.error, status
    )
    if next_delay is not None:
        _schedule(message_id, next_delay)
    return outcome


def _record_delivered(prepared: Prepared, outcome: Outcome) -> int:
    """A success's three writes (one statement on PostgreSQL); returns the event's attempts.

    The endpoint's first success makes its row in a transaction of its own, after: a worker
    that dies between the two leaves the endpoint with no row, as before any attempt (its
    breaker is closed either way).
    """
    attempts, closed = delivery.record_delivered(
        prepared.message_id, prepared.tenant_id, prepared.url, outcome.status_code, outcome.duration_ms,
        outcome.response_excerpt,
    )  # fmt: skip
    if not closed:  # the endpoint has no row yet: made as a success of its first delivery
        with session_scope() as session:
            record_outcome(session, prepared.tenant_id, prepared.url, outcome)
    return attempts


def _prepare(message_id: str) -> Prepared | None:
    """The event to send now and whether its endpoint's breaker admits it, or None when it is
    not pending or not due yet (then re-scheduled): one select on the driver's connection
    (``models.fastread``), without a transaction, when the endpoint's breaker is closed (the
    event with its tenant's secrets and its endpoint's breaker). The attempt's outcome is
    recorded against the event's row as it is then, so nothing read here needs a lock."""
    event = delivery.outgoing(message_id)
    if event is None or event.status != delivery.PENDING:
        return None
    if event.next_attempt_at and utcnow() < event.next_attempt_at:
        _schedule(message_id, (event.next_attempt_at - utcnow()).total_seconds())
        return None
    assert event.sealed_secret is not None  # its tenant exists (a tenant's events are deleted with it)
    later = None if event.breaker_closed else admit(event.tenant_id, event.url)
    return Prepared(message_id, event.tenant_id, event.url, event.payload.encode(), event.signing_secrets(), later,
                    event.next_attempt_at)  # fmt: skip


def _defer(prepared: Prepared) -> None:
    """Put an event off until its endpoint's breaker lets attempts go again; its attempts do not move.

    Races with the API are settled here, not lost: an event replayed meanwhile is left to the
    replay's message (the deferral no longer matches the row), and one whose breaker the tenant
    reset meanwhile goes now instead of after the cool-down.
    """
    assert prepared.later is not None
    message_id, until = prepared.message_id, prepared.later
    with session_scope() as session:
        if breaker_closed(session, prepared.tenant_id, prepared.url):
            until = utcnow()
        elif not delivery.defer(session, message_id, until, prepared.seen_next_attempt_at):
            return
    _schedule(message_id, (until - utcnow()).total_seconds())


def _send(url: str, body: bytes, secrets: list[str], message_id: str, timeout: float) -> Outcome:
    guard = url_guard()
    try:
        guard.check_url(url)
    except ChuteError as e:
        return Outcome(
            ok=False,
            status_code=None,
            error=e.message,
            duration_ms=0,
            response_excerpt="",
            retry_after=None,
            gone=False,
            retryable=False,
        )
    signed = headers(secrets, message_id, int(time.time()), body)
    cfg = current_settings()
    pool = _pool(cfg.webhook_allowed_hosts, timeout, cfg.webhook_max_in_flight_per_destination)
    return deliver(url, body, signed, timeout=timeout, pool=pool)


def _schedule(message_id: str, delay_seconds: float) -> None:
    hop = min(max(delay_seconds, 0.0), MAX_HOP_SECONDS)
    deliver_webhook.send_with_options(args=(message_id,), delay=int(hop * 1000))

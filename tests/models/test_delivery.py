"""A webhook attempt's Core statements (models.delivery, models.endpoint.admit): the same effects
as the ORM objects they replace, on the unit tests' SQLite (the e2e suite runs them on PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy import update as sa_update

from models import delivery, endpoint
from models import job as jobs
from models import tenant as tenants
from models import upload as uploads
from models.db import read_connection, session_scope, utcnow
from models.settings import Settings
from tests.conftest import TenantKeys

URL = "http://127.0.0.1:9/hook"


def new_event(settings: Settings, tenant: TenantKeys) -> str:
    with session_scope() as session:
        upload = uploads.create_upload(session, tenant.tenant_id, settings, filename="a.txt", size=0)
        job_id = jobs.create_job(session, upload)
        event = delivery.WebhookEvent(id="msg_1", job_id=job_id, tenant_id=tenant.tenant_id, type="job.completed",
                                      url=URL, payload='{"a":1}', status=delivery.PENDING, attempts=0,
                                      created_at=utcnow())  # fmt: skip
        session.add(event)
    return "msg_1"


def event_of(event_id: str) -> delivery.WebhookEvent:
    with session_scope() as session:
        event = session.get(delivery.WebhookEvent, event_id)
        assert event is not None
        return event


def test_outgoing_reads_the_event_and_signs_as_the_tenant_would(settings: Settings, tenant: TenantKeys) -> None:
    event_id = new_event(settings, tenant)
    with session_scope() as session:
        tenants.rotate_secret(session, tenant.name, timedelta(hours=1))
    out = delivery.outgoing(event_id)
    assert delivery.outgoing("msg_none") is None
    with session_scope() as session:
        owner = session.get(tenants.Tenant, tenant.tenant_id)
        assert out is not None and owner is not None
        assert (out.status, out.url, out.payload, out.tenant_id) == (delivery.PENDING, URL, '{"a":1}', tenant.tenant_id)
        assert out.signing_secrets() == owner.signing_secrets() and len(out.signing_secrets()) == 2
        expired = utcnow() + timedelta(hours=2)
        sealed = (out.sealed_secret or "", out.sealed_previous_secret, out.previous_secret_expires_at)
        assert tenants.signing_secrets(*sealed, expired) == owner.signing_secrets(expired)
        assert len(owner.signing_secrets(expired)) == 1


def test_a_delivered_attempt_is_counted_and_recorded(settings: Settings, tenant: TenantKeys) -> None:
    event_id = new_event(settings, tenant)
    with session_scope() as session:
        delivery.set_next_attempt(session, event_id, utcnow())
    now = utcnow()
    with session_scope() as session:
        assert delivery.count_delivered(session, event_id, now) == 1
        delivery.add_attempt(session, event_id, URL, 200, None, 12, "ok")
    event = event_of(event_id)
    assert (event.status, event.attempts, event.delivered_at) == (delivery.DELIVERED, 1, now)
    assert event.next_attempt_at is None
    with session_scope() as session:
        (attempt,) = session.scalars(select(delivery.WebhookAttempt)).all()
        assert attempt.id and attempt.attempted_at >= now and attempt.event_id == event_id
        assert (attempt.url, attempt.status_code, attempt.error, attempt.duration_ms) == (URL, 200, None, 12)


def test_a_failed_attempt_is_counted_and_the_status_kept(settings: Settings, tenant: TenantKeys) -> None:
    event_id = new_event(settings, tenant)
    with session_scope() as session:
        assert delivery.count_failed(session, event_id) == (1, delivery.PENDING)
        assert delivery.count_failed(session, event_id) == (2, delivery.PENDING)
        delivery.set_status(session, event_id, delivery.GONE)
    assert (event_of(event_id).status, event_of(event_id).attempts) == (delivery.GONE, 2)


def test_only_a_pending_event_is_deferred(settings: Settings, tenant: TenantKeys) -> None:
    event_id = new_event(settings, tenant)
    until = utcnow() + timedelta(minutes=1)
    with session_scope() as session:
        assert delivery.defer(session, event_id, until, None)
        assert not delivery.defer(session, "msg_none", until, None)
    assert event_of(event_id).next_attempt_at == until
    with session_scope() as session:
        delivery.set_status(session, event_id, delivery.FAILED)
        assert not delivery.defer(session, event_id, until + timedelta(minutes=1), until)
    assert event_of(event_id).next_attempt_at == until


def test_an_event_moved_since_it_was_read_is_not_deferred(settings: Settings, tenant: TenantKeys) -> None:
    """A replay (next attempt: now) between the attempt's read and its deferral wins."""
    event_id = new_event(settings, tenant)
    read, later = utcnow() + timedelta(seconds=1), utcnow() + timedelta(hours=1)
    with session_scope() as session:
        delivery.set_next_attempt(session, event_id, read)
    with session_scope() as session:
        event = delivery.latest_event(session, event_of(event_id).job_id)
        assert event is not None
        event.next_attempt_at = None  # what POST /v1/jobs/{id}/deliveries does
    with session_scope() as session:
        assert not delivery.defer(session, event_id, later, read)
    assert event_of(event_id).next_attempt_at is None
    with session_scope() as session:
        assert delivery.defer(session, event_id, later, None)
    assert event_of(event_id).next_attempt_at == later


def test_admit_makes_the_endpoint_and_lets_one_probe_through(settings: Settings, tenant: TenantKeys) -> None:
    now = utcnow()
    with read_connection() as connection:
        assert not endpoint.breaker_closed(connection, tenant.tenant_id, URL)  # not known yet: admit makes it
    with session_scope() as session:
        assert endpoint.admit(session, tenant.tenant_id, URL, now) is None  # made, closed
    with read_connection() as connection:
        assert endpoint.breaker_closed(connection, tenant.tenant_id, URL)
    with session_scope() as session:
        (row,) = endpoint.list_endpoints(session, tenant.tenant_id)
        assert (row.state, row.url, row.url_hash) == (endpoint.CLOSED, URL, endpoint.url_hash(URL))
        row.state, row.retry_at, row.cooldown_seconds = endpoint.OPEN, now + timedelta(seconds=30), 30.0
    with read_connection() as connection:
        assert not endpoint.breaker_closed(connection, tenant.tenant_id, URL)
    with session_scope() as session:
        assert endpoint.admit(session, tenant.tenant_id, URL, now) == now + timedelta(seconds=30)  # cooling down
    later = now + timedelta(seconds=31)
    with session_scope() as session:
        assert endpoint.admit(session, tenant.tenant_id, URL, later) is None  # the probe
        assert endpoint.admit(session, tenant.tenant_id, URL, later) == later + endpoint.PROBE_LEASE  # probing
        (row,) = endpoint.list_endpoints(session, tenant.tenant_id)
        assert (row.state, row.retry_at) == (endpoint.HALF_OPEN, later + endpoint.PROBE_LEASE)


def test_a_success_is_counted_recorded_and_closes_the_breaker(settings: Settings, keys: TenantKeys) -> None:
    event_id = new_event(settings, keys)
    assert delivery.record_delivered(event_id, keys.tenant_id, URL, 200, 12, "ok") == (1, False)  # no endpoint row
    assert event_of(event_id).status == delivery.DELIVERED  # committed by itself
    with session_scope() as session:
        assert endpoint.admit(session, keys.tenant_id, URL) is None  # the endpoint's row, closed
        (row,) = endpoint.list_endpoints(session, keys.tenant_id)
        row.state, row.consecutive_failures, row.retry_at = endpoint.OPEN, 3, utcnow()
    before = utcnow()
    assert delivery.record_delivered(event_id, keys.tenant_id, URL, 204, 7, None) == (2, True)
    event = event_of(event_id)
    assert (event.status, event.attempts, event.next_attempt_at) == (delivery.DELIVERED, 2, None)
    assert event.delivered_at is not None and event.delivered_at >= before
    with session_scope() as session:
        (row,) = endpoint.list_endpoints(session, keys.tenant_id)
        assert (row.state, row.consecutive_failures, row.retry_at) == (endpoint.CLOSED, 0, None)
        assert row.last_success_at == event.delivered_at
        attempts = session.scalars(select(delivery.WebhookAttempt).order_by(delivery.WebhookAttempt.id)).all()
        assert [(a.status_code, a.duration_ms, a.response_excerpt, a.error) for a in attempts] == [
            (200, 12, "ok", None),
            (204, 7, None, None),
        ]
        assert attempts[1].attempted_at >= before


def test_outgoing_reads_the_endpoints_breaker_with_the_event(settings: Settings, keys: TenantKeys) -> None:
    event_id = new_event(settings, keys)

    def read() -> delivery.Outgoing:
        with read_connection() as connection:
            out = delivery.outgoing(event_id)
            assert out is not None and out.breaker_closed == endpoint.breaker_closed(connection, keys.tenant_id, URL)
            return out

    with session_scope() as session:  # another tenant's endpoint of the same URL is not ours
        other = tenants.issue_key(session, "globex").tenant_id
        assert endpoint.admit(session, other, URL) is None
        session.execute(sa_update(endpoint.WebhookEndpoint).values(state=endpoint.OPEN))
    assert read().breaker_state is None  # no attempt to our endpoint yet
    with session_scope() as session:
        assert endpoint.admit(session, keys.tenant_id, URL) is None
    assert read().breaker_closed
    with session_scope() as session:
        session.execute(sa_update(endpoint.WebhookEndpoint).where(endpoint.WebhookEndpoint.tenant_id == keys.tenant_id)
                        .values(state=endpoint.OPEN))  # fmt: skip
    assert read().breaker_state == endpoint.OPEN and not read().breaker_closed

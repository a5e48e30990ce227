"""An attempt refused by an open breaker puts its event off; what the API did meanwhile wins.

Between the attempt's read of the breaker and its deferral, a tenant may reset the breaker or
replay the event. Neither may be lost to a deferral written after it (this raced on CI)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

from actors import notify
from models import delivery, endpoint
from models.db import session_scope, utcnow
from models.settings import Settings
from tests.conftest import TenantKeys
from tests.models.test_delivery import URL, event_of, new_event


@pytest.fixture
def scheduled(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays of the messages the attempt queued (in place of the broker)."""
    delays: list[float] = []
    monkeypatch.setattr(notify, "_schedule", lambda message_id, delay: delays.append(delay))
    return delays


def refused(event_id: str, tenant: TenantKeys, seen: datetime | None) -> notify.Prepared:
    """What an attempt that found the breaker open holds: try again in an hour."""
    return notify.Prepared(event_id, tenant.tenant_id, URL, b"{}", [], utcnow() + timedelta(hours=1), seen)


def breaker(tenant: TenantKeys, state: str) -> None:
    with session_scope() as session:
        assert endpoint.admit(session, tenant.tenant_id, URL) is None  # makes the endpoint's row, closed
        session.execute(update(endpoint.WebhookEndpoint).values(state=state))


def test_an_open_breaker_puts_the_event_off(settings: Settings, tenant: TenantKeys, scheduled: list[float]) -> None:
    event_id = new_event(settings, tenant)
    breaker(tenant, endpoint.OPEN)
    prepared = refused(event_id, tenant, None)
    notify._defer(prepared)
    assert event_of(event_id).next_attempt_at == prepared.later
    assert len(scheduled) == 1 and scheduled[0] > 3500


def test_a_breaker_reset_meanwhile_sends_the_event_now(
    settings: Settings, tenant: TenantKeys, scheduled: list[float]
) -> None:
    event_id = new_event(settings, tenant)
    breaker(tenant, endpoint.CLOSED)  # the tenant reset it after the attempt read it open
    notify._defer(refused(event_id, tenant, None))
    assert event_of(event_id).next_attempt_at is None
    assert len(scheduled) == 1 and scheduled[0] <= 0


def test_a_replay_meanwhile_is_left_to_its_own_message(
    settings: Settings, tenant: TenantKeys, scheduled: list[float]
) -> None:
    event_id = new_event(settings, tenant)
    breaker(tenant, endpoint.OPEN)
    read = utcnow() + timedelta(seconds=1)
    with session_scope() as session:
        delivery.set_next_attempt(session, event_id, read)  # as the attempt read it; then the replay:
        session.execute(update(delivery.WebhookEvent).values(next_attempt_at=None))
    notify._defer(refused(event_id, tenant, read))
    assert event_of(event_id).next_attempt_at is None
    assert scheduled == []

"""Webhook endpoints and their circuit breakers: an endpoint that keeps failing is paused.

One row per (tenant, URL). ``closed``: deliveries go out. After ``threshold`` consecutive
failures the breaker ``open``s until ``retry_at``; then one delivery is let through as a probe
(``half_open``, claimed by one worker with a conditional update). A probe that succeeds closes
the breaker; one that fails opens it again for twice as long, up to a maximum. While it is open,
events wait (they are not attempted and their attempts do not count), so a dead consumer costs
its tenant one probe per cool-down instead of every worker's time. The state lives in the
database, so every worker agrees on it and the tenant can see it (``GET /v1/webhook-endpoints``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Float, ForeignKey, Integer, String, Text, UniqueConstraint, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from models import tenant as _tenant  # noqa: F401  (the table our foreign key names)
from models.db import Base, utcnow
from models.ids import new_id

#: Breaker states.
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

#: A probe that never reports back (its worker died) frees the breaker after this.
PROBE_LEASE = timedelta(minutes=5)


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (UniqueConstraint("tenant_id", "url_hash", name="uq_webhook_endpoints_tenant_url"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    #: sha256 of the URL (URLs are long; the unique key is on the hash).
    url_hash: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=CLOSED)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    #: The current cool-down; doubles after each failed probe.
    cooldown_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    opened_at: Mapped[datetime | None]
    #: While open: when the next probe may go; while half-open: when an unanswered probe lapses.
    retry_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_failure_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class Breaker:
    """The knobs of every breaker (from the settings)."""

    threshold: int
    cooldown: float
    max_cooldown: float


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def get_or_create(session: Session, tenant_id: str, url: str, *, for_update: bool = False) -> WebhookEndpoint:
    """The endpoint row of ``url`` for the tenant (locked, ``for_update``), made on first use
    (race-free on both databases); an endpoint seen before costs one statement."""
    digest = url_hash(url)
    query = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.url_hash == digest)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    endpoint = session.scalar(query)
    if endpoint is not None:
        return endpoint
    _create(session, tenant_id, url, digest)
    endpoint = session.scalar(query)
    assert endpoint is not None
    return endpoint


def _create(session: Session, tenant_id: str, url: str, digest: str) -> None:
    """Insert the endpoint's row unless another transaction just did."""
    values = {"id": new_id("whe"), "tenant_id": tenant_id, "url_hash": digest, "url": url, "state": CLOSED,
              "consecutive_failures": 0, "cooldown_seconds": 0.0, "created_at": utcnow()}  # fmt: skip
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(WebhookEndpoint).values(**values).on_conflict_do_nothing())


def breaker_closed(connection: Session | Connection, tenant_id: str, url: str) -> bool:
    """Whether ``url``'s breaker is known and closed: then a delivery may go without ``admit``,
    which may write (an endpoint's first row, a probe's claim). A read only, one statement."""
    row = connection.execute(_BREAKER, {"b_tenant_id": tenant_id, "b_url_hash": url_hash(url)}).first()
    return row is not None and row.state == CLOSED


def admit(session: Session, tenant_id: str, url: str, now: datetime | None = None) -> datetime | None:
    """May a delivery to ``url`` go now? None: yes; else the time to try again.

    An open breaker whose cool-down is over lets exactly one caller through as the probe. Reads
    the breaker with a prebuilt Core select (no ORM object: this runs before every attempt); an
    endpoint seen before costs that one statement while its breaker is closed.
    """
    now = now or utcnow()
    digest = url_hash(url)
    params = {"b_tenant_id": tenant_id, "b_url_hash": digest}
    row = session.execute(_BREAKER, params).first()
    if row is None:
        _create(session, tenant_id, url, digest)
        row = session.execute(_BREAKER, params).first()
        assert row is not None
    endpoint_id, state, retry_at, cooldown_seconds = row
    if state == CLOSED:
        return None
    if retry_at is not None and now < retry_at:
        return retry_at  # type: ignore[no-any-return]
    # Open (or a lapsed probe): one worker claims the probe; the others wait a cool-down more.
    claimed = session.execute(
        update(WebhookEndpoint)
        .where(
            WebhookEndpoint.id == endpoint_id,
            WebhookEndpoint.state == state,
            WebhookEndpoint.retry_at == retry_at,
        )  # fmt: skip
        .values(state=HALF_OPEN, retry_at=now + PROBE_LEASE)
    )
    if claimed.rowcount == 1:  # type: ignore[attr-defined]
        return None
    return now + timedelta(seconds=max(cooldown_seconds, 1.0))


def record(
    session: Session, tenant_id: str, url: str, ok: bool, error: str | None, breaker: Breaker
) -> WebhookEndpoint | None:
    """Count one delivery's outcome, opening or closing the breaker as it says.

    Returns:
        The endpoint after a failure; None after a success, which is one ``UPDATE`` whatever
        the breaker's state (the common case: no read, no object).
    """
    now = utcnow()
    if ok and closed_by_success(session, tenant_id, url, now):
        return None
    endpoint = get_or_create(session, tenant_id, url, for_update=True)
    if ok:
        endpoint.state, endpoint.consecutive_failures, endpoint.cooldown_seconds = CLOSED, 0, 0.0
        endpoint.retry_at, endpoint.opened_at, endpoint.last_success_at = None, None, now
        return endpoint
    endpoint.consecutive_failures += 1
    endpoint.last_error, endpoint.last_failure_at = error, now
    if endpoint.state == HALF_OPEN:
        endpoint.cooldown_seconds = min(max(endpoint.cooldown_seconds, breaker.cooldown) * 2, breaker.max_cooldown)
    elif endpoint.state == CLOSED and endpoint.consecutive_failures >= breaker.threshold:
        endpoint.cooldown_seconds = breaker.cooldown
        endpoint.opened_at = now
    else:
        return endpoint
    endpoint.state = OPEN
    endpoint.retry_at = now + timedelta(seconds=endpoint.cooldown_seconds)
    return endpoint


def closed_by_success(session: Session, tenant_id: str, url: str, now: datetime) -> bool:
    """Close the breaker of an endpoint that answered; False if it has no row yet."""
    done = session.execute(
        SUCCESS,
        {"b_tenant_id": tenant_id, "b_url_hash": url_hash(url), "b_now": now},
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


_TABLE = Base.metadata.tables["webhook_endpoints"].c
#: A success's statement, built once (parameters: b_tenant_id, b_url_hash, b_now).
SUCCESS = (
    update(Base.metadata.tables["webhook_endpoints"])
    .where(_TABLE.tenant_id == bindparam("b_tenant_id"), _TABLE.url_hash == bindparam("b_url_hash"))
    .values(state=CLOSED, consecutive_failures=0, cooldown_seconds=0.0, retry_at=None, opened_at=None,
            last_success_at=bindparam("b_now", type_=_TABLE.last_success_at.type))  # fmt: skip
)


#: The breaker as ``admit`` reads it, built once (parameters: b_tenant_id, b_url_hash).
_BREAKER = select(_TABLE.id, _TABLE.state, _TABLE.retry_at, _TABLE.cooldown_seconds).where(
    _TABLE.tenant_id == bindparam("b_tenant_id"), _TABLE.url_hash == bindparam("b_url_hash")
)


def reset(session: Session, endpoint: WebhookEndpoint) -> None:
    """Close the breaker now (the tenant says the consumer is fixed)."""
    endpoint.state, endpoint.consecutive_failures, endpoint.cooldown_seconds = CLOSED, 0, 0.0
    endpoint.retry_at = None


def list_endpoints(session: Session, tenant_id: str) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
    return list(session.scalars(query.order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)))


def get_endpoint(session: Session, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
    query = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.id == endpoint_id)
    return session.scalar(query)

"""Webhook events (one per job ending) and a record of every delivery attempt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from models import endpoint as _endpoint
from models import job as _job
from models import tenant as _tenant
from models.db import Base, database, session_scope, utcnow
from models.fastread import FastRead

#: Event delivery states.
PENDING, DELIVERED, FAILED, GONE = "pending", "delivered", "failed", "gone"


class WebhookEvent(Base):
    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("job_id", "type", name="uq_webhook_events_job_type"),)

    #: ``msg_…``: the ``webhook-id`` header, the same on every retry of this event.
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    #: The exact body sent (a snapshot of the job when it ended), so every retry is byte-identical.
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    url: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)

    def to_public(self) -> dict[str, Any]:
        return {
            "attempted_at": self.attempted_at.isoformat(),
            "url": self.url,
            "status_code": self.status_code,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "response_excerpt": self.response_excerpt,
        }


@dataclass(frozen=True)
class WebhookState:
    """What a job view shows of its webhook: the newest event's status and attempts."""

    status: str
    attempts: int


def latest_event(session: Session, job_id: str) -> WebhookEvent | None:
    query = select(WebhookEvent).where(WebhookEvent.job_id == job_id).order_by(WebhookEvent.created_at.desc())
    return session.scalars(query.limit(1)).first()


def webhook_states(session: Session, job_ids: list[str]) -> dict[str, WebhookState]:
    """Each job's newest webhook state, in one query of three columns (no payloads, no N+1)."""
    if not job_ids:
        return {}
    query = (
        select(WebhookEvent.job_id, WebhookEvent.status, WebhookEvent.attempts)
        .where(WebhookEvent.job_id.in_(job_ids))
        .order_by(WebhookEvent.created_at)
    )
    return {job_id: WebhookState(status, attempts) for job_id, status, attempts in session.execute(query)}


def attempts_of_job(session: Session, job_id: str) -> list[tuple[WebhookEvent, WebhookAttempt]]:
    query = (
        select(WebhookEvent, WebhookAttempt)
        .join(WebhookAttempt, WebhookAttempt.event_id == WebhookEvent.id)
        .where(WebhookEvent.job_id == job_id)
        .order_by(WebhookAttempt.attempted_at, WebhookAttempt.id)
    )
    return [(e, a) for e, a in session.execute(query)]


def unannounced_jobs(session: Session, ended_before: datetime, ended_after: datetime) -> list[str]:
    """Ended jobs with a webhook URL but no event for their ending: the notify message was not sent
    (the broker was down when the job was cancelled or failed)."""
    event = select(WebhookEvent.id).where(WebhookEvent.job_id == _job.Job.id).exists()
    query = select(_job.Job.id).where(
        _job.Job.status.in_(_job.TERMINAL),
        _job.Job.webhook_url.is_not(None),
        _job.Job.completed_at < ended_before,
        _job.Job.completed_at > ended_after,
        ~event,
    )
    return list(session.scalars(query.limit(1000)))


# A delivery attempt's statements: Core, built once with bind parameters, so that each attempt
# hits SQLAlchemy's compiled cache without the ORM's unit of work or a new cache key.

#: The tables, for the attempt's hot path.
EVENTS: Table = Base.metadata.tables["webhook_events"]
ATTEMPTS: Table = Base.metadata.tables["webhook_attempts"]
_TENANTS: Table = _tenant.Tenant.__table__  # type: ignore[assignment]

_ENDPOINTS: Table = _endpoint.WebhookEndpoint.__table__  # type: ignore[assignment]

#: An event to send and its tenant's sealed signing secrets (parameter: b_id). An outer join, so
#: that a missing tenant shows as such rather than as a missing event. The endpoint's breaker
#: state comes along (outer join: None before the endpoint's first attempt), so that an attempt
#: through a closed breaker reads once; the endpoint is found by its tenant (the unique index's
#: first column) and its URL, which its ``url_hash`` stands for.
_OUTGOING = (
    select(EVENTS.c.status, EVENTS.c.next_attempt_at, EVENTS.c.tenant_id, EVENTS.c.url, EVENTS.c.payload,
           _TENANTS.c.webhook_secret, _TENANTS.c.previous_webhook_secret, _TENANTS.c.previous_secret_expires_at,
           _ENDPOINTS.c.state)
    .select_from(
        EVENTS.outerjoin(_TENANTS, _TENANTS.c.id == EVENTS.c.tenant_id).outerjoin(
            _ENDPOINTS, (_ENDPOINTS.c.tenant_id == EVENTS.c.tenant_id) & (_ENDPOINTS.c.url == EVENTS.c.url)
        )
    )
    .where(EVENTS.c.id == bindparam("b_id"))
    .limit(1)
)  # fmt: skip
#: ``_OUTGOING`` on the driver's own connection (``models.fastread``): read before every attempt.
_OUTGOING_READ = FastRead(_OUTGOING)
#: A successful attempt counted and the event delivered, in one statement that locks the row as
#: ``SELECT … FOR UPDATE`` would (parameters: b_id, b_now).
_DELIVERED = (
    update(EVENTS)
    .where(EVENTS.c.id == bindparam("b_id"))
    .values(attempts=EVENTS.c.attempts + 1, status=DELIVERED, next_attempt_at=None,
            delivered_at=bindparam("b_now", type_=EVENTS.c.delivered_at.type))  # fmt: skip
    .returning(EVENTS.c.attempts)
)
#: A failed attempt counted (parameter: b_id); returns the attempts and the status.
_COUNTED = (
    update(EVENTS)
    .where(EVENTS.c.id == bindparam("b_id"))
    .values(attempts=EVENTS.c.attempts + 1)
    .returning(EVENTS.c.attempts, EVENTS.c.status)
)
#: Parameters: b_id, b_status.
_SET_STATUS = update(EVENTS).where(EVENTS.c.id == bindparam("b_id")).values(status=bindparam("b_status"))
#: Parameters: b_id, b_next.
_SET_NEXT = (
    update(EVENTS)
    .where(EVENTS.c.id == bindparam("b_id"))
    .values(next_attempt_at=bindparam("b_next", type_=EVENTS.c.next_attempt_at.type))
)
#: Put a pending event off (parameters: b_id, b_next, b_seen); matches nothing once it is no
#: longer pending or its next attempt is no longer ``b_seen`` (a replay, or another attempt, moved it).
_DEFER = _SET_NEXT.where(
    EVENTS.c.status == PENDING,
    EVENTS.c.next_attempt_at.is_not_distinct_from(bindparam("b_seen", type_=EVENTS.c.next_attempt_at.type)),
)
#: One attempt's record. ``inline``: its id is the database's and nobody reads it back.
_ATTEMPT = insert(ATTEMPTS).inline()


@dataclass(frozen=True)
class Outgoing:
    """What an attempt needs of its event, its tenant and its endpoint, read in one statement."""

    status: str
    next_attempt_at: datetime | None
    tenant_id: str
    url: str
    payload: str
    sealed_secret: str | None
    sealed_previous_secret: str | None
    previous_secret_expires_at: datetime | None
    #: The endpoint's breaker (``models.endpoint``'s states); None: no attempt to it yet.
    breaker_state: str | None = None

    @property
    def breaker_closed(self) -> bool:
        """``endpoint.breaker_closed``, as read with the event."""
        return self.breaker_state == _endpoint.CLOSED

    def signing_secrets(self) -> list[str]:
        """``Tenant.signing_secrets``, from the columns read with the event."""
        assert self.sealed_secret is not None  # its tenant exists (a tenant's events are deleted with it)
        return _tenant.signing_secrets(self.sealed_secret, self.sealed_previous_secret, self.previous_secret_expires_at)


def outgoing(event_id: str) -> Outgoing | None:
    """The event ``event_id`` with its tenant's secrets, or None when there is no such event
    (one select, outside any transaction)."""
    row = _OUTGOING_READ.one_or_none(b_id=event_id)
    return None if row is None else Outgoing(*row)


def count_delivered(session: Session, event_id: str, now: datetime) -> int:
    """Count a successful attempt and mark the event delivered; returns its attempts."""
    attempts = session.execute(_DELIVERED, {"b_id": event_id, "b_now": now}).scalar_one_or_none()
    assert attempts is not None, event_id
    return int(attempts)


def _delivered_in_one() -> Any:
    """PostgreSQL: a successful attempt's three writes as one statement of data-modifying CTEs
    (the event counted and delivered, the attempt inserted, the endpoint's breaker closed);
    returns the event's attempts and how many endpoint rows were closed (0: none yet)."""
    counted = _DELIVERED.cte("counted")
    attempt = (
        insert(ATTEMPTS)
        .values(event_id=bindparam("b_id"), attempted_at=bindparam("b_now", type_=ATTEMPTS.c.attempted_at.type),
                url=bindparam("b_url"), status_code=bindparam("b_status_code"), error=None,
                duration_ms=bindparam("b_duration_ms"), response_excerpt=bindparam("b_excerpt"))
        .returning(ATTEMPTS.c.id)
        .cte("attempt")
    )  # fmt: skip
    closed = _endpoint.SUCCESS.returning(_endpoint.WebhookEndpoint.id).cte("closed")
    closed_count = select(func.count()).select_from(closed).scalar_subquery().label("closed")
    return select(counted.c.attempts, closed_count).add_cte(attempt)


#: Built once (parameters: b_id, b_now, b_url, b_status_code, b_duration_ms, b_excerpt,
#: b_tenant_id, b_url_hash); PostgreSQL only, where it commits by itself (``models.fastread``).
_DELIVERED_IN_ONE = FastRead(_delivered_in_one(), writes=True)


def record_delivered(
    event_id: str,
    tenant_id: str,
    url: str,
    status_code: int | None,
    duration_ms: int,
    response_excerpt: str | None,
) -> tuple[int, bool]:
    """Record a successful attempt in a transaction of its own: the event delivered, the
    attempt, the endpoint's breaker closed.

    On PostgreSQL one statement committed by itself on the driver's connection, with no session
    around it (a delivery's writes were a fifth of the webhook worker's samples as three
    statements, and the session's begin and commit a further share); three statements elsewhere
    (SQLite has no writing CTEs).

    Returns:
        The event's attempts, and whether the endpoint had a row to close (when it had none,
        the caller records the success the long way, which makes it).
    """
    now = utcnow()
    if database().engine.dialect.name != "postgresql":
        with session_scope() as session:
            attempts = count_delivered(session, event_id, now)
            add_attempt(session, event_id, url, status_code, None, duration_ms, response_excerpt)
            return attempts, _endpoint.closed_by_success(session, tenant_id, url, now)
    row = _DELIVERED_IN_ONE.one_or_none(b_id=event_id, b_now=now, b_url=url, b_status_code=status_code,
                                        b_duration_ms=duration_ms, b_excerpt=response_excerpt, b_tenant_id=tenant_id,
                                        b_url_hash=_endpoint.url_hash(url))  # fmt: skip
    assert row is not None, event_id
    return int(row[0]), bool(row[1])


def count_failed(session: Session, event_id: str) -> tuple[int, str]:
    """Count a failed attempt; returns the event's attempts and status."""
    row = session.execute(_COUNTED, {"b_id": event_id}).one_or_none()
    assert row is not None, event_id
    return int(row[0]), str(row[1])


def set_status(session: Session, event_id: str, status: str) -> None:
    session.execute(_SET_STATUS, {"b_id": event_id, "b_status": status})


def set_next_attempt(session: Session, event_id: str, when: datetime) -> None:
    session.execute(_SET_NEXT, {"b_id": event_id, "b_next": when})


def defer(session: Session, event_id: str, until: datetime, seen: datetime | None) -> bool:
    """Put a pending event off until ``until``, if its next attempt is still ``seen`` (as read
    before the attempt was refused); False when it is missing, no longer pending, or was moved
    meanwhile: whoever moved it (a replay, a recorded attempt) has queued its next message."""
    params = {"b_id": event_id, "b_next": until, "b_seen": seen}
    return bool(session.execute(_DEFER, params).rowcount)  # type: ignore[attr-defined]


def add_attempt(
    session: Session,
    event_id: str,
    url: str,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    response_excerpt: str | None,
) -> None:
    """Record one attempt (``attempted_at``: now, as the model's default)."""
    session.execute(
        _ATTEMPT,
        {"event_id": event_id, "attempted_at": utcnow(), "url": url, "status_code": status_code, "error": error,
         "duration_ms": duration_ms, "response_excerpt": response_excerpt},  # fmt: skip
    )

"""Webhook events (one per job ending) and a record of every delivery attempt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models import job as _job
from models.db import Base, utcnow

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

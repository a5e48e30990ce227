"""What ops ask the database: work waiting per stage, throughput and latency, failures, webhook health.

The database knows things RabbitMQ cannot show: when each job's stage became due (so the age
of the oldest waiting job, even while its message sits prefetched and unacked in a worker),
and how long each stage took for recent jobs. Everything here is read-only and bounded.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import upload as uploads
from models.db import utcnow
from models.delivery import PENDING, WebhookAttempt, WebhookEvent
from models.job import FAILED, PROCESSING, QUEUED, STAGES, Job

#: The marker a stage waits on: a job is due for ``stage`` since this column was set.
DUE_SINCE = {"assemble": Job.created_at, "upload": Job.assembled_at, "extract": Job.uploaded_at,
             "notify": Job.extracted_at}  # fmt: skip
#: The marker a stage sets when it is done (notify ends the job).
DONE_AT = {"assemble": "assembled_at", "upload": "uploaded_at", "extract": "extracted_at", "notify": "completed_at"}
#: Most recent jobs read to work out throughput and latency (a bound on the page's cost).
RECENT_JOBS_LIMIT = 5000
#: Most recent webhook attempts read to judge endpoints' health.
RECENT_ATTEMPTS_LIMIT = 5000


@dataclass(frozen=True)
class Waiting:
    """Jobs due for a stage that no worker has started yet, and how long the oldest has waited."""

    stage: str
    count: int
    oldest_seconds: float


def waiting_by_stage(session: Session, now: datetime | None = None) -> list[Waiting]:
    """Per stage: jobs whose stage is due but not started (queued, or advanced with no attempt yet).

    Retries waiting out their backoff are not counted: they are not due.
    """
    now = now or utcnow()
    out = []
    for stage in STAGES:
        since = DUE_SINCE[stage]
        if stage == "assemble":
            where: Any = Job.status == QUEUED
        else:
            where = (Job.status == PROCESSING) & (Job.stage == stage) & (Job.stage_attempts == 0)
        count, oldest = session.execute(select(func.count(), func.min(since)).where(where)).one()
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        out.append(Waiting(stage, int(count), max(age, 0.0)))
    return out


def open_uploads(session: Session) -> int:
    return int(session.scalar(select(func.count()).where(uploads.Upload.status == uploads.RECEIVING)) or 0)


@dataclass(frozen=True)
class StageLatency:
    """One stage over a recent window: jobs through it per minute, and p50/p99 seconds from
    due to done (queue wait plus run time)."""

    stage: str
    done: int
    per_minute: float
    p50: float | None
    p99: float | None


def stage_latency(session: Session, window: timedelta, now: datetime | None = None) -> list[StageLatency]:
    """Throughput and latency per stage over the last ``window``, from the jobs' stage markers."""
    now = now or utcnow()
    since = now - window
    columns = [Job.created_at, Job.assembled_at, Job.uploaded_at, Job.extracted_at, Job.completed_at, Job.status]
    # A job done in the window may have started before it: look back twice as far.
    recent = select(*columns).where(Job.created_at >= since - window).order_by(Job.created_at.desc())
    rows = session.execute(recent.limit(RECENT_JOBS_LIMIT)).all()
    out = []
    for stage in STAGES:
        due_name, done_name = DUE_SINCE[stage].key, DONE_AT[stage]
        spans = []
        for row in rows:
            due, done = getattr(row, due_name), getattr(row, done_name)
            if due is None or done is None or done < since or (stage == "notify" and row.status == FAILED):
                continue
            spans.append((done - due).total_seconds())
        out.append(StageLatency(stage, len(spans), len(spans) / (window.total_seconds() / 60), *_p50_p99(spans)))
    return out


def _p50_p99(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    if len(values) == 1:
        return values[0], values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98]


def failures_by_code(session: Session, since: datetime) -> dict[str, int]:
    query = (
        select(Job.error_code, func.count())
        .where(Job.status == FAILED, Job.completed_at >= since)
        .group_by(Job.error_code)
    )
    return {code or "unknown": int(count) for code, count in session.execute(query)}


def latest_jobs(session: Session, statuses: tuple[str, ...], limit: int, *, oldest_first: bool = False) -> list[Job]:
    """The latest jobs in ``statuses`` (by last change), or the longest unchanged with ``oldest_first``."""
    order = Job.updated_at.asc() if oldest_first else Job.updated_at.desc()
    return list(session.scalars(select(Job).where(Job.status.in_(statuses)).order_by(order).limit(limit)))


@dataclass(frozen=True)
class Endpoint:
    """A webhook receiver (scheme://host) over a recent window."""

    endpoint: str
    attempts: int
    delivered: int
    failing_streak: int
    pending: int
    p50_ms: float | None
    last_attempt_at: datetime
    last_result: str


def webhook_endpoints(session: Session, since: datetime) -> list[Endpoint]:
    """Health of every webhook endpoint that was tried since ``since``, worst first."""
    attempts = session.execute(
        select(WebhookAttempt.url, WebhookAttempt.status_code, WebhookAttempt.error, WebhookAttempt.duration_ms,
               WebhookAttempt.attempted_at)
        .where(WebhookAttempt.attempted_at >= since)
        .order_by(WebhookAttempt.id.desc())
        .limit(RECENT_ATTEMPTS_LIMIT)
    ).all()  # fmt: skip
    pending: dict[str, int] = {}
    for (url,) in session.execute(select(WebhookEvent.url).where(WebhookEvent.status == PENDING).limit(10000)):
        pending[_endpoint(url)] = pending.get(_endpoint(url), 0) + 1
    grouped: dict[str, list[Any]] = {}
    for row in attempts:  # newest first
        grouped.setdefault(_endpoint(row.url), []).append(row)
    out = []
    for endpoint, rows in grouped.items():
        ok = [r for r in rows if r.status_code is not None and 200 <= r.status_code < 300]
        streak = next((i for i, r in enumerate(rows) if r in ok), len(rows))
        last = rows[0]
        out.append(
            Endpoint(
                endpoint=endpoint,
                attempts=len(rows),
                delivered=len(ok),
                failing_streak=streak,
                pending=pending.get(endpoint, 0),
                p50_ms=statistics.median(r.duration_ms for r in rows),
                last_attempt_at=last.attempted_at,
                last_result=str(last.status_code) if last.status_code is not None else (last.error or "error")[:120],
            )
        )
    return sorted(out, key=lambda e: (-e.failing_streak, e.delivered / e.attempts, e.endpoint))


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"

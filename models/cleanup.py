"""Cleanup tasks: storage a failed or cancelled job leaves behind, remembered until it is gone.

Aborting a multipart upload or deleting an object can fail when the store is down at that
moment; the parts or the object would then stay in the bucket for ever, unseen. So the task
is written in the same transaction that ends the job (or forgets its multipart id), and it
stays until the store confirms it; the sweeper retries what is left, with backoff.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Integer, String, Text, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.db import Base, utcnow

#: Task kinds: abort one multipart upload; delete every object under a key prefix.
ABORT_MULTIPART, DELETE_PREFIX = "abort_multipart", "delete_prefix"

#: Longest wait between two tries of one task.
MAX_BACKOFF = timedelta(minutes=30)


class CleanupTask(Base):
    __tablename__ = "cleanup_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The job it came from (no foreign key: the bytes must go even if the row does).
    job_id: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    #: The object key (ABORT_MULTIPART) or key prefix (DELETE_PREFIX).
    key: Mapped[str] = mapped_column(Text)
    multipart_id: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


def add(session: Session, job_id: str, kind: str, key: str, multipart_id: str | None = None) -> CleanupTask:
    """Remember one piece of storage to remove (flushed, so the caller can name its id)."""
    task = CleanupTask(job_id=job_id, kind=kind, key=key, multipart_id=multipart_id, attempts=0,
                       created_at=utcnow(), next_attempt_at=utcnow())  # fmt: skip
    session.add(task)
    session.flush()
    return task


def due(session: Session, now: datetime | None = None, limit: int = 200) -> list[CleanupTask]:
    """Tasks whose next try is due, oldest first."""
    query = select(CleanupTask).where(CleanupTask.next_attempt_at <= (now or utcnow()))
    return list(session.scalars(query.order_by(CleanupTask.id).limit(limit)))


def done(session: Session, task_id: int) -> None:
    task = session.get(CleanupTask, task_id)
    if task is not None:
        session.delete(task)


def failed(session: Session, task_id: int, error: str) -> None:
    """Record a failed try; the next one waits twice as long as the last (up to MAX_BACKOFF)."""
    task = session.get(CleanupTask, task_id)
    if task is None:
        return
    task.attempts += 1
    task.last_error = error[:1000]
    task.next_attempt_at = utcnow() + min(timedelta(seconds=2**task.attempts), MAX_BACKOFF)


def drop_for_job(session: Session, job_id: str) -> None:
    """Forget a job's pending tasks: it was put back to work, and what they would delete is its again."""
    session.execute(delete(CleanupTask).where(CleanupTask.job_id == job_id))

"""Retention: which ended jobs are past their tenant's retention, and which dead uploads' rows go.

A job ends (completed, failed, cancelled) and is kept for its tenant's ``retention_days``
(0: for ever). Past that, its object, its derivatives and its rows (upload, chunks, webhook
events and attempts, through ``ON DELETE CASCADE``) are removed. An upload that expired or was
cancelled without a job loses its row ``expired_upload_grace_seconds`` after it expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from models import job as jobs
from models import upload as uploads
from models.settings import Settings
from models.tenant import Tenant

#: Rows removed per sweep and statement, so one sweep never holds long locks.
BATCH = 500


@dataclass(frozen=True)
class ExpiredJob:
    """What must leave the object store before the job's rows are deleted."""

    job_id: str
    upload_id: str
    keys: list[str]


def _retention_by_tenant(session: Session, settings: Settings) -> dict[str, float]:
    """Each tenant with a retention (days > 0)."""
    out: dict[str, float] = {}
    for tenant_id, own in session.execute(select(Tenant.id, Tenant.retention_days)):
        days = settings.retention_days if own is None else own
        if days and days > 0:
            out[tenant_id] = days
    return out


def expired_jobs(session: Session, settings: Settings, now: datetime) -> list[ExpiredJob]:
    """Ended jobs older than their tenant's retention (at most ``BATCH``)."""
    found: list[ExpiredJob] = []
    for tenant_id, days in _retention_by_tenant(session, settings).items():
        cutoff = now - timedelta(days=days)
        query = (
            select(jobs.Job.id, jobs.Job.upload_id, jobs.Job.object_key, jobs.Job.result)
            .where(jobs.Job.tenant_id == tenant_id, jobs.Job.status.in_(jobs.TERMINAL))
            .where(
                or_(jobs.Job.completed_at < cutoff, jobs.Job.completed_at.is_(None) & (jobs.Job.created_at < cutoff))
            )
            .limit(BATCH - len(found))
        )
        for job_id, upload_id, object_key, result in session.execute(query):
            keys = [object_key] if object_key else []
            keys += [d["key"] for d in (result or {}).get("derivatives", []) if d.get("key")]
            found.append(ExpiredJob(job_id, upload_id, keys))
        if len(found) >= BATCH:
            break
    return found


def delete_jobs(session: Session, expired: list[ExpiredJob]) -> None:
    """Delete the jobs' uploads; the jobs, chunks, events and attempts go with them (cascade)."""
    if not expired:
        return
    ids = [e.job_id for e in expired]
    session.execute(delete(jobs.Job).where(jobs.Job.id.in_(ids)))
    session.execute(delete(uploads.Upload).where(uploads.Upload.id.in_([e.upload_id for e in expired])))


def delete_dead_uploads(session: Session, older_than: datetime) -> list[str]:
    """Delete expired or cancelled uploads without a job that expired before ``older_than``."""
    ids = list(
        session.scalars(
            select(uploads.Upload.id)
            .where(uploads.Upload.status.in_((uploads.EXPIRED, uploads.CANCELLED)))
            .where(uploads.Upload.job_id.is_(None), uploads.Upload.expires_at < older_than)
            .limit(BATCH)
        )
    )
    if ids:
        session.execute(delete(uploads.Upload).where(uploads.Upload.id.in_(ids)))
    return ids

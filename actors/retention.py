"""Retention, enforced by the sweeper and ``chute cleanup``: ended jobs past their tenant's
retention lose their object, derivatives and rows; dead uploads lose their rows after a grace.

Objects go first, rows after: if the store fails, the rows stay and the next sweep tries again,
so nothing is left in the bucket that no row points to.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from actors.storage import open_store
from models import retention, staging
from models.db import session_scope, utcnow
from models.settings import current_settings

log = logging.getLogger(__name__)


def enforce_retention() -> dict[str, int]:
    """One pass: delete expired jobs (objects, then rows) and dead uploads' rows.

    Returns:
        How many jobs and upload rows were removed.
    """
    settings = current_settings()
    now = utcnow()
    with session_scope() as session:
        expired = retention.expired_jobs(session, settings, now)
    removable = []
    if expired:
        store = open_store(settings.storage_url)
        for job in expired:
            try:
                for key in job.keys:
                    store.delete(key)
            except Exception:
                log.warning("job %s: removing its objects failed; next sweep tries again", job.job_id, exc_info=True)
                continue
            staging.remove_upload(settings.staging_dir, job.upload_id)
            removable.append(job)
    with session_scope() as session:
        retention.delete_jobs(session, removable)
    with session_scope() as session:
        dead = retention.delete_dead_uploads(session, now - timedelta(seconds=settings.expired_upload_grace_seconds))
    for upload_id in dead:
        staging.remove_upload(settings.staging_dir, upload_id)
    if removable or dead:
        log.info("retention: removed %d jobs and %d dead uploads", len(removable), len(dead))
    return {"retained_jobs_removed": len(removable), "dead_uploads_removed": len(dead)}

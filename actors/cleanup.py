"""Housekeeping: release what a finished job holds, expire abandoned uploads, re-send lost jobs."""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta

from actors.metrics import SWEEPER_ACTIONS, UPLOADS
from actors.storage import open_store
from models import job as jobs
from models import staging, tokens
from models import upload as uploads
from models.db import session_scope, utcnow
from models.settings import current_settings

log = logging.getLogger(__name__)


def release_job(job_id: str) -> None:
    """Abort a job's multipart upload and remove its staged bytes (idempotent).

    Called when a job fails or is cancelled: an S3 multipart upload that is never aborted
    keeps its parts, invisible, in the bucket.
    """
    settings = current_settings()
    with session_scope() as session:
        job = jobs.load_job(session, job_id, for_update=True)
        if job is None:
            return
        key, multipart_id, upload_id = job.object_key, job.multipart_id, job.upload_id
        job.multipart_id = None
        job.parts = None
    if key and multipart_id:
        try:
            open_store(settings.storage_url).abort_multipart(key, multipart_id)
        except Exception:
            log.warning("job %s: could not abort multipart upload %s", job_id, multipart_id, exc_info=True)
    staging.remove_upload(settings.staging_dir, upload_id)
    shutil.rmtree(staging.work_dir(settings.staging_dir, job_id), ignore_errors=True)


def sweep() -> dict[str, int]:
    """Expire abandoned uploads; re-send jobs whose first message never reached the broker, and
    processing jobs that stalled because a later message was lost (say, the broker went away
    between two stages).

    Returns:
        How many uploads were expired, and how many jobs were re-sent or resumed.
    """
    from actors.pipeline import publish_job, resume_job

    settings = current_settings()
    with session_scope() as session:
        expired = uploads.expire_uploads(session)
        tokens.drop_dead_usage(session, utcnow())
    for upload_id in expired:
        staging.remove_upload(settings.staging_dir, upload_id)
    with session_scope() as session:
        lost = jobs.unpublished_jobs(session, utcnow() - timedelta(seconds=settings.requeue_after_seconds))
    resent = 0
    for job_id in lost:
        try:
            publish_job(job_id)
            resent += 1
        except Exception:
            log.warning("job %s: re-sending failed; next sweep tries again", job_id, exc_info=True)
    with session_scope() as session:
        stalled = jobs.stalled_jobs(session, utcnow() - timedelta(seconds=settings.stall_after_seconds))
    resumed = 0
    for job_id, stage in stalled:
        try:
            resume_job(job_id, stage)
            resumed += 1
        except Exception:
            log.warning("job %s: resuming at %s failed; next sweep tries again", job_id, stage, exc_info=True)
    UPLOADS.labels("expired").inc(len(expired))
    for action, count in (("expired", len(expired)), ("republished", resent), ("resumed", resumed)):
        SWEEPER_ACTIONS.labels(action).inc(count)
    if expired or resent or resumed:
        log.info("sweep: expired %d uploads, re-sent %d jobs, resumed %d", len(expired), resent, resumed)
    from actors.retention import enforce_retention

    enforce_retention()
    return {"expired_uploads": len(expired), "resent_jobs": resent, "resumed_jobs": resumed}

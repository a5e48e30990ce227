"""Cancelling: the job row first (the database decides), then release its bytes and tell its owner."""

from __future__ import annotations

import logging

from actors.cleanup import release_job
from actors.metrics import UPLOADS, job_ended
from actors.notify import notify
from models import job as jobs
from models import staging
from models import upload as uploads
from models.db import session_scope
from models.settings import current_settings

log = logging.getLogger(__name__)


def cancel_job(tenant_id: str, job_id: str) -> jobs.Job:
    """Cancel a running or queued job; a stage in flight notices and stops.

    Raises:
        NotFound: not this tenant's job.
        Conflict: the job already ended.
    """
    with session_scope() as session:
        job = jobs.get_job(session, tenant_id, job_id, for_update=True)
        jobs.cancel(job)
    job_ended("cancelled")
    release_job(job_id, remove_now=False)  # the sweeper removes its storage: S3 may be slow or down now
    announce(job_id)
    return job


def announce(job_id: str) -> None:
    """Send the notify message of an ended job; with the broker down, the sweeper sends it later
    (it looks for ended jobs without their webhook event), so the cancel still stands."""
    try:
        notify.send(job_id)
    except Exception as e:
        log.warning("job %s: the broker did not take its notify message (%s); the sweeper sends it", job_id, e)


def cancel_upload(tenant_id: str, upload_id: str) -> tuple[uploads.Upload, str | None]:
    """Cancel an upload (and its job, if it has one that has not ended); remove staged chunks.

    Returns:
        The upload and the id of the job that was cancelled with it, if any.

    Raises:
        NotFound: not this tenant's upload.
        Conflict: the upload's job already ended.
    """
    with session_scope() as session:
        upload = uploads.get_upload(session, tenant_id, upload_id, for_update=True)
        job_id = upload.job_id
        if upload.status == uploads.RECEIVING:
            upload.status = uploads.CANCELLED
            UPLOADS.labels("cancelled").inc()
    if job_id is not None:
        cancel_job(tenant_id, job_id)
    staging.remove_upload(current_settings().staging_dir, upload_id)
    return upload, job_id

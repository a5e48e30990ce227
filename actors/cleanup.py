"""Housekeeping: release what an ended job holds, expire abandoned uploads, re-send lost jobs.

Everything here is idempotent and driven by the database, so ``chute cleanup`` and the
sweeper of every worker process may run it at once.
"""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta

from actors.metrics import SWEEPER_ACTIONS, UPLOADS
from actors.storage import open_store
from models import cleanup as tasks
from models import delivery, staging, tokens
from models import job as jobs
from models import upload as uploads
from models.db import session_scope, utcnow
from models.settings import current_settings

log = logging.getLogger(__name__)

#: Staged chunks of an upload the database does not know are removed after this long (a row
#: commits just after its chunk is written).
UNKNOWN_GRACE_SECONDS = 600

#: The sweeper's metric actions (``chute_sweeper_actions``) and the counts of ``sweep()`` they sum.
SWEEPER_COUNTS = (("expired", "expired_uploads"), ("republished", "resent_jobs"), ("resumed", "resumed_jobs"),
                  ("announced", "announced_jobs"), ("cleaned", "cleanups"), ("leftovers", "leftovers"))  # fmt: skip

#: Ended jobs whose webhook event is missing are announced if they ended within this window.
ANNOUNCE_WINDOW = timedelta(days=1)


def release_job(job_id: str, *, remove_now: bool = True) -> None:
    """Give back what a failed or cancelled job holds: its multipart upload, its stored objects
    (the original and any derivative) and its staged bytes (idempotent).

    The storage to remove is first written down as cleanup tasks, in the transaction that
    forgets the multipart id, then removed at once (``remove_now``; an API request passes False
    so that a store that is down cannot slow it); what is not removed now the sweeper removes
    later, so no part or object is left in the bucket unseen.
    """
    settings = current_settings()
    with session_scope() as session:
        job = jobs.load_job(session, job_id, for_update=True)
        if job is None:
            return
        upload_id = job.upload_id
        if job.object_key and job.multipart_id:
            tasks.add(session, job_id, tasks.ABORT_MULTIPART, job.object_key, job.multipart_id)
        if job.object_key:
            for prefix in unwanted_prefixes(job):
                tasks.add(session, job_id, tasks.DELETE_PREFIX, prefix)
        job.multipart_id = None
        job.parts = None
    if remove_now:
        run_cleanups(job_id)
    staging.remove_upload(settings.staging_dir, upload_id)
    shutil.rmtree(staging.work_dir(settings.staging_dir, job_id), ignore_errors=True)


def job_prefix(job: jobs.Job) -> str:
    """The key prefix under which every object of a job lives (see ``actors.upload.object_key``)."""
    return f"{job.tenant_id}/{job.id}/"


def unwanted_prefixes(job: jobs.Job) -> list[str]:
    """What an ended job's storage no longer needs: everything of a cancelled job, or of a job
    that failed before its file was stored; only the derivatives of a job that failed after
    (its original stays downloadable, as the API promises, until retention removes the job)."""
    if job.status == jobs.COMPLETED:
        return []
    if job.status == jobs.FAILED and job.uploaded_at is not None:
        return [f"{job_prefix(job)}derivatives/"]
    return [job_prefix(job)]


def run_cleanups(job_id: str | None = None) -> int:
    """Try the due cleanup tasks (of one job, or all); returns how many are done."""
    store = open_store(current_settings().storage_url)
    with session_scope() as session:
        due = [(t.id, t.kind, t.key, t.multipart_id) for t in tasks.due(session) if job_id in (None, t.job_id)]
    finished = 0
    for task_id, kind, key, multipart_id in due:
        try:
            if kind == tasks.ABORT_MULTIPART:
                store.abort_multipart(key, multipart_id or "")
            else:
                store.delete_prefix(key)
        except Exception as e:
            log.warning("cleanup %s of %s failed; the sweeper tries again: %s", kind, key, e)
            with session_scope() as session:
                tasks.failed(session, task_id, str(e))
            continue
        with session_scope() as session:
            tasks.done(session, task_id)
        finished += 1
    return finished


def remove_leftovers() -> int:
    """Remove staged bytes nobody needs any more: chunks of uploads that expired, were cancelled
    or whose job is over, extracted, or stored and not to be extracted (a crash right after
    upload or extract can leave them), and extract work directories of jobs not extracting.
    Returns how many were removed."""
    settings = current_settings()
    root = staging.staging_root(settings.staging_dir)
    upload_ids = staging.staged_uploads(root)
    job_ids = staging.work_dirs(root)
    with session_scope() as session:
        stale_uploads, unknown = uploads.unneeded_uploads(session, upload_ids)
        stale_work = jobs.not_extracting(session, job_ids)
    stale_uploads += [u for u in unknown if staging.idle_for(staging.upload_dir(root, u), UNKNOWN_GRACE_SECONDS)]
    for upload_id in stale_uploads:
        staging.remove_upload(settings.staging_dir, upload_id)
    for job_id in stale_work:
        shutil.rmtree(staging.work_dir(settings.staging_dir, job_id), ignore_errors=True)
    return len(stale_uploads) + len(stale_work)


def sweep() -> dict[str, int]:
    """One round of housekeeping.

    Expires abandoned uploads; re-sends jobs whose first message never reached the broker and
    jobs whose message was lost after the broker took it; sends the notify message of ended
    jobs that never got their webhook event; retries cleanup tasks; removes leftover staged bytes.

    Returns:
        How many of each were done.
    """
    from actors.notify import notify
    from actors.pipeline import publish_job, resume_job

    settings = current_settings()
    now = utcnow()
    with session_scope() as session:
        expired = uploads.expire_uploads(session)
        tokens.drop_dead_usage(session, utcnow())
    for upload_id in expired:
        staging.remove_upload(settings.staging_dir, upload_id)
    with session_scope() as session:
        unpublished = jobs.unpublished_jobs(session, now - timedelta(seconds=settings.requeue_after_seconds))
        lost = jobs.lost_jobs(session, now - timedelta(seconds=settings.resend_after_seconds),
                              now - timedelta(seconds=settings.stall_after_seconds))  # fmt: skip
        unannounced = delivery.unannounced_jobs(session, now - timedelta(seconds=settings.requeue_after_seconds),
                                                now - ANNOUNCE_WINDOW)  # fmt: skip
    counts = {"expired_uploads": len(expired), "resent_jobs": 0, "resumed_jobs": 0, "announced_jobs": 0}
    for job_id in unpublished:
        counts["resent_jobs"] += _try(publish_job, job_id)
    for job_id, stage in lost:
        counts["resumed_jobs"] += _try(resume_job, job_id, stage)
    for job_id in unannounced:
        counts["announced_jobs"] += _try(notify.send, job_id)
    counts["cleanups"] = run_cleanups()
    counts["leftovers"] = remove_leftovers()
    UPLOADS.labels("expired").inc(len(expired))
    for action, key in SWEEPER_COUNTS:
        SWEEPER_ACTIONS.labels(action).inc(counts[key])
    from actors.retention import enforce_retention

    enforce_retention()
    if any(counts.values()):
        log.info("sweep: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts


def _try(send, *args: str) -> int:  # type: ignore[no-untyped-def]
    """1 if sending worked; a failure is logged and left to the next sweep."""
    try:
        send(*args)
        return 1
    except Exception:
        log.warning("sweep: %s%s failed; the next sweep tries again", getattr(send, "__name__", send), args,
                    exc_info=True)  # fmt: skip
        return 0

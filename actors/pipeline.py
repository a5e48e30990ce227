"""start_job: assemble → upload → extract → notify, as one Dramatiq pipeline.

Each message carries only the job id (``pipe_ignore``: no stage passes its result on);
the Pipelines middleware sends the next stage when one succeeds.
"""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.errors import BrokerError

from actors.assemble import assemble
from actors.extract import extract
from actors.notify import notify
from actors.upload import upload
from models import cleanup as cleanup_tasks
from models import job as jobs
from models.db import session_scope
from models.errors import BrokerUnavailable, NotFound

log = logging.getLogger(__name__)

#: The stage actors, in order.
STAGE_ACTORS = (assemble, upload, extract, notify)


def job_pipeline(job_id: str, start: str = "assemble") -> dramatiq.pipeline:
    """The messages from stage ``start`` to the end (earlier stages are done or not wanted)."""
    names = [stage.actor_name for stage in STAGE_ACTORS]
    stages = STAGE_ACTORS[names.index(start) :]
    return dramatiq.pipeline(stage.message_with_options(args=(job_id,), pipe_ignore=True) for stage in stages)


def publish_job(job_id: str) -> None:
    """Send the job's pipeline and record that the broker confirmed it.

    The job row is committed before this runs; if the publish fails, ``enqueued_at`` stays
    empty and the client's next ``complete`` call, or the sweeper, sends it again.

    Raises:
        BrokerUnavailable: the broker did not take the message.
    """
    try:
        job_pipeline(job_id).run()
    except (BrokerError, OSError, RuntimeError) as e:
        raise BrokerUnavailable(f"the message broker is unavailable: {e}") from None
    jobs.mark_enqueued(job_id)


def start_jobs(job_ids: list[str]) -> int:
    """Publish the pipelines of jobs already committed, leaving them to the sweeper if the broker
    is down (``POST /v1/jobs`` answers 202 with their ids either way: the files are stored and
    the jobs exist, so a client retry would only store them again). After the first refusal the
    rest are not tried: each try can take the broker's blocked-connection timeout.

    Returns:
        How many were published now.
    """
    for done, job_id in enumerate(job_ids):
        try:
            publish_job(job_id)
        except BrokerUnavailable as e:
            log.warning("%d jobs left for the sweeper to publish: %s", len(job_ids) - done, e)
            return done
    return len(job_ids)


def resume_job(job_id: str, stage: str) -> None:
    """Send a stalled job's pipeline again from ``stage``; a duplicate of a message still in
    flight is harmless (each stage is idempotent and its attempts are counted).

    Raises:
        BrokerUnavailable: the broker did not take the message.
    """
    try:
        job_pipeline(job_id, start=stage).run()
    except (BrokerError, OSError, RuntimeError) as e:
        raise BrokerUnavailable(f"the message broker is unavailable: {e}") from None
    with session_scope() as session:
        jobs.touch(session, job_id)


def retry_job(job_id: str) -> str:
    """An operator's retry of a failed job, from the stage it failed in.

    Returns:
        The stage the job was sent to.

    Raises:
        NotFound: no such job.
        Conflict: the job did not fail, or failed before its file was stored.
        BrokerUnavailable: the broker did not take the message (the job stays processing and
            the sweeper resumes it once it counts as stalled).
    """
    with session_scope() as session:
        job = jobs.load_job(session, job_id, for_update=True)
        if job is None:
            raise NotFound(f"no job {job_id}", code="job_not_found")
        stage = jobs.reopen(job)
        cleanup_tasks.drop_for_job(session, job_id)  # its derivatives are about to be made again
    resume_job(job_id, stage)
    return stage

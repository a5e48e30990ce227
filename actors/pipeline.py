"""start_job: assemble → upload → extract → notify, as one Dramatiq pipeline.

Each message carries only the job id (``pipe_ignore``: no stage passes its result on);
the Pipelines middleware sends the next stage when one succeeds.
"""

from __future__ import annotations

import dramatiq
from dramatiq.errors import BrokerError

from actors.assemble import assemble
from actors.extract import extract
from actors.notify import notify
from actors.upload import upload
from models import job as jobs
from models.db import session_scope
from models.errors import BrokerUnavailable


def job_pipeline(job_id: str) -> dramatiq.pipeline:
    stages = (assemble, upload, extract, notify)
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
    with session_scope() as session:
        jobs.mark_enqueued(session, job_id)

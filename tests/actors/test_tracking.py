"""JobTracking: a stage does not run unless its run was recorded."""

from __future__ import annotations

import time

import dramatiq
from sqlalchemy import text

from actors.tracking import current_admission
from models import job as jobs
from models.db import database, session_scope
from models.settings import Settings
from tests.actors.test_stages import load, staged_job
from tests.conftest import TenantKeys


def test_a_stage_whose_run_cannot_be_recorded_does_not_run(settings: Settings, tenant: TenantKeys, stub_broker,
                                                             drain, caplog) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """Dramatiq swallows exceptions from before_process_message and runs the actor anyway; with
    the jobs table unreachable the stage must not run, and must run once it is back."""
    calls: list[str] = []

    @dramatiq.actor(broker=stub_broker, actor_name="probe_stage", job_stage="assemble")
    def probe_stage(job_id: str) -> None:
        admission = current_admission()
        calls.append(admission.job_id if admission else "unadmitted")

    job_id = staged_job(settings, tenant)
    with database().engine.begin() as conn:
        conn.execute(text("ALTER TABLE jobs RENAME TO jobs_away"))
    try:
        probe_stage.send(job_id)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "will retry" not in caplog.text:  # a delivery was refused
            time.sleep(0.01)
        assert "could not be recorded" in caplog.text and calls == []
    finally:
        with database().engine.begin() as conn:
            conn.execute(text("ALTER TABLE jobs_away RENAME TO jobs"))
    drain()
    assert calls == [job_id]
    job = load(job_id)
    assert job.status == jobs.PROCESSING and job.stage == "assemble" and job.run_id is None
    with session_scope() as session:
        assert jobs.load_job(session, job_id) is not None

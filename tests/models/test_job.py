"""Job state transitions: attempts counted in the database, progress that never goes back."""

from __future__ import annotations

import pytest

from models import job as jobs
from models import upload as uploads
from models.db import session_scope
from models.settings import Settings
from tests.conftest import TenantKeys


def new_job(settings: Settings, tenant: TenantKeys) -> str:
    with session_scope() as session:
        upload = uploads.create_upload(session, tenant.tenant_id, settings, filename="a.txt", size=0)
        return jobs.create_job(session, upload)


def begin(job_id: str, stage: str) -> jobs.StageRun:
    with session_scope() as session:
        return jobs.begin_stage(session, job_id, stage, "host:1")


def finish(job_id: str, run: jobs.StageRun) -> None:
    assert run.run_id is not None
    with session_scope() as session:
        jobs.finish_run(session, job_id, run.run_id)


def load(job_id: str) -> jobs.Job:
    with session_scope() as session:
        job = jobs.load_job(session, job_id)
        assert job is not None
        return job


def test_retries_are_not_crashes(settings: Settings, tenant: TenantKeys) -> None:
    """A run whose end is recorded (a Dramatiq retry follows) leaves nothing suspect behind."""
    job_id = new_job(settings, tenant)
    for _ in range(20):
        run = begin(job_id, "upload")
        assert run.verdict == jobs.StageVerdict.RUN and not run.isolate
        finish(job_id, run)
    job = load(job_id)
    assert job.status == jobs.PROCESSING and job.stage_attempts == 20
    assert job.lost_runs == 0 and job.crashes == 0 and job.run_id is None


def test_a_run_lost_with_a_shared_process_makes_the_job_run_alone(settings: Settings, tenant: TenantKeys) -> None:
    job_id = new_job(settings, tenant)
    begin(job_id, "upload")  # the worker died with this run (and others) in flight
    run = begin(job_id, "upload")
    assert run.isolate
    job = load(job_id)
    assert job.lost_runs == 1 and job.crashes == 0 and job.run_isolated
    begin(job_id, "upload")  # a duplicate delivery, or the worker died again: still only suspect
    job = load(job_id)
    assert job.lost_runs == 2 and job.crashes == 0 and job.status == jobs.PROCESSING


def test_record_crash_charges_the_job(settings: Settings, tenant: TenantKeys) -> None:
    job_id = new_job(settings, tenant)
    run = begin(job_id, "upload")
    assert run.run_id is not None
    with session_scope() as session:
        assert jobs.record_crash(session, job_id, run.run_id) == 1
    job = load(job_id)
    assert job.crashes == 1 and job.run_id is None


def test_a_job_that_ended_is_skipped(settings: Settings, tenant: TenantKeys) -> None:
    job_id = new_job(settings, tenant)
    with session_scope() as session:
        job = jobs.load_job(session, job_id, for_update=True)
        assert job is not None
        jobs.fail(job, "x", "y")
    assert begin(job_id, "upload").verdict == jobs.StageVerdict.SKIP


def test_a_finished_stage_is_not_run_again(settings: Settings, tenant: TenantKeys) -> None:
    job_id = new_job(settings, tenant)
    assert begin(job_id, "assemble").verdict == jobs.StageVerdict.RUN
    assert jobs.advance_stage(job_id, "assemble", size=0) == jobs.Advance.ADVANCED
    # a duplicate run finishing late changes nothing
    assert jobs.advance_stage(job_id, "assemble", size=1) == jobs.Advance.DONE
    assert begin(job_id, "assemble").verdict == jobs.StageVerdict.DONE
    assert begin(job_id, "upload").verdict == jobs.StageVerdict.RUN
    job = load(job_id)
    assert job.stage == "upload" and job.stage_attempts == 1 and job.attempts == 2 and job.run_id is not None


def test_progress_never_goes_backwards(settings: Settings, tenant: TenantKeys) -> None:
    job_id = new_job(settings, tenant)
    begin(job_id, "upload")
    for fraction, expected in ((0.5, 0.475), (0.2, 0.475), (1.0, 0.8)):
        with session_scope() as session:
            jobs.report_progress(session, job_id, "upload", fraction)
        with session_scope() as session:
            job = jobs.load_job(session, job_id)
            assert job is not None and job.progress == pytest.approx(expected)


def test_cancel_is_refused_once_the_job_ended(settings: Settings, tenant: TenantKeys) -> None:
    job_id = new_job(settings, tenant)
    with session_scope() as session:
        job = jobs.load_job(session, job_id)
        assert job is not None
        jobs.complete(job)
        with pytest.raises(Exception) as caught:
            jobs.cancel(job)
    assert getattr(caught.value, "code", None) == "job_finished"


@pytest.mark.parametrize(
    "declared,detected,mismatch",
    [
        ("application/pdf", "image/png", True),  # a PNG named .pdf
        ("image/jpg", "image/jpeg", False),
        ("text/csv; charset=utf-8", "text/plain", False),
        ("application/pdf", "text/plain", True),
        (None, "image/png", False),
        ("application/octet-stream", "image/png", False),
        ("image/png", "application/octet-stream", False),
    ],
)
def test_type_mismatch(declared: str | None, detected: str, mismatch: bool) -> None:
    from models.views import type_mismatch

    assert type_mismatch(declared, detected) is mismatch

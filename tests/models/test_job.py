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
        return jobs.create_job(session, upload).id


def test_a_stage_started_too_often_fails_the_job(settings: Settings, tenant: TenantKeys) -> None:
    job_id = new_job(settings, tenant)
    for _ in range(3):
        with session_scope() as session:
            assert jobs.begin_stage(session, job_id, "upload", max_attempts=3) == jobs.StageVerdict.RUN
    with session_scope() as session:
        assert jobs.begin_stage(session, job_id, "upload", max_attempts=3) == jobs.StageVerdict.EXHAUSTED
    with session_scope() as session:
        job = jobs.load_job(session, job_id)
        assert job is not None and job.status == jobs.FAILED and job.error_code == "too_many_attempts"
        assert job.attempts == 3
        assert jobs.begin_stage(session, job_id, "upload", max_attempts=3) == jobs.StageVerdict.SKIP


def test_a_finished_stage_is_not_run_again(settings: Settings, tenant: TenantKeys) -> None:
    job_id = new_job(settings, tenant)
    with session_scope() as session:
        assert jobs.begin_stage(session, job_id, "assemble", 5) == jobs.StageVerdict.RUN
        job = jobs.load_job(session, job_id)
        assert job is not None
        jobs.advance(job, "assemble")
    with session_scope() as session:
        assert jobs.begin_stage(session, job_id, "assemble", 5) == jobs.StageVerdict.DONE
        assert jobs.begin_stage(session, job_id, "upload", 5) == jobs.StageVerdict.RUN
        job = jobs.load_job(session, job_id)
        assert job is not None and job.stage == "upload" and job.stage_attempts == 1 and job.attempts == 2


def test_progress_never_goes_backwards(settings: Settings, tenant: TenantKeys) -> None:
    job_id = new_job(settings, tenant)
    with session_scope() as session:
        jobs.begin_stage(session, job_id, "upload", 5)
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

"""``without_flush``, in a statement, relaxes its transaction's durability on PostgreSQL, and
only that one's; ``commit_with_flush`` takes it back."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from models import job as jobs
from models.db import commit_with_flush, session_scope, without_flush
from models.settings import Settings


def synchronous_commit(session) -> str:  # type: ignore[no-untyped-def]
    return str(session.execute(text("SHOW synchronous_commit")).scalar())


def commit_without_flush(session) -> None:  # type: ignore[no-untyped-def]
    assert session.execute(select(without_flush())).scalar() == "off"


@pytest.mark.usefixtures("on_postgres")
def test_one_transaction_commits_without_waiting_for_the_disk() -> None:
    with session_scope() as session:
        assert synchronous_commit(session) == "on"
        commit_without_flush(session)
        assert synchronous_commit(session) == "off"
    with session_scope() as session:  # SET LOCAL: the next transaction on the pooled connection is durable again
        assert synchronous_commit(session) == "on"


@pytest.mark.usefixtures("on_postgres")
def test_a_transaction_can_take_it_back() -> None:
    with session_scope() as session:
        commit_without_flush(session)
        commit_with_flush(session)
        assert synchronous_commit(session) == "on"


def test_elsewhere_it_does_nothing(settings: Settings) -> None:  # but be "off", as the statements that use it expect
    with session_scope() as session:
        commit_without_flush(session)
        commit_with_flush(session)


def test_a_stage_runs_start_commits_without_waiting_for_the_disk(postgres_job: str) -> None:
    job_id = postgres_job
    with session_scope() as session:
        assert jobs.begin_stage(session, job_id, "assemble", "test:1").verdict == jobs.StageVerdict.RUN
        assert synchronous_commit(session) == "off"
    with session_scope() as session:
        assert synchronous_commit(session) == "on"
        assert jobs.advance_stage(session, job_id, "assemble", size=1) == jobs.Advance.ADVANCED
        assert synchronous_commit(session) == "on"  # the run's end waits for the disk


def test_the_enqueued_mark_commits_without_waiting_for_the_disk(postgres_job: str) -> None:
    job_id = postgres_job
    with session_scope() as session:
        jobs.mark_enqueued(session, job_id)
        assert synchronous_commit(session) == "off"
    with session_scope() as session:
        job = jobs.load_job(session, job_id)
        assert job is not None and job.enqueued_at is not None

"""``without_flush``, in a statement, relaxes its transaction's durability on PostgreSQL, and
only that one's; ``commit_with_flush`` takes it back."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from models import job as jobs
from models.db import commit_with_flush, session_scope, without_flush
from models.settings import Settings
from tests.actors.test_stages import staged_job
from tests.conftest import TenantKeys


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
    # The run's end waits for the disk: its statement, its own transaction, leaves the commit as
    # the server's default has it.
    statement = jobs._advance_statement("assemble", "assemble", ("size",), True)
    assert "synchronous_commit" not in statement.sql
    with session_scope() as session:
        assert synchronous_commit(session) == "on"
    assert jobs.advance_stage(job_id, "assemble", size=1) == jobs.Advance.ADVANCED


def test_the_enqueued_mark_commits_by_itself_without_waiting_for_the_disk(postgres_job: str) -> None:
    """One statement in autocommit mode: ``without_flush`` in it sets its own transaction's commit."""
    job_id = postgres_job
    assert "set_config('synchronous_commit', 'off', true)" in jobs._ENQUEUED.sql
    assert jobs.mark_enqueued(job_id) is True
    with session_scope() as session:  # committed: another session sees it
        job = jobs.load_job(session, job_id)
        assert job is not None and job.enqueued_at is not None
        first = job.enqueued_at
    assert jobs.mark_enqueued(job_id) is False  # a second confirmation (a re-send) keeps the first time
    with session_scope() as session:
        assert jobs.load_job(session, job_id).enqueued_at == first  # type: ignore[union-attr]
        assert synchronous_commit(session) == "on"  # the pooled connection's next transaction is durable again


def test_the_enqueued_mark_is_committed_once_on_either_database(settings: Settings, keys: TenantKeys) -> None:
    """On SQLite the same statement runs through Core, in a transaction of its own."""
    job_id = staged_job(settings, keys)
    assert jobs.mark_enqueued(job_id) is True
    assert jobs.mark_enqueued(job_id) is False
    assert jobs.mark_enqueued("job_" + "0" * 24) is False
    with session_scope() as session:
        assert session.execute(select(jobs.Job.enqueued_at).where(jobs.Job.id == job_id)).scalar() is not None

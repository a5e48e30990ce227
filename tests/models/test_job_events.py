"""On PostgreSQL, a stage's end announces the job's new state from its own statement
(``job_events.notify_column``): the payload built in SQL reads back as the state committed."""

from __future__ import annotations

import psycopg
import pytest

from models import job as jobs
from models import job_ending, job_events
from models.db import session_scope


def test_a_stage_end_announces_the_state_it_committed(postgres_job: str, on_postgres: str) -> None:
    job_id = postgres_job
    with session_scope() as session:
        jobs.begin_stage(session, job_id, "assemble", "test:1")
    with psycopg.connect(on_postgres.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as listener:
        listener.execute(f"LISTEN {job_events.CHANNEL}")
        assert jobs.advance_stage(job_id, "assemble", size=1) == jobs.Advance.ADVANCED
        (notification,) = list(listener.notifies(timeout=5, stop_after=1))
    with session_scope() as session:
        job = jobs.load_job(session, job_id)
        assert job is not None
        committed = job_events.JobState.of(job)
    announced = job_events.JobState.from_payload(notification.payload)
    assert announced == committed and announced.cursor == committed.cursor
    assert (announced.status, announced.stage, announced.progress) == ("processing", "upload", pytest.approx(0.15))


def test_completing_a_job_announces_it(postgres_job: str, on_postgres: str) -> None:
    job_id = postgres_job
    with session_scope() as session:
        jobs.begin_stage(session, job_id, "assemble", "test:1")
    jobs.advance_stage(job_id, "assemble", size=1)
    jobs.advance_stage(job_id, "upload", through="extract", result={})
    with psycopg.connect(on_postgres.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as listener:
        listener.execute(f"LISTEN {job_events.CHANNEL}")
        with session_scope() as session:
            row, completed = job_ending.complete_or_read(session, job_id)
            assert completed and row is not None
        (notification,) = list(listener.notifies(timeout=5, stop_after=1))
    announced = job_events.JobState.from_payload(notification.payload)
    assert announced == job_events.JobState.of(row)
    assert (announced.status, announced.stage, announced.progress) == ("completed", None, 1.0)


def test_a_stage_start_announces_a_visible_change_and_nothing_else(postgres_job: str, on_postgres: str) -> None:
    """The announcement is a column of the start's own statement, evaluated only on a change."""
    job_id = postgres_job
    with psycopg.connect(on_postgres.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as listener:
        listener.execute(f"LISTEN {job_events.CHANNEL}")
        with session_scope() as session:  # queued → processing
            assert jobs.begin_stage(session, job_id, "assemble", "test:1").verdict == jobs.StageVerdict.RUN
        (notification,) = list(listener.notifies(timeout=5, stop_after=1))
        with session_scope() as session:
            job = jobs.load_job(session, job_id)
            assert job is not None
            assert job_events.JobState.from_payload(notification.payload) == job_events.JobState.of(job)
        with session_scope() as session:  # a redelivery: the same status, stage and progress
            assert jobs.begin_stage(session, job_id, "assemble", "test:2").verdict == jobs.StageVerdict.RUN
        assert list(listener.notifies(timeout=0.5)) == []
        with session_scope() as session:  # a start that is rolled back announces nothing either
            jobs.begin_stage(session, job_id, "upload", "test:3")
            session.rollback()
        assert list(listener.notifies(timeout=0.5)) == []

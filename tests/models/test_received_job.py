"""A file received whole and its job in one statement (PostgreSQL): the same rows, and the same
notification, as the statements it replaces; elsewhere those statements themselves."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from models import job as jobs
from models import job_events, received_job
from models import upload as uploads
from models.db import database, session_scope
from models.errors import TooLarge
from models.settings import Settings
from models.tenant import issue_key

#: Columns that differ between two recordings of the same file by nature.
VARYING = {"id", "upload_id", "job_id", "created_at", "updated_at", "completed_at", "expires_at", "received_at"}


def record(settings: Settings, tenant_id: str, size: int, *, one_statement: bool) -> tuple[str, str]:
    """Record a received file and its job either way; (job id, upload id)."""
    job_id = jobs.new_job_id()
    arrival = uploads.FileArrival(job_id, "a.pdf", size, "ab" * 32, "application/pdf", "http://127.0.0.1:9/hook",
                                  {"order": 7}, "always")  # fmt: skip
    with session_scope() as session:
        if one_statement:
            received = received_job.record_received_job(session, tenant_id, settings, arrival)
        else:
            received = uploads.record_received_file(session, tenant_id, settings, arrival)
            jobs.insert_job(session, job_id, received)
    return job_id, received.id


def rows(job_id: str, upload_id: str) -> dict[str, Any]:
    """Every row the recording made, without the columns that differ by nature."""
    found: dict[str, Any] = {}
    with database().engine.connect() as connection:
        for table, key, value in (("uploads", "id", upload_id), ("upload_chunks", "upload_id", upload_id),
                                  ("jobs", "id", job_id)):  # fmt: skip
            result = connection.execute(sa.text(f"SELECT * FROM {table} WHERE {key} = :v"), {"v": value}).mappings()
            found[table] = [{k: v for k, v in row.items() if k not in VARYING} for row in result]
    return found


@pytest.mark.parametrize("size", [1234, 0])
def test_one_statement_records_what_the_four_did(settings: Settings, on_postgres: str, size: int) -> None:
    with session_scope() as session:
        tenant_id = issue_key(session, "acme").tenant_id
    listener_url = on_postgres.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(listener_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {job_events.CHANNEL}")
        before = record(settings, tenant_id, size, one_statement=False)
        after = record(settings, tenant_id, size, one_statement=True)
        old, new = (job_events.JobState.from_payload(n.payload) for n in listener.notifies(timeout=5, stop_after=2))
    assert rows(*after) == rows(*before)
    assert len(rows(*after)["upload_chunks"]) == (1 if size else 0) and len(rows(*after)["jobs"]) == 1
    assert (new.job_id, old.job_id) == (after[0], before[0])
    assert (new.tenant_id, new.status, new.stage, new.progress) == (old.tenant_id, old.status, old.stage, old.progress)
    with session_scope() as session:
        job = jobs.load_job(session, after[0])
        assert job is not None and job.upload_id == after[1]
        assert job_events.JobState.of(job) == new


def test_its_checks_come_first(settings: Settings, on_postgres: str) -> None:
    with session_scope() as session:
        tenant_id = issue_key(session, "acme").tenant_id
    with pytest.raises(TooLarge):
        record(settings, tenant_id, settings.max_upload_size + 1, one_statement=True)
    with database().engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM jobs")).scalar_one() == 0


def test_elsewhere_the_statements_run_one_by_one(settings: Settings) -> None:
    with session_scope() as session:
        tenant_id = issue_key(session, "acme").tenant_id
    assert rows(*record(settings, tenant_id, 10, one_statement=True)) == rows(
        *record(settings, tenant_id, 10, one_statement=False)
    )

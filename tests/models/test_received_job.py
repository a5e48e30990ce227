"""A file received whole and its job in one statement (PostgreSQL): the same rows, and the same
notification, as the statements it replaces; elsewhere those statements themselves."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from models import job as jobs
from models import job_events, quota, received_job
from models import upload as uploads
from models.db import database, session_scope
from models.errors import QuotaExceeded, TooLarge
from models.settings import Settings
from models.tenant import Tenant, issue_key

#: Columns that differ between two recordings of the same file by nature.
VARYING = {"id", "upload_id", "job_id", "created_at", "updated_at", "completed_at", "expires_at", "received_at"}


def record(
    settings: Settings, tenant_id: str, size: int, *, one_statement: bool, reserve: int | None = None
) -> tuple[str, str]:
    """Record a received file and its job either way (``reserve``: with the check of that many
    jobs in flight); (job id, upload id)."""
    job_id = jobs.new_job_id()
    arrival = uploads.FileArrival(job_id, "a.pdf", size, "ab" * 32, "application/pdf", "http://127.0.0.1:9/hook",
                                  {"order": 7}, "always")  # fmt: skip
    with session_scope() as session:
        if one_statement:
            reservation = None
            if reserve is not None:
                reservation = received_job.Reservation(quota.lock_limits(session, tenant_id, settings), reserve)
            received = received_job.record_received_job(session, tenant_id, settings, arrival, reservation)
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


@pytest.mark.parametrize("reserve", [None, 1])
@pytest.mark.parametrize("size", [1234, 0])
def test_one_statement_records_what_the_four_did(
    settings: Settings, on_postgres: str, size: int, reserve: int | None
) -> None:
    with session_scope() as session:
        tenant_id = issue_key(session, "acme").tenant_id
    listener_url = on_postgres.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(listener_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {job_events.CHANNEL}")
        before = record(settings, tenant_id, size, one_statement=False)
        after = record(settings, tenant_id, size, one_statement=True, reserve=reserve)
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


def counts() -> tuple[int, int, int]:
    with database().engine.connect() as connection:
        return tuple(  # type: ignore[return-value]
            connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("uploads", "upload_chunks", "jobs")
        )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_tenant_with_no_room_is_refused_and_nothing_is_recorded(
    request: pytest.FixtureRequest, settings: Settings, backend: str
) -> None:
    """On PostgreSQL the count is the statement's own CTE; on SQLite a statement before the inserts."""
    if backend == "postgresql":
        request.getfixturevalue("on_postgres")
    with session_scope() as session:
        tenant_id = issue_key(session, "acme").tenant_id
        session.execute(sa.update(Tenant).where(Tenant.id == tenant_id).values(max_jobs_in_flight=2))
    record(settings, tenant_id, 10, one_statement=True, reserve=1)
    assert counts() == (1, 1, 1)
    with pytest.raises(QuotaExceeded) as refused:
        record(settings, tenant_id, 10, one_statement=True, reserve=2)  # a batch of two: one slot is left
    assert refused.value.code == "jobs_in_flight_quota_exceeded"
    assert refused.value.details == {"quota": "jobs_in_flight", "limit": 2, "used": 1}
    assert counts() == (1, 1, 1)
    record(settings, tenant_id, 0, one_statement=True, reserve=1)  # the last slot, an empty file (no chunk)
    assert counts() == (2, 1, 2)
    with pytest.raises(QuotaExceeded):
        record(settings, tenant_id, 0, one_statement=True, reserve=1)
    assert counts() == (2, 1, 2)


def test_two_requests_of_one_tenant_cannot_both_take_its_last_slot(settings: Settings, on_postgres: str) -> None:
    """The first holds the tenant's row (``lock_limits``) until it commits; the second's
    reserving statement starts after that lock, so its count sees the first one's job."""
    with session_scope() as session:
        tenant_id = issue_key(session, "acme").tenant_id
        session.execute(sa.update(Tenant).where(Tenant.id == tenant_id).values(max_jobs_in_flight=1))
    arrival = uploads.FileArrival(jobs.new_job_id(), "a.pdf", 0, "ab" * 32, "application/pdf", None, None, "never")
    first_locked, release = threading.Event(), threading.Event()
    outcome: list[BaseException | None] = []

    def second() -> None:
        first_locked.wait(10)
        try:
            record(settings, tenant_id, 0, one_statement=True, reserve=1)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 (reported to the test's thread)
            outcome.append(e)

    other = threading.Thread(target=second)
    other.start()
    with session_scope() as session:
        reservation = received_job.Reservation(quota.lock_limits(session, tenant_id, settings), 1)
        first_locked.set()
        release.wait(0.5)  # the second request now waits on the tenant's row
        received_job.record_received_job(session, tenant_id, settings, arrival, reservation)
    other.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], QuotaExceeded)
    assert counts() == (1, 0, 1)

"""The status read on the driver's own connection: the same view as through Core, and what the engine
would do around it (errors as SQLAlchemy's, broken connections dropped, the pool left as it was)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from types import SimpleNamespace

import psycopg
import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import bindparam, create_engine, exc, literal, select, update

from models import fastread
from models import job as jobs
from models import upload as uploads
from models.db import database, session_scope
from models.errors import NotFound
from models.settings import configure, current_settings
from models.tenant import issue_key
from models.views import job_status, read_job_view
from tests.support import services


def new_job() -> tuple[str, str]:
    """A tenant and a job of it that has metadata, a webhook and an error (every kind of column)."""
    with session_scope() as session:
        tenant_id = issue_key(session, "acme").tenant_id
        upload = uploads.create_upload(session, tenant_id, current_settings(), filename="a.txt", size=0,
                                       webhook_url="http://127.0.0.1:9/hook", metadata={"k": ["v", 1]})  # fmt: skip
        job_id = jobs.create_job(session, upload)
        session.execute(update(jobs.Job).where(jobs.Job.id == job_id)
                        .values(error_code="corrupt_file", error_message="no", progress=0.5))  # fmt: skip
    return tenant_id, job_id


@pytest.mark.usefixtures("on_postgres")
def test_it_reads_what_core_reads() -> None:
    tenant_id, job_id = new_job()
    with session_scope() as session:
        expected = read_job_view(session, tenant_id, job_id)
    for _ in range(3):  # the first reads, then the prepared statement
        assert job_status(tenant_id, job_id).model_dump_json() == expected.model_dump_json()
    assert expected.metadata == {"k": ["v", 1]} and expected.webhook is not None
    assert expected.model_dump(mode="json")["created_at"].endswith("Z")
    with pytest.raises(NotFound):
        job_status("ten_someone_else", job_id)


@pytest.mark.usefixtures("on_postgres")
def test_the_pooled_connection_goes_back_as_it_came() -> None:
    tenant_id, job_id = new_job()
    engine = database().engine
    engine.dispose()  # an empty pool: the read makes the one connection the next checkout gets
    job_status(tenant_id, job_id)
    pooled = engine.raw_connection()
    try:
        assert pooled.driver_connection.autocommit is False  # type: ignore[union-attr]
        assert pooled.driver_connection.info.transaction_status == TransactionStatus.IDLE  # type: ignore[union-attr]
    finally:
        pooled.close()
    with session_scope() as session:  # an ordinary transaction on it still rolls back
        session.execute(update(jobs.Job).where(jobs.Job.id == job_id).values(progress=0.9))
        session.rollback()
    assert job_status(tenant_id, job_id).progress == 0.5


@pytest.mark.usefixtures("on_postgres")
def test_a_broken_connection_fails_once_and_leaves_the_pool() -> None:
    tenant_id, job_id = new_job()
    engine = database().engine
    engine.dispose()
    job_status(tenant_id, job_id)
    pooled = engine.raw_connection()
    backend = pooled.driver_connection.info.backend_pid  # type: ignore[union-attr]
    pooled.close()
    with psycopg.connect(services.POSTGRES_ADMIN_URL, autocommit=True) as admin:  # outside the pool
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    with pytest.raises(exc.OperationalError) as failed:
        job_status(tenant_id, job_id)
    assert failed.value.connection_invalidated
    assert job_status(tenant_id, job_id).job_id == job_id  # on a new connection


@pytest.mark.usefixtures("on_postgres")
def test_a_database_that_is_down_is_sqlalchemys_error() -> None:
    """The API's handler of SQLAlchemy's OperationalError answers 503 (tests/web/test_uploads.py)."""
    configure(dataclasses.replace(current_settings(), database_url="postgresql+psycopg://nobody@127.0.0.1:1/none"))
    with pytest.raises(exc.OperationalError):
        job_status("ten_x", "job_" + "0" * 24)


@pytest.mark.usefixtures("on_postgres")
def test_a_pooled_connection_keeps_one_cursor_for_its_reads() -> None:
    tenant_id, job_id = new_job()
    engine = database().engine
    engine.dispose()
    job_status(tenant_id, job_id)
    pooled = engine.raw_connection()
    try:
        cursor = pooled.info[fastread._CURSOR]
        assert cursor.connection is pooled.driver_connection
    finally:
        pooled.close()
    assert job_status(tenant_id, job_id).progress == 0.5
    pooled = engine.raw_connection()
    try:
        assert pooled.info[fastread._CURSOR] is cursor  # the same connection, the same cursor
    finally:
        pooled.close()


@pytest.mark.usefixtures("on_postgres")
def test_within_a_session_it_is_one_of_the_sessions_statements() -> None:
    """``begin_stage`` runs on the session's driver connection: what it returns is what Core reads
    in the same transaction, and a rollback takes it back."""
    _, job_id = new_job()
    with session_scope() as session:
        run = jobs.begin_stage(session, job_id, "assemble", "test:1")
        assert run.verdict == jobs.StageVerdict.RUN and run.job is not None
        assert run.job == jobs.snapshot(session, job_id)  # the update is visible in the transaction
        session.rollback()
    with session_scope() as session:
        job = jobs.load_job(session, job_id)
        assert job is not None and (job.status, job.run_id, job.attempts) == (jobs.QUEUED, None, 0)
    with session_scope() as session:
        run = jobs.begin_stage(session, job_id, "assemble", "test:2")
    with session_scope() as session:
        job = jobs.load_job(session, job_id)
        assert job is not None and (job.status, job.run_id) == (jobs.PROCESSING, run.run_id)


@pytest.mark.usefixtures("on_postgres")
def test_within_a_session_a_broken_connection_fails_once_and_leaves_the_pool() -> None:
    _, job_id = new_job()
    engine = database().engine
    engine.dispose()
    with pytest.raises(exc.OperationalError) as failed, session_scope() as session:
        backend = session.connection().connection.driver_connection.info.backend_pid  # type: ignore[union-attr]
        with psycopg.connect(services.POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        jobs.begin_stage(session, job_id, "assemble", "test:1")
    assert failed.value.connection_invalidated
    with session_scope() as session:  # a new connection
        assert jobs.begin_stage(session, job_id, "assemble", "test:2").verdict == jobs.StageVerdict.RUN


@pytest.mark.parametrize("database_kind", ["sqlite", "postgresql"])
def test_a_stage_end_binds_its_values_as_core_does(database_kind: str, request: pytest.FixtureRequest) -> None:
    """``advance_stage`` writes JSON columns through its parameters' own bind processors: what it
    stored reads back through the ORM as written, and a naive timestamp is
    refused as ``UtcDateTime`` refuses it through a session."""
    if database_kind == "postgresql":
        request.getfixturevalue("on_postgres")
    _, job_id = new_job()
    with session_scope() as session:
        jobs.begin_stage(session, job_id, "assemble", "test:1")
    result = {"text": "é\u2028", "pages": [1, 2], "nested": {"none": None}}
    assert jobs.advance_stage(job_id, "assemble", size=7, parts=None, result=result) == jobs.Advance.ADVANCED
    with session_scope() as session:
        job = jobs.load_job(session, job_id)
        assert job is not None and (job.size, job.result, job.parts, job.stage) == (7, result, None, "upload")
    statement = jobs._advance_statement("upload", "upload", ("size",), database_kind == "postgresql")
    with pytest.raises((ValueError, exc.StatementError), match="naive datetime"):
        statement.one_or_none(job_id=job_id, size=1, now=datetime(2026, 1, 1))  # noqa: DTZ001 (the point)


def test_a_column_left_to_a_python_default_is_refused() -> None:
    """Core would compute ``updated_at``'s onupdate per execution; a prebuilt statement would bind
    it once, as NULL: it must set the column itself."""
    with pytest.raises(ValueError, match="updated_at"):
        fastread.FastRead(update(jobs.JOBS).values(progress=bindparam("p")).returning(jobs.JOBS.c.id))


def test_an_in_of_bound_values_is_refused() -> None:
    """Core expands an IN of bound values into one parameter per value at each execution; the
    prebuilt SQL would keep its placeholder and fail, or match nothing."""
    with pytest.raises(ValueError, match="expanding IN"):
        fastread.FastRead(select(jobs.JOBS.c.id).where(jobs.JOBS.c.status.in_((jobs.QUEUED, jobs.PROCESSING))))


def test_a_socket_that_failed_under_the_driver_is_a_lost_connection() -> None:
    """psycopg's own "connection socket closed" (no SQLSTATE) leaves its connection looking good:
    it is a lost connection all the same, while an error the server answered (a statement
    timeout) is not, and nor is an error of another kind."""
    dialect = create_engine("postgresql+psycopg://nobody@127.0.0.1/none").dialect  # never connects
    looks_good = SimpleNamespace(closed=False, broken=False)
    assert fastread._lost(dialect, psycopg.OperationalError("connection socket closed"), looks_good)
    assert not fastread._lost(dialect, psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
                              looks_good)  # fmt: skip
    assert not fastread._lost(dialect, psycopg.errors.UniqueViolation("duplicate key"), looks_good)
    assert fastread._lost(dialect, psycopg.errors.UniqueViolation("x"), SimpleNamespace(closed=False, broken=True))


@pytest.mark.usefixtures("on_postgres")
@pytest.mark.parametrize(
    ("error", "lost"),
    [(psycopg.OperationalError("connection socket closed"), True),
     (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), False)],
)  # fmt: skip
def test_core_counts_the_same_errors_as_a_lost_connection(
    monkeypatch: pytest.MonkeyPatch, error: Exception, lost: bool
) -> None:
    """A session's own statements (Core) invalidate their connection on the errors FastRead does."""
    engine = database().engine

    def failing(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(engine.dialect, "do_execute", failing)
    with engine.connect() as connection, pytest.raises(exc.DBAPIError) as failed:
        connection.execute(select(literal(1)))
    assert failed.value.connection_invalidated is lost

"""A tenant's row looked up by its id reads that row alone, even where PostgreSQL has no statistics.

Given ``id = … AND tenant_id = …``, a planner that has not yet analyzed the table (a new
database before autovacuum's first ANALYZE, one just restored from a dump) weighs both indexes
alike and may scan the tenant's index, filtering every row of the tenant for the one id: a
status GET read all 400 of the benchmark tenant's jobs that way. These lookups filter on the
primary key alone and check the tenant on the row (``models.db.of_tenant``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, text

from models import job as jobs
from models import upload, views
from models.db import database, session_scope
from models.errors import NotFound
from tests.support.plans import JOBS, UPLOADS, job_id, plan, upload_id

#: The tenant's rows, never analyzed: many of them, so a scan of the tenant's costs.
ROWS = 2000
#: A job and an upload of the tenant, and of another tenant.
JOB, OTHERS_JOB = job_id("busy", 7), job_id("other", 7)
UPLOAD, OTHERS_UPLOAD = upload_id("busy", 7), upload_id("other", 7)


@pytest.fixture
def unanalyzed(on_postgres: str) -> None:
    """``ROWS`` jobs and uploads of the tenant ``busy``, and of ``other``, with no statistics."""
    with database().engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        for tenant in ("busy", "other"):
            connection.execute(text(JOBS), {"tenant": tenant, "live": 0, "count": ROWS})
            connection.execute(text(UPLOADS), {"tenant": tenant, "live": 0, "count": ROWS})


@contextmanager
def _statements() -> Iterator[list[tuple[str, Any]]]:
    """The statements run through the engine meanwhile, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    engine = database().engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _plans_of(call: Callable[[Any], object]) -> str:
    """The plans of the statements ``call(session)`` runs."""
    with _statements() as seen, session_scope() as session:
        call(session)
    with database().engine.connect() as connection:
        return "\n".join(row[0] for statement, parameters in seen
                         for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters))  # fmt: skip


def _by_primary_key(plan_text: str, table: str) -> None:
    assert f"pk_{table}" in plan_text, plan_text
    assert f"ix_{table}_tenant_id" not in plan_text, plan_text


def test_the_status_read_reads_one_job(unanalyzed: None) -> None:
    _by_primary_key(plan(views._STATUS_BY_ID.params(job_id=JOB)), "jobs")

    assert views.job_status("busy", JOB).job_id == JOB
    with pytest.raises(NotFound):
        views.job_status("busy", OTHERS_JOB)
    with session_scope() as session:
        assert views.read_job_view(session, "busy", JOB).job_id == JOB
        with pytest.raises(NotFound):
            views.read_job_view(session, "busy", OTHERS_JOB)


@pytest.mark.parametrize("for_update", [False, True])
def test_a_job_is_read_by_its_id(unanalyzed: None, for_update: bool) -> None:
    _by_primary_key(_plans_of(lambda s: jobs.get_job(s, "busy", JOB, for_update=for_update)), "jobs")

    with session_scope() as session, pytest.raises(NotFound):
        jobs.get_job(session, "busy", OTHERS_JOB, for_update=for_update)


@pytest.mark.parametrize("for_update", [False, True])
def test_an_upload_is_read_by_its_id(unanalyzed: None, for_update: bool) -> None:
    _by_primary_key(_plans_of(lambda s: upload.get_upload(s, "busy", UPLOAD, for_update=for_update)), "uploads")

    with session_scope() as session, pytest.raises(NotFound):
        upload.get_upload(session, "busy", OTHERS_UPLOAD, for_update=for_update)


def test_a_chunk_puts_read_of_its_upload_reads_one_upload(unanalyzed: None) -> None:
    for statement in (upload._CHUNK_TARGET, upload._CHUNK_TARGET.with_for_update()):
        _by_primary_key(plan(statement.params(upload_id=UPLOAD)), "uploads")

"""A quota's count reads the tenant's own rows in flight, not every tenant's: one tenant's backlog
must not slow another's submits (the partial indexes ``ix_jobs_in_flight`` and ``ix_uploads_open``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from models import quota
from models.db import database, session_scope

#: Jobs written past the foreign keys (``session_replication_role``): in flight up to ``live``.
JOBS = """
INSERT INTO jobs (id, tenant_id, upload_id, filename, size, status, progress, attempts, stage_attempts,
                  run_isolated, lost_runs, crashes, created_at, updated_at)
SELECT 'job_' || :tenant || i, :tenant, 'upl_' || :tenant || i, 'f', 1,
       CASE WHEN i <= :live THEN 'queued' ELSE 'completed' END, 0, 0, 0, false, 0, 0, now(), now()
FROM generate_series(1, :count) AS i
"""

#: Uploads written the same way, open (``receiving``) up to ``live``, complete past it.
UPLOADS = """
INSERT INTO uploads (id, tenant_id, filename, size, chunk_size, chunk_count, status, created_at, expires_at)
SELECT 'upl_' || :tenant || i, :tenant, 'f', 100, 100, 1,
       CASE WHEN i <= :live THEN 'receiving' ELSE 'complete' END, now(), now()
FROM generate_series(1, :count) AS i
"""


def _busy_and_quiet(rows: str, table: str, busy: int, quiet: int) -> None:
    """A busy tenant whose ``busy`` rows are all in flight, and a quiet one with ``quiet`` in
    flight among 2,000; the table analyzed, so that the planner knows who holds what."""
    with database().engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        connection.execute(text(rows), {"tenant": "busy", "live": busy, "count": busy})
        connection.execute(text(rows), {"tenant": "quiet", "live": quiet, "count": 2000})
        connection.exec_driver_sql(f"ANALYZE {table}")


def _plan(statement: Any) -> str:
    sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    with database().engine.connect() as connection:
        return "\n".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + sql))


def test_the_count_reads_the_tenants_jobs_in_flight_only(on_postgres: str) -> None:
    # Another tenant's backlog, and this tenant's three jobs in flight among its finished ones.
    _busy_and_quiet(JOBS, "jobs", busy=5000, quiet=3)
    plan = _plan(quota.IN_FLIGHT.params(tenant_id="quiet"))
    with session_scope() as session:
        in_flight = quota.in_flight(session, "quiet")

    assert in_flight == 3
    # Without the partial index: an index scan of every queued job, the busy tenant's 5,000 too.
    assert "ix_jobs_in_flight" in plan, plan


def test_the_count_reads_the_tenants_open_uploads_only(on_postgres: str) -> None:
    _busy_and_quiet(UPLOADS, "uploads", busy=5000, quiet=3)
    plan = _plan(quota.OPEN_UPLOADS.params(tenant_id="quiet"))
    with session_scope() as session:
        usage = quota.usage_of(session, "quiet")

    assert (usage.open_uploads, usage.staged_bytes, usage.jobs_in_flight) == (3, 300, 0)
    # Without the partial index: an index scan of every open upload, the busy tenant's 5,000 too.
    assert "ix_uploads_open" in plan, plan

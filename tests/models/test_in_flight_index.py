"""The jobs-in-flight count of a submit reads the tenant's jobs in flight, not another's backlog."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from models import quota
from models.db import database, session_scope

#: Rows written past the foreign keys (``session_replication_role``): only the jobs table matters.
JOBS = """
INSERT INTO jobs (id, tenant_id, upload_id, filename, size, status, progress, attempts, stage_attempts,
                  run_isolated, lost_runs, crashes, created_at, updated_at)
SELECT 'job_' || :tenant || i, :tenant, 'upl_' || :tenant || i, 'f', 1,
       CASE WHEN i <= :in_flight THEN 'queued' ELSE 'completed' END, 0, 0, 0, false, 0, 0, now(), now()
FROM generate_series(1, :count) AS i
"""


def test_the_count_reads_the_tenants_jobs_in_flight_only(on_postgres: str) -> None:
    with database().engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        # Another tenant's backlog, and this tenant's three jobs in flight among its finished ones.
        connection.execute(text(JOBS), {"tenant": "busy", "in_flight": 5000, "count": 5000})
        connection.execute(text(JOBS), {"tenant": "quiet", "in_flight": 3, "count": 2000})
        connection.exec_driver_sql("ANALYZE jobs")
    count = quota.IN_FLIGHT.params(tenant_id="quiet")
    sql = str(count.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))

    with database().engine.connect() as connection:
        plan = "\n".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + sql))
    with session_scope() as session:
        in_flight = quota.in_flight(session, "quiet")

    assert in_flight == 3
    # Without the partial index: an index scan of every queued job, the busy tenant's 5,000 too.
    assert "ix_jobs_in_flight" in plan, plan

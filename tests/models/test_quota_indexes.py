"""A quota's count reads the tenant's own rows in flight, not every tenant's: one tenant's backlog
must not slow another's submits (the partial indexes ``ix_jobs_in_flight`` and ``ix_uploads_open``)."""

from __future__ import annotations

from sqlalchemy import text

from models import quota
from models.db import database, session_scope
from tests.support.plans import JOBS, UPLOADS, plan


def _busy_and_quiet(rows: str, table: str, busy: int, quiet: int) -> None:
    """A busy tenant whose ``busy`` rows are all in flight, and a quiet one with ``quiet`` in
    flight among 2,000; the table analyzed, so that the planner knows who holds what."""
    with database().engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        connection.execute(text(rows), {"tenant": "busy", "live": busy, "count": busy})
        connection.execute(text(rows), {"tenant": "quiet", "live": quiet, "count": 2000})
        connection.exec_driver_sql(f"ANALYZE {table}")


def test_the_count_reads_the_tenants_jobs_in_flight_only(on_postgres: str) -> None:
    # Another tenant's backlog, and this tenant's three jobs in flight among its finished ones.
    _busy_and_quiet(JOBS, "jobs", busy=5000, quiet=3)
    plan_text = plan(quota.IN_FLIGHT.params(tenant_id="quiet"))
    with session_scope() as session:
        in_flight = quota.in_flight(session, "quiet")

    assert in_flight == 3
    # Without the partial index: an index scan of every queued job, the busy tenant's 5,000 too.
    assert "ix_jobs_in_flight" in plan_text, plan_text


def test_the_count_reads_the_tenants_open_uploads_only(on_postgres: str) -> None:
    _busy_and_quiet(UPLOADS, "uploads", busy=5000, quiet=3)
    plan_text = plan(quota.OPEN_UPLOADS.params(tenant_id="quiet"))
    with session_scope() as session:
        usage = quota.usage_of(session, "quiet")

    assert (usage.open_uploads, usage.staged_bytes, usage.jobs_in_flight) == (3, 300, 0)
    # Without the partial index: an index scan of every open upload, the busy tenant's 5,000 too.
    assert "ix_uploads_open" in plan_text, plan_text

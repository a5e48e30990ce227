"""Tests of query plans: many rows of a tenant at once, and what PostgreSQL plans for a statement.

The rows are written in SQL past the foreign keys: run ``JOBS`` and ``UPLOADS`` inside a
transaction that set ``session_replication_role = replica`` (no tenant, upload or job they
point to need exist). Parameters: ``tenant``, ``count`` and ``live`` (rows up to ``live`` are
in flight: queued jobs, receiving uploads; the rest finished).
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy.dialects import postgresql

from models.db import database

#: Jobs ``job_id(tenant, i)`` of uploads ``upload_id(tenant, i)``, i from 1.
JOBS = """
INSERT INTO jobs (id, tenant_id, upload_id, filename, size, status, progress, attempts, stage_attempts,
                  run_isolated, lost_runs, crashes, created_at, updated_at)
SELECT 'job_' || left(md5(:tenant || i), 24), :tenant, 'upl_' || left(md5(:tenant || i), 24), 'f', 1,
       CASE WHEN i <= :live THEN 'queued' ELSE 'completed' END, 0, 0, 0, false, 0, 0, now(), now()
FROM generate_series(1, :count) AS i
"""

#: Uploads ``upload_id(tenant, i)`` of 100 bytes in one chunk.
UPLOADS = """
INSERT INTO uploads (id, tenant_id, filename, size, chunk_size, chunk_count, status, created_at, expires_at)
SELECT 'upl_' || left(md5(:tenant || i), 24), :tenant, 'f', 100, 100, 1,
       CASE WHEN i <= :live THEN 'receiving' ELSE 'complete' END, now(), now()
FROM generate_series(1, :count) AS i
"""


def plan(statement: Any) -> str:
    """PostgreSQL's plan (``EXPLAIN``) of a Core statement, its parameters' values written in."""
    sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    with database().engine.connect() as connection:
        return "\n".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + sql))


def job_id(tenant: str, i: int) -> str:
    """The id ``JOBS`` gives the tenant's ``i``-th job (a valid job id)."""
    return "job_" + _hex(tenant, i)


def upload_id(tenant: str, i: int) -> str:
    """The id ``UPLOADS`` gives the tenant's ``i``-th upload."""
    return "upl_" + _hex(tenant, i)


def _hex(tenant: str, i: int) -> str:
    """What the SQL's ``left(md5(:tenant || i), 24)`` makes."""
    return hashlib.md5(f"{tenant}{i}".encode()).hexdigest()[:24]

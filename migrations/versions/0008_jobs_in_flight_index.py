"""jobs: a partial index of the jobs in flight, by tenant

Every submit counts the tenant's queued and processing jobs (the jobs-in-flight quota). With
only the indexes of the tenant and of the status, PostgreSQL read every queued job of every
tenant for it (2.8 ms for a tenant with 300 in flight while another had a backlog of 30,000;
0.06 ms with this index): one tenant's backlog slowed every other tenant's submits.

On PostgreSQL the index is built concurrently, so that jobs keep being written meanwhile.

Revision ID: 0008
Revises: 0002
Create Date: 2026-11-24 06:10:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: As ``models.job.IN_FLIGHT_SQL`` when this revision was written (a migration keeps its own copy).
IN_FLIGHT = "status IN ('queued', 'processing')"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_jobs_in_flight",
            "jobs",
            ["tenant_id"],
            unique=False,
            postgresql_where=sa.text(IN_FLIGHT),
            sqlite_where=sa.text(IN_FLIGHT),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_jobs_in_flight", table_name="jobs", postgresql_concurrently=True)

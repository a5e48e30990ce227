"""uploads: a partial index of the open uploads, by tenant

Every upload's creation counts the tenant's open uploads and sums the bytes they declared (the
open-uploads and staged-bytes quotas). With only the indexes of the tenant and of the status,
PostgreSQL read every open upload of every tenant for it (1.9 ms for a tenant with 3 open uploads
while another had 20,000 open): one tenant's open uploads slowed every other tenant's.

On PostgreSQL the index is built concurrently, so that uploads keep being written meanwhile.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 06:15:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: As ``models.upload.OPEN_SQL`` when this revision was written (a migration keeps its own copy).
OPEN = "status = 'receiving'"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_uploads_open",
            "uploads",
            ["tenant_id"],
            unique=False,
            postgresql_where=sa.text(OPEN),
            sqlite_where=sa.text(OPEN),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_uploads_open", table_name="uploads", postgresql_concurrently=True)

"""job events: an index for the changes of one tenant's jobs since a moment

Live progress resumes (Last-Event-ID) and catches up (after the LISTEN connection broke) by
reading a tenant's jobs updated after a moment, oldest first; without this index that reads
every job the tenant ever had.

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-22 23:58:00

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_tenant_id_updated_at", ["tenant_id", "updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_tenant_id_updated_at")

"""attempt model (runs, lost runs, crashes) and cleanup tasks

Revision ID: 0002
Revises: 0003
Create Date: 2026-11-22 23:30:00

A job now remembers the run of its current stage in flight (``run_id``, ``run_owner``,
``run_isolated``) so that a redelivery can tell a crash from a Dramatiq retry, and counts
``lost_runs`` (a shared process died) apart from ``crashes`` (its own process died). Storage
a failed or cancelled job leaves behind is remembered in ``cleanup_tasks`` until it is gone.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("run_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("run_owner", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("run_isolated", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("lost_runs", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("crashes", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "cleanup_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("multipart_id", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cleanup_tasks")),
    )
    op.create_index(op.f("ix_cleanup_tasks_job_id"), "cleanup_tasks", ["job_id"], unique=False)
    op.create_index(op.f("ix_cleanup_tasks_next_attempt_at"), "cleanup_tasks", ["next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_cleanup_tasks_next_attempt_at"), table_name="cleanup_tasks")
    op.drop_index(op.f("ix_cleanup_tasks_job_id"), table_name="cleanup_tasks")
    op.drop_table("cleanup_tasks")
    with op.batch_alter_table("jobs") as batch:
        for column in ("crashes", "lost_runs", "run_isolated", "run_owner", "run_id"):
            batch.drop_column(column)

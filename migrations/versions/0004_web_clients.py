"""web clients: tus uploads, upload tokens, CORS origins

Revision ID: 0004
Revises: 0006
Create Date: 2026-11-22 23:30:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("offset", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("length_deferred", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("concat", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("concat_parts", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("credential_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("allowed_types", sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f("ix_uploads_credential_id"), ["credential_id"], unique=False)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credential_id", sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_credential_id"), ["credential_id"], unique=False)
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cors_origins", sa.JSON(), nullable=True))
    op.create_table(
        "upload_token_usage",
        sa.Column("token_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_upload_token_usage_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_upload_token_usage")),
    )
    with op.batch_alter_table("upload_token_usage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_upload_token_usage_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("upload_token_usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upload_token_usage_tenant_id"))
    op.drop_table("upload_token_usage")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("cors_origins")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_credential_id"))
        batch_op.drop_column("credential_id")
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uploads_credential_id"))
        batch_op.drop_column("allowed_types")
        batch_op.drop_column("credential_id")
        batch_op.drop_column("concat_parts")
        batch_op.drop_column("concat")
        batch_op.drop_column("length_deferred")
        batch_op.drop_column("offset")

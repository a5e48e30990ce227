"""uploads.ocr: what the upload asked of OCR (auto, always, never)

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-22 23:50:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Every existing upload keeps the default, ``auto``."""
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ocr", sa.String(length=8), server_default="auto", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_column("ocr")

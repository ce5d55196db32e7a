"""grid: each cell's street and community

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 07:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grid_cells", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("street", sa.String(length=50), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("community", sa.String(length=50), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("grid_cells", schema=None) as batch_op:
        batch_op.drop_column("community")
        batch_op.drop_column("street")

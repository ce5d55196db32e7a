"""brain: the versions of each topic of data, the cockpit's summaries, open API calls per day

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 23:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_changes",
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("topic", name=op.f("pk_data_changes")),
    )
    op.create_table(
        "brain_summaries",
        sa.Column("tile", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("query_ms", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("tile", name=op.f("pk_brain_summaries")),
    )
    op.create_table(
        "open_api_calls",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "action", name=op.f("pk_open_api_calls")),
    )


def downgrade() -> None:
    op.drop_table("open_api_calls")
    op.drop_table("brain_summaries")
    op.drop_table("data_changes")

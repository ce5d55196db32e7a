"""audit by month: on PostgreSQL entries and subjects partitioned by the month of ``at`` (the
city's months), so retention drops whole months; subjects carry their entry's time; entries
retention removed from inside the kept chain are remembered by their hashes

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 00:30:00
"""

from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

from citydata import clock

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

CITY = timezone(timedelta(hours=8))
AHEAD = 2  # months made ahead of the current one


def _months(first: datetime, last: datetime) -> list[tuple[datetime, datetime]]:
    start = first.astimezone(CITY).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    months = []
    while start <= last:
        end = (start + timedelta(days=32)).replace(day=1)
        months.append((start, end))
        start = end
    return months


def _partition(table: str, key: str, indexes: list[tuple[str, str]], first, last) -> None:
    """``table`` again as a table partitioned by month of ``at``, holding every row it had."""
    old = f"{table}_unpartitioned"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    for name, _columns in indexes:
        op.execute(f"ALTER INDEX IF EXISTS {name} RENAME TO {name}_unpartitioned")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_{table} TO pk_{old}")
    op.execute(f"CREATE TABLE {table} (LIKE {old}) PARTITION BY RANGE (at)")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({key})")
    for name, columns in indexes:
        op.execute(f"CREATE INDEX {name} ON {table} ({columns})")
    op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    for start, end in _months(first, last):
        op.execute(
            f"CREATE TABLE {table}_p{start:%Y%m} PARTITION OF {table} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")
    op.execute(f"DROP TABLE {old}")


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    with op.batch_alter_table("audit_subjects", schema=None) as batch_op:
        batch_op.drop_constraint("fk_audit_subjects_audit_id_audit_entries", type_="foreignkey")
        batch_op.add_column(sa.Column("at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE audit_subjects SET at = (SELECT e.at FROM audit_entries e "
        "WHERE e.id = audit_subjects.audit_id)"
    )
    # a subject whose entry is gone (it cannot verify anyway) keeps the epoch's time
    op.execute("UPDATE audit_subjects SET at = '1970-01-01 00:00:00' WHERE at IS NULL")
    with op.batch_alter_table("audit_subjects", schema=None) as batch_op:
        batch_op.alter_column("at", existing_type=sa.DateTime(timezone=True), nullable=False)
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_audit_entries_request_id", type_="unique")
        batch_op.create_index("ix_audit_entries_request_id", ["request_id"], unique=False)
    op.create_table(
        "audit_removed",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "anchor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_removed")),
    )
    op.create_index("ix_audit_removed_anchor_id", "audit_removed", ["anchor_id"], unique=False)
    if not postgres:
        return
    first = bind.execute(sa.text("SELECT min(at) FROM audit_entries")).scalar()
    now = clock.now()
    first = min(first or now, now)
    last = (now.astimezone(CITY).replace(day=1) + timedelta(days=32 * AHEAD)).astimezone(UTC)
    _partition(
        "audit_entries",
        "id, at",
        [
            ("ix_audit_entries_key_id", "key_id"),
            ("ix_audit_entries_unit_class_at", "consumer_code, class_code, at"),
            ("ix_audit_entries_request_id", "request_id"),
        ],
        first,
        last,
    )
    _partition(
        "audit_subjects",
        "audit_id, master_id, at",
        [("ix_audit_subjects_master_id", "master_id")],
        first,
        last,
    )


def downgrade() -> None:
    raise NotImplementedError("audit partitions are not undone: restore the backup taken before")

"""64-bit ids for the tables that grow with the city, and the columns that name them

A 32-bit sequence ends at 2,147,483,647: a city's audit log (a sharing call is an entry) passes
that within years, and the masters' values, links and changes grow with every run. Citus, the
store's next step (docs/scale.md, migrations/citus.toml), also gives each node its own range of
a bigint sequence only. PostgreSQL only: SQLite's INTEGER is 64-bit already. The published
base_<name> tables' master columns follow.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 00:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COLUMNS = {
    "masters": ("id",),
    "master_links": ("id", "master_id"),
    "master_values": ("id", "master_id"),
    "master_versions": ("master_id",),
    "master_events": ("id", "master_id", "other_id"),
    "match_reviews": ("id", "master_id"),
    "master_changes": ("id", "master_id"),
    "audit_entries": ("id",),
    "audit_subjects": ("audit_id", "master_id"),
    "service_cases": ("id",),
    "service_case_events": ("id", "case_id"),
    "service_visits": ("id", "case_id"),
    "service_uploads": ("id", "case_id"),
    "service_discrepancies": ("id", "case_id"),
    "service_followups": ("id", "case_id"),
    "grid_events": ("id", "duplicate_of"),
    "grid_steps": ("id", "event_id"),
    "grid_reporters": ("id", "event_id", "via_event_id"),
    "grid_routings": ("id", "event_id"),
    "batch_rejects": ("id",),
    "audit_head": ("last_id", "first_id"),  # audit entry ids
    "share_subscriptions": ("cursor",),  # a master_changes id
}


def _published(conn) -> dict[str, list[str]]:
    """The base_<name> tables made by resolution runs, and their columns naming masters."""
    inspector = sa.inspect(conn)
    return {
        table: [
            c["name"]
            for c in inspector.get_columns(table)
            if c["name"] == "master_id" or c["name"].endswith("_master")
        ]
        for table in inspector.get_table_names()
        if table.startswith("base_")
    }


def _retype(kind: str) -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    tables = {**COLUMNS, **_published(conn)}
    # A view over a column stops its type changing: the open-data SQL guard's views (the only
    # ones) are dropped, and the guard makes each again the next time a query needs it.
    views = conn.execute(
        sa.text(
            "SELECT DISTINCT view_schema, view_name FROM information_schema.view_table_usage "
            "WHERE table_schema = current_schema() AND table_name = ANY(:tables)"
        ),
        {"tables": list(tables)},
    ).all()
    for schema, view in views:
        op.execute(f'DROP VIEW IF EXISTS "{schema}"."{view}"')
    for table, columns in tables.items():
        changes = ", ".join(f'ALTER COLUMN "{c}" TYPE {kind}' for c in columns)
        op.execute(f'ALTER TABLE "{table}" {changes}')
        if "id" in columns:
            sequence = conn.execute(
                sa.text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}
            ).scalar()
            if sequence:
                op.execute(f"ALTER SEQUENCE {sequence} AS {kind}")


def upgrade() -> None:
    _retype("BIGINT")


def downgrade() -> None:
    _retype("INTEGER")

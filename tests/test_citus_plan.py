"""Citus as a tested plan: every table of the migrations (and the tables made at run time:
staging, published bases) obeys migrations/citus.toml and Citus's rules — and the check
catches each kind of break, on a schema broken on purpose."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

from citydata.db.citus import PlanError, check, load_plan, parse_plan
from citydata.migrations import metadata


def _run_time_tables() -> list[Table]:
    from citydata.bases.publish import base_table
    from citydata.bases.service import base_codes
    from citydata.bases.spec import spec
    from citydata.ingest.staging import staging_table

    field = SimpleNamespace(name="id_number")
    staged = staging_table(SimpleNamespace(code="101001/00001", fields=[field]))
    return [staged, *[base_table(spec(code)) for code in base_codes()]]


def test_the_schema_obeys_the_citus_plan():
    plan = load_plan()
    assert check(plan, metadata, _run_time_tables()) == []
    # the plan names every large table the issue asked about, by an entity id
    assert plan.distributed["masters"].column == "id"
    assert plan.distributed["service_cases"].column == "id"
    assert plan.distributed["grid_events"].column == "id"
    assert plan.rule("stg_101001_00001").column == "_row"
    assert {"units", "resource_classes", "class_fields"} <= plan.reference.keys()


def _copy() -> MetaData:
    copied = MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(copied)
    return copied


def test_the_next_migration_that_breaks_the_plan_fails():
    """What a careless migration would do to today's schema, each caught by name."""
    plan = load_plan()
    # a unique constraint without the distribution column
    broken = _copy()
    broken.tables["master_values"].append_constraint(
        UniqueConstraint("attribute", "value", name="uq_master_values_attribute")
    )
    assert check(plan, broken) == [
        "master_values: unique uq_master_values_attribute ['attribute', 'value'] lacks "
        "distribution column «master_id» — Citus enforces it within one shard only"
    ]
    # a new table nobody placed, with a key to a distributed table
    broken = _copy()
    Table(
        "master_notes",
        broken,
        Column("id", BigInteger, primary_key=True),
        Column("master_id", BigInteger, ForeignKey("masters.id")),
    )
    problems = check(plan, broken)
    assert any(p.startswith("master_notes: not in the Citus plan") for p in problems)
    assert len(problems) == 1  # its foreign key is judged once it is placed
    # an id that goes back to a 32-bit sequence
    broken = _copy()
    broken.remove(broken.tables["grid_steps"])
    Table(
        "grid_steps",
        broken,
        Column("id", Integer, primary_key=True),
        Column("event_id", BigInteger, ForeignKey("grid_events.id"), nullable=False),
    )
    assert check(plan, broken) == [
        "grid_steps.id: numbered by a INTEGER sequence — only the coordinator can draw from "
        "it; a distributed table's sequence must be BIGINT"
    ]


def test_every_exception_in_the_plan_is_load_bearing():
    """Drop an exception and the constraint it excuses is reported; drop the constraint and the
    exception is reported as stale."""
    plan = load_plan()
    plan.distributed["masters"].unenforced.clear()
    plan.distributed["grid_events"].dropped_foreign_keys.clear()
    problems = check(plan, metadata)
    assert any("masters: unique uq_masters_base_key ['base', 'key']" in p for p in problems)
    assert any(
        p.startswith("grid_events['duplicate_of'] → grid_events: a key between co-located")
        for p in problems
    )
    stale = _copy()
    table = stale.tables["masters"]
    for unique in [c for c in table.constraints if isinstance(c, UniqueConstraint)]:
        table.constraints.discard(unique)
    assert check(load_plan(), stale) == [
        "masters: no unique constraint on ['base', 'key'] any more"
    ]


BROKEN_PLAN = """
[groups.person]
type = "BIGINT"
[distributed.people]
group = "person"
column = "id"
[distributed.visits]
group = "person"
column = "person_id"
[distributed.letters]
group = "letter"
column = "id"
[reference]
towns = "a few"
[local]
notes = "operational"
"""


def test_the_check_itself_on_a_schema_broken_every_way():
    """A test of the test: a small schema breaking each rule once, each break named."""
    schema = MetaData()
    Table("towns", schema, Column("code", String(8), primary_key=True))
    Table(
        "people",
        schema,
        Column("id", BigInteger, primary_key=True),
        Column("card", String(18)),
        Column("town", String(8), ForeignKey("towns.code")),  # to a reference table: fine
        UniqueConstraint("card", name="uq_people_card"),  # without the distribution column
    )
    Table(
        "visits",
        schema,
        Column("id", Integer, primary_key=True),  # PK without person_id; a 32-bit sequence
        Column("person_id", BigInteger, nullable=True),  # may be NULL
        Column("host_id", BigInteger, ForeignKey("people.id")),  # not the distribution column
    )
    Table(
        "towns_people",
        schema,
        Column("code", String(8), ForeignKey("towns.code"), primary_key=True),
        Column("mayor", BigInteger, ForeignKey("people.id")),  # unplaced, to a distributed one
    )
    Table(
        "notes",
        schema,
        Column("id", Integer, primary_key=True),
        Column("person", BigInteger, ForeignKey("people.id")),  # local → distributed
    )
    with pytest.raises(PlanError, match="group «letter» is not in"):
        parse_plan(BROKEN_PLAN)
    plan = parse_plan(BROKEN_PLAN.replace('group = "letter"', 'group = "person"'))
    problems = check(plan, schema)
    expected = [
        "towns_people: not in the Citus plan",
        "letters: the plan's distributed table no longer exists",
        "people: unique uq_people_card ['card'] lacks distribution column «id»",
        "visits.person_id: a distribution column must be NOT NULL",
        "visits: primary key ['id'] lacks distribution column «person_id»",
        "visits.id: numbered by a INTEGER sequence",
        "visits['host_id'] → people: a key between co-located tables must join distribution "
        "columns (visits.person_id = people.id)",
        "notes['person'] → people: a local table may not reference a distributed one",
    ]
    for words in expected:
        assert any(p.startswith(words) for p in problems), (words, problems)
    assert len(problems) == len(expected), problems


def test_an_exception_without_its_reason_is_refused():
    bad = """
[groups.person]
type = "BIGINT"
[distributed.people]
group = "person"
column = "id"
[[distributed.people.unenforced]]
columns = ["card"]
"""
    with pytest.raises(PlanError, match="gives no reason"):
        parse_plan(bad)
    with pytest.raises(PlanError, match="both reference and local"):
        parse_plan('[reference]\nunits = "few"\n[local]\nunits = "here"\n')


def test_upgrading_to_bigint_ids_keeps_the_rows_and_lets_sequences_pass_32_bits(empty_url):
    """0011 on PostgreSQL: the columns and their sequences become BIGINT, rows stay, and a
    view over a retyped table (the open-data SQL guard's) is dropped for the guard to remake."""
    from alembic import command
    from sqlalchemy import create_engine

    from citydata.migrations import alembic_config

    if not empty_url.startswith("postgresql"):
        pytest.skip("SQLite's INTEGER is 64-bit already: 0011 changes nothing there")
    engine = create_engine(empty_url)
    # made at 0010 (later migrations, such as the audit's partitions, are not undone)
    command.upgrade(alembic_config(engine), "0010")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO masters (id, base, key, version, record, created_at, updated_at) "
                "VALUES (7, 'population', 'K', 1, '{}', now(), now())"
            )
        )
        conn.execute(text('CREATE SCHEMA IF NOT EXISTS "open_sql"'))
        conn.execute(text('CREATE VIEW "open_sql"."open_probe" AS SELECT id FROM masters'))
    # 0011 alone: 0013 moves the audit into partitions whose ids the chain's writer numbers
    command.upgrade(alembic_config(engine), "0011")
    with engine.begin() as conn:
        kind = conn.execute(
            text(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = 'masters' AND column_name = 'id'"
            )
        ).scalar()
        assert kind == "bigint"
        sequence = conn.execute(text("SELECT pg_get_serial_sequence('audit_entries', 'id')"))
        name = sequence.scalar()
        assert (
            conn.execute(
                text(
                    "SELECT data_type FROM pg_sequences WHERE schemaname || '.' || sequencename = :n"
                ),
                {"n": name},
            ).scalar()
            == "bigint"
        )
        conn.execute(text(f"SELECT setval('{name}', 3000000000)"))
        conn.execute(
            text(
                "INSERT INTO audit_entries (at, request_id, action, fields, query, end_user, "
                "case_id, client_ip, rows, subjects, outcome, status_code, response_hash, "
                "prev_hash, entry_hash) VALUES (now(), 'r', 'lookup', '[]', '{}', '', '', "
                "'127.0.0.1', 0, '[]', 'ok', 200, '', '', '')"
            )
        )
        assert conn.execute(text("SELECT max(id) FROM audit_entries")).scalar() > 2**31
        assert conn.execute(text("SELECT key FROM masters WHERE id = 7")).scalar() == "K"
        assert not conn.execute(
            text("SELECT 1 FROM pg_views WHERE viewname = 'open_probe'")
        ).scalar()
    engine.dispose()

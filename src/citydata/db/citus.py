"""The plan for spreading the store over a Citus cluster, and the check that keeps the schema
true to it (``tests/test_citus_plan.py`` runs it on every migration's tables).

The plan is data (``migrations/citus.toml``): each table is *distributed* (by a column, in a
co-location group), a *reference* table (small, copied to every node) or *local* (kept on the
coordinator only). A schema obeys Citus's rules when

1. every table is in the plan, and the plan names no table that is gone;
2. a distributed table's distribution column exists, is never NULL, and has its group's type;
3. its primary key and every unique constraint or unique index contain the distribution column
   (Citus enforces uniqueness inside one shard only) — or the plan names the constraint's
   Citus form (``primary_key``) or says why it need not be enforced there (``unenforced``);
4. foreign keys run only between co-located distributed tables, on their distribution columns,
   or from any table to a reference table, or between local tables — or the plan says why the
   key is dropped on Citus (``dropped_foreign_keys``); never from a reference or local table
   to a distributed one;
5. a distributed table's rows take no number from a 32-bit sequence: Citus gives each node its
   own range of a bigint sequence, but an integer one can only be drawn on the coordinator, so
   every insert would have to pass through that one node.

Every exception carries its reason, and an exception that no longer matches the schema is an
error too, so the plan cannot rot in either direction."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ForeignKeyConstraint, MetaData, Table, UniqueConstraint
from sqlalchemy.dialects import postgresql

KINDS = ("distributed", "reference", "local")


class PlanError(ValueError):
    pass


@dataclass
class Distributed:
    table: str
    group: str
    column: str
    primary_key: tuple[str, ...] | None = None  # the key on Citus, when not today's
    unenforced: dict[tuple[str, ...], str] = field(default_factory=dict)
    dropped_foreign_keys: dict[tuple[str, ...], str] = field(default_factory=dict)
    single_shard: list[str] = field(default_factory=list)


@dataclass
class Plan:
    groups: dict[str, dict[str, Any]]
    distributed: dict[str, Distributed]
    reference: dict[str, str]  # table -> why
    local: dict[str, str]
    dynamic: dict[str, Distributed]  # a name pattern (stg_*) -> its rule

    def kind(self, table: str) -> str | None:
        if table in self.distributed or self._dynamic(table):
            return "distributed"
        if table in self.reference:
            return "reference"
        if table in self.local:
            return "local"
        return None

    def _dynamic(self, table: str) -> Distributed | None:
        for pattern, rule in self.dynamic.items():
            if pattern.endswith("*") and table.startswith(pattern[:-1]):
                return rule
        return None

    def rule(self, table: str) -> Distributed | None:
        return self.distributed.get(table) or self._dynamic(table)


def _keyed(entries: list[dict], where: str, key: str = "columns") -> dict[tuple[str, ...], str]:
    found = {}
    for entry in entries:
        columns, reason = entry.get(key), str(entry.get("reason", "")).strip()
        if not isinstance(columns, list) or not columns:
            raise PlanError(f"{where}: an exception without its {key}")
        if not reason:
            raise PlanError(f"{where}: the exception on {columns} gives no reason")
        found[tuple(columns)] = reason
    return found


def _distributed(table: str, body: dict[str, Any]) -> Distributed:
    for needed in ("group", "column"):
        if needed not in body:
            raise PlanError(f"distributed.{table}: «{needed}» missing")
    return Distributed(
        table=table,
        group=body["group"],
        column=body["column"],
        primary_key=tuple(body["primary_key"]) if "primary_key" in body else None,
        unenforced=_keyed(body.get("unenforced", []), f"distributed.{table}.unenforced"),
        dropped_foreign_keys=_keyed(
            body.get("dropped_foreign_keys", []), f"distributed.{table}.dropped_foreign_keys"
        ),
        single_shard=list(body.get("single_shard", [])),
    )


def parse_plan(text: str) -> Plan:
    data = tomllib.loads(text)
    unknown = set(data) - {"groups", "distributed", "reference", "local", "dynamic"}
    if unknown:
        raise PlanError(f"unknown sections: {', '.join(sorted(unknown))}")
    groups = data.get("groups", {})
    for name, group in groups.items():
        if "type" not in group:
            raise PlanError(f"groups.{name}: «type» (the distribution column's type) missing")
    plan = Plan(
        groups=groups,
        distributed={t: _distributed(t, b) for t, b in data.get("distributed", {}).items()},
        reference=dict(data.get("reference", {})),
        local=dict(data.get("local", {})),
        dynamic={t: _distributed(t, b) for t, b in data.get("dynamic", {}).items()},
    )
    for rule in [*plan.distributed.values(), *plan.dynamic.values()]:
        if rule.group not in groups:
            raise PlanError(f"{rule.table}: group «{rule.group}» is not in [groups]")
    seen: dict[str, str] = {}
    for kind in KINDS:
        section = getattr(plan, kind)
        for table, why in section.items():
            if table in seen:
                raise PlanError(f"{table} is both {seen[table]} and {kind}")
            if kind != "distributed" and not str(why).strip():
                raise PlanError(f"{kind}.{table}: say why")
            seen[table] = kind
    return plan


def load_plan(path: Path | None = None) -> Plan:
    from citydata import migrations

    path = path or Path(migrations.__file__).parent / "citus.toml"
    return parse_plan(path.read_text(encoding="utf-8"))


def _pg_type(table: Table, column: str) -> str:
    return table.c[column].type.compile(dialect=postgresql.dialect())


def _uniques(table: Table) -> list[tuple[str, tuple[str, ...]]]:
    found = [
        (con.name or "unique", tuple(c.name for c in con.columns))
        for con in table.constraints
        if isinstance(con, UniqueConstraint)
    ]
    found += [
        (i.name or "unique index", tuple(c.name for c in i.columns))
        for i in table.indexes
        if i.unique
    ]
    return found


def check(plan: Plan, metadata: MetaData, extra: Sequence[Table] = ()) -> list[str]:
    """Every way the tables break the plan or Citus's rules, in words; empty: they obey."""
    problems: list[str] = []
    tables = {**metadata.tables, **{t.name: t for t in extra}}
    for name in sorted(metadata.tables):
        if plan.kind(name) is None:
            problems.append(
                f"{name}: not in the Citus plan (migrations/citus.toml) — say whether it is "
                "distributed (by which column), a reference table or local"
            )
    for kind in KINDS:
        for name in getattr(plan, kind):
            if name not in metadata.tables:
                problems.append(f"{name}: the plan's {kind} table no longer exists")
    for name, table in sorted(tables.items()):
        rule = plan.rule(name)
        if rule is not None:
            problems += _check_distributed(plan, rule, table)
        for fk in sorted(table.foreign_key_constraints, key=lambda f: f.column_keys):
            problems += _check_foreign_key(plan, table, fk, tables)
        if rule is not None:
            declared = {tuple(fk.column_keys) for fk in table.foreign_key_constraints}
            for columns in rule.dropped_foreign_keys:
                if columns not in declared:
                    problems.append(f"{name}: no foreign key on {list(columns)} to drop any more")
    return problems


def _check_distributed(plan: Plan, rule: Distributed, table: Table) -> list[str]:
    name, column = table.name, rule.column
    if column not in table.c:
        return [f"{name}: distribution column «{column}» does not exist"]
    problems = []
    if table.c[column].nullable and not table.c[column].primary_key:
        problems.append(f"{name}.{column}: a distribution column must be NOT NULL")
    wanted = plan.groups[rule.group]["type"]
    if _pg_type(table, column) != wanted:
        problems.append(
            f"{name}.{column}: {_pg_type(table, column)}, but group «{rule.group}» is "
            f"distributed by {wanted} (co-located tables share the column's type)"
        )
    current = tuple(c.name for c in table.primary_key.columns)
    key = rule.primary_key or current
    if rule.primary_key and not set(current) <= set(rule.primary_key):
        problems.append(
            f"{name}: the planned primary key {list(rule.primary_key)} drops columns of "
            f"today's {list(current)} (it must stay at least as strict)"
        )
    if key and column not in key:
        problems.append(
            f"{name}: primary key {list(key)} lacks distribution column «{column}» "
            "(plan a primary_key that contains it)"
        )
    uniques = _uniques(table)
    for constraint, columns in uniques:
        if column not in columns and columns not in rule.unenforced:
            problems.append(
                f"{name}: unique {constraint} {list(columns)} lacks distribution column "
                f"«{column}» — Citus enforces it within one shard only"
            )
    for columns in rule.unenforced:
        if columns not in {c for _, c in uniques}:
            problems.append(f"{name}: no unique constraint on {list(columns)} any more")
    auto = table.autoincrement_column
    if auto is not None and _pg_type(table, auto.name) != "BIGINT":
        problems.append(
            f"{name}.{auto.name}: numbered by a {_pg_type(table, auto.name)} sequence — only "
            "the coordinator can draw from it; a distributed table's sequence must be BIGINT"
        )
    return problems


def _check_foreign_key(
    plan: Plan, table: Table, fk: ForeignKeyConstraint, tables: dict[str, Table]
) -> list[str]:
    source, target = table.name, fk.referred_table.name
    columns = tuple(fk.column_keys)
    rule = plan.rule(source)
    if rule is not None and columns in rule.dropped_foreign_keys:
        return []
    kinds = plan.kind(source), plan.kind(target)
    if None in kinds:  # an unplaced table is reported once, as such
        return []
    what = f"{source}{list(columns)} → {target}"
    if kinds[1] == "reference" or kinds == ("local", "local"):
        return []
    if kinds == ("reference", "local"):
        cascades = {fk.ondelete, fk.onupdate} & {"CASCADE", "cascade"}
        return (
            [f"{what}: a reference table's key to a local table cannot cascade"] if cascades else []
        )
    if kinds == ("distributed", "distributed"):
        theirs = plan.rule(target)
        assert rule is not None and theirs is not None
        if rule.group != theirs.group:
            return [
                f"{what}: distributed tables in different groups ({rule.group}, {theirs.group})"
            ]
        pairs = {e.parent.name: e.column.name for e in fk.elements}
        if pairs.get(rule.column) != theirs.column:
            return [
                f"{what}: a key between co-located tables must join distribution columns "
                f"({source}.{rule.column} = {target}.{theirs.column})"
            ]
        return []
    return [f"{what}: a {kinds[0]} table may not reference a {kinds[1]} one on Citus"]

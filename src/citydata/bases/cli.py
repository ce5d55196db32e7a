"""`citydata resolve` and `citydata base show|search|reviews`."""

from __future__ import annotations

from datetime import datetime

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from citydata.cli_common import fail, out, print_json, store

base_app = typer.Typer(help="基础库：主记录、来源与待确认匹配", no_args_is_help=True)
theme_app = typer.Typer(help="主题库/专题库：声明式定义，物化并登记到目录", no_args_is_help=True)


def resolve_cmd(
    base: list[str] = typer.Option(
        None, "--base", help="population|legal_person|housing（默认全部）"
    ),
    full: bool = typer.Option(False, "--full", help="全部重新解析（主记录编号保持不变）"),
    engine: str = typer.Option(
        "duckdb", "--engine", help="概率匹配引擎：duckdb（本机）或 spark（见 docs/scale.md）"
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Resolve staged rows into the base databases' master records."""
    from citydata.bases import service
    from citydata.bases.spec import SpecError, spec
    from citydata.match.engines import EngineError, check_engine

    try:
        codes = base or service.base_codes()
        for code in codes:
            spec(code)
        check_engine(engine)
    except (SpecError, EngineError) as exc:
        fail(str(exc))
    reports = []
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=out,
        transient=True,
        disable=as_json,
    ) as bar:
        for code in codes:
            task = bar.add_task(code)

            def step(stage: str, done: int, total: int, task=task, code=code) -> None:
                bar.update(task, description=f"{code} · {stage} {total or ''}")

            reports.append(
                service.resolve(store(), code, full=full, progress=step, engine=engine).as_dict()
            )
    if as_json:
        print_json(reports)
        return
    for r in reports:
        out.print(
            f"{r['base']}：读取 {r['rows_seen']:,} 行，新解析 {r['rows_resolved']:,}（主键 {r['by_key']:,}，"
            f"概率匹配 {r['by_match']:,}，人工确认 {r['by_review']:,}），新主记录 {r['new_masters']:,}，"
            f"共 {r['masters']:,} 个主记录，{r['changed_masters']:,} 个有变化，待确认 {r['reviews_opened']:,}，"
            f"用时 {r['seconds']} 秒",
            highlight=False,
        )


@base_app.command("show")
def show(
    base: str,
    master_id: int,
    as_of: datetime | None = typer.Option(
        None, "--as-of", help="某一时刻的记录，如 2026-01-31T00:00:00"
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One master record, with where each value came from."""
    from citydata.bases import service
    from citydata.bases.models import Master

    with store().session() as session:
        master = session.get(Master, master_id)
        if master is None or master.base != base:
            fail(f"{base} 中没有主记录 {master_id}")
        data = service.master_dict(session, master, as_of)
    if as_json:
        print_json(data)
        return
    out.print(f"[bold]{base} #{data['id']}[/bold] 版本 {data['version']} 主键 {data['key'] or '—'}")
    table = Table("属性", "取值", "来源单位", "信息资源", "批次", "行", "行数")
    for attribute, values in data["provenance"].items():
        for v in values:
            mark = "✔ " if v["chosen"] else "  "
            table.add_row(
                attribute,
                mark + v["value"],
                v["unit"],
                v["class_code"],
                str(v["batch_id"]),
                str(v["row"]),
                str(v["rows"]),
            )
    out.print(table)


@base_app.command("search")
def search_cmd(
    base: str,
    key: str | None = typer.Option(None, "--key"),
    name: str | None = typer.Option(None, "--name"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Find masters by key or by (part of) name."""
    from citydata.bases import service

    with store().session() as session:
        found = [
            {"id": m.id, "key": m.key, "name": m.name, "record": m.record}
            for m in service.search(session, base, key, name)
        ]
    if as_json:
        print_json(found)
        return
    for m in found:
        out.print(f"#{m['id']}  {m['key'] or '—'}  {m['name'] or ''}", highlight=False)


@theme_app.command("list")
def theme_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """The declared theme databases."""
    from citydata.bases.themes import load_themes

    themes = [
        {
            "name": t.name,
            "code": t.code,
            "title": t.title,
            "owner": t.owner,
            "update_cycle": t.update_cycle,
        }
        for t in load_themes().values()
    ]
    if as_json:
        print_json(themes)
        return
    for t in themes:
        out.print(
            f"{t['name']}  {t['code']}  {t['title']}（{t['owner']}，{t['update_cycle']}）",
            highlight=False,
        )


@theme_app.command("refresh")
def theme_refresh(
    name: str | None = typer.Argument(None), as_json: bool = typer.Option(False, "--json")
) -> None:
    """Materialise one theme database (or all) and register it in the catalog."""
    from citydata.bases.themes import ThemeError, refresh

    try:
        results = refresh(store(), name)
    except ThemeError as exc:
        fail(str(exc))
    if as_json:
        print_json(results)
    else:
        for r in results:
            if r["error"]:
                out.print(f"[red]✘[/red] {r['name']}: {r['error']}", highlight=False)
            else:
                out.print(
                    f"✔ {r['name']} → {r['table']}：{r['rows']:,} 行，已登记为 {r['class_code']}",
                    highlight=False,
                )
    if any(r["error"] for r in results):
        raise typer.Exit(1)

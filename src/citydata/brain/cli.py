"""`citydata brain …`: the cockpit's tiles as declared, and their summaries refreshed — the stale
ones (what the server does by itself every few seconds), or named ones, or all with --force."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy import select

from citydata import clock
from citydata.brain import service, spec, summaries
from citydata.brain.models import Summary
from citydata.cli_common import fail, out, print_json, store
from citydata.db.base import as_utc

brain_app = typer.Typer(help="一脑通用：城市驾驶舱的指标卡与摘要", no_args_is_help=True)
JSON_OUT = typer.Option(False, "--json", help="输出 JSON")


@brain_app.command("refresh")
def refresh_cmd(
    tiles: list[str] = typer.Argument(None, help="指标卡名称；不写则刷新所有过期的"),
    force: bool = typer.Option(False, "--force", help="不论是否过期都重算"),
    as_json: bool = JSON_OUT,
) -> None:
    """Recompute the stale summaries (or the named ones)."""
    try:
        done = service.refresh(store(), clock.now(), tiles or None, force)
    except service.Refused as exc:
        fail(str(exc))
    if as_json:
        print_json([d.__dict__ for d in done])
        return
    for d in done:
        result = f"失败：{d.error}" if d.error else f"{d.query_ms:.1f} ms"
        out.print(f"{d.tile}（{d.reason}）：{result}", highlight=False)
    out.print(f"已刷新 {sum(1 for d in done if not d.error)} 个摘要", highlight=False)
    if any(d.error for d in done):
        raise typer.Exit(1)


@brain_app.command("tiles")
def tiles_cmd(as_json: bool = JSON_OUT) -> None:
    """Every declared tile: its section, chart, permission, and its summary's state."""
    now = clock.now()
    with store().session() as session:
        versions = summaries.current_versions(session)
        held = {s.tile: s for s in session.scalars(select(Summary))}
        rows = []
        for section in spec.sections():
            for tile in section.tiles:
                summary = held.get(tile.name)
                rows.append(
                    {
                        "tile": tile.name,
                        "section": section.title,
                        "title": tile.title,
                        "chart": tile.chart,
                        "permission": tile.permission,
                        "stale": summaries.stale(tile, summary, versions, now),
                        "computed_at": as_utc(summary.computed_at).isoformat() if summary else None,
                        "query_ms": summary.query_ms if summary else None,
                    }
                )
    if as_json:
        print_json(rows)
        return
    table = Table("指标卡", "板块", "名称", "图", "可见", "状态", "查询 ms")
    for r in rows:
        state = r["stale"] or "最新"
        ms = "" if r["query_ms"] is None else f"{r['query_ms']:.1f}"
        table.add_row(r["tile"], r["section"], r["title"], r["chart"], r["permission"], state, ms)
    out.print(table)

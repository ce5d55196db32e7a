"""`citydata grid …`: the cells from the spatial base, the classifier, Open311 keys, SLA
versions, the assessment, and the events into the event base."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.table import Table
from sqlalchemy import select

from citydata.accounts.models import User
from citydata.cli_common import fail, out, print_json, store
from citydata.grid import assessment, cells, classify, open311, publishing, service, sla
from citydata.grid.events import GridError

grid_app = typer.Typer(help="一格通管：单元网格、事件分类、Open311、综合评价", no_args_is_help=True)
cells_app = typer.Typer(help="单元网格", no_args_is_help=True)
grid_app.add_typer(cells_app, name="cells")
JSON_OUT = typer.Option(False, "--json", help="输出 JSON")


@cells_app.command("sync")
def sync_cells() -> None:
    """Copy the unit grid cells from the spatial base (run after the base is resolved)."""
    with store().session() as session:
        n = cells.sync(session)
    out.print(f"单元网格 {n} 个", highlight=False)


@grid_app.command("train")
def train() -> None:
    """Train the report classifier on the registered citizens' reports; prints its accuracy on
    held-out events beside the keyword baseline's."""
    try:
        with store().session() as session:
            row = classify.train_from_events(session)
            found = (row.samples, row.accuracy, row.baseline_accuracy)
    except ValueError as exc:
        fail(str(exc))
    out.print(
        f"分类器：{found[0]} 条样本，留出准确率 {found[1]:.3f}（关键词基线 {found[2]:.3f}）",
        highlight=False,
    )


@grid_app.command("key")
def add_key(
    name: str = typer.Option(..., "--name", help="应用名称"),
    username: str = typer.Option("admin", "--user", "-u"),
) -> None:
    """An Open311 api_key for an app; shown this once."""
    try:
        with store().session() as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None:
                fail(f"没有用户「{username}」")
            issued = open311.register(session, user, name)
            secret = issued.secret
    except GridError as exc:
        fail(str(exc))
    out.print(f"api_key（只显示这一次）：{secret}", highlight=False)


@grid_app.command("sla")
def revise_sla(
    category: str = typer.Argument(...),
    stage: str = typer.Option(..., "--stage", help="dispatch、handle 或 verify"),
    amount: int = typer.Option(..., "--amount"),
    measure: str = typer.Option(..., "--measure", help="wh、h、wd 或 d"),
    effective: str = typer.Option("", "--from", help="生效时间（ISO），默认现在"),
) -> None:
    """A new SLA version for a category; open events keep the version they were opened under."""
    when = datetime.fromisoformat(effective) if effective else datetime.now(UTC)
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    try:
        with store().session() as session:
            version = sla.revise(session, category, when, **{stage: [amount, measure]})
            number = version.version
    except ValueError as exc:
        fail(str(exc))
    out.print(f"{category} 时限第 {number} 版，自 {when.isoformat()} 起", highlight=False)


@grid_app.command("assess")
def assess(
    by: str = typer.Option(
        "division", "--by", help="division、street、community、grid_code、unit_code 或 month"
    ),
    as_json: bool = JSON_OUT,
) -> None:
    """综合评价: 立案数, 按期处置率, 结案率, 返工率 — from the events."""
    if by not in assessment.DIMENSIONS:
        fail(f"--by 应为 {'、'.join(assessment.DIMENSIONS)} 之一")
    with store().session() as session:
        rows = assessment.assess(assessment.frame(session), [by]).to_dicts()
        names = service.unit_names(session) | service.division_names()
    if as_json:
        print_json(rows)
        return
    table = Table(assessment.DIMENSIONS[by], "立案数", *assessment.RATES.values())
    for r in rows:
        rates = [f"{r[k] * 100:.1f}%" if r[k] is not None else "—" for k in assessment.RATES]
        table.add_row(assessment.label(r, by, names), str(r["registered"]), *rates)
    out.print(table)


@grid_app.command("publish")
def publish() -> None:
    """The events into the 事件基础库: a snapshot batch of the grid's class."""
    report = publishing.publish(store())
    if report is None:
        fail(f"目录中没有单位 {publishing.CENTRE}")
    out.print(
        f"已发布城市管理事件（{publishing.EVENTS_CLASS}）：批次 {report.batch_id}，{report.rows_accepted} 行",
        highlight=False,
    )

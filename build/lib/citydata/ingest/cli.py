"""`citydata ingest`, `citydata batch list|show`, `citydata quality`: shells over ingest.service."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from citydata.cli_common import fail, out, print_json, store
from citydata.ingest import service

batch_app = typer.Typer(help="批次 / batches", no_args_is_help=True)


def print_report(report: dict, as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    colour = {"committed": "green", "duplicate": "yellow"}.get(report["status"], "red")
    out.print(
        f"[{colour}]{report['status']}[/{colour}] 批次 {report['batch_id']} {report['file']} → "
        f"{report['class_code']}：{report['message']}",
        highlight=False,
    )
    if report.get("rows_read"):
        out.print(
            f"  读取 {report['rows_read']} 行，接收 {report['rows_accepted']} 行，拒收 {report['rows_rejected']} 行，"
            f"删除 {report['rows_removed']} 行",
            highlight=False,
        )
    for r in report.get("rejections", [])[:10]:
        out.print(
            f"  第 {r['row']} 行 {r['field']}: {r['rule']}（{r['value']}）",
            highlight=False,
            markup=False,
        )


def run_ingest(
    path: Path, class_code: str, unit: str | None, mode: str, encoding: str | None, as_json: bool
) -> service.Report:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} 行"),
        TimeElapsedColumn(),
        console=out,
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task(path.name, total=None)

        def step(stage: str, done: int, total: int) -> None:
            bar.update(
                task, description=f"{stage} {path.name}", completed=done, total=total or None
            )

        try:
            return service.ingest(
                store(), path, class_code, unit, mode, encoding, "cli", progress=step
            )
        except service.IngestError as exc:
            fail(str(exc))


def ingest_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    class_code: str = typer.Option(..., "--class", help="信息资源代码"),
    unit: str | None = typer.Option(None, "--unit"),
    mode: str = typer.Option("append", "--mode", help="append|upsert|replace|delete"),
    encoding: str | None = typer.Option(
        None, "--encoding", help="utf-8|gbk|gb18030 (detected if absent)"
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Ingest one file as one batch: read, validate, stage atomically, report."""
    report = run_ingest(file, class_code, unit, mode, encoding, as_json)
    print_report(report.as_dict(), as_json)
    if report.status == "failed":
        raise typer.Exit(1)


@batch_app.command("list")
def batch_list(
    unit: str | None = typer.Option(None, "--unit"),
    class_code: str | None = typer.Option(None, "--class"),
    limit: int = typer.Option(50, "--limit"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Batches, newest first."""
    with store().session() as session:
        total, rows = service.list_batches(session, unit, class_code, 0, limit)
        items = [service.batch_dict(b) for b in rows]
    if as_json:
        print_json({"count": total, "results": items})
        return
    table = Table("批次", "信息资源", "单位", "文件", "模式", "状态", "读取", "接收", "拒收")
    for b in items:
        table.add_row(
            str(b["batch_id"]),
            b["class_code"],
            b["unit_code"],
            b["file_name"],
            b["mode"],
            b["status"],
            str(b["rows_read"]),
            str(b["rows_accepted"]),
            str(b["rows_rejected"]),
        )
    out.print(table)


@batch_app.command("show")
def batch_show(batch_id: int, as_json: bool = typer.Option(False, "--json")) -> None:
    """One batch with its quality report and first rejections."""
    with store().session() as session:
        from citydata.ingest.models import Batch

        batch = session.get(Batch, batch_id)
        if batch is None:
            fail(f"批次 {batch_id} 不存在")
        data = service.batch_dict(batch)
        data["rejections"] = service.rejects_frame(session, batch_id).head(20).to_dicts()
    if as_json:
        print_json(data)
        return
    print_report({**data, "file": data["file_name"]}, False)


def quality_cmd(
    unit: str | None = typer.Option(None, "--unit"),
    class_code: str | None = typer.Option(None, "--class"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Running quality scores per class and per unit."""
    with store().session() as session:
        scores = service.quality_scores(session, unit, class_code)
    if as_json:
        print_json(scores)
        return
    table = Table("单位", "名称", "资源数", "质量得分")
    for code, u in scores["units"].items():
        table.add_row(code, u["name"], str(u["classes"]), f"{u['score']:.1f}")
    out.print(table)

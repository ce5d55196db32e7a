"""`citydata demo generate|load|run`: the demo city, end to end."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from citydata.cli_common import fail, out, store

demo_app = typer.Typer(help="演示城市 / the demo city", no_args_is_help=True)
DEFAULT_DIR = Path("citydata-data/demo-city")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=True,
    )


@demo_app.command("generate")
def generate_cmd(
    out_dir: Path = typer.Option(DEFAULT_DIR, "--out"),
    people: int = typer.Option(20_000, "--people", min=100),
    seed: int = typer.Option(2020, "--seed"),
    errors: str = typer.Option(
        "default", "--errors", help="误差模型：default 或 realistic（见 demo/profiles/）"
    ),
    as_of: str = typer.Option(
        "",
        "--as-of",
        help="演示城市的“今天”（YYYY-MM-DD，默认为长沙的今天）：一年的办件、事件止于这一天开始之时",
    ),
) -> None:
    """Write the demo city's catalog, department files, manifest and truth."""
    from citydata import clock
    from citydata.demo.generate import error_model, generate

    try:
        error_model(errors)
    except ValueError as exc:
        fail(str(exc))
    day = parse_day(as_of) if as_of else clock.today()
    with _progress() as bar:
        task = bar.add_task("生成", total=None)

        def step(name: str, done: int, total: int) -> None:
            bar.update(task, description=f"生成 {name}", completed=done, total=total)

        manifest = generate(out_dir, people, seed, step, errors, as_of=day)
    out.print(
        f"已生成 {out_dir}：{manifest['units']} 个单位，{manifest['classes']} 个信息资源，"
        f"{manifest['classes_with_files']} 个带数据文件，{len(manifest['files'])} 个文件，{people} 人，"
        f"截至 {day.isoformat()}",
        highlight=False,
    )


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"--as-of「{text}」不是日期，应为 YYYY-MM-DD，例如 2026-06-30")


def as_of_of(manifest: dict) -> date:
    """The demo's day a generated city lives up to (a city generated before --as-of existed
    ended on 2026-06-30)."""
    return date.fromisoformat(
        manifest.get("as_of") or manifest.get("reference_day") or "2026-06-30"
    )


def load(directory: Path, resolve_bases: bool = True) -> dict:
    """Import the catalog, ingest every department file as a batch (aggregation), resolve the
    staged rows into the base databases (resolution) and refresh the theme databases."""
    from citydata import keys
    from citydata.bases.service import base_codes, resolve
    from citydata.bases.themes import refresh as refresh_themes
    from citydata.catalog.service import import_catalog
    from citydata.config import Settings
    from citydata.demo.grid import load as load_grid
    from citydata.demo.services import load as load_services
    from citydata.demo.sharing import replay
    from citydata.ingest.service import ingest
    from citydata.opendata.service import Catalogue

    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    as_of = as_of_of(manifest)
    with store().session() as session:
        result = import_catalog(session, directory / "catalog.json")
    statuses: dict[str, int] = {}
    accepted = rejected = 0
    with _progress() as bar:
        task = bar.add_task("归集", total=len(manifest["files"]))
        for entry in manifest["files"]:
            bar.update(task, description=f"归集 {entry['path']}")
            report = ingest(
                store(),
                directory / entry["path"],
                entry["class_code"],
                entry["unit"],
                encoding=entry["encoding"],
                submitted_by="demo",
            )
            statuses[report.status] = statuses.get(report.status, 0) + 1
            accepted += report.rows_accepted
            rejected += report.rows_rejected
            bar.advance(task)
        resolved = {}
        for code in base_codes() if resolve_bases else []:
            task = bar.add_task(f"解析 {code}", total=None)
            run = resolve(store(), code)
            resolved[code] = {"rows": run.rows_resolved, "masters": run.masters}
            bar.update(task, total=1, completed=1)
        task = bar.add_task("共享调用", total=None)
        sharing = replay(store(), today=as_of) if resolve_bases else {}
        bar.update(task, total=1, completed=1)
        task = bar.add_task("一网通办", total=None)
        services = (
            load_services(store(), directory, keys.load(Settings.from_env()), as_of)
            if resolve_bases
            else {}
        )
        bar.update(task, total=1, completed=1)
        task = bar.add_task("一格通管", total=None)
        grid = (
            load_grid(store(), directory, keys.load(Settings.from_env()), as_of)
            if resolve_bases
            else {}
        )
        if grid.get("event_base_rows"):
            run = resolve(store(), "event")  # the grid's events join the 事件基础库
            resolved["event"] = {"rows": run.rows_resolved, "masters": run.masters}
        bar.update(task, total=1, completed=1)
        themes = refresh_themes(store(), today=as_of) if resolve_bases else []
    datasets = Catalogue(store()).datasets().values()  # also builds the portal's search index
    open_data = {
        kind: sum(1 for d in datasets if d.open_type == kind) for kind in ("open", "conditional")
    }
    open_data["rows"] = sum(d.rows for d in datasets)
    return {
        "catalog_classes": result.classes,
        "units": result.units,
        "files": len(manifest["files"]),
        "statuses": statuses,
        "rows_accepted": accepted,
        "rows_rejected": rejected,
        "resolved": resolved,
        "themes": themes,
        "sharing": sharing,
        "services": services,
        "grid": grid,
        "open_data": open_data,
    }


@demo_app.command("load")
def load_cmd(
    directory: Path = typer.Argument(DEFAULT_DIR, exists=True, file_okay=False),
    resolve_bases: bool = typer.Option(True, "--resolve/--no-resolve", help="归集后解析基础库"),
) -> None:
    """Load a generated demo city: its catalog, every file through aggregation, then resolution."""
    summary = load(directory, resolve_bases)
    s = summary["statuses"]
    out.print(
        f"已导入目录：{summary['units']} 个单位、{summary['catalog_classes']} 个信息资源",
        highlight=False,
    )
    out.print(
        f"已归集 {summary['files']} 个文件：入库 {s.get('committed', 0)}，失败 {s.get('failed', 0)}，"
        f"重复 {s.get('duplicate', 0)}；接收 {summary['rows_accepted']} 行，拒收 {summary['rows_rejected']} 行",
        highlight=False,
    )
    for code, r in summary["resolved"].items():
        out.print(f"已解析 {code}：{r['rows']} 行 → {r['masters']} 个主记录", highlight=False)
    for t in summary["themes"]:
        done = f"{t['rows']} 行" if t["error"] is None else f"失败：{t['error']}"
        out.print(f"主题库 {t['name']}（{t['class_code']}）：{done}", highlight=False)
    if summary["sharing"].get("calls"):
        sh = summary["sharing"]
        out.print(
            f"共享：{sh['applications']} 个申请、{sh['credentials']} 个调用凭证，回放 {sh['calls']} 次调用"
            f"（{'、'.join(f'{k}: {v}' for k, v in sorted(sh['outcomes'].items()))}）",
            highlight=False,
        )
    if summary["services"]:
        sv = summary["services"]
        out.print(
            f"一网通办：{sv['matters']} 个事项、{sv['cases']} 个办件，办件信息发布 {sv['published']} 行",
            highlight=False,
        )
    if summary["grid"]:
        gd = summary["grid"]
        cl = gd["classifier"]
        out.print(
            f"一格通管：{gd['cells']} 个单元网格、{gd['events']} 个事件（{gd['unplaced']} 个所在网格"
            f"未进入空间基础库，未载入）；分类器留出准确率 "
            f"{cl['accuracy']:.3f}（关键词基线 {cl['baseline']:.3f}）",
            highlight=False,
        )
    od = summary["open_data"]
    out.print(
        f"开放：{od['open']} 个普遍开放、{od['conditional']} 个有条件开放数据集（共 {od['rows']} 行）",
        highlight=False,
    )

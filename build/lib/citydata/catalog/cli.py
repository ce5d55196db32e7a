"""`citydata catalog ...` and `citydata unit ...`: thin shells over catalog.service."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from citydata.catalog import service
from citydata.catalog import vocab as v
from citydata.catalog.schema import CatalogProblems
from citydata.cli_common import err_console, fail, out, print_json, store

catalog_app = typer.Typer(help="信息资源目录 / data resource catalog", no_args_is_help=True)
unit_app = typer.Typer(help="单位 / units (departments)", no_args_is_help=True)


@catalog_app.command("import")
def import_(file: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Import a catalog (JSON or Excel workbook) whole, or nothing when it has problems."""
    try:
        with store().session() as session:
            result = service.import_catalog(session, file)
    except CatalogProblems as exc:
        err_console.print(
            f"{file}: 发现 {len(exc.problems)} 个问题，未写入任何内容", highlight=False
        )
        for problem in exc.problems:
            err_console.print(f"  {problem}", highlight=False, markup=False)
        raise typer.Exit(1) from exc
    out.print(
        f"已导入 {result.units} 个单位、{result.classes} 个信息资源（新增 {len(result.created)}，"
        f"更新 {len(result.updated)}）、{result.fields} 个信息项",
        highlight=False,
    )


@catalog_app.command("export")
def export(
    format: str = typer.Option("json", "--format", help="json or xlsx"),
    output: Path | None = typer.Option(None, "-o", "--output"),
) -> None:
    """Export the whole catalog."""
    with store().session() as session:
        if format == "json":
            data = (
                json.dumps(service.export_json(session), ensure_ascii=False, indent=2) + "\n"
            ).encode()
        elif format == "xlsx":
            data = service.export_xlsx(session)
        else:
            fail(f"未知格式「{format}」，可选 json、xlsx")
    if output:
        output.write_bytes(data)
        out.print(f"已写出 {output}", highlight=False)
    elif format == "xlsx":
        fail("xlsx 需要用 -o 指定输出文件")
    else:
        typer.echo(data.decode(), nl=False)


@catalog_app.command("list")
def list_(
    unit: str | None = typer.Option(None, "--unit"),
    sharing: str | None = typer.Option(None, "--sharing", help="unconditional|conditional|none"),
    open_: str | None = typer.Option(None, "--open", help="open|conditional|closed"),
    base: str | None = typer.Option(None, "--base"),
    text: str | None = typer.Option(None, "--text"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List resource classes."""
    with store().session() as session:
        total, rows = service.list_classes(
            session, service.ClassFilter(unit, sharing, open_, base, text=text), limit=100_000
        )
        items = [service.class_dict(rc, with_fields=False) for rc in rows]
    if as_json:
        print_json({"count": total, "results": items})
        return
    table = Table("代码", "名称", "提供方", "共享类型", "开放类型", "更新周期", "基础库")
    for c in items:
        table.add_row(
            c["code"],
            c["name"],
            c["provider_code"],
            v.label(v.SHARE_TYPE, c["share_type"]),
            v.label(v.OPEN_TYPE, c["open_type"]),
            v.label(v.UPDATE_CYCLE, c["update_cycle"]),
            v.label(v.BASE_DB, c["base_db"]),
        )
    out.print(table)
    out.print(f"共 {total} 个信息资源", highlight=False)


@catalog_app.command("show")
def show(code: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show one resource class with its fields."""
    with store().session() as session:
        rc = service.get_class(session, code)
        if rc is None:
            fail(f"信息资源「{code}」不存在")
        data = service.class_dict(rc)
    if as_json:
        print_json(data)
        return
    out.print(f"[bold]{data['code']} {data['name']}[/bold]", highlight=False)
    for key in (
        "provider_code",
        "summary",
        "share_type",
        "share_condition",
        "open_type",
        "update_cycle",
        "base_db",
        "status",
        "version",
    ):
        out.print(f"  {key}: {data[key]}", highlight=False, markup=False)
    table = Table("信息项", "中文名称", "类型", "长度", "必填", "主键", "敏感级别", "校验规则")
    for f in data["fields"]:
        table.add_row(
            f["name"],
            f["label"],
            f["data_type"],
            str(f["length"] or ""),
            "是" if f["required"] else "",
            "是" if f["is_key"] else "",
            v.label(v.SENSITIVITY, f["sensitivity"]),
            "、".join(f["rules"]),
        )
    out.print(table)


@unit_app.command("list")
def unit_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List units with their number of resource classes."""
    with store().session() as session:
        rows = [{**service.unit_dict(u), "classes": n} for u, n in service.list_units(session)]
    if as_json:
        print_json(rows)
        return
    table = Table("代码", "名称", "简称", "层级", "信息资源数")
    for r in rows:
        table.add_row(
            r["code"], r["name"], r["short_name"], v.label(v.LEVEL, r["level"]), str(r["classes"])
        )
    out.print(table)

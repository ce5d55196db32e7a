"""`citydata services …`: matters in and out (JSON or the units' workbook), docked systems'
credentials, the figures, the catalog snapshot of the cases, a round of webhook notices."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy import select

from citydata import keys
from citydata.accounts.models import User
from citydata.cli_common import fail, out, print_json, store
from citydata.config import Settings
from citydata.mechanisms import outbox
from citydata.services import docking, matters, metrics, publishing
from citydata.services.matters import MatterProblems
from citydata.services.shared import ServiceError

services_app = typer.Typer(help="一网通办：事项、对接系统、网办率", no_args_is_help=True)
matters_app = typer.Typer(help="政务服务事项", no_args_is_help=True)
systems_app = typer.Typer(help="对接的部门业务系统", no_args_is_help=True)
services_app.add_typer(matters_app, name="matters")
services_app.add_typer(systems_app, name="systems")
JSON_OUT = typer.Option(False, "--json", help="输出 JSON")
AS_USER = typer.Option("admin", "--user", "-u", help="以哪个用户的身份操作")


def _problems(exc: MatterProblems) -> None:
    for problem in exc.problems[:200]:
        out.print(f"  {problem}", highlight=False)
    fail(f"共 {len(exc.problems)} 个问题，未写入任何内容")


@matters_app.command("import")
def import_cmd(
    path: Path = typer.Argument(..., exists=True, dir_okay=False),
    publish: bool = typer.Option(False, "--publish", help="导入后发布"),
) -> None:
    """A JSON document or the units' workbook (.xlsx): all problems listed, nothing written."""
    try:
        doc = (
            matters.read_workbook(path)
            if path.suffix.lower() == ".xlsx"
            else matters.read_json(path)
        )
        with store().session() as session:
            report = matters.import_matters(session, doc, publish_all=publish)
    except MatterProblems as exc:
        _problems(exc)
    out.print(
        f"已导入 {report.matters} 个事项（新版本 {report.new_versions}）、{report.bundles} 个一件事",
        highlight=False,
    )


@matters_app.command("export")
def export_cmd(
    output: Path = typer.Option(..., "--out", "-o"),
    fmt: str = typer.Option("json", "--format", help="json 或 xlsx"),
) -> None:
    with store().session() as session:
        doc = matters.export_doc(session)
    if fmt == "xlsx":
        output.write_bytes(matters.export_workbook(doc))
    elif fmt == "json":
        import orjson

        output.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    else:
        fail("--format 应为 json 或 xlsx")
    out.print(f"已导出 {len(doc['matters'])} 个事项到 {output}", highlight=False)


@matters_app.command("publish")
def publish_cmd(impl_code: str) -> None:
    try:
        with store().session() as session:
            matter = matters.publish(session, impl_code)
            version = matter.version
    except MatterProblems as exc:
        _problems(exc)
    out.print(f"已发布 {impl_code} 第 {version} 版", highlight=False)


@matters_app.command("list")
def list_cmd(
    text: str = typer.Option("", "--name"),
    unit: str = typer.Option("", "--unit"),
    as_json: bool = JSON_OUT,
) -> None:
    with store().session() as session:
        found = [matters.matter_dict(m) for m in matters.find(session, text, unit=unit, limit=5000)]
    if as_json:
        print_json(found)
        return
    table = Table("实施编码", "事项名称", "类型", "单位", "层级", "承诺时限")
    for m in found:
        table.add_row(
            m["impl_code"],
            m["name"],
            matters.KINDS[m["kind"]],
            m["unit"],
            matters.LEVELS[m["level"]],
            str(m["promised_days"]),
        )
    out.print(table)


def _user(session, username: str) -> User:
    found = session.scalar(select(User).where(User.username == username, User.active.is_(True)))
    if found is None:
        fail(f"没有用户「{username}」")
    return found


@systems_app.command("add")
def add_system(
    unit: str = typer.Option(..., "--unit"),
    name: str = typer.Option(..., "--name"),
    ip: list[str] = typer.Option([], "--ip", help="IP 白名单（可多次）"),
    username: str = AS_USER,
) -> None:
    """A docked system's credential; the secret is shown this once."""
    try:
        with store().session() as session:
            issued = docking.register(session, _user(session, username), unit, name, ip)
            key_id, secret = issued.system.key_id, issued.secret
    except ServiceError as exc:
        fail(str(exc))
    out.print(f"已登记 {name}（{unit}），凭证 {key_id}；密钥（只显示这一次）：", highlight=False)
    out.print(secret, highlight=False, soft_wrap=True)


@systems_app.command("rotate")
def rotate_system(key_id: str, username: str = AS_USER) -> None:
    try:
        with store().session() as session:
            secret = docking.rotate(session, _user(session, username), key_id).secret
    except ServiceError as exc:
        fail(str(exc))
    out.print("新密钥（只显示这一次，旧密钥 24 小时内仍可用）：", highlight=False)
    out.print(secret, highlight=False, soft_wrap=True)


@systems_app.command("revoke")
def revoke_system(key_id: str, username: str = AS_USER) -> None:
    try:
        with store().session() as session:
            docking.revoke(session, _user(session, username), key_id)
    except ServiceError as exc:
        fail(str(exc))
    out.print(f"已吊销 {key_id}", highlight=False)


@systems_app.command("list")
def list_systems(unit: str = typer.Option("", "--unit"), as_json: bool = JSON_OUT) -> None:
    with store().session() as session:
        rows = [
            {
                "key_id": s.key_id,
                "unit": s.unit_code,
                "name": s.name,
                "ip_allow": s.ip_allow,
                "revoked": s.revoked_at is not None,
            }
            for s in docking.systems(session, unit or None)
        ]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        out.print(f"{r['key_id']}  {r['unit']}  {r['name']}{'（已吊销）' if r['revoked'] else ''}")


@services_app.command("metrics")
def metrics_cmd(
    by: str = typer.Option("all", "--by", help="all、unit、level、matter 或 month"),
    month: str = typer.Option("", "--month", help="如 2026-03"),
    as_json: bool = JSON_OUT,
) -> None:
    """网上申请率、全程网办率、一次办率 … computed from the cases."""
    if by not in metrics.DIMENSIONS:
        fail(f"--by 应为 {'、'.join(metrics.DIMENSIONS)} 之一")
    with store().session() as session:
        rows = metrics.report(session, by, month)
    if as_json:
        print_json(rows)
        return
    table = Table(metrics.DIMENSIONS[by], "申请", "办结", *metrics.RATES.values(), "平均工作日")
    for r in rows:
        rates = [f"{r[k] * 100:.1f}%" if r[k] is not None else "—" for k in metrics.RATES]
        days = f"{r['average_workdays']:.1f}" if r["average_workdays"] is not None else "—"
        table.add_row(str(r["name"]), str(r["applied"]), str(r["finished"]), *rates, days)
    out.print(table)


@services_app.command("publish")
def publish_cmd_cases() -> None:
    """办件信息 into the catalog: a snapshot batch of the service centre's class."""
    report = publishing.publish(store())
    if report is None:
        fail(f"目录中没有单位 {publishing.SERVICE_UNIT}")
    out.print(
        f"已发布办件信息（{publishing.CASES_CLASS}）：批次 {report.batch_id}，{report.rows_accepted} 行",
        highlight=False,
    )


@services_app.command("notify")
def notify() -> None:
    """One round of due webhook notices (the server sends them on its own every few seconds)."""
    settings = Settings.from_env()
    done = outbox.dispatch(store(), keys.load(settings), settings.webhook_allow_hosts)
    out.print(f"已送达 {done.delivered}，失败 {done.failed}（稍后重试）", highlight=False)

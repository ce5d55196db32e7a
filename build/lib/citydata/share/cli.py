"""`citydata share …` and `citydata audit …`: the same rules as the API, run on the server by an
operator acting as a named user (``--user``)."""

from __future__ import annotations

from datetime import date, timedelta

import typer
from rich.table import Table
from sqlalchemy import select

from citydata import keys
from citydata.accounts.models import User
from citydata.audit import service as audit
from citydata.cli_common import fail, out, print_json, store
from citydata.config import Settings
from citydata.share import service, webhooks
from citydata.share.service import ShareError

share_app = typer.Typer(help="共享：申请、审核、凭证", no_args_is_help=True)
credential_app = typer.Typer(help="调用系统的共享凭证", no_args_is_help=True)
share_app.add_typer(credential_app, name="credential")
webhook_app = typer.Typer(help="变更订阅（webhook）通知", no_args_is_help=True)
share_app.add_typer(webhook_app, name="webhooks")
audit_app = typer.Typer(help="审计：谁在何时为何读了什么", no_args_is_help=True)

AS_USER = typer.Option(..., "--user", "-u", help="以哪个用户的身份操作")
JSON_OUT = typer.Option(False, "--json", help="输出 JSON")


def _user(session, username: str) -> User:
    found = session.scalar(select(User).where(User.username == username, User.active.is_(True)))
    if found is None:
        fail(f"没有用户「{username}」")
    return found


def _run(username: str, fn, *args, **kwargs):
    """Call ``fn(session, user, …)`` in one transaction; a sharing rule broken is a message."""
    try:
        with store().session() as session:
            result = fn(session, _user(session, username), *args, **kwargs)
            if isinstance(result, service.ShareApplication):
                return service.application_dict(result)
            if isinstance(result, service.IssuedCredential):
                return {"key_id": result.credential.key_id, "secret": result.secret}
            return result
    except ShareError as exc:
        fail(str(exc))


def _show(app: dict, as_json: bool) -> None:
    if as_json:
        print_json(app)
        return
    out.print(
        f"共享申请 {app['id']}：{app['consumer']} → {app['class_code']}（{app['provider']}）"
        f" [bold]{app['status_label']}[/bold]"
        + (f"，应于 {app['due_date']} 前答复" if app["status"] == "pending" else "")
        + (f"，理由：{app['reason']}" if app["reason"] else ""),
        highlight=False,
    )
    if app["granted"]:
        out.print(f"  批准信息项：{'、'.join(app['granted'])}", highlight=False)
        if app["granted_unmasked"]:
            out.print(f"  不脱敏：{'、'.join(app['granted_unmasked'])}", highlight=False)


@share_app.command("apply")
def apply_cmd(
    class_code: str = typer.Argument(..., help="信息资源代码"),
    fields: str = typer.Option(..., "--fields", help="信息项，逗号分隔"),
    purpose: str = typer.Option(..., "--purpose", help="用途"),
    legal_basis: str = typer.Option(..., "--basis", help="法律法规或政策依据"),
    system_name: str = typer.Option(..., "--system", help="调用的业务系统"),
    consumer: str = typer.Option(None, "--unit", help="申请单位（默认：用户所在单位）"),
    unmasked: str = typer.Option("", "--unmasked", help="申请不脱敏的信息项，逗号分隔"),
    days: int = typer.Option(365, "--days", help="有效期（天）"),
    daily_volume: int = typer.Option(10000, "--daily", help="预计日调用量"),
    username: str = AS_USER,
    as_json: bool = JSON_OUT,
) -> None:
    """Apply for fields of a resource class."""

    def run(session, user):
        return service.apply(
            session,
            user,
            consumer_code=consumer or user.unit_code or "",
            class_code=class_code,
            fields=[f.strip() for f in fields.split(",") if f.strip()],
            unmasked=[f.strip() for f in unmasked.split(",") if f.strip()],
            purpose=purpose,
            legal_basis=legal_basis,
            system_name=system_name,
            valid_until=date.today() + timedelta(days=days),
            daily_volume=daily_volume,
        )

    _show(_run(username, run), as_json)


@share_app.command("list")
def list_cmd(
    status: str = typer.Option(None, "--status", help="pending/approved/rejected/…"),
    username: str = AS_USER,
    as_json: bool = JSON_OUT,
) -> None:
    """Applications the user may see (overdue ones marked)."""
    apps = _run(
        username,
        lambda s, u: [service.application_dict(a) for a in service.applications(s, u, status)],
    )
    if as_json:
        print_json(apps)
        return
    table = Table("编号", "申请单位", "信息资源", "状态", "答复期限", "调用系统")
    for a in apps:
        due = (a["due_date"] or "") + (" 已逾期" if a["overdue"] else "")
        table.add_row(
            str(a["id"]), a["consumer"], a["class_code"], a["status_label"], due, a["system_name"]
        )
    out.print(table)


def _decide(action: str):
    def command(
        application_id: int = typer.Argument(...),
        reason: str = typer.Option("", "--reason", help="理由（驳回、要求补充时必填）"),
        fields: str = typer.Option(None, "--fields", help="只批准这些信息项，逗号分隔"),
        unmasked: str = typer.Option(None, "--unmasked", help="批准不脱敏的信息项，逗号分隔"),
        username: str = AS_USER,
        as_json: bool = JSON_OUT,
    ) -> None:
        def split(text: str | None) -> list[str] | None:
            return None if text is None else [f.strip() for f in text.split(",") if f.strip()]

        app = _run(
            username,
            service.decide,
            application_id,
            action,
            reason,
            split(fields),
            split(unmasked),
        )
        _show(app, as_json)

    command.__doc__ = {
        "approve": "Approve a pending application (optionally fewer fields).",
        "reject": "Reject a pending application, with a reason.",
        "ask": "Ask the applicant for more, with a reason.",
    }[action]
    return command


for _action in ("approve", "reject", "ask"):
    share_app.command(_action)(_decide(_action))


@share_app.command("revoke")
def revoke_cmd(
    application_id: int = typer.Argument(...),
    reason: str = typer.Option(..., "--reason"),
    username: str = AS_USER,
) -> None:
    """Revoke an approval; its credentials stop working at the next call."""
    _show(_run(username, service.revoke, application_id, reason), False)


@credential_app.command("issue")
def issue_cmd(
    application_id: int = typer.Argument(...),
    ip_allow: str = typer.Option("", "--ip", help="允许的来源地址或网段，逗号分隔"),
    username: str = AS_USER,
) -> None:
    """A new credential for the application's business system; the secret is shown once."""
    networks = [n.strip() for n in ip_allow.split(",") if n.strip()]
    issued = _run(username, service.issue_credential, application_id, networks)
    out.print(f"凭证 {issued['key_id']}，密钥（只显示这一次）：", highlight=False)
    out.print(issued["secret"], highlight=False)


@credential_app.command("rotate")
def rotate_cmd(key_id: str = typer.Argument(...), username: str = AS_USER) -> None:
    """A new secret; the old one keeps working for 24 hours."""
    issued = _run(username, service.rotate_credential, key_id)
    out.print(f"凭证 {key_id} 的新密钥（只显示这一次；旧密钥 24 小时内仍有效）：", highlight=False)
    out.print(issued["secret"], highlight=False)


@credential_app.command("revoke")
def revoke_credential_cmd(key_id: str = typer.Argument(...), username: str = AS_USER) -> None:
    """Revoke a credential, effective at its next call."""
    _run(username, service.revoke_credential, key_id)
    out.print(f"凭证 {key_id} 已吊销", highlight=False)


@webhook_app.command("list")
def webhooks_cmd(
    application_id: int = typer.Argument(..., help="共享申请编号"), as_json: bool = JSON_OUT
) -> None:
    """An application's webhook subscriptions and how their last notices went."""
    with store().session() as session:
        found = [
            webhooks.subscription_dict(s) for s in webhooks.subscriptions(session, application_id)
        ]
    if as_json:
        print_json(found)
        return
    table = Table("编号", "地址", "已通知到", "连续失败", "下次尝试", "最近结果", "结束")
    for s in found:
        table.add_row(
            str(s["id"]),
            s["url"],
            s["cursor"],
            str(s["failures"]),
            s["next_attempt_at"] or "",
            s["last_status"],
            s["ended_at"] or "",
        )
    out.print(table)


@webhook_app.command("dispatch")
def dispatch_cmd(as_json: bool = JSON_OUT) -> None:
    """Send every due notice once (the server also does this every CITYDATA_WEBHOOK_SECONDS)."""
    settings = Settings.from_env()
    report = webhooks.dispatch(
        store(), keys=keys.load(settings), allow_hosts=settings.webhook_allow_hosts
    )
    if as_json:
        print_json(vars(report))
        return
    out.print(
        f"送达 {report.delivered} 个通知（{report.changes} 条变更），失败 {report.failed} 个",
        highlight=False,
    )


@audit_app.command("verify")
def verify_cmd(as_json: bool = JSON_OUT) -> None:
    """Check the audit chain: any edited, removed or reordered entry is reported."""
    with store().session() as session:
        report = audit.verify(session)
    if as_json:
        print_json({"ok": report.ok, "entries": report.entries, "problems": report.problems})
    elif report.ok:
        out.print(f"审计链完整：{report.entries} 条记录", highlight=False)
    else:
        for p in report.problems:
            out.print(f"第 {p['id']} 条：{p['problem']} — {p['detail']}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("search")
def search_cmd(
    master: int = typer.Option(None, "--master", help="主记录编号（谁读了这个人/法人的数据）"),
    id_number: str = typer.Option(None, "--id-number", help="身份证号（查其人口库主记录）"),
    unit: str = typer.Option(None, "--unit", help="调用单位"),
    class_code: str = typer.Option(None, "--class", help="信息资源代码"),
    limit: int = typer.Option(100, "--limit"),
    as_json: bool = JSON_OUT,
) -> None:
    """Who read what, when and why."""
    from citydata.bases.service import search as search_masters

    with store().session() as session:
        if id_number:
            found = search_masters(session, "population", id_number)
            if not found:
                fail("人口库中没有这个身份证号")
            master = found[0].id
        entries = [
            audit.entry_dict(e)
            for e in audit.search(session, master, unit, class_code, limit=limit)
        ]
    if as_json:
        print_json(entries)
        return
    table = Table(
        "时间", "单位", "系统", "资源", "操作", "信息项", "行数", "经办人", "事项", "结果"
    )
    for e in entries:
        table.add_row(
            e["at"][:19],
            e["consumer_code"] or "",
            e["system_name"] or "",
            e["class_code"] or "",
            e["action"],
            "、".join(e["fields"]),
            str(e["rows"]),
            e["end_user"],
            e["case_id"],
            e["outcome"],
        )
    out.print(table)


@audit_app.command("prune")
def prune_cmd(
    years: int = typer.Option(20, "--years", help="保留年限（荷兰人口登记的做法是 20 年）"),
) -> None:
    """Drop entries older than the retention period; the rest of the chain still verifies."""
    with store().session() as session:
        removed = audit.prune(session, years)
    out.print(f"已删除 {removed} 条超过 {years} 年的审计记录", highlight=False)

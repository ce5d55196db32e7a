"""`citydata user ...`: accounts and API tokens."""

from __future__ import annotations

import typer
from rich.table import Table

from citydata.accounts import service
from citydata.cli_common import fail, out, print_json, store

user_app = typer.Typer(help="账号 / accounts", no_args_is_help=True)


@user_app.command("create")
def create(
    username: str,
    role: str = typer.Option(..., "--role", help="admin|steward|consumer|auditor"),
    unit: str | None = typer.Option(None, "--unit"),
    password: str = typer.Option(..., "--password", prompt=True, hide_input=True),
) -> None:
    """Create an account."""
    try:
        with store().session() as session:
            service.create_user(session, username, password, role, unit)
    except service.AccountError as exc:
        fail(str(exc))
    out.print(f"已创建用户 {username}（{role}）", highlight=False)


@user_app.command("token")
def token(username: str, name: str = typer.Option("cli", "--name")) -> None:
    """Issue an API token for a user; it is printed once and stored only as a hash."""
    try:
        with store().session() as session:
            issued = service.issue_token(session, service.get_user(session, username), name)
    except service.AccountError as exc:
        fail(str(exc))
    typer.echo(issued.plaintext)


@user_app.command("list")
def list_users(as_json: bool = typer.Option(False, "--json", help="输出 JSON")) -> None:
    """Every account: name, role, unit, whether active, when made."""
    with store().session() as session:
        found = [service.user_dict(u) for u in service.users(session)]
    if as_json:
        print_json(found)
        return
    table = Table("用户名", "显示名", "角色", "单位", "状态", "创建时间")
    for u in found:
        table.add_row(
            u["username"],
            u["display_name"],
            u["role_label"],
            u["unit_code"] or "",
            "启用" if u["active"] else "停用",
            u["created_at"][:19],
        )
    out.print(table)


@user_app.command("disable")
def disable(username: str) -> None:
    """Disable an account: its sessions end and its tokens stop working (kept for the record)."""
    try:
        with store().session() as session:
            service.disable(session, service.get_user(session, username))
    except service.AccountError as exc:
        fail(str(exc))
    out.print(f"已停用用户 {username}", highlight=False)


@user_app.command("password")
def password(
    username: str,
    new: str = typer.Option(
        ..., "--password", prompt="新密码", hide_input=True, confirmation_prompt=True
    ),
) -> None:
    """Set a new password; every session of the user ends."""
    try:
        with store().session() as session:
            service.set_password(session, service.get_user(session, username), new)
    except service.AccountError as exc:
        fail(str(exc))
    out.print(f"已更新用户 {username} 的密码，其所有会话已结束", highlight=False)

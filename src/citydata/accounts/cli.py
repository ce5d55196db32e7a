"""`citydata user ...`: accounts and API tokens."""

from __future__ import annotations

import typer
from sqlalchemy import select

from citydata.accounts import service
from citydata.accounts.models import User
from citydata.cli_common import fail, out, store

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
    with store().session() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            fail(f"用户「{username}」不存在")
        issued = service.issue_token(session, user, name)
    typer.echo(issued.plaintext)

"""The `citydata` command. Each domain adds its own sub-commands; this file only wires them."""

from __future__ import annotations

import atexit
import gc

import typer

from citydata.accounts.cli import user_app
from citydata.bases.cli import base_app, resolve_cmd, theme_app
from citydata.catalog.cli import catalog_app, unit_app
from citydata.cli_common import fail, out, store
from citydata.config import Settings
from citydata.demo.cli import demo_app
from citydata.ingest.cli import batch_app, ingest_cmd, quality_cmd
from citydata.match.cli import match_cmd
from citydata.share.cli import audit_app, share_app

app = typer.Typer(help="citydata 政务数据资源管理平台", no_args_is_help=True, add_completion=False)


@app.callback()
def _every_command() -> None:
    # What a command built dies with the process: skip the collector's final pass over it,
    # a third of a second after a million-row ingest.
    atexit.register(gc.freeze)


app.add_typer(catalog_app, name="catalog")
app.add_typer(unit_app, name="unit")
app.add_typer(user_app, name="user")
app.add_typer(demo_app, name="demo")
app.add_typer(batch_app, name="batch")
app.command("ingest")(ingest_cmd)
app.command("quality")(quality_cmd)
app.command("match")(match_cmd)
app.command("resolve")(resolve_cmd)
app.add_typer(base_app, name="base")
app.add_typer(theme_app, name="theme")
app.add_typer(share_app, name="share")
app.add_typer(audit_app, name="audit")


@app.command()
def init() -> None:
    """Create or upgrade the schema and the first administrator. Safe to run again."""
    from citydata.accounts.service import AccountError, ensure_admin
    from citydata.db.migrate import upgrade

    db = store()
    before, after = upgrade(db.engine)
    if before == after:
        out.print(f"数据库已是最新版本 {after}（{db.url}）", highlight=False)
    else:
        out.print(f"数据库已升级：{before or '空'} → {after}（{db.url}）", highlight=False)
    try:
        with db.session() as session:
            admin, generated = ensure_admin(session, Settings.from_env().admin_password)
    except AccountError as exc:
        fail(f"CITYDATA_ADMIN_PASSWORD: {exc}")
    if generated:
        out.print(
            f"已创建管理员 {admin.username}，初始密码（只显示这一次）：{generated}", highlight=False
        )


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
) -> None:
    """Serve the platform's pages and API."""
    import uvicorn

    from citydata.web.app import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info")


if __name__ == "__main__":
    app()

"""The `citydata` command. Each domain adds its own sub-commands; this file only wires them."""

from __future__ import annotations

import atexit
import gc
import json
import os
import tempfile
from pathlib import Path

import typer

from citydata import keys
from citydata.accounts.cli import user_app
from citydata.bases.cli import base_app, resolve_cmd, theme_app
from citydata.brain.cli import brain_app
from citydata.catalog.cli import catalog_app, unit_app
from citydata.cli_common import fail, out, store
from citydata.config import Settings
from citydata.demo.cli import DEFAULT_DIR, demo_app, generate_cmd, load_cmd
from citydata.grid.cli import grid_app
from citydata.ingest.cli import batch_app, ingest_cmd, quality_cmd
from citydata.match.cli import match_cmd
from citydata.ops.cli import backup_cmd, restore_cmd
from citydata.services.cli import services_app
from citydata.services.identity import rekey
from citydata.share.cli import audit_app, share_app
from citydata.share.webhooks import reencrypt_secrets

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
app.add_typer(services_app, name="services")
app.add_typer(grid_app, name="grid")
app.add_typer(brain_app, name="brain")
app.command("backup")(backup_cmd)
app.command("restore")(restore_cmd)


@app.command()
def init() -> None:
    """Create or upgrade the schema and the first administrator. Safe to run again."""
    from citydata.accounts.service import AccountError, ensure_admin
    from citydata.migrations import upgrade

    db = store()
    before, after = upgrade(db.engine)
    if before == after:
        out.print(f"数据库已是最新版本 {after}（{db.url}）", highlight=False)
    else:
        out.print(f"数据库已升级：{before or '空'} → {after}（{db.url}）", highlight=False)
    settings = Settings.from_env()
    try:
        with db.session() as session:
            admin, generated = ensure_admin(session, settings.admin_password)
            # Secrets kept before encryption at rest are encrypted now.
            reencrypt_secrets(session, keys.load(settings), only_plain=True)
    except AccountError as exc:
        fail(f"CITYDATA_ADMIN_PASSWORD: {exc}")
    if generated:
        out.print(
            f"已创建管理员 {admin.username}，初始密码（只显示这一次）：{generated}", highlight=False
        )


keys_app = typer.Typer(help="密钥：签名会话、加密保存的秘密", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("rotate")
def rotate_keys() -> None:
    """Put a new key in front of the key file; previous keys still verify old cookies, and
    every stored secret is encrypted again under the new key."""
    settings = Settings.from_env()
    try:
        before, after = keys.rotate(settings)
    except ValueError as exc:
        fail(str(exc))
    with store().session() as session:
        changed = reencrypt_secrets(session, after) + rekey(session, before, after)
    out.print(
        f"已轮换密钥（{settings.keys_path}，保留 {len(after.keys)} 把），重新加密 {changed} 个保存的秘密",
        highlight=False,
    )


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
    workers: int = typer.Option(
        1, "--workers", "-w", min=1, help="服务进程数（PostgreSQL；SQLite 只能一个）"
    ),
) -> None:
    """Serve the platform's pages and API: one process, or ``--workers N`` behind one port
    (PostgreSQL), whose limits, quotas, audit chain and scheduled work behave as one."""
    import uvicorn

    from citydata.ops.service import ServingRefused, serving

    settings = Settings.from_env()
    try:
        guard = serving(settings.database_url, workers)
    except ServingRefused as exc:
        fail(str(exc))
    # The client's address is ours to work out (citydata.web.client): uvicorn must not take
    # X-Forwarded-For from anyone, which it does by default for requests from 127.0.0.1.
    with guard:
        if workers == 1:
            from citydata.app import create_app

            uvicorn.run(create_app(), host=host, port=port, log_level="info", proxy_headers=False)
        else:  # each worker process builds its own app from the same environment
            # the workers' counts, added up by whichever answers /metrics (ops/metrics.py)
            if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
                    prefix="citydata-metrics-"
                )
            uvicorn.run(
                "citydata.app:create_app",
                factory=True,
                workers=workers,
                host=host,
                port=port,
                log_level="info",
                proxy_headers=False,
            )


# The main job spans every domain, so it is wired here rather than in demo/.
@demo_app.command("run")
def demo_run(
    directory: Path = typer.Option(DEFAULT_DIR, "--dir"),
    people: int = typer.Option(20_000, "--people", min=100),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
) -> None:
    """The main job: generate the city (if absent), init, load and serve it."""
    if not (directory / "manifest.json").exists():
        generate_cmd(directory, people, 2020, "default", "")  # as of the city's today
    elif json.loads((directory / "manifest.json").read_text())["people"] != people:
        fail(f"{directory} 已有另一规模的演示城市；删除它或用 --dir 指定新目录")
    init()
    load_cmd(directory, True)
    out.print(
        f"演示城市已就绪：http://{host}:{port}/  开放数据门户 http://{host}:{port}/open"
        f"  （数据库 {Settings.from_env().database_url}）",
        highlight=False,
    )
    serve(host, port, 1)


if __name__ == "__main__":
    app()

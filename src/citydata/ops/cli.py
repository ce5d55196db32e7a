"""`citydata backup DIR` and `citydata restore DIR`."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from citydata.cli_common import fail, out, store
from citydata.config import Settings
from citydata.ops import service

JOBS = typer.Option(
    min(4, os.cpu_count() or 1), "--jobs", "-j", min=1, help="PostgreSQL：并行任务数"
)


def _step(message: str) -> None:
    out.print(f"· {message}", highlight=False)


def backup_cmd(
    folder: Path = typer.Argument(..., help="新的（或空的）备份文件夹"),
    no_keys: bool = typer.Option(
        False, "--no-keys", help="不带密钥文件（密钥另行保管；恢复时须自备同一套密钥）"
    ),
    jobs: int = JOBS,
) -> None:
    """Back up the database, the key file and the data folder, from one consistent snapshot
    while the platform keeps running."""
    settings = Settings.from_env()
    try:
        manifest = service.backup(
            store().engine, settings, folder, keys=not no_keys, jobs=jobs, step=_step
        )
    except service.BackupError as exc:
        fail(str(exc))
    keys = "含密钥文件" if manifest["keys"] else "不含密钥文件"
    if manifest["keys_from_environment"]:
        keys += "（密钥来自 CITYDATA_SECRET_KEY 环境变量，未备份：请另行保管）"
    out.print(
        f"已备份到 {folder}：{manifest['store']}，版本 {manifest['revision']}，"
        f"{len(manifest['tables'])} 张表 {manifest['rows']:,} 行，"
        f"{len(manifest['files'])} 个数据文件，{keys}，用时 {manifest['seconds']} 秒",
        highlight=False,
    )


def restore_cmd(
    folder: Path = typer.Argument(..., help="backup 写出的文件夹"),
    force: bool = typer.Option(False, "--force", help="目标数据库不空时覆盖其全部内容"),
    jobs: int = JOBS,
) -> None:
    """Restore a backup into an empty database (CITYDATA_DATABASE_URL) and check it: every
    table's rows against the backup, and the audit chain."""
    settings = Settings.from_env()
    try:
        checked = service.restore_and_check(
            store(), settings, folder, force=force, jobs=jobs, step=_step
        )
    except service.BackupError as exc:
        fail(str(exc))
    r = checked.restored
    out.print(
        f"已恢复 {r.tables} 张表 {r.rows:,} 行、{r.files} 个数据文件"
        + ("和密钥文件" if r.keys else "（备份不含密钥：请放回原来的密钥）")
        + f"，数据库版本 {r.revision}（运行 citydata init 升级到本版本）",
        highlight=False,
    )
    for m in r.mismatches:
        out.print(
            f"[red]行数不符[/red] {m['table']}：备份 {m['backup']}，恢复后 {m['restored']}",
            highlight=False,
        )
    if checked.audit.ok:
        out.print(f"审计链完整：{checked.audit.entries} 条记录", highlight=False)
    else:
        for p in checked.audit.problems[:20]:
            out.print(f"[red]审计链[/red] 第 {p['id']} 条：{p['detail']}", highlight=False)
    if not checked.ok:
        raise typer.Exit(1)

"""Backup and restore of a whole installation: the database, the key file and the files kept
beside it (uploaded materials, event photos).

A backup is a folder::

    manifest.json      what is inside: store, schema revision, rows per table, files and hashes
    database.sqlite    SQLite: a copy made by the online backup API in one step
    database/          PostgreSQL: pg_dump's directory format, dumped by parallel jobs
    keys/secret.keys   the installation's keys (omitted with ``keys=False``)
    files/…            the data folder (uploads/, grid_photos/ …)

The database is copied from one snapshot while the platform keeps working: SQLite's backup API
copies every page under one read transaction (WAL: writers go on), and on PostgreSQL the rows
per table are counted in the very snapshot pg_dump is told to use (``--snapshot``), so the
manifest's counts are those of the dump. Files are copied after the database: every file a
row of the snapshot names existed before its row (uploads are written, synced and renamed
before the row), so it is in the backup; a file newer than the snapshot is harmless extra.
``manifest.json`` is written last: a folder without it is not a backup."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect, make_url, text

from citydata import __version__
from citydata.config import Settings

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite"
PG_DIR = "database"
KEY_FILE = "keys/secret.keys"
FILES = "files"
# Tables PostGIS brings with it: present in any database where the extension is installed.
NOT_OURS = {"spatial_ref_sys"}


class BackupError(RuntimeError):
    """Said to the operator as it is: what went wrong and what to do."""


Step = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


@dataclass
class Restored:
    store: str
    revision: str | None
    tables: int
    rows: int
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    files: int = 0
    keys: bool = False

    @property
    def ok(self) -> bool:
        return not self.mismatches


# ---------------------------------------------------------------- helpers


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"{url} 不是 SQLite 数据库文件")
    return Path(database)


def _pg_env(url: str) -> dict[str, str]:
    """libpq's environment for ``url``: the password travels there, never on a command line."""
    u = make_url(url)
    env = {**os.environ}
    for name, value in (
        ("PGHOST", u.host or u.query.get("host")),
        ("PGPORT", u.port),
        ("PGUSER", u.username),
        ("PGPASSWORD", u.password),
        ("PGDATABASE", u.database),
        ("PGSSLMODE", u.query.get("sslmode")),
    ):
        if value:
            env[name] = str(value if not isinstance(value, tuple) else value[0])
    return env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"找不到 {name}：请安装与服务器同版本的 PostgreSQL 客户端（Debian：postgresql-client）"
        )
    return found


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} 失败：{done.stderr.strip()[-2000:]}")


def table_names(conn: Connection) -> list[str]:
    names = set(inspect(conn).get_table_names()) - NOT_OURS
    if conn.dialect.name == "sqlite":
        names = {n for n in names if not n.startswith("sqlite_")}
    return sorted(names)


def count_rows(conn: Connection) -> dict[str, int]:
    """Rows of every table, in the connection's current transaction."""
    quote = conn.dialect.identifier_preparer.quote
    return {
        name: int(conn.execute(text(f"SELECT count(*) FROM {quote(name)}")).scalar() or 0)
        for name in table_names(conn)
    }


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _data_files(settings: Settings, skip: set[Path]) -> list[Path]:
    """The data folder's files, less the key file and a SQLite database kept there."""
    root = settings.data_dir
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.resolve() not in skip and ".tmp" not in path.name:
            found.append(path)
    return found


def _empty_folder(folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BackupError(f"{folder} 已存在且不是空文件夹：请给一个新的备份文件夹")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # it holds the keys and every personal record


# ---------------------------------------------------------------- backup


def backup(
    engine: Engine,
    settings: Settings,
    folder: Path,
    *,
    keys: bool = True,
    jobs: int = 2,
    now: datetime | None = None,
    step: Step = _quiet,
) -> dict[str, Any]:
    """Back the installation up into ``folder`` (new or empty); returns the manifest."""
    _empty_folder(folder)
    started = time.monotonic()
    revision = current_revision(engine)
    if revision is None:
        raise BackupError("数据库尚未初始化（citydata init），没有可备份的内容")
    skip: set[Path] = set()
    if engine.dialect.name == "sqlite":
        source = sqlite_path(str(engine.url))
        skip |= {source.resolve(), *(Path(f"{source}{s}").resolve() for s in ("-wal", "-shm"))}
        step("复制 SQLite 数据库（在线备份，一次完成）")
        counts = _backup_sqlite(source, folder / SQLITE_FILE)
        store = "sqlite"
    elif engine.dialect.name == "postgresql":
        step(f"pg_dump（目录格式，{jobs} 个并行任务）")
        counts = _backup_postgres(engine, folder / PG_DIR, jobs)
        store = "postgresql"
    else:
        raise BackupError(f"不支持备份 {engine.dialect.name} 数据库")

    key_entry = None
    key_path = settings.keys_path
    skip.add(key_path.resolve())
    if keys and key_path.exists():
        step(f"密钥文件 {key_path}")
        target = folder / KEY_FILE
        target.parent.mkdir(mode=0o700)
        shutil.copyfile(key_path, target)
        target.chmod(0o600)
        key_entry = {"sha256": _digest(target)}
    files = []
    data_files = _data_files(settings, skip)
    step(f"数据文件夹 {settings.data_dir}：{len(data_files)} 个文件")
    for path in data_files:
        relative = path.relative_to(settings.data_dir)
        target = folder / FILES / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(path, target)
        except FileNotFoundError:  # removed meanwhile (a refused upload cleaned up)
            continue
        files.append(
            {"path": relative.as_posix(), "bytes": target.stat().st_size, "sha256": _digest(target)}
        )
    manifest = {
        "format": FORMAT,
        "citydata": __version__,
        "created_at": (now or datetime.now(UTC)).isoformat(),
        "store": store,
        "revision": revision,
        "tables": counts,
        "rows": sum(counts.values()),
        "keys": key_entry,
        "keys_from_environment": bool(settings.secret_key),
        "files": files,
        "seconds": round(time.monotonic() - started, 1),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
    return manifest


def _backup_sqlite(source: Path, target: Path) -> dict[str, int]:
    # One step (pages=-1): the copy is one read transaction, a single consistent state; in WAL
    # mode writers are not held up meanwhile.
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
    try:
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        quote = '"{}"'.format
        names = [
            r[0]
            for r in dst.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            n: dst.execute(f"SELECT count(*) FROM {quote(n)}").fetchone()[0]
            for n in sorted(set(names) - NOT_OURS)
        }
    finally:
        dst.close()


def _backup_postgres(engine: Engine, target: Path, jobs: int) -> dict[str, int]:
    pg_dump = _tool("pg_dump")
    env = _pg_env(engine.url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            # The transaction's snapshot is fixed by its first statement; pg_dump's jobs share
            # it, and the counts below are taken in it while the dump runs.
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar()
            args = [
                pg_dump,
                "--format=directory",
                f"--jobs={max(1, jobs)}",
                "--no-owner",
                f"--snapshot={snapshot}",
                f"--file={target}",
            ]
            dump = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
            try:
                counts = count_rows(conn)
            finally:
                _, errors = dump.communicate()
            if dump.returncode != 0:
                raise BackupError(f"pg_dump 失败：{errors.strip()[-2000:]}")
    return counts


# ---------------------------------------------------------------- restore


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.exists():
        raise BackupError(f"{folder} 不是完整的备份（缺少 {MANIFEST}）")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{folder} 的备份格式 {manifest.get('format')} 不是本版本能读的格式")
    return manifest


def restore(
    engine: Engine,
    settings: Settings,
    folder: Path,
    *,
    force: bool = False,
    jobs: int = 2,
    step: Step = _quiet,
) -> Restored:
    """Restore ``folder`` into the database ``engine`` points at, which must be empty unless
    ``force``; then count every table again against the manifest."""
    manifest = read_manifest(folder)
    store = engine.dialect.name
    if manifest["store"] != store:
        raise BackupError(
            f"这是 {manifest['store']} 的备份，不能恢复到 {store} 数据库"
            "（换库请先恢复到同类数据库，再迁移数据）"
        )
    if store == "sqlite":  # a new file in a new folder is an empty database
        sqlite_path(str(engine.url)).parent.mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn:
        present = table_names(conn)
    if present and not force:
        raise BackupError(
            f"目标数据库不是空的（已有 {len(present)} 张表，如 {present[0]}）："
            "请恢复到新建的空数据库，或加 --force 覆盖其全部内容"
        )
    _check_files_target(settings, manifest, force)
    if store == "sqlite":
        step("写回 SQLite 数据库文件")
        _restore_sqlite(engine, folder / SQLITE_FILE)
    else:
        step(f"pg_restore（{jobs} 个并行任务）")
        _restore_postgres(engine, folder / PG_DIR, jobs, wipe=bool(present))
    restored_keys = False
    if manifest.get("keys"):
        step(f"密钥文件 → {settings.keys_path}")
        _restore_keys(folder / KEY_FILE, settings.keys_path, manifest["keys"]["sha256"], force)
        restored_keys = True
    step(f"数据文件 → {settings.data_dir}")
    for entry in manifest["files"]:
        source = folder / FILES / entry["path"]
        if _digest(source) != entry["sha256"]:
            raise BackupError(f"备份中的文件 {entry['path']} 已损坏（哈希不符）")
        target = settings.data_dir / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    step("核对每张表的行数")
    with engine.connect() as conn:
        counts = count_rows(conn)
    wanted = manifest["tables"]
    mismatches = [
        {"table": name, "backup": wanted.get(name), "restored": counts.get(name)}
        for name in sorted(set(wanted) | set(counts))
        if wanted.get(name) != counts.get(name)
    ]
    return Restored(
        store,
        current_revision(engine),
        len(counts),
        sum(counts.values()),
        mismatches,
        len(manifest["files"]),
        restored_keys,
    )


def _check_files_target(settings: Settings, manifest: dict[str, Any], force: bool) -> None:
    if force:
        return
    clashes = [e["path"] for e in manifest["files"] if (settings.data_dir / e["path"]).exists()]
    if clashes:
        raise BackupError(
            f"数据文件夹 {settings.data_dir} 中已有备份里的文件（如 {clashes[0]}）：加 --force 覆盖"
        )


def _restore_keys(source: Path, target: Path, digest: str, force: bool) -> None:
    if _digest(source) != digest:
        raise BackupError("备份中的密钥文件已损坏（哈希不符）")
    if target.exists() and _digest(target) != digest and not force:
        raise BackupError(
            f"{target} 已有另一套密钥：恢复的数据只能用备份里的密钥解密；"
            "先把现有密钥文件移走，或加 --force 替换它"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".keys-")
    with os.fdopen(fd, "wb") as f:
        f.write(source.read_bytes())
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)


def _restore_sqlite(engine: Engine, source: Path) -> None:
    target = sqlite_path(str(engine.url))
    engine.dispose()  # no pooled connection may keep the old file open
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".restore-")
    os.close(fd)
    shutil.copyfile(source, tmp)
    for suffix in ("-wal", "-shm"):  # the old file's log must not be replayed onto the new one
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, target)


def _restore_postgres(engine: Engine, source: Path, jobs: int, wipe: bool) -> None:
    pg_restore = _tool("pg_restore")
    env = _pg_env(engine.url.render_as_string(hide_password=False))
    if wipe:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    # The open-data SQL views are left out: they carry grants to a role of the server, not of
    # the database, and the portal makes them again (with their grants) on first use.
    listed = subprocess.run(
        [pg_restore, "--list", str(source)], env=env, capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:
        raise BackupError(f"pg_restore 读不了 {source}：{listed.stderr.strip()[-2000:]}")
    keep = [line for line in listed.stdout.splitlines() if " VIEW public open_" not in line]
    with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as f:
        f.write("\n".join(keep) + "\n")
    try:
        _run(
            [
                pg_restore,
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                f"--jobs={max(1, jobs)}",
                f"--use-list={f.name}",
                f"--dbname={env.get('PGDATABASE', '')}",
                str(source),
            ],
            env,
        )
    finally:
        os.unlink(f.name)

"""Operations, the door: back up and restore an installation (``backup``), and check what was
restored — every table's rows against the backup's manifest, and the audit chain; what may
serve a store (``serving``)."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from citydata.audit import service as audit
from citydata.config import Settings
from citydata.db.engine import Store
from citydata.ops.backup import (
    BackupError,
    Restored,
    Step,
    backup,
    read_manifest,
    restore,
    sqlite_path,
)

__all__ = [
    "BackupError",
    "Checked",
    "ServingRefused",
    "backup",
    "read_manifest",
    "restore_and_check",
    "serving",
]


@dataclass
class Checked:
    restored: Restored
    audit: audit.VerifyReport

    @property
    def ok(self) -> bool:
        return self.restored.ok and self.audit.ok


def restore_and_check(
    store: Store,
    settings: Settings,
    folder: Path,
    *,
    force: bool = False,
    jobs: int = 2,
    step: Step | None = None,
) -> Checked:
    restored = restore(
        store.engine, settings, folder, force=force, jobs=jobs, step=step or (lambda _m: None)
    )
    with store.session() as session:
        report = audit.verify(session)
    return Checked(restored, report)


class ServingRefused(RuntimeError):
    pass


class Serving:
    """The right to serve, held until closed: on SQLite, a lock on the file beside the
    database (it goes with the process if the process dies)."""

    def __init__(self, fd: int | None = None):
        self.fd = fd

    def __enter__(self) -> Serving:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def serving(url: str, workers: int) -> Serving:
    """What may serve ``url``. PostgreSQL: any number of processes, on any number of machines
    — limits, quotas, the audit chain and the schedule are kept in the database. SQLite: one
    process. Its limits and quotas are counted in that process (exact, and cheaper than a write
    per call), and SQLite has one writer at a time anyway; a second server on the same file is
    refused rather than left to count on its own."""
    if not url.startswith("sqlite"):
        return Serving()
    if workers > 1:
        raise ServingRefused(
            f"SQLite 只能由一个服务进程使用（--workers {workers}）：调用限额和配额记在这个进程里，"
            "SQLite 同一时间也只有一个写入者。多个进程请改用 PostgreSQL（见 docs/deploy.md）"
        )
    path = sqlite_path(url)
    fd = os.open(f"{path}.serving", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ServingRefused(
            f"另一个 citydata serve 进程正在使用 {path}：SQLite 只能由一个服务进程使用"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return Serving(fd)

"""Operations, the door: back up and restore an installation (``backup``), and check what was
restored — every table's rows against the backup's manifest, and the audit chain."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from citydata.audit import service as audit
from citydata.config import Settings
from citydata.db.engine import Store
from citydata.ops.backup import BackupError, Restored, Step, backup, read_manifest, restore

__all__ = ["BackupError", "Checked", "backup", "read_manifest", "restore_and_check"]


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

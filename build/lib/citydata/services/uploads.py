"""Uploaded materials: stored whole before the database knows of them. A file is written to a
temporary name beside its place, synced, and renamed into place (atomic on one file system);
only then is its row added, in the request's transaction. A crash half-way leaves a temporary
file and no row; a failed transaction leaves a file no row names (swept by ``orphans``) —
never a row without its file. Storage is one small interface, so object storage can stand in.

What is accepted: PDF, JPEG, PNG and OFD (the national layout format, a ZIP), told by their
first bytes, not by the name or the browser's word; at most ``MAX_BYTES``."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from citydata.services.cases import matter_of
from citydata.services.models import Case, Upload
from citydata.services.shared import ServiceError

MAX_BYTES = 10 << 20  # 10 MiB per file, as the national platform's material rules have it
CHUNK = 1 << 16
SIGNATURES = {  # media type -> first bytes
    "application/pdf": b"%PDF-",
    "image/jpeg": b"\xff\xd8\xff",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "application/ofd": b"PK\x03\x04",
}
KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{32}$")


class Storage(Protocol):
    def put(self, chunks: Iterable[bytes], limit: int) -> Stored: ...

    def open(self, key: str) -> BinaryIO: ...

    def stored(self) -> Iterable[str]: ...

    def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    sha256: str
    head: bytes


class TooLarge(ServiceError):
    def __init__(self, limit: int):
        super().__init__(f"文件过大：每个材料最多 {limit >> 20} MiB", 413, "too_large")


class DiskStorage:
    """Files under ``root``, named by a random key (never by what the uploader called them)."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, key: str) -> Path:
        if not KEY.match(key):
            raise ServiceError("材料键无效", 400, "bad_key")
        return self.root / key

    def put(self, chunks: Iterable[bytes], limit: int) -> Stored:
        key = f"{uuid.uuid4().hex[:2]}/{uuid.uuid4().hex}"
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.part")
        digest, size, head = hashlib.sha256(), 0, b""
        try:
            with open(temporary, "xb") as f:
                for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(limit)
                    if len(head) < 16:
                        head += chunk[: 16 - len(head)]
                    digest.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        return Stored(key, size, digest.hexdigest(), head)

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def stored(self) -> Iterable[str]:
        for path in self.root.glob("*/*"):
            if not path.name.startswith("."):
                yield f"{path.parent.name}/{path.name}"

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def media_type(head: bytes) -> str | None:
    return next((kind for kind, magic in SIGNATURES.items() if head.startswith(magic)), None)


def attach(
    session: Session,
    storage: Storage,
    case: Case,
    material: str,
    file_name: str,
    chunks: Iterable[bytes],
    limit: int = MAX_BYTES,
) -> Upload:
    """Store the file, then add its row. A refused file is removed before the answer."""
    if case.status != "draft":
        raise ServiceError("已提交的办件不能再上传材料", 409, "submitted")
    names = {m.name for m in matter_of(session, case).materials}
    if material not in names:
        raise ServiceError(f"事项没有材料「{material}」", 422, "unknown_material")
    stored = storage.put(chunks, limit)
    kind = media_type(stored.head)
    if kind is None or stored.size == 0:
        storage.delete(stored.key)
        raise ServiceError("只接受 PDF、JPEG、PNG 或 OFD 文件（按文件内容判断）", 415, "bad_type")
    upload = Upload(
        case_id=case.id,
        material=material,
        file_name=Path(file_name or "material").name[:200],
        media_type=kind,
        size=stored.size,
        sha256=stored.sha256,
        storage_key=stored.key,
    )
    session.add(upload)
    return upload


def uploads(session: Session, case: Case) -> list[Upload]:
    return list(
        session.scalars(select(Upload).where(Upload.case_id == case.id).order_by(Upload.id))
    )


def orphans(session: Session, storage: Storage) -> list[str]:
    """Files no row names (a transaction that failed after its file was stored)."""
    named = set(session.scalars(select(Upload.storage_key)))
    return [key for key in storage.stored() if key not in named]

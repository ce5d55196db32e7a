"""Photos of events: JPEG or PNG judged by their bytes (first and last: a file cut off half-way
is refused, not kept), at most 10 MiB, kept in the same disk storage as the service platform's
materials (written to a temporary file, synced, then renamed: nothing half-written remains)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from citydata.grid.events import GridError
from citydata.services.uploads import MAX_BYTES, DiskStorage, TooLarge, media_type

ENDINGS = {"image/jpeg": b"\xff\xd9", "image/png": b"IEND\xaeB`\x82"}


@dataclass(frozen=True)
class Photo:
    key: str
    sha256: str
    media_type: str


def storage(data_dir: Path) -> DiskStorage:
    return DiskStorage(data_dir / "grid_photos")


def keep(store: DiskStorage, chunks: Iterable[bytes], limit: int = MAX_BYTES) -> Photo:
    try:
        stored = store.put(chunks, limit)
    except TooLarge:  # nothing was kept
        raise GridError(f"照片过大：最多 {limit >> 20} MiB", 413, "too_large") from None
    kind = media_type(stored.head)
    ending = ENDINGS.get(kind or "")
    whole = False
    if ending is not None:
        with store.open(stored.key) as file:
            file.seek(max(0, stored.size - 16))
            whole = file.read().rstrip(b"\x00").endswith(ending)
    if not whole:
        store.delete(stored.key)
        raise GridError("照片须为完整的 JPEG 或 PNG 图片（按文件内容判断）", 415, "bad_photo")
    return Photo(stored.key, stored.sha256, kind or "")

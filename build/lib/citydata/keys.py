"""The installation's secret keys, kept out of the database.

They come from ``CITYDATA_SECRET_KEY`` (comma-separated, newest first) or from a key file
(``CITYDATA_KEY_FILE``, default ``<data dir>/secret.keys``: one key a line, newest first, made
with mode 0600 on first use). A data path that reads the database — a SQL query, a backup, a
stolen dump — finds no key there.

The keys sign session cookies (any listed key verifies, the newest signs) and encrypt the
secrets the platform must keep readable, such as webhook signing secrets (Fernet: any listed key
decrypts, the newest encrypts). ``citydata keys rotate`` puts a new key in front, keeps the
previous ones for verifying and decrypting, and re-encrypts what is stored."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from citydata.config import Settings

ENCRYPTED = "fernet:"  # stored values that are encrypted start with this
KEPT = 3  # keys kept in the file after a rotation: the new one and two previous


class UnknownKey(RuntimeError):
    """A stored secret cannot be decrypted with any key we hold."""


def _derive(key: str, purpose: str) -> bytes:
    """One key per purpose, so a cookie signature never doubles as an encryption key."""
    return hashlib.sha256(f"citydata:{purpose}:".encode() + key.encode()).digest()


@dataclass(frozen=True)
class Keys:
    keys: tuple[str, ...]  # newest first

    def __post_init__(self) -> None:
        if not self.keys or not all(self.keys):
            raise ValueError("至少需要一个非空密钥")

    @property
    def signing(self) -> list[bytes]:
        """For itsdangerous: oldest first, the last one signs."""
        return [_derive(k, "cookie") for k in reversed(self.keys)]

    @cached_property
    def _cipher(self) -> MultiFernet:
        return MultiFernet(
            [Fernet(base64.urlsafe_b64encode(_derive(k, "fernet"))) for k in self.keys]
        )

    def encrypt(self, plaintext: str) -> str:
        return ENCRYPTED + self._cipher.encrypt(plaintext.encode()).decode()

    def decrypt(self, stored: str) -> str:
        if not stored.startswith(ENCRYPTED):
            return stored  # kept before encryption at rest; `citydata init` encrypts it
        try:
            return self._cipher.decrypt(stored[len(ENCRYPTED) :].encode()).decode()
        except InvalidToken as exc:
            raise UnknownKey("无法用现有密钥解密（密钥文件被替换或丢失？）") from exc

    def reencrypt(self, stored: str) -> str:
        """The same secret under the newest key."""
        return self.encrypt(self.decrypt(stored))

    def derived(self, purpose: str) -> bytes:
        """A key of the newest for another purpose (e.g. hashing a session token)."""
        return _derive(self.keys[0], purpose)


def _read(path: Path) -> tuple[str, ...]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(k.strip() for k in lines if k.strip() and not k.startswith("#"))


def _write(path: Path, keys: tuple[str, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# citydata secret keys, newest first. Keep this file out of backups of data.\n")
        f.write("\n".join(keys) + "\n")
    os.replace(temporary, path)


def load(settings: Settings) -> Keys:
    if settings.secret_key:
        return Keys(tuple(k.strip() for k in settings.secret_key.split(",") if k.strip()))
    path = settings.keys_path
    if not path.exists():
        _write(path, (secrets.token_urlsafe(48),))
    return Keys(_read(path))


def rotate(settings: Settings) -> tuple[Keys, Keys]:
    """(before, after): a new key in front of the file's keys. Keys given in the environment
    are rotated by whoever sets it."""
    if settings.secret_key:
        raise ValueError("密钥来自环境变量 CITYDATA_SECRET_KEY：请在那里加入新密钥（放在最前）")
    before = load(settings)
    after = Keys((secrets.token_urlsafe(48), *before.keys[: KEPT - 1]))
    _write(settings.keys_path, after.keys)
    return before, after

"""Account logic: users, password checks, API tokens, and who may write what."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from citydata.accounts.models import ROLES, ApiToken, SiteSetting, User
from citydata.db.base import utcnow

TOKEN_PREFIX = "cdt"
_hasher = PasswordHasher()


class AccountError(ValueError):
    pass


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    unit_code: str | None = None,
    display_name: str = "",
) -> User:
    if role not in ROLES:
        raise AccountError(f"未知角色「{role}」，可选：{', '.join(ROLES)}")
    if role == "steward" and not unit_code:
        raise AccountError("单位数据管理员必须属于一个单位（--unit）")
    if len(password) < 8:
        raise AccountError("密码至少 8 位")
    if session.scalar(select(User).where(User.username == username)):
        raise AccountError(f"用户「{username}」已存在")
    user = User(
        username=username,
        password_hash=_hasher.hash(password),
        role=role,
        unit_code=unit_code,
        display_name=display_name or username,
    )
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username, User.active.is_(True)))
    if user is None:
        _hasher.hash(password)  # spend the same time whether or not the user exists
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def ensure_admin(session: Session, password: str | None) -> tuple[User, str | None]:
    """The first administrator; returns the generated password when none was given."""
    existing = session.scalar(select(User).where(User.role == "admin").order_by(User.id))
    if existing:
        return existing, None
    generated = None if password else secrets.token_urlsafe(12)
    user = create_user(session, "admin", password or generated, "admin", display_name="管理员")
    return user, generated


def secret_digest(secret: str) -> str:
    """How API tokens and sharing credentials are stored: SHA-256 of the whole secret (they are
    long and random, so a slow password hash buys nothing)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class IssuedToken:
    token: ApiToken
    plaintext: str  # shown once, never stored


def issue_token(session: Session, user: User, name: str) -> IssuedToken:
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    plaintext = f"{TOKEN_PREFIX}_{prefix}_{secret}"
    token = ApiToken(user_id=user.id, name=name, prefix=prefix, token_hash=secret_digest(plaintext))
    session.add(token)
    session.flush()
    return IssuedToken(token, plaintext)


def user_for_token(session: Session, plaintext: str) -> User | None:
    parts = plaintext.split("_", 2)  # the secret itself may contain "_"
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.prefix == parts[1]))
    if token is None or token.revoked_at is not None:
        return None
    if not hmac.compare_digest(token.token_hash, secret_digest(plaintext)):
        return None
    if not token.user.active:
        return None
    token.last_used_at = utcnow()
    return token.user


def revoke_token(session: Session, prefix: str) -> ApiToken:
    token = session.scalar(select(ApiToken).where(ApiToken.prefix == prefix))
    if token is None:
        raise AccountError(f"没有前缀为「{prefix}」的令牌")
    token.revoked_at = token.revoked_at or utcnow()
    return token


def can_write_unit(user: User | None, unit_code: str) -> bool:
    """Administrators write everything; a steward writes only his own unit's entries."""
    if user is None:
        return False
    return user.role == "admin" or (user.role == "steward" and user.unit_code == unit_code)


def site_secret(session: Session) -> str:
    """The cookie signing key: made once per installation and kept in the database."""
    setting = session.get(SiteSetting, "secret_key")
    if setting is None:
        setting = SiteSetting(key="secret_key", value=secrets.token_urlsafe(48))
        session.add(setting)
        session.flush()
    return setting.value

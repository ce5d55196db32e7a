"""Account logic: users, password checks, API tokens, and who may write what."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from citydata.accounts.models import ROLES, ApiToken, AuthFailure, User, UserSession
from citydata.db.base import as_utc, utcnow
from citydata.mechanisms.credentials import digest  # tokens are kept as credentials are
from citydata.mechanisms.locks import hold

TOKEN_PREFIX = "cdt"
_hasher = PasswordHasher()
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,31}")
DISPLAY_NAME_MAX = 40
# Letters of other scripts that look like Latin ones: "аdmin" (Cyrillic а) must not pass for
# "admin". Enough for the names people type here; usernames are plain ASCII anyway.
_LOOKALIKE = str.maketrans(
    "аеорсухіјѕԁһӏκνοτυχαβεικμνορτυχ",
    "aeopcyxijsdhlkvotuxabeikmvoptux",
)


class AccountError(ValueError):
    pass


def normal_username(username: str) -> str:
    """How a user name is stored and compared: NFKC, trimmed, lower case."""
    return unicodedata.normalize("NFKC", username).strip().casefold()


def check_username(username: str) -> str:
    name = normal_username(username)
    if not USERNAME.fullmatch(name):
        raise AccountError("用户名须为 2–32 个小写字母、数字或 . _ -，以字母或数字开头")
    return name


def check_display_name(display_name: str) -> str:
    name = unicodedata.normalize("NFKC", display_name).strip()
    if not name:
        raise AccountError("显示名不能为空")
    if len(name) > DISPLAY_NAME_MAX:
        raise AccountError(f"显示名最多 {DISPLAY_NAME_MAX} 个字符")
    odd = [c for c in name if unicodedata.category(c)[0] == "C" or (c.isspace() and c != " ")]
    if odd:
        raise AccountError("显示名含有不可见或控制字符")
    return name


def skeleton(name: str) -> str:
    """What a name looks like: two names with one skeleton are confusable."""
    folded = unicodedata.normalize("NFKC", name).casefold().translate(_LOOKALIKE)
    return "".join(c for c in folded if c.isalnum())


def _confusable(session: Session, display_name: str) -> bool:
    wanted = skeleton(display_name)
    taken = session.execute(select(User.username, User.display_name)).all()
    return any(wanted in {skeleton(u), skeleton(d)} for u, d in taken)


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
    check_password(password)
    username = check_username(username)
    display_name = check_display_name(display_name or username)
    if session.scalar(select(User).where(User.username == username)):
        raise AccountError(f"用户「{username}」已存在")
    if _confusable(session, username) or _confusable(session, display_name):
        raise AccountError("用户名或显示名与已有用户的过于相似，请换一个")
    user = User(
        username=username,
        password_hash=_hasher.hash(password),
        role=role,
        unit_code=unit_code,
        display_name=display_name,
    )
    session.add(user)
    session.flush()
    return user


def check_password(password: str) -> None:
    if len(password) < 8:
        raise AccountError("密码至少 8 位")
    if len(password) > 256:
        raise AccountError("密码最多 256 位")


def authenticate(session: Session, username: str, password: str) -> User | None:
    username = normal_username(username)
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


@dataclass
class IssuedToken:
    token: ApiToken
    plaintext: str  # shown once, never stored


def issue_token(session: Session, user: User, name: str) -> IssuedToken:
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    plaintext = f"{TOKEN_PREFIX}_{prefix}_{secret}"
    token = ApiToken(user_id=user.id, name=name, prefix=prefix, token_hash=digest(plaintext))
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
    if not hmac.compare_digest(token.token_hash, digest(plaintext)):
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


def users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def user_dict(user: User) -> dict:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "role_label": ROLES.get(user.role, user.role),
        "unit_code": user.unit_code,
        "active": user.active,
        "created_at": user.created_at.isoformat(),
    }


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == normal_username(username)))
    if user is None:
        raise AccountError(f"用户「{username}」不存在")
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """A new password ends every session the user had."""
    check_password(password)
    user.password_hash = _hasher.hash(password)
    end_sessions(session, user)


def disable(session: Session, user: User) -> None:
    """A disabled user's sessions end and tokens stop working (kept for the record)."""
    user.active = False
    end_sessions(session, user)


# ---------------------------------------------------------------- browser sessions


def _session_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: User, client_ip: str = "") -> str:
    """A new session's token for the cookie; only its hash is kept."""
    token = secrets.token_urlsafe(32)
    session.add(UserSession(token_hash=_session_hash(token), user_id=user.id, client_ip=client_ip))
    session.flush()
    return token


SESSION_IDLE = timedelta(hours=12)


def session_user(session: Session, token: str, now: datetime | None = None) -> User | None:
    """The user of a live session: not ended, not idle too long, the user still active."""
    if not token:
        return None
    now = now or utcnow()
    found = session.get(UserSession, _session_hash(token))
    if found is None or found.ended_at is not None:
        return None
    if as_utc(found.last_seen_at) < now - SESSION_IDLE:
        return None
    user = session.get(User, found.user_id)
    if user is None or not user.active:
        return None
    if now - as_utc(found.last_seen_at) > timedelta(minutes=5):  # not a write per request
        found.last_seen_at = now
    return user


def end_session(session: Session, token: str) -> None:
    found = session.get(UserSession, _session_hash(token)) if token else None
    if found is not None and found.ended_at is None:
        found.ended_at = utcnow()


def end_sessions(session: Session, user: User) -> None:
    session.execute(
        update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


# ---------------------------------------------------------------- throttling guesses


@dataclass(frozen=True)
class Throttle:
    """At most ``limit`` failures per key within ``window``; beyond, the check is refused
    (even a right answer) until the oldest failure leaves the window.

    ``wait`` holds the key's lock until the session's transaction ends (``mechanisms.locks``):
    attempts with one key are judged one after another, each after the failures of those before
    it were committed, so concurrent guesses — from any number of processes — get exactly
    ``limit`` tries, not one each."""

    scope: str
    limit: int
    window: timedelta

    def wait(self, session: Session, key: str, now: datetime | None = None) -> int:
        """Seconds until ``key`` may try again; 0 when it may now."""
        now = now or utcnow()
        hold(session, f"throttle:{self.scope}:{key[:200]}")
        since = now - self.window
        count, oldest = session.execute(
            select(func.count(), func.min(AuthFailure.at)).where(
                AuthFailure.scope == self.scope, AuthFailure.key == key, AuthFailure.at > since
            )
        ).one()
        if count < self.limit:
            return 0
        return max(1, int((as_utc(oldest) + self.window - now).total_seconds()) + 1)

    def fail(self, session: Session, key: str, now: datetime | None = None) -> None:
        now = now or utcnow()
        session.add(AuthFailure(scope=self.scope, key=key[:200], at=now))
        session.execute(
            delete(AuthFailure).where(
                AuthFailure.scope == self.scope, AuthFailure.at < now - 4 * self.window
            )
        )

    def clear(self, session: Session, key: str) -> None:
        session.execute(
            delete(AuthFailure).where(AuthFailure.scope == self.scope, AuthFailure.key == key)
        )


LOGIN_BY_NAME = Throttle("login_name", 5, timedelta(minutes=15))
LOGIN_BY_ADDRESS = Throttle("login_ip", 30, timedelta(minutes=15))


class Throttled(AccountError):
    def __init__(self, seconds: int):
        super().__init__(f"尝试次数过多，请 {max(1, round(seconds / 60))} 分钟后再试")
        self.seconds = seconds


def login(
    session: Session, username: str, password: str, client_ip: str, now: datetime | None = None
) -> User | None:
    """A password check, throttled per user name and per address: after too many failures the
    answer is refused whatever the password (a guesser learns nothing from trying on)."""
    name = normal_username(username)
    wait = max(
        LOGIN_BY_NAME.wait(session, name, now), LOGIN_BY_ADDRESS.wait(session, client_ip, now)
    )
    if wait:
        raise Throttled(wait)
    user = authenticate(session, username, password)
    if user is None:
        LOGIN_BY_NAME.fail(session, name, now)
        LOGIN_BY_ADDRESS.fail(session, client_ip, now)
        return None
    LOGIN_BY_NAME.clear(session, name)
    return user


class Authenticator:
    """How ``citydata.web.auth`` learns who is calling; the app factory wires it in."""

    @staticmethod
    def by_token(session: Session, token: str) -> User | None:
        return user_for_token(session, token)

    @staticmethod
    def by_session(session: Session, session_token: str) -> User | None:
        return session_user(session, session_token)

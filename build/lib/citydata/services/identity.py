"""实名认证: an account of the service platform acts for a verified person, and for the
companies that person legally represents. A person is checked — name, ID number and the mobile
number the population base holds — through the sharing service's ``verify`` (一致/不一致, no
value returned, audited); a company by its credit code, its name and the representative's ID
number against the legal-person base. Failures are counted per address and per number and
throttled; every refusal reads the same, so a guesser learns nothing about the person.

The numbers are kept encrypted; a keyed hash (HMAC under the installation's key) finds them.
The demo and tests may read the plain number back for display; nothing else needs it."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.accounts.service import AccountError, Throttle, Throttled, create_user
from citydata.keys import Keys
from citydata.services.models import Case, Identity
from citydata.services.shared import LEGAL_PERSON, POPULATION, Reader, ServiceError, verify
from citydata.standards import is_valid_credit_code, is_valid_id_number, normalise_id_number

BY_ADDRESS = Throttle("identity_ip", 20, timedelta(hours=1))
BY_SUBJECT = Throttle("identity_subject", 5, timedelta(days=1))
REFUSED = "身份信息核验未通过：请核对姓名、身份证号码和手机号码"
COMPANY_REFUSED = "法人信息核验未通过：须由登记的法定代表人本人认证，请核对统一社会信用代码和名称"


def subject_hash(keys: Keys, subject: str) -> str:
    return hmac.new(keys.derived("service-subject"), subject.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Applicant:
    """Who applies: taken from a verified identity (or, at a window, from the card the clerk
    read; from a docked system, from the system that authenticated the person)."""

    kind: str  # person/company
    subject: str  # ID number or credit code, clear
    name: str
    user_id: int | None = None


def _throttled(session: Session, client_ip: str, key: str) -> None:
    wait = max(BY_ADDRESS.wait(session, client_ip), BY_SUBJECT.wait(session, key))
    if wait:
        raise ServiceError(str(Throttled(wait)), 429, "throttled")


def _failed(session: Session, client_ip: str, key: str, message: str) -> ServiceError:
    BY_ADDRESS.fail(session, client_ip)
    BY_SUBJECT.fail(session, key)
    return ServiceError(message, 400, "not_verified")


def register_person(
    session: Session,
    keys: Keys,
    *,
    username: str,
    password: str,
    name: str,
    id_number: str,
    phone: str,
    client_ip: str,
) -> User:
    """A citizen's account, once name + ID number + mobile agree with the population base.
    The caller commits the failure count even when this raises (see ``pages.register``)."""
    number = normalise_id_number(id_number or "")
    key = subject_hash(keys, number or (id_number or "")[:40])
    _throttled(session, client_ip, key)
    if not is_valid_id_number(number) or not name.strip() or not phone.strip():
        raise _failed(session, client_ip, key, REFUSED)
    reader = Reader(end_user=username[:64], case_no="实名认证", client_ip=client_ip)
    claims = {"name": name.strip(), "phone": phone.strip()}
    if not verify(session, reader, POPULATION, number, claims):
        raise _failed(session, client_ip, key, REFUSED)
    if session.scalar(
        select(Identity.id).where(Identity.kind == "person", Identity.subject_hash == key)
    ):
        raise ServiceError("该身份已注册账号：请直接登录或找回密码", 409, "registered")
    try:
        user = create_user(session, username, password, "public", None, name.strip())
    except AccountError as exc:
        raise ServiceError(str(exc), 400, "bad_account") from exc
    session.add(
        Identity(
            user_id=user.id,
            kind="person",
            subject_hash=key,
            subject=keys.encrypt(number),
            name=name.strip(),
        )
    )
    BY_SUBJECT.clear(session, key)
    session.flush()
    return user


def add_company(
    session: Session,
    keys: Keys,
    user: User,
    *,
    credit_code: str,
    company_name: str,
    client_ip: str,
) -> Identity:
    """The user (a verified person) acts for a company whose legal representative he is."""
    person = identity_of(session, user, "person")
    if person is None:
        raise ServiceError("请先完成个人实名认证", 403, "not_verified")
    code = (credit_code or "").strip().upper()
    key = subject_hash(keys, code[:40])
    _throttled(session, client_ip, key)
    if not is_valid_credit_code(code) or not company_name.strip():
        raise _failed(session, client_ip, key, COMPANY_REFUSED)
    reader = Reader(end_user=user.username, case_no="法人实名认证", client_ip=client_ip)
    claims = {"name": company_name.strip(), "legal_rep_id": keys.decrypt(person.subject)}
    if not verify(session, reader, LEGAL_PERSON, code, claims):
        raise _failed(session, client_ip, key, COMPANY_REFUSED)
    if session.scalar(
        select(Identity.id).where(Identity.kind == "company", Identity.subject_hash == key)
    ):
        raise ServiceError("该法人已由其他账号认证", 409, "registered")
    if identity_of(session, user, "company") is not None:
        raise ServiceError("一个账号只能代表一个法人", 409, "registered")
    company = Identity(
        user_id=user.id,
        kind="company",
        subject_hash=key,
        subject=keys.encrypt(code),
        name=company_name.strip(),
    )
    session.add(company)
    BY_SUBJECT.clear(session, key)
    session.flush()
    return company


def identity_of(session: Session, user: User | None, kind: str = "person") -> Identity | None:
    if user is None:
        return None
    return session.scalar(
        select(Identity).where(Identity.user_id == user.id, Identity.kind == kind)
    )


def applicant(session: Session, keys: Keys, user: User, kind: str) -> Applicant:
    """The account's verified identity of ``kind``: the only source of a case's applicant."""
    found = identity_of(session, user, kind)
    if found is None:
        what = "个人实名认证" if kind == "person" else "法人实名认证"
        raise ServiceError(f"办理此事项须先完成{what}", 403, "not_verified")
    return Applicant(kind, keys.decrypt(found.subject), found.name, user.id)


def rekey(session: Session, before: Keys, after: Keys) -> int:
    """After a key rotation: numbers encrypted and hashed again under the new key."""
    changed = 0
    for found in session.scalars(select(Identity)):
        subject = before.decrypt(found.subject)
        found.subject, found.subject_hash = after.encrypt(subject), subject_hash(after, subject)
        changed += 1
    for case in session.scalars(select(Case).execution_options(yield_per=5000)):
        subject = before.decrypt(case.applicant_subject)
        case.applicant_subject = after.encrypt(subject)
        case.applicant_hash = subject_hash(after, subject)
        changed += 1
    return changed

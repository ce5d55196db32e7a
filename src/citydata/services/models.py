"""The service platform's tables: matters (with their versions, materials and form), bundles,
cases and their append-only status history, visits, uploads, ratings and follow-ups, the
discrepancies a correction reports to the data's owner, citizens' and companies' verified
identities, and the credentials of docked systems."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from citydata.db.base import Base, BigId, utcnow


class Matter(Base):
    """One version of a 政务服务事项. A published version is frozen; an edit makes a new draft
    version; cases keep the version they were opened under."""

    __tablename__ = "service_matters"
    __table_args__ = (UniqueConstraint("impl_code", "version", name="uq_service_matters_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    basic_code: Mapped[str] = mapped_column(String(40), index=True)  # 基本编码
    impl_code: Mapped[str] = mapped_column(String(60), index=True)  # 实施编码
    version: Mapped[int] = mapped_column(default=1)
    status: Mapped[str] = mapped_column(String(12), default="draft")  # draft/published/retired
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # 行政许可 … (vocabulary codes)
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    level: Mapped[str] = mapped_column(String(12))  # city/district/street/community
    area: Mapped[str] = mapped_column(String(12), default="")  # a division code below the city
    legal_basis: Mapped[str] = mapped_column(Text, default="")  # 设定依据
    conditions: Mapped[str] = mapped_column(Text, default="")  # 受理条件
    legal_days: Mapped[int] = mapped_column(default=20)  # 法定办结时限, working days
    promised_days: Mapped[int] = mapped_column(default=10)  # 承诺办结时限, working days
    channels: Mapped[list] = mapped_column(default=list)  # window / online / post
    visits: Mapped[int] = mapped_column(default=0)  # 到现场次数 the matter needs at most
    fully_online: Mapped[bool] = mapped_column(default=True)  # 是否全程网办
    instant: Mapped[bool] = mapped_column(default=False)  # 即办件
    fee: Mapped[str] = mapped_column(String(200), default="不收费")
    steps: Mapped[list] = mapped_column(default=list)
    life_events: Mapped[list] = mapped_column(default=list)  # 出生, 就业, 开办企业 …
    applicant: Mapped[str] = mapped_column(String(10), default="person")  # person/company/both
    form: Mapped[list] = mapped_column(default=list)  # [{name, label, prefill, locked}]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]

    materials: Mapped[list[Material]] = relationship(
        back_populates="matter", order_by="Material.position", cascade="all, delete-orphan"
    )


class Material(Base):
    """申请材料. ``replaced_by`` names the catalog class whose shared data stands in for it
    (户口簿 ← 人口基础库): such a material is 免提交."""

    __tablename__ = "service_materials"

    id: Mapped[int] = mapped_column(primary_key=True)
    matter_id: Mapped[int] = mapped_column(ForeignKey("service_matters.id"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(String(200))
    need: Mapped[str] = mapped_column(String(12), default="required")  # required/conditional
    form: Mapped[str] = mapped_column(String(12), default="original")  # original/copy/electronic
    replaced_by: Mapped[str] = mapped_column(String(40), default="")  # class code
    replaced_fields: Mapped[list] = mapped_column(default=list)

    matter: Mapped[Matter] = relationship(back_populates="materials")


class Bundle(Base):
    """一件事一次办 (高效办成一件事): matters across units answered with one form."""

    __tablename__ = "service_bundles"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    life_event: Mapped[str] = mapped_column(String(40), default="")
    matters: Mapped[list] = mapped_column(default=list)  # implementation codes


class Identity(Base):
    """A verified identity (实名认证) an account acts as: the person itself, or a company whose
    legal representative the person is. The number is kept encrypted; its keyed hash finds it."""

    __tablename__ = "service_identities"
    __table_args__ = (
        UniqueConstraint("kind", "subject_hash", name="uq_service_identities_subject"),
        UniqueConstraint("user_id", "kind", name="uq_service_identities_user_kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # person/company
    subject_hash: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(300))  # encrypted ID number or credit code
    name: Mapped[str] = mapped_column(String(200))  # the person's or the company's name
    verified_at: Mapped[datetime] = mapped_column(default=utcnow)


STAGES = ("draft", "to_accept", "in_progress", "paused", "done")


class Case(Base):
    """办件. The applicant is the authenticated account's identity, never the form's. ``stage``
    is where the case is in a unit's queue (derived from its status at every step)."""

    __tablename__ = "service_cases"
    __table_args__ = (
        Index("ix_service_cases_queue", "unit_code", "stage", "deadline", "id"),
        Index("ix_service_cases_opened", "opened_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_no: Mapped[str] = mapped_column(String(40), unique=True)  # 办件编号
    matter_id: Mapped[int] = mapped_column(ForeignKey("service_matters.id"), index=True)
    bundle_code: Mapped[str | None] = mapped_column(String(40))
    bundle_case: Mapped[str | None] = mapped_column(String(40), index=True)  # first case's no.
    unit_code: Mapped[str] = mapped_column(String(32))
    applicant_kind: Mapped[str] = mapped_column(String(10))  # person/company
    applicant_hash: Mapped[str] = mapped_column(String(64), index=True)
    applicant_subject: Mapped[str] = mapped_column(String(300))  # encrypted number
    applicant_name: Mapped[str] = mapped_column(String(200))
    applicant_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    channel: Mapped[str] = mapped_column(String(10))  # how it was applied for: online/window
    source: Mapped[str] = mapped_column(String(10), default="platform")  # platform/docked
    status: Mapped[str] = mapped_column(String(20))  # "draft" until submitted
    stage: Mapped[str] = mapped_column(String(12))
    form: Mapped[dict] = mapped_column(default=dict)
    prefilled: Mapped[dict] = mapped_column(default=dict)  # field -> value as the platform read it
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_on: Mapped[date | None]
    accepted_on: Mapped[date | None]
    paused_days: Mapped[int] = mapped_column(default=0)  # working days of 补正 and 特别程序
    paused_since: Mapped[date | None]
    deadline: Mapped[date | None]  # 承诺时限: working days from acceptance, pauses added
    finished_on: Mapped[date | None]
    result: Mapped[str] = mapped_column(String(10), default="")  # granted/refused
    visits: Mapped[int] = mapped_column(default=0)  # kept equal to the rows of service_visits
    rating: Mapped[int | None]
    rating_reason: Mapped[str] = mapped_column(Text, default="")


class CaseEvent(Base):
    """One step of a case: append-only; the allowed steps are ``statuses.toml``."""

    __tablename__ = "service_case_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("service_cases.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    on: Mapped[date]  # the working day it counts on
    at: Mapped[datetime] = mapped_column(default=utcnow)
    by: Mapped[str] = mapped_column(String(64))
    unit_code: Mapped[str] = mapped_column(String(32), default="")
    note: Mapped[str] = mapped_column(Text, default="")


class Visit(Base):
    """The applicant came in person (a window, a hall): 一次办 counts these, never a typed number."""

    __tablename__ = "service_visits"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("service_cases.id"), index=True)
    on: Mapped[date]
    place: Mapped[str] = mapped_column(String(100), default="")
    by: Mapped[str] = mapped_column(String(64), default="")


class Upload(Base):
    """A material the applicant uploaded: stored whole before this row exists, its SHA-256 kept."""

    __tablename__ = "service_uploads"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("service_cases.id"), index=True)
    material: Mapped[str] = mapped_column(String(200))
    file_name: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Discrepancy(Base):
    """An applicant corrected a prefilled value: the department whose record it came from is
    told (its record may be wrong). Values are kept masked."""

    __tablename__ = "service_discrepancies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("service_cases.id"), index=True)
    field: Mapped[str] = mapped_column(String(64))
    class_code: Mapped[str] = mapped_column(String(40))
    master_id: Mapped[int | None]  # the base's record, so the owner can find and fix it
    provider_code: Mapped[str] = mapped_column(String(32), index=True)
    held: Mapped[str] = mapped_column(String(200))  # masked
    claimed: Mapped[str] = mapped_column(String(200))  # masked
    status: Mapped[str] = mapped_column(String(12), default="open")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class FollowUp(Base):
    """Every 差评 opens one, due within 15 working days."""

    __tablename__ = "service_followups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("service_cases.id"), unique=True)
    unit_code: Mapped[str] = mapped_column(String(32), index=True)
    due: Mapped[date]
    status: Mapped[str] = mapped_column(String(12), default="open")
    note: Mapped[str] = mapped_column(Text, default="")


class DockedSystem(Base):
    """A department's own business system (自建业务系统) docked to the platform: its credential
    (``cdk_<key id>_<secret>``, kept as a hash, rotated with grace, an IP allow-list)."""

    __tablename__ = "service_systems"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    previous_hash: Mapped[str | None] = mapped_column(String(64))
    previous_until: Mapped[datetime | None]
    ip_allow: Mapped[list] = mapped_column(default=list)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

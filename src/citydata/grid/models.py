"""一格通管's tables: the unit grid cells (a copy of the spatial base's cells with their bounding
boxes, for the spatial join), the SLA versions of the categories, the events with their
append-only steps, their reporters (a merged report keeps its own), the routing decisions, the
API keys of Open311 clients, and the classifier trained on the city's own labelled events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from citydata.db.base import Base, BigId, utcnow


class Cell(Base):
    """单元网格: a polygon (WKT, longitude/latitude) inside one community of one street of one
    district, with its box. Street and community are names, as the spatial base gives them."""

    __tablename__ = "grid_cells"

    grid_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    division: Mapped[str] = mapped_column(String(12), index=True)
    street: Mapped[str] = mapped_column(String(50), default="", server_default="")
    community: Mapped[str] = mapped_column(String(50), default="", server_default="")
    boundary: Mapped[str] = mapped_column(Text)
    min_x: Mapped[float]
    min_y: Mapped[float]
    max_x: Mapped[float]
    max_y: Mapped[float]


class Sla(Base):
    """One version of a category's time limits. An event keeps the version it was opened under;
    a changed limit is a new version from its ``effective`` time on."""

    __tablename__ = "grid_slas"
    __table_args__ = (UniqueConstraint("category", "version", name="uq_grid_slas_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(String(8), index=True)
    version: Mapped[int]
    effective: Mapped[datetime]
    dispatch: Mapped[list] = mapped_column()  # [amount, "wh" | "h" | "wd" | "d"]
    handle: Mapped[list] = mapped_column()
    verify: Mapped[list] = mapped_column()


class Event(Base):
    """A problem on the street, from 信息收集 to 结案. ``status`` and the deadlines are derived
    from the steps (kept here so that queues and maps filter in SQL)."""

    __tablename__ = "grid_events"
    __table_args__ = (
        # covering the map's box, status and clusters: counted and grouped from the index alone
        Index("ix_grid_events_map", "longitude", "latitude", "status", "grid_code", "due_at"),
        Index("ix_grid_events_queue", "unit_code", "status", "due_at", "id"),
        Index("ix_grid_events_near", "category", "latitude", "longitude"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_no: Mapped[str] = mapped_column(String(24), unique=True)
    token: Mapped[str] = mapped_column(String(40), unique=True)  # Open311's, before an id
    category: Mapped[str] = mapped_column(String(8), index=True)
    sla_id: Mapped[int] = mapped_column(ForeignKey("grid_slas.id"))
    source: Mapped[str] = mapped_column(String(12))  # citizen/inspector/department/sensor
    channel: Mapped[str] = mapped_column(String(12))  # open311/page/docked
    description: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(200), default="")
    longitude: Mapped[float]
    latitude: Mapped[float]
    grid_code: Mapped[str] = mapped_column(String(20), index=True)
    division: Mapped[str] = mapped_column(String(12), index=True)
    component_id: Mapped[str | None] = mapped_column(String(16))
    photo_key: Mapped[str | None] = mapped_column(String(200))  # in the photo storage
    photo_sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12), default="reported")
    unit_code: Mapped[str | None] = mapped_column(String(32))
    duplicate_of: Mapped[int | None] = mapped_column(BigId, ForeignKey("grid_events.id"))
    suggested: Mapped[list] = mapped_column(default=list)  # [[category, probability], …]
    reworks: Mapped[int] = mapped_column(default=0)
    reported_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    stage: Mapped[str] = mapped_column(String(12), default="")  # dispatch/handle/verify or ""
    stage_started: Mapped[datetime | None]
    due_at: Mapped[datetime | None]  # the running stage's deadline
    late_at: Mapped[datetime | None]  # three times its limit: 严重超期
    handled_late: Mapped[bool | None]  # set at 处置反馈: after the handle deadline?
    closed_at: Mapped[datetime | None]


class Step(Base):
    """One status of an event: append-only; who, when, where and why."""

    __tablename__ = "grid_steps"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(BigId, ForeignKey("grid_events.id"), index=True)
    status: Mapped[str] = mapped_column(String(12))
    actor: Mapped[str] = mapped_column(String(100))
    unit_code: Mapped[str | None] = mapped_column(String(32))
    longitude: Mapped[float | None]
    latitude: Mapped[float | None]
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Reporter(Base):
    """Who reported an event; a report merged into another event keeps its reporter, who is
    told the outcome. Contact details are kept encrypted."""

    __tablename__ = "grid_reporters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(BigId, ForeignKey("grid_events.id"), index=True)
    via_event_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("grid_events.id")
    )  # the report made
    kind: Mapped[str] = mapped_column(String(12))  # citizen/inspector/department/sensor
    name: Mapped[str] = mapped_column(String(100), default="")
    contact: Mapped[str] = mapped_column(String(400), default="")  # encrypted
    client_id: Mapped[int | None] = mapped_column(ForeignKey("grid_open311_clients.id"))
    told_at: Mapped[datetime | None]


class Routing(Base):
    """Every decision of who handles an event: a rule's, the category's, or a dispatcher's
    override with its reason."""

    __tablename__ = "grid_routings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(BigId, ForeignKey("grid_events.id"), index=True)
    unit_code: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str] = mapped_column(String(200))  # the rule's name, 类别默认, or 人工改派
    by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Open311Client(Base):
    """An app that posts reports through Open311 (``api_key``): a credential like the docked
    systems', kept as a hash, with rotation and an IP allow-list."""

    __tablename__ = "grid_open311_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    previous_hash: Mapped[str | None] = mapped_column(String(64))
    previous_until: Mapped[datetime | None]
    ip_allow: Mapped[list] = mapped_column(default=list)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Classifier(Base):
    """A trained classifier of report texts: its arrays as an ``.npz`` (loaded without pickle),
    and its accuracy on held-out events."""

    __tablename__ = "grid_classifiers"

    id: Mapped[int] = mapped_column(primary_key=True)
    trained_at: Mapped[datetime] = mapped_column(default=utcnow)
    samples: Mapped[int]
    accuracy: Mapped[float]
    baseline_accuracy: Mapped[float]
    arrays: Mapped[bytes] = mapped_column(LargeBinary)

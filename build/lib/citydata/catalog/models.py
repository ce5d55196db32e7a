"""Catalog tables: units (单位), resource classes (信息资源) and their fields (信息项)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from citydata.db.base import Base, utcnow


class Unit(Base):
    __tablename__ = "units"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    short_name: Mapped[str] = mapped_column(String(40))
    credit_code: Mapped[str] = mapped_column(String(18))
    level: Mapped[str] = mapped_column(String(16))
    contact: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")

    classes: Mapped[list[ResourceClass]] = relationship(back_populates="provider")


class ResourceClass(Base):
    __tablename__ = "resource_classes"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)  # 信息资源代码
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(16))  # 资源属性 basic/theme/department
    classification: Mapped[str] = mapped_column(String(16))  # 前段码: 类/项/目/细目 digits
    classification_name: Mapped[str] = mapped_column(String(200), default="")
    provider_code: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    format_class: Mapped[str] = mapped_column(String(20))
    format_type: Mapped[str] = mapped_column(String(40), default="")
    share_type: Mapped[str] = mapped_column(String(16), index=True)
    share_condition: Mapped[str] = mapped_column(Text, default="")
    share_methods: Mapped[list] = mapped_column(default=list)
    open_type: Mapped[str] = mapped_column(String(16), index=True)
    open_condition: Mapped[str] = mapped_column(Text, default="")
    update_cycle: Mapped[str] = mapped_column(String(16))
    publish_date: Mapped[date | None]
    related_codes: Mapped[list] = mapped_column(default=list)
    secret: Mapped[str] = mapped_column(String(20), default="non_classified")
    base_db: Mapped[str] = mapped_column(String(20), default="none", index=True)
    status: Mapped[str] = mapped_column(String(12), default="published")
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    provider: Mapped[Unit] = relationship(back_populates="classes")
    fields: Mapped[list[Field]] = relationship(
        back_populates="resource_class",
        order_by="Field.position",
        cascade="all, delete-orphan",
    )


class Field(Base):
    __tablename__ = "class_fields"
    __table_args__ = (Index("ux_class_fields_class_name", "class_code", "name", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    class_code: Mapped[str] = mapped_column(ForeignKey("resource_classes.code", ondelete="CASCADE"))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(100))
    data_type: Mapped[str] = mapped_column(String(2))
    length: Mapped[int | None]
    required: Mapped[bool] = mapped_column(default=False)
    is_key: Mapped[bool] = mapped_column(default=False)
    sensitivity: Mapped[str] = mapped_column(String(16), default="public")
    rules: Mapped[list] = mapped_column(default=list)
    enum: Mapped[list] = mapped_column(default=list)
    description: Mapped[str] = mapped_column(Text, default="")

    resource_class: Mapped[ResourceClass] = relationship(back_populates="fields")

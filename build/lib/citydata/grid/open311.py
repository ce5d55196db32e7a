"""Open311 GeoReport v2, the grid's face to citizens' apps and third parties: services are the
categories, a service request is an event (its 事件编号 is the ``service_request_id``), status is
open or closed with the seven-step status in ``status_notes``, and the jurisdiction is the city.
Apps that post hold an API key (``o311_<key id>_<secret>``, the docked systems' credential
machinery). Answers are JSON or XML, errors in the spec's ``[{code, description}]``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

from sqlalchemy import select
from sqlalchemy.orm import Session

from citydata.accounts.models import User
from citydata.grid import sla
from citydata.grid.events import TRANSITIONS, GridError
from citydata.grid.models import Event, Open311Client
from citydata.mechanisms import credentials

JURISDICTION = "changsha.gov.cn"
PREFIX = "o311"
CLOSED = frozenset({"closed", "voided"})
COMPONENT_ATTRIBUTE = "component_id"


# ---------------------------------------------------------------- clients


@dataclass(frozen=True)
class Issued:
    client: Open311Client
    secret: str  # shown once


def register(session: Session, user: User, name: str) -> Issued:
    if user.role != "admin":
        raise GridError("只有平台管理员可以发放 Open311 密钥", 403, "forbidden")
    if not name.strip() or len(name) > 100:
        raise GridError("应用名称必填，最多 100 个字符", 422, "bad_name")
    key_id = credentials.new_key_id()
    secret = credentials.new_secret(PREFIX, key_id)
    client = Open311Client(
        name=name.strip(),
        key_id=key_id,
        secret_hash=credentials.digest(secret),
        created_by=user.username,
    )
    session.add(client)
    session.flush()
    return Issued(client, secret)


def authenticate(session: Session, api_key: str, client_ip: str) -> Open311Client:
    refused = GridError("api_key 无效或已吊销", 403, "bad_api_key")
    presented = credentials.parse(PREFIX, f"Bearer {api_key or ''}")
    if presented is None:
        raise refused
    client = session.scalar(select(Open311Client).where(Open311Client.key_id == presented.key_id))
    now = datetime.now(UTC)
    if client is None or client.revoked_at is not None:
        raise refused
    if not credentials.matches(client, presented.whole, now):
        raise refused
    if not credentials.ip_allowed(client, client_ip):
        raise GridError("调用地址不在该应用的 IP 白名单内", 403, "ip_not_allowed")
    return client


# ---------------------------------------------------------------- documents


def services() -> list[dict[str, Any]]:
    return [
        {
            "service_code": c.code,
            "service_name": c.name,
            "description": f"{c.full_name}（GB/T 30428）",
            "metadata": c.code.startswith("B"),
            "type": "realtime",
            "keywords": ",".join(c.words),
            "group": f"{c.kind}·{c.major_name}",
        }
        for c in sla.categories().values()
    ]


def definition(code: str) -> dict[str, Any]:
    found = sla.category(code)
    if found is None:
        raise GridError(f"service_code「{code}」不存在", 404, "unknown_service")
    attributes = []
    if code.startswith("B"):
        attributes.append(
            {
                "variable": True,
                "code": COMPONENT_ATTRIBUTE,
                "datatype": "string",
                "required": False,
                "datatype_description": "16 位部件标识码：行政区划 6 位 + 大类 2 位 + 小类 2 位 + 序号 6 位",
                "order": 1,
                "description": "部件标识码（部件上的铭牌）",
                "values": [],
            }
        )
    return {"service_code": code, "attributes": attributes}


def request_dict(event: Event, unit_name: str, merged_into: Event | None = None) -> dict[str, Any]:
    """One service request; a report merged into another event shows that event's outcome."""
    shown = merged_into or event
    notes = TRANSITIONS.label(shown.status)
    if merged_into is not None:
        notes = f"已并入事件 {merged_into.event_no}：{notes}"
    found = sla.category(event.category)
    return {
        "service_request_id": event.event_no,
        "status": "closed" if shown.status in CLOSED else "open",
        "status_notes": notes,
        "service_name": found.name if found else event.category,
        "service_code": event.category,
        "description": event.description,
        "agency_responsible": unit_name,
        "service_notice": "",
        "requested_datetime": _w3(event.reported_at),
        "updated_datetime": _w3(shown.updated_at),
        "expected_datetime": _w3(shown.due_at) if shown.stage == "handle" else None,
        "address": event.address,
        "address_id": event.grid_code,
        "zipcode": None,
        "lat": event.latitude,
        "long": event.longitude,
        "media_url": None,
    }


def _w3(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_w3(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise GridError(
            f"{name} 须为 W3C 日期时间，如 2026-01-01T00:00:00Z", 400, "bad_date"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---------------------------------------------------------------- XML

# The element each list's items are called in the spec's XML.
XML_ITEMS = {"services": "service", "service_requests": "request", "errors": "error"}


def to_xml(root: str, content: Any) -> bytes:
    element = ElementTree.Element(root)
    _fill(element, content, XML_ITEMS.get(root, "item"))
    return b'<?xml version="1.0" encoding="utf-8"?>' + ElementTree.tostring(element, "utf-8")


def _fill(element: ElementTree.Element, content: Any, item: str) -> None:
    if isinstance(content, list):
        for value in content:
            child = ElementTree.SubElement(element, item)
            _fill(child, value, _singular(item))
    elif isinstance(content, dict):
        for key, value in content.items():
            child = ElementTree.SubElement(element, key)
            _fill(child, value, _singular(key))
    elif isinstance(content, bool):
        element.text = "true" if content else "false"
    elif content is not None:
        element.text = str(content)


def _singular(name: str) -> str:
    return {"attributes": "attribute", "values": "value"}.get(name, "item")

"""What each cockpit tile must show, computed straight from the database — plain SQL and a little
Python, none of the cockpit's own code — and what a tile's payload (or its drawn chart) shows,
in the same shape, so that the JSON tests and the browser test compare the two."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from citydata.clock import city_day, city_midnight

OWN = ("399001/00001", "101007/00002")  # the platform's cases and events, as catalog classes
OPEN = (
    "reported",
    "registered",
    "dispatched",
    "handling",
    "handled",
    "rework",
    "verified",
    "suspended",
)


def _rows(session: Session, sql: str, **params: Any) -> list:
    return session.execute(text(sql), params).all()


def _aware(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _days(now: datetime, n: int = 30) -> list[date]:
    today = city_day(now)
    return [today - timedelta(days=n - 1 - i) for i in range(n)]


def targets(session: Session, now: datetime) -> dict:
    (departments,) = _rows(
        session,
        "SELECT count(DISTINCT b.unit_code) FROM batches b JOIN units u ON u.code = b.unit_code "
        "WHERE b.status = 'committed' AND u.level = 'city'",
    )[0]
    (classes,) = _rows(
        session,
        "SELECT count(DISTINCT class_code) FROM batches WHERE status = 'committed' "
        "AND class_code NOT IN (:a, :b)",
        a=OWN[0],
        b=OWN[1],
    )[0]
    (shared,) = _rows(
        session,
        "SELECT count(*) FROM resource_classes WHERE status <> 'retired' AND share_type <> 'none'",
    )[0]
    (failed,) = _rows(session, "SELECT count(*) FROM batches WHERE status = 'failed'")[0]
    return {
        "figures": {
            "departments": departments,
            "classes": classes,
            "shared": shared,
            "failed": failed,
        }
    }


def batches_daily(session: Session, now: datetime) -> dict:
    days = _days(now)
    committed = [0] * len(days)
    failed = [0] * len(days)
    accepted = [0] * len(days)
    for at, status, rows in _rows(session, "SELECT created_at, status, rows_accepted FROM batches"):
        day = city_day(_aware(at))
        if day in days:
            i = days.index(day)
            if status == "committed":
                committed[i] += 1
                accepted[i] += rows
            elif status == "failed":
                failed[i] += 1
    return {"series": {"入库批次": committed, "失败批次": failed, "接收行数": accepted}}


def masters(session: Session, now: datetime) -> dict:
    found = dict(
        _rows(
            session,
            "SELECT base, count(*) FROM masters WHERE merged_into IS NULL AND version > 0 "
            "GROUP BY base",
        )
    )
    return {"by_key": {"主记录": {k: int(v) for k, v in found.items()}}}


def population(session: Session, now: datetime) -> dict:
    found = _rows(
        session,
        "SELECT division, count(*) FROM base_population WHERE division IS NOT NULL "
        "AND division <> '' GROUP BY division",
    )
    return {"regions": {d: int(n) for d, n in found}}


def legal_industry(session: Session, now: datetime) -> dict:
    found = _rows(session, "SELECT industry, count(*) FROM base_legal_person GROUP BY industry")
    return {"total": sum(int(n) for _, n in found)}


def reviews(session: Session, now: datetime) -> dict:
    (n,) = _rows(session, "SELECT count(*) FROM match_reviews WHERE status = 'pending'")[0]
    return {"figures": {"pending": n}}


def conflicts(session: Session, now: datetime) -> dict:
    (n,) = _rows(
        session,
        "SELECT count(*) FROM (SELECT master_id, attribute FROM master_values "
        "GROUP BY master_id, attribute HAVING count(*) > 1) v "
        "JOIN masters m ON m.id = v.master_id WHERE m.merged_into IS NULL",
    )[0]
    return {"figures": {"total": n}}


def _calls(session: Session, now: datetime) -> list:
    since = city_midnight(_days(now)[0])
    return [
        r
        for r in _rows(
            session,
            "SELECT at, consumer_code, class_code, outcome FROM audit_entries "
            "WHERE action <> 'export_end'",
        )
        if _aware(r[0]) >= since
    ]


def calls_daily(session: Session, now: datetime) -> dict:
    return {"total": len(_calls(session, now))}


def denied(session: Session, now: datetime) -> dict:
    bad = [r for r in _calls(session, now) if r[3] != "ok"]
    return {"total": len(bad), "figures": {"denied": len(bad)}}


def applications(session: Session, now: datetime) -> dict:
    today = city_day(now)
    pending = _rows(
        session,
        "SELECT due_date FROM share_applications WHERE channel = 'share' AND status = 'pending'",
    )
    overdue = sum(
        1 for (due,) in pending if due is not None and date.fromisoformat(str(due)[:10]) < today
    )
    return {"figures": {"pending": len(pending), "overdue": overdue}}


def flow(session: Session, now: datetime) -> dict:
    providers = dict(_rows(session, "SELECT code, provider_code FROM resource_classes"))
    n = sum(1 for r in _calls(session, now) if r[1] and providers.get(r[2]))
    return {"links": n}


def audit_chain(session: Session, now: datetime) -> dict:
    (n,) = _rows(session, "SELECT count(*) FROM audit_entries")[0]
    return {"figures": {"entries": n, "problems": 0}}


def open_usage(session: Session, now: datetime) -> dict:
    first = _days(now)[0]
    downloads = sum(
        int(n)
        for day, n in _rows(session, "SELECT day, count FROM open_downloads")
        if date.fromisoformat(str(day)[:10]) >= first
    )
    calls = sum(
        int(n)
        for day, n in _rows(session, "SELECT day, calls FROM open_api_calls")
        if date.fromisoformat(str(day)[:10]) >= first
    )
    return {"figures": {"downloads": downloads, "calls": calls}}


def open_topics(session: Session, now: datetime) -> dict:
    (n,) = _rows(
        session,
        "SELECT count(*) FROM resource_classes WHERE open_type IN ('open', 'conditional') "
        "AND status = 'published'",
    )[0]
    return {"figures": {"datasets": n}}


def _finished_cases(session: Session) -> list:
    return _rows(
        session,
        "SELECT c.unit_code, c.channel, c.visits, m.fully_online, c.finished_on, c.deadline "
        "FROM service_cases c JOIN service_matters m ON m.id = c.matter_id "
        "WHERE c.submitted_on IS NOT NULL AND c.finished_on IS NOT NULL "
        "AND c.accepted_on IS NOT NULL",
    )


def service_rates(session: Session, now: datetime) -> dict:
    done = _finished_cases(session)
    can = [r for r in done if r[3]]
    online = [r for r in can if r[1] == "online" and r[2] == 0]
    one_visit = [r for r in done if r[2] <= 1]
    return {
        "figures": {
            "fully_online": round(len(online) / len(can), 4),
            "one_visit": round(len(one_visit) / len(done), 4),
        }
    }


def service_units(session: Session, now: datetime) -> dict:
    per: dict[str, list] = defaultdict(list)
    for r in _finished_cases(session):
        per[r[0]].append(r)
    return {
        "by_key": {
            "一次办率": {
                u: round(sum(1 for r in rs if r[2] <= 1) / len(rs), 4) for u, rs in per.items()
            }
        }
    }


def grid_districts(session: Session, now: datetime) -> dict:
    listed = ", ".join(f"'{s}'" for s in OPEN)
    found = _rows(
        session,
        f"SELECT division, count(*) FROM grid_events WHERE status IN ({listed}) GROUP BY division",
    )
    return {"regions": {d: int(n) for d, n in found if d}}


def grid_units(session: Session, now: datetime) -> dict:
    found = _rows(
        session,
        "SELECT unit_code, handled_late FROM grid_events WHERE id IN "
        "(SELECT event_id FROM grid_steps WHERE status = 'registered') "
        "AND handled_late IS NOT NULL AND unit_code IS NOT NULL",
    )
    per: dict[str, list[bool]] = defaultdict(list)
    for unit, late in found:
        per[unit].append(bool(late))
    return {
        "by_key": {
            "按期处置率": {u: round(sum(1 for x in v if not x) / len(v), 4) for u, v in per.items()}
        }
    }


# tile -> what the database says it must show
EXPECTED = {
    "agg_targets": targets,
    "agg_batches_daily": batches_daily,
    "bases_masters": masters,
    "bases_population": population,
    "bases_legal_industry": legal_industry,
    "bases_reviews": reviews,
    "bases_conflicts": conflicts,
    "share_calls_daily": calls_daily,
    "share_denied": denied,
    "share_applications": applications,
    "share_flow": flow,
    "share_audit_chain": audit_chain,
    "open_topics": open_topics,
    "open_usage_daily": open_usage,
    "svc_rates": service_rates,
    "svc_by_unit": service_units,
    "grid_districts": grid_districts,
    "grid_units": grid_units,
}


def shown(payload: dict) -> dict:
    """A payload in the shapes above: figures by key, series by name, values by item key,
    regions by key, totals."""
    out: dict[str, Any] = {}
    out["figures"] = {f["key"]: f["value"] for f in payload.get("figures", [])}
    series = payload.get("series", [])
    out["series"] = {s["name"]: s["data"] for s in series}
    keys = payload.get("keys", [])
    out["by_key"] = {s["name"]: dict(zip(keys, s["data"], strict=True)) for s in series}
    out["total"] = sum(v or 0 for s in series for v in s["data"]) + sum(
        i["value"] for i in payload.get("items", [])
    )
    out["regions"] = {r["key"]: r["value"] for r in payload.get("regions", [])}
    out["links"] = sum(link["value"] for link in payload.get("links", []))
    return out


def agrees(expected: dict, found: dict) -> list[str]:
    """Where ``found`` (``shown`` of a payload or a drawn chart) differs from ``expected``:
    every expected figure must be there; a listed item must hold the expected value."""
    problems = []
    for part, wanted in expected.items():
        have = found[part]
        if part in ("figures", "series"):
            for key, value in wanted.items():
                if have.get(key) != value:
                    problems.append(f"{part}.{key}: {have.get(key)!r} ≠ {value!r}")
        elif part == "by_key":
            for name, values in wanted.items():
                for key, value in have.get(name, {}).items():  # the tile lists the top ones
                    if values.get(key) != value:
                        problems.append(f"{name}[{key}]: {value!r} ≠ {values.get(key)!r}")
                if not have.get(name):
                    problems.append(f"{name}: nothing shown")
        elif part == "regions":
            if have != wanted:
                problems.append(f"regions: {have} ≠ {wanted}")
        elif have != wanted:
            problems.append(f"{part}: {have!r} ≠ {wanted!r}")
    return problems

"""The demo city's 一网通办: its service halls below the city (a 政务服务中心 per district, 便民服务
中心 in streets, 服务站 in communities), some 230 matter implementations on four levels, the
新生儿出生一件事 bundle, and a year of cases — about three per resident.

The cases are modelled on how a hall works, not on the figures we want: each unit has its own
share of applicants who still come to a window, of 补正, of late decisions and of unhappy
applicants; online applications are accepted the next working day, window ones on the spot;
some matters need one visit whatever the channel (a photo, a signature). The figures follow from
that, near the seed's 97 % and different from unit to unit; ``truth/service_metrics.json`` holds
them as counted here, from the generator's own arrays, for the tests to compare."""

from __future__ import annotations

import json
import tomllib
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from citydata.db.base import advance_sequences
from citydata.demo.city import DISTRICTS
from citydata.demo.geography import geography
from citydata.mechanisms.workdays import add_workdays_many

POP, LEGAL, HEALTH = "101001/00000", "101002/00000", "101001/00004"
CASES_PER_RESIDENT = 3.0


def last_day(as_of: date) -> date:
    """The demo's last day of work: the day before ``as_of`` (its year ends as ``as_of`` begins)."""
    return as_of - timedelta(days=1)


def hall_units() -> list[dict]:
    """The service halls below the city, as catalog units (level district/street/community): a
    政务服务中心 per district, the 便民服务中心 of every real street (乡镇/街道), and a 服务站 in
    each street's first community (by code)."""
    geo = geography()
    units = []
    for code, district, _ in DISTRICTS:
        units.append(
            (f"zw{code}", f"{district}政务服务中心", f"{district}政务服务中心", "district")
        )
        streets = geo.streets.filter(pl.col("division") == code).sort("street_code")
        for street_code, street in streets.select("street_code", "street").iter_rows():
            units.append(
                (
                    f"jd{street_code}",
                    f"{district}{street}便民服务中心",
                    f"{street}便民服务中心",
                    "street",
                )
            )
            first = geo.communities.filter(pl.col("street_code") == street_code).row(0, named=True)
            units.append(
                (
                    f"sq{first['community_code']}",
                    f"{district}{street}{first['community']}服务站",
                    f"{first['community']}服务站",
                    "community",
                )
            )
    return [{"code": c, "name": n, "short_name": s, "level": lv} for c, n, s, lv in units]


# ---------------------------------------------------------------- the matters

PERSON_FORM = [
    {"name": "name", "label": "申请人姓名", "prefill": f"{POP}.name", "locked": True},
    {"name": "id_number", "label": "身份证号码", "prefill": f"{POP}.id_number", "locked": True},
    {"name": "address", "label": "住址", "prefill": f"{POP}.address", "locked": False},
    {"name": "phone", "label": "联系电话", "prefill": f"{POP}.phone", "locked": False},
]
COMPANY_FORM = [
    {"name": "company_name", "label": "单位名称", "prefill": f"{LEGAL}.name", "locked": True},
    {
        "name": "credit_code",
        "label": "统一社会信用代码",
        "prefill": f"{LEGAL}.credit_code",
        "locked": True,
    },
    {"name": "legal_rep", "label": "法定代表人", "prefill": f"{LEGAL}.legal_rep", "locked": True},
    {"name": "address", "label": "住所", "prefill": f"{LEGAL}.address", "locked": False},
    {"name": "contact_phone", "label": "联系电话"},
]
MATTERS = Path(__file__).with_name("matters.toml")
SHARED = {
    "pop": (POP, ["name", "id_number"]),
    "legal": (LEGAL, ["credit_code", "name", "legal_rep"]),
    "health": (HEALTH, ["id_number", "name"]),
}
HOUSEHOLD_FIELDS = ["address", "division"]  # what stands in for 居民户口簿


def _material(spec: str) -> dict:
    """``shared:pop:居民身份证`` (免提交) or ``名称|form`` (a paper), as the matter JSON has it."""
    if spec.startswith("shared:"):
        _, source, name = spec.split(":", 2)
        code, fields = SHARED[source]
        if name == "居民户口簿":
            fields = HOUSEHOLD_FIELDS
        return {
            "name": name,
            "need": "required",
            "form": "original",
            "replaced_by": code,
            "fields": fields,
        }
    name, _, form = spec.partition("|")
    return {"name": name, "need": "required", "form": form or "copy"}


EXTRA_FIELDS = {  # form fields beyond the applicant's own, by name
    "baby_name": "新生儿姓名",
    "baby_birth_date": "新生儿出生日期",
    "purpose": "用途",
    "destination": "就医地",
    "spouse_name": "配偶姓名",
    "bank_account": "收款银行账号",
    "child_name": "入学儿童姓名",
    "shop_name": "字号名称",
}
BASIC_KIND = {
    "license": "01",
    "payment": "02",
    "confirmation": "07",
    "reward": "09",
    "adjudication": "10",
    "other_power": "20",
    "public_service": "30",
}
BUNDLE = (
    "cs-newborn",
    "新生儿出生一件事",
    "出生",
    ["出生医学证明办理", "新生儿入户登记", "城乡居民医保参保登记", "社会保障卡申领"],
)


def _matter(index: int, spec: dict, unit: str, level: str, credit: str, area: str = "") -> dict:
    basic = f"{BASIC_KIND[spec['kind']]}{index:04d}000"
    form = COMPANY_FORM if spec["applicant"] == "company" else PERSON_FORM
    fields = list(form) + [{"name": f, "label": EXTRA_FIELDS[f]} for f in spec.get("fields", [])]
    legal, promised = spec["days"]
    instant, fully, visits = spec["instant"], spec["online"], spec["visits"]
    return {
        "basic_code": basic,
        "impl_code": f"{credit}{basic}",  # 实施编码: the unit's credit code and the basic code
        "name": spec["name"],
        "kind": spec["kind"],
        "unit": unit,
        "level": level,
        "area": area,
        "legal_basis": f"《{spec['name']}》相关法律法规及国务院决定",
        "conditions": "申请人符合法定条件，材料齐全、符合法定形式",
        "legal_days": legal,
        "promised_days": promised,
        "channels": ["online", "window"] if fully or visits <= 1 else ["window"],
        "visits": visits,
        "fully_online": fully,
        "instant": instant,
        "fee": "不收费",
        "steps": ["申请", "即时办结"] if instant else ["申请", "受理", "审查", "决定", "送达"],
        "life_events": spec["events"],
        "applicant": spec["applicant"],
        "materials": [_material(m) for m in spec["materials"]],
        "form": fields,
        "_weight": spec["weight"],
    }


def matters_doc(units: list[dict]) -> dict:
    """Every matter implementation, with its popularity (``_weight``, not imported)."""
    table = tomllib.loads(MATTERS.read_text(encoding="utf-8"))
    credit = {u["code"]: u["credit_code"] for u in units}
    found = [
        _matter(i, spec, spec["unit"], "city", credit[spec["unit"]])
        for i, spec in enumerate(table["city"], start=1)
    ]
    for level, prefix, base in (
        ("district", "zw", 100),
        ("street", "jd", 200),
        ("community", "sq", 300),
    ):
        for hall in (u for u in units if u["code"].startswith(prefix)):
            for i, spec in enumerate(table[level], start=base):
                found.append(
                    _matter(i, spec, hall["code"], level, credit[hall["code"]], hall["code"][2:8])
                )
    by_name = {m["name"]: m["impl_code"] for m in found if m["level"] == "city"}
    code, name, event, members = BUNDLE
    bundle = {
        "code": code,
        "name": name,
        "life_event": event,
        "matters": [by_name[m] for m in members],
    }
    return {"matters": found, "bundles": [bundle]}


# ---------------------------------------------------------------- a year of cases


def _unit_habits(units: list[str], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """How each hall works: its applicants' share online, its 补正, late and unhappy shares."""
    n = len(units)
    return {
        "online": np.clip(rng.normal(0.975, 0.012, n), 0.93, 0.997),
        "supplement": np.clip(rng.normal(0.05, 0.02, n), 0.01, 0.12),
        "late": np.clip(rng.normal(0.02, 0.012, n), 0.0, 0.06),
        "unhappy": np.clip(rng.normal(0.012, 0.006, n), 0.0, 0.04),
    }


def _only(values: pl.Series, keep: np.ndarray) -> pl.Series:
    """``values`` where ``keep``, null elsewhere."""
    return pl.select(pl.when(pl.Series(keep)).then(values)).to_series().alias(values.name)


def _days(start: date, offsets: np.ndarray) -> pl.Series:
    return pl.Series(np.datetime64(start) + offsets.astype("timedelta64[D]")).cast(pl.Date)


def cases(
    doc: dict,
    people: pl.DataFrame,
    companies: pl.DataFrame,
    rng: np.random.Generator,
    as_of: date,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(cases, events, visits) of the year before ``as_of``, every column an array: no loop
    over cases."""
    ref = np.datetime64(last_day(as_of))  # nothing happens on or after as_of
    year_start = last_day(as_of) - timedelta(days=364)
    matters = pl.DataFrame(
        [
            {
                "impl_code": m["impl_code"],
                "unit": m["unit"],
                "promised": m["promised_days"],
                "visits_needed": m["visits"],
                "fully_online": m["fully_online"],
                "instant": m["instant"],
                "applicant": m["applicant"],
                "name": m["name"],
                "weight": float(m["_weight"]),
            }
            for m in doc["matters"]
        ]
    )
    units = sorted(set(matters["unit"]))
    habits = _unit_habits(units, rng)
    unit_index = {u: i for i, u in enumerate(units)}
    n = int(len(people) * CASES_PER_RESIDENT)
    # A matter run by every district's hall shares its popularity among them.
    weights = matters.select(pl.col("weight") / pl.len().over("name")).to_series().to_numpy()
    pick = rng.choice(len(matters), n, p=weights / weights.sum())
    m = matters[pick]
    u = np.array([unit_index[x] for x in m["unit"].to_list()])
    is_company = (m["applicant"] == "company").to_numpy() | (
        (m["applicant"] == "both").to_numpy() & (rng.random(n) < 0.2)
    )
    person = rng.integers(0, len(people), n)
    company = rng.integers(0, len(companies), n)
    subject = np.where(
        is_company,
        companies["credit_code"].to_numpy()[company],
        people["id_number"].to_numpy()[person],
    )
    name = np.where(
        is_company, companies["name"].to_numpy()[company], people["name"].to_numpy()[person]
    )

    submitted = _days(year_start, rng.integers(0, 365, n))
    fully = m["fully_online"].to_numpy()
    online = rng.random(n) < habits["online"][u]
    # A matter that needs a visit is applied for online as often, then visited once.
    window = ~online
    instant = m["instant"].to_numpy()
    promised = m["promised"].to_numpy()
    # Online: accepted the next working day; at a window: on the spot (the hall is open on
    # working days only, so a window case's day is the next working day from a random day).
    submitted = pl.Series(
        np.where(window, add_workdays_many(submitted, np.ones(n)).to_numpy(), submitted.to_numpy())
    ).cast(pl.Date)
    accepted = add_workdays_many(
        submitted, np.where(window | instant & (rng.random(n) < 0.5), 0, 1)
    )
    refused_at_door = rng.random(n) < 0.01
    supplement = (~instant) & (~refused_at_door) & (rng.random(n) < habits["supplement"][u])
    pause = np.where(supplement, rng.integers(2, 9, n), 0)
    late = (~instant) & (rng.random(n) < habits["late"][u])
    duration = np.where(
        instant,
        0,
        np.where(
            late, promised + rng.integers(1, 6, n), rng.integers(1, np.maximum(promised, 1) + 1, n)
        ),
    )
    # The clock: 补正 starts one working day after acceptance and stops it; a case finishes
    # ``duration`` working days of work after acceptance, plus the pause.
    supplement_start = add_workdays_many(accepted, np.ones(n))
    supplement_end = add_workdays_many(supplement_start, pause)
    finished = add_workdays_many(accepted, duration + pause)
    pause_over = supplement & (supplement_end.to_numpy() <= ref)
    deadline = add_workdays_many(accepted, promised + np.where(pause_over, pause, 0))
    is_accepted = (accepted.to_numpy() <= ref) & ~refused_at_door
    is_finished = is_accepted & (finished.to_numpy() <= ref)
    refused = is_finished & (rng.random(n) < 0.02)
    # In person: the window's visit; a window applicant brings the 补正 papers in person too
    # (a second visit); a matter that needs a visit gets one from online applicants as well.
    in_person_supplement = supplement & window & is_accepted
    visit_needed = (m["visits_needed"].to_numpy() > 0) & online & is_finished
    visits = window.astype(int) + in_person_supplement.astype(int) + visit_needed.astype(int)

    rated = is_finished & (rng.random(n) < 0.6)
    unhappy = rated & (rng.random(n) < habits["unhappy"][u])
    happy_scores = rng.choice([5, 4, 3], n, p=[0.86, 0.11, 0.03])
    score = np.where(unhappy, rng.choice([1, 2], n), happy_scores)

    status = np.select(
        [
            refused_at_door & (accepted.to_numpy() <= ref),
            is_finished & refused,
            is_finished,
            is_accepted
            & supplement
            & (supplement_start.to_numpy() <= ref)
            & (supplement_end.to_numpy() > ref),
            is_accepted,
        ],
        ["not_accepted", "refused", "granted", "supplement_start", "accepted"],
        "submitted",
    )
    ids = np.arange(1, n + 1)
    frame = pl.DataFrame(
        {
            "id": ids,
            "impl_code": m["impl_code"],
            "unit_code": m["unit"],
            "applicant_kind": np.where(is_company, "company", "person"),
            "subject": subject,
            "name": name,
            "channel": np.where(online, "online", "window"),
            "status": status,
            "submitted_on": submitted,
            "accepted_on": _only(accepted, is_accepted),
            "deadline": _only(deadline, is_accepted),
            "finished_on": _only(finished, is_finished),
            "paused_days": np.where(is_accepted & pause_over, pause, 0),
            "duration": duration,
            "result": np.where(is_finished, np.where(refused, "refused", "granted"), ""),
            "visits": visits,
            "rating": _only(pl.Series(score).cast(pl.Int32), rated),
            "fully_online": fully,
        }
    ).with_columns(pl.col("paused_days").cast(pl.Int32), pl.col("visits").cast(pl.Int32))
    frame = _bundle_births(frame, doc, people, rng)
    return frame, _events(frame), _visits(frame)


def _bundle_births(
    frame: pl.DataFrame, doc: dict, people: pl.DataFrame, rng: np.random.Generator
) -> pl.DataFrame:
    """新生儿出生一件事: a share of the births' cases are applied for as the bundle — the four
    matters by one parent on one day, linked by the first case's number."""
    members = doc["bundles"][0]["matters"]
    first = frame.filter(pl.col("impl_code") == members[0]).head(max(1, len(frame) // 300))
    groups = []
    for offset, code in enumerate(members):
        groups.append(
            first.with_columns(
                pl.lit(code).alias("impl_code"), (pl.col("id") * 10 + offset).alias("_order")
            )
        )
    linked = pl.concat(groups)
    unit_of = {m["impl_code"]: m["unit"] for m in doc["matters"]}
    linked = linked.with_columns(
        pl.col("impl_code").replace_strict(unit_of).alias("unit_code"),
        pl.lit(True).alias("fully_online"),
    )
    rest = frame.filter(~pl.col("id").is_in(first["id"].implode()))
    both = pl.concat(
        [
            rest.with_columns(
                pl.lit(None, pl.Int64).alias("_order"), pl.lit(None, pl.Int64).alias("_bundle")
            ),
            linked.with_columns(pl.col("id").alias("_bundle")),
        ],
        how="diagonal_relaxed",
    )
    both = both.sort(pl.coalesce("_order", pl.col("id") * 10)).with_columns(
        pl.int_range(1, pl.len() + 1).alias("id")
    )
    # the bundle's first case (offset 0) names the group
    firsts = (
        both.filter(pl.col("_bundle").is_not_null())
        .group_by("_bundle")
        .agg(pl.col("id").min().alias("bundle_first"))
    )
    return both.join(firsts, on="_bundle", how="left").sort("id").drop("_order")


def case_number(submitted: pl.Expr, case_id: pl.Expr) -> pl.Expr:
    return (
        pl.lit("430100") + submitted.dt.strftime("%Y%m%d") + case_id.cast(pl.String).str.zfill(10)
    )


def _events(frame: pl.DataFrame) -> pl.DataFrame:
    """Each case's steps, from its dates (recomputed from the frame, which bundling reordered)."""
    f = frame
    rows: list[pl.DataFrame] = [
        f.select("id", pl.lit("submitted").alias("status"), pl.col("submitted_on").alias("on")),
        f.filter(pl.col("status") == "not_accepted").select(
            "id", pl.lit("not_accepted").alias("status"), pl.col("submitted_on").alias("on")
        ),
        f.filter(pl.col("accepted_on").is_not_null()).select(
            "id", pl.lit("accepted").alias("status"), pl.col("accepted_on").alias("on")
        ),
    ]
    paused = f.filter(pl.col("paused_days") > 0)
    if paused.height:
        start = add_workdays_many(paused["accepted_on"], np.ones(paused.height))
        end = add_workdays_many(start, paused["paused_days"].to_numpy())
        rows.append(
            paused.select("id", pl.lit("supplement_start").alias("status"), start.alias("on"))
        )
        rows.append(paused.select("id", pl.lit("supplement_end").alias("status"), end.alias("on")))
    running = f.filter(pl.col("status") == "supplement_start")
    if running.height:
        rows.append(
            running.select(
                "id",
                pl.lit("supplement_start").alias("status"),
                add_workdays_many(running["accepted_on"], np.ones(running.height)).alias("on"),
            )
        )
    done = f.filter(pl.col("finished_on").is_not_null())
    rows.append(
        done.select("id", pl.col("result").alias("status"), pl.col("finished_on").alias("on"))
    )
    return pl.concat(rows).rename({"id": "case_id"}).sort(["case_id", "on"], maintain_order=True)


def _visits(frame: pl.DataFrame) -> pl.DataFrame:
    """Visits from the case frame: the window's, the 补正's in person, a needed one at the end."""
    window = frame.filter(pl.col("channel") == "window")
    first = window.select("id", pl.col("submitted_on").alias("on"))
    second = window.filter(pl.col("visits") >= 2).select("id", pl.col("submitted_on").alias("on"))
    online = frame.filter((pl.col("channel") == "online") & (pl.col("visits") >= 1))
    needed = online.select("id", pl.coalesce("finished_on", "submitted_on").alias("on"))
    return pl.concat([first, second, needed]).rename({"id": "case_id"}).sort("case_id")


# ---------------------------------------------------------------- the truth


def truth(frame: pl.DataFrame) -> dict[str, Any]:
    """The figures, counted straight from the generator's own columns."""

    def figures(part: pl.DataFrame) -> dict[str, float | int | None]:
        applied = part.height
        online = int((part["channel"] == "online").sum())
        done = part.filter(pl.col("finished_on").is_not_null())
        can = done.filter(pl.col("fully_online"))
        fully = int(((can["channel"] == "online") & (can["visits"] == 0)).sum())
        rated = done.filter(pl.col("rating").is_not_null())

        def share(a: int, b: int) -> float | None:
            return round(a / b, 6) if b else None

        return {
            "applied": applied,
            "finished": done.height,
            "online_application": share(online, applied),
            "fully_online": share(fully, can.height),
            "one_visit": share(int((done["visits"] <= 1).sum()), done.height),
            "instant": share(int((done["duration"] == 0).sum()), done.height),
            "on_time": share(int((done["finished_on"] <= done["deadline"]).sum()), done.height),
            "average_workdays": round(float(done["duration"].mean()), 6) if done.height else None,
            "satisfaction": share(int((rated["rating"] >= 4).sum()), rated.height),
            "bad_ratings": int((rated["rating"] <= 2).sum()),
        }

    units = {
        code: figures(frame.filter(pl.col("unit_code") == code))
        for code in sorted(set(frame["unit_code"]))
    }
    return {"all": figures(frame), "unit": units}


# ---------------------------------------------------------------- writing and loading


def generate(
    out: Path,
    units: list[dict],
    people: pl.DataFrame,
    companies: pl.DataFrame,
    seed: int,
    as_of: date,
) -> dict:
    """``services/`` (matters, cases, events, visits) and ``truth/service_metrics.json``."""
    rng = np.random.default_rng(seed + 18)  # its own stream: the other files stay as they were
    doc = matters_doc(units)
    frame, events, visit_rows = cases(doc, people, companies, rng, as_of)
    folder = out / "services"
    folder.mkdir(parents=True, exist_ok=True)
    public = {
        "matters": [{k: v for k, v in m.items() if not k.startswith("_")} for m in doc["matters"]],
        "bundles": doc["bundles"],
    }
    (folder / "matters.json").write_text(
        json.dumps(public, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    frame.write_parquet(folder / "cases.parquet")
    events.write_parquet(folder / "events.parquet")
    visit_rows.write_parquet(folder / "visits.parquet")
    (out / "truth" / "service_metrics.json").write_text(
        json.dumps(truth(frame), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    return {"matters": len(doc["matters"]), "cases": frame.height}


def load(store, directory: Path, keys, as_of: date) -> dict[str, int]:
    """Matters, the service centre's sharing grants (from the demo's day ``as_of``), and the
    year of cases, into the platform. Done once: a platform that has cases already is left as
    it is."""
    from sqlalchemy import func, insert, select

    from citydata.mechanisms import changes
    from citydata.services import matters as matter_rules
    from citydata.services.identity import subject_hash
    from citydata.services.models import Case, CaseEvent, FollowUp, Matter, Visit
    from citydata.services.publishing import publish

    folder = directory / "services"
    if not (folder / "matters.json").exists():
        return {}
    doc = json.loads((folder / "matters.json").read_text(encoding="utf-8"))
    with store.session() as session:
        if session.scalar(select(func.count()).select_from(Case)):
            return {}
        matter_rules.import_matters(session, doc, publish_all=True)
    grant_platform(store, as_of)
    frame = pl.read_parquet(folder / "cases.parquet")
    with store.session() as session:
        ids = dict(
            session.execute(
                select(Matter.impl_code, Matter.id).where(Matter.status == "published")
            ).all()
        )
        start = session.scalar(select(func.max(Case.id))) or 0
        frame = frame.with_columns(
            (pl.col("id") + start).alias("id"),
            (pl.col("bundle_first") + start).alias("bundle_first"),
        )
        numbers = frame.select(
            case_number(pl.col("submitted_on"), pl.col("id")).alias("case_no"), "id"
        )
        by_id = dict(zip(numbers["id"].to_list(), numbers["case_no"].to_list(), strict=True))
        records = []
        subjects = frame["subject"].to_list()
        for row, subject in zip(frame.iter_rows(named=True), subjects, strict=True):
            records.append(
                {
                    "id": row["id"],
                    "case_no": by_id[row["id"]],
                    "matter_id": ids[row["impl_code"]],
                    "bundle_code": "cs-newborn" if row["bundle_first"] else None,
                    "bundle_case": by_id[row["bundle_first"]] if row["bundle_first"] else None,
                    "unit_code": row["unit_code"],
                    "applicant_kind": row["applicant_kind"],
                    "applicant_hash": subject_hash(keys, subject),
                    "applicant_subject": keys.encrypt(subject),
                    "applicant_name": row["name"],
                    "channel": row["channel"],
                    "source": "platform",
                    "status": row["status"],
                    "stage": _stage(row["status"], row["accepted_on"]),
                    "form": {"name": row["name"]},
                    "prefilled": {},
                    "opened_at": datetime.combine(row["submitted_on"], time(9)),
                    "submitted_on": row["submitted_on"],
                    "accepted_on": row["accepted_on"],
                    "paused_days": row["paused_days"],
                    "deadline": row["deadline"],
                    "finished_on": row["finished_on"],
                    "result": row["result"],
                    "visits": row["visits"],
                    "rating": row["rating"],
                    "rating_reason": "办理太慢"
                    if row["rating"] is not None and row["rating"] <= 2
                    else "",
                }
            )
        session.execute(insert(Case), records)
        advance_sequences(session, Case)
        events = pl.read_parquet(folder / "events.parquet").with_columns(
            (pl.col("case_id") + start).alias("case_id")
        )
        unit = dict(zip(frame["id"].to_list(), frame["unit_code"].to_list(), strict=True))
        session.execute(
            insert(CaseEvent),
            [
                {
                    "case_id": e["case_id"],
                    "status": e["status"],
                    "on": e["on"],
                    "at": datetime.combine(e["on"], time(9)),
                    "by": "demo",
                    "unit_code": unit[e["case_id"]],
                    "note": "",
                }
                for e in events.iter_rows(named=True)
            ],
        )
        visits = pl.read_parquet(folder / "visits.parquet").with_columns(
            (pl.col("case_id") + start).alias("case_id")
        )
        session.execute(
            insert(Visit),
            [
                {"case_id": v["case_id"], "on": v["on"], "place": "政务服务大厅", "by": "demo"}
                for v in visits.iter_rows(named=True)
            ],
        )
        bad = frame.filter(pl.col("rating") <= 2)
        if bad.height:
            due = add_workdays_many(bad["finished_on"], np.full(bad.height, 15))
            session.execute(
                insert(FollowUp),
                [
                    {"case_id": i, "unit_code": code, "due": d, "status": "open", "note": ""}
                    for i, code, d in zip(
                        bad["id"].to_list(), bad["unit_code"].to_list(), due.to_list(), strict=True
                    )
                ],
            )
        changes.mark(session, "services")  # a year of cases at once, past cases.step
    published = publish(store)
    return {
        "matters": len(doc["matters"]),
        "cases": frame.height,
        "published": published.rows_accepted if published else 0,
    }


def _stage(status: str, accepted_on: date | None) -> str:
    if status in {"granted", "refused", "delivered", "not_accepted", "withdrawn"}:
        return "done"
    if status in {"supplement_start", "special_start"}:
        return "paused"
    return "in_progress" if accepted_on else "to_accept"


PLATFORM_GRANTS = [  # what 市政务服务中心 asked for, and what it may see unmasked
    (
        POP,
        ["id_number", "name", "address", "phone", "division"],
        ["name", "address", "phone"],
        "政务服务事项表单预填与实名认证",
        "《优化营商环境条例》第三十七条；《国务院关于加快推进全国一体化在线政务服务平台建设的指导意见》",
    ),
    (
        LEGAL,
        ["credit_code", "name", "legal_rep", "legal_rep_id", "address"],
        [],
        "企业办事表单预填与法人实名认证",
        "《优化营商环境条例》第三十七条",
    ),
    (
        HEALTH,
        ["id_number", "name"],
        [],
        "出生医学证明信息共享替代纸质材料",
        "《国务院办公厅关于加快推进政务服务“跨省通办”的指导意见》",
    ),
]


def grant_platform(store, today: date) -> int:
    """The service centre's sharing applications, approved by the data bureau on ``today``: the
    platform's prefill and identity checks go through them (and stop if they are revoked)."""
    from citydata.catalog.models import ResourceClass
    from citydata.demo.sharing import operator
    from citydata.services.shared import SERVICE_UNIT, SYSTEM
    from citydata.share import service as share

    granted = 0
    with store.session() as session:
        user = operator(session)
        for code, fields, clear, purpose, basis in PLATFORM_GRANTS:
            if session.get(ResourceClass, code) is None:
                continue
            app = share.apply(
                session,
                user,
                consumer_code=SERVICE_UNIT,
                class_code=code,
                fields=fields,
                unmasked=clear,
                purpose=purpose,
                legal_basis=basis,
                system_name=SYSTEM,
                valid_until=today + timedelta(days=3650),
                today=today,
            )
            if app.status == "pending":
                share.decide(session, user, app.id, "approve", "政务服务平台履行法定职责所需")
            granted += 1
    return granted

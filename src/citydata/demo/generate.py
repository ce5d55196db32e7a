"""`citydata demo generate`: write the demo city's catalog, department files, manifest and truth.

Output folder:
  catalog.json            the catalog (importable with `citydata catalog import`)
  manifest.json           every file: unit, class, format, encoding, rows, injected bad rows
  units/<unit>/<file>     what each department sends (CSV UTF-8/GBK/GB18030, XLSX, JSON Lines)
  truth/                  kept apart: the true entities, which entity each row is, every injected error
Row numbers are 1-based record numbers inside a file (the header is not counted)."""

from __future__ import annotations

import io
import json
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

import numpy as np
import polars as pl
import xlsxwriter

from citydata.demo.city import HOMOPHONES, REGISTER_TOPICS, UNITS
from citydata.demo.grid import generate as generate_grid
from citydata.demo.people import houses, legal_persons, population
from citydata.demo.services import generate as generate_services
from citydata.demo.services import hall_units
from citydata.demo.sources import (
    Source,
    field_spec,
    housing_sources,
    legal_sources,
    person_sources,
    place_sources,
    register_sources,
)
from citydata.standards import credit_check_digit, id_check_digit, id_number_15_to_18

TARGET_CLASSES = 700
PROFILES = Path(__file__).with_name("profiles")
ID_KINDS = {"foreign_id", "id_slip", "legacy_id", "missing_id"}  # kinds that need an ID number
_HOMOPHONE = {c: group for group in HOMOPHONES for c in group}


@dataclass(frozen=True)
class ErrorModel:
    """How far the departments' files are from the truth (``profiles/<name>.toml``)."""

    name: str
    bad_rows: float  # share of a file's rows that break a rule
    disagree: float  # share of a person file's rows that are valid but differ from the truth
    weights: tuple[tuple[str, int], ...] = ()  # kinds among those rows; none: the class's own

    def kinds(self, source: Source) -> list[str]:
        """The kinds of disagreement, in the order planted rows take them in turn."""
        if not self.weights:
            return list(source.disagree)
        has_id = any(f["name"] == "id_number" for f in source.fields)
        own = set(source.disagree) | ({"foreign_id", "id_slip"} if has_id else set())
        allowed = [(k, w) for k, w in self.weights if k in own and (has_id or k not in ID_KINDS)]
        return [k for k, w in allowed for _ in range(w)]


def error_model(name: str = "default") -> ErrorModel:
    path = PROFILES / f"{name}.toml"
    if not path.exists():
        known = "、".join(sorted(p.stem for p in PROFILES.glob("*.toml")))
        raise ValueError(f"没有误差模型「{name}」；可选：{known}")
    spec = tomllib.loads(path.read_text(encoding="utf-8"))
    return ErrorModel(
        name,
        float(spec["bad_rows"]),
        float(spec["disagree"]),
        tuple((str(k), int(w)) for k, w in spec.get("weights", {}).items()),
    )


@dataclass
class Injected:
    row: int  # 0-based position in the frame before duplicates are added
    field: str
    kind: str
    rule: str | None  # the validation rule that must reject it; None for valid disagreements
    original: str | None
    value: str | None


# ---------------------------------------------------------------- injected problems


def _bad_value(f: dict, value: str | None, rng: np.random.Generator) -> tuple[str, str, str] | None:
    """A value breaking one of the field's rules: (kind, rule, new value), or None if it has none."""
    rules, kind = f["rules"], f["data_type"]
    if {"id_number", "credit_code", "mobile"} & set(rules) and not value:
        return None  # an empty identifier breaks nothing; pick another field
    if "id_number" in rules and value and len(value) == 18:
        digits = list(value)
        i = int(rng.integers(0, 16))
        if rng.random() < 0.5 and digits[i] != digits[i + 1]:
            digits[i], digits[i + 1] = digits[i + 1], digits[i]
            return "id_transposed", "id_number", "".join(digits)
        digits[i] = str((int(digits[i]) + int(rng.integers(1, 10))) % 10)
        return "id_mistyped", "id_number", "".join(digits)
    if "credit_code" in rules and value:
        i = int(rng.integers(8, 17))
        alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
        new = alphabet[(alphabet.index(value[i]) + int(rng.integers(1, 31))) % 31]
        return "credit_mistyped", "credit_code", value[:i] + new + value[i + 1 :]
    if "mobile" in rules and value:
        return "mobile_short", "mobile", value[:-1]
    if "division" in rules:
        return "division_unknown", "division", "439999"
    if "past_date" in rules:
        return "date_future", "past_date", "2031-03-15"
    if "longitude" in rules:
        return "outside_city", "longitude", "121.4737"
    if "latitude" in rules:
        return "outside_city", "latitude", "31.2304"
    if f["enum"]:
        return "not_in_enum", "enum", "否"  # one character: breaks the enumeration only
    if kind in {"N", "Y", "F", "B", "I"}:
        return "not_a_number", "type", "约" + (value or "1")
    if f["required"] and not f["is_key"]:
        return "missing_required", "required", None
    if kind == "C" and f["length"] and f["length"] < 60:
        return "too_long", "length", (value or "") + "超" * (f["length"] + 1)
    return None


def _variant_name(name: str, rng: np.random.Generator) -> tuple[str, str]:
    for i in range(len(name) - 1, 0, -1):
        group = _HOMOPHONE.get(name[i])
        if group:
            other = [c for c in group if c != name[i]]
            return "name_homophone", name[:i] + other[int(rng.integers(0, len(other)))] + name[
                i + 1 :
            ]
    common = "明华国文海英平军志红"
    i = int(rng.integers(1, len(name))) if len(name) > 1 else 0
    new = common[(common.find(name[i]) + 1 + int(rng.integers(0, 9))) % len(common)]
    return "name_typo", name[:i] + new + name[i + 1 :]


def _legacy(id_number: str) -> str | None:
    if id_number[6:8] != "19":
        return None
    legacy = id_number[:6] + id_number[8:17]
    try:
        return legacy if id_number_15_to_18(legacy) == id_number else None
    except ValueError:
        return None


def inject(
    source: Source, rng: np.random.Generator, model: ErrorModel | None = None
) -> tuple[pl.DataFrame, list[Injected], np.ndarray]:
    """Plant rule-breaking rows, valid disagreements and exact duplicates; return the new frame,
    what was planted, and for each output row the index of the input row it came from."""
    model = model or error_model()
    frame = source.frame
    n = len(frame)
    if not source.planted:
        return frame, [], np.arange(n)
    order = rng.permutation(n)
    candidates = [f for f in source.fields if not f["is_key"]]
    # At least one bad row per non-key field, so every rule of every file is exercised.
    n_bad = min(max(len(candidates), int(n * model.bad_rows)), n // 4)
    n_dis = int(n * model.disagree) if source.disagree else 0
    bad_rows, dis_rows = order[:n_bad], order[n_bad : n_bad + n_dis]
    dup_rows = order[n_bad + n_dis : n_bad + n_dis + max(1, n // 500)]
    # Only the planted rows are touched: a few percent of the file, read value by value and
    # written back column by column (a whole file as Python lists cost gigabytes at 10M people).
    changed: dict[str, dict[int, str | None]] = {}

    def get(name: str, row: int) -> str | None:
        planted = changed.get(name, {})
        return planted[int(row)] if int(row) in planted else frame[name][int(row)]

    def put(name: str, row: int, value: str | None) -> None:
        changed.setdefault(name, {})[int(row)] = value

    injected: list[Injected] = []

    for k, row in enumerate(bad_rows):
        for f in (candidates[(k + i) % len(candidates)] for i in range(len(candidates))):
            original = get(f["name"], row)
            bad = _bad_value(f, original, rng)
            if bad:
                put(f["name"], row, bad[2])
                injected.append(Injected(int(row), f["name"], bad[0], bad[1], original, bad[2]))
                break

    kinds = model.kinds(source)
    for i, row in enumerate(dis_rows):
        kind = kinds[i % len(kinds)]
        if kind == "name":
            original = get("name", row)
            what, new = _variant_name(original, rng)
            put("name", row, new)
            injected.append(Injected(int(row), "name", what, None, original, new))
        elif kind == "legacy_id" and (id_number := get("id_number", row)):
            if legacy := _legacy(id_number):
                injected.append(
                    Injected(int(row), "id_number", "id_legacy_15", None, id_number, legacy)
                )
                put("id_number", row, legacy)
        elif kind == "missing_id" and (id_number := get("id_number", row)):
            injected.append(Injected(int(row), "id_number", "id_missing", None, id_number, None))
            put("id_number", row, None)
        elif kind == "phone" and (phone := get("phone", row)):
            new = phone[:3] + f"{int(rng.integers(0, 10**8)):08d}"
            injected.append(Injected(int(row), "phone", "phone_changed", None, phone, new))
            put("phone", row, new)
        elif kind == "address" and (address := get("address", row)):
            # an estate's old name, or a village group's (生产队 before 组)
            new = (
                address.replace("小区", "花园", 1)
                if "小区" in address
                else address.replace("组", "队", 1)
            )
            injected.append(Injected(int(row), "address", "address_old", None, address, new))
            put("address", row, new)
        elif kind == "foreign_id" and (id_number := get("id_number", row)):
            # someone else's number, as a child's record carries a parent's
            other = get("id_number", int(order[int(rng.integers(0, n))]))
            if other and other != id_number and len(other) == 18:
                injected.append(
                    Injected(int(row), "id_number", "id_foreign", None, id_number, other)
                )
                put("id_number", row, other)
        elif kind == "id_slip" and (id_number := get("id_number", row)) and len(id_number) == 18:
            # a slipped serial digit, the check digit recomputed by the system: valid, nobody's
            at = 14 + int(rng.integers(0, 2))
            digit = str((int(id_number[at]) + 1 + int(rng.integers(0, 9))) % 10)
            first17 = id_number[:at] + digit + id_number[at + 1 : 17]
            new = first17 + id_check_digit(first17)
            injected.append(Injected(int(row), "id_number", "id_slip", None, id_number, new))
            put("id_number", row, new)

    planted = frame.with_columns(
        frame[name].scatter(list(rows), list(rows.values())) for name, rows in changed.items()
    )
    # Exact copies of a row, right after it: the copy is rejected as a duplicate business key.
    origin = np.arange(n)
    dup_set = set(int(r) for r in dup_rows) - {i.row for i in injected}
    positions = np.sort(np.concatenate([origin, np.array(sorted(dup_set), dtype=int)]))
    out = planted[positions]
    key = next(f["name"] for f in source.fields if f["is_key"])
    for r in sorted(dup_set):
        value = get(key, r)
        injected.append(Injected(int(r), key, "duplicate_row", "duplicate_key", value, value))
    return out, injected, positions


# ---------------------------------------------------------------- writing files


def _labels(source: Source) -> dict[str, str]:
    return {f["name"]: f["label"] for f in source.fields}


WRITE_ROWS = 100_000
# Characters GBK cannot hold, and what a GBK system writes instead: 长沙县's 㮾梨街道 becomes
# 榔梨街道 in such a department's files (GB18030 and UTF-8 keep it).
GBK_STAND_INS = str.maketrans({"㮾": "榔"})


def write_frame(
    source: Source, frame: pl.DataFrame, path: Path, encoding: str, as_of: date
) -> None:
    """Write as the department would: Chinese headers, the file's own format and encoding (a
    workbook says it was made on the demo's day, so that the same day gives the same bytes)."""
    frame = frame.rename(_labels(source))
    if source.fmt in {"csv", "jsonl"}:
        # In slices: a city's largest files are never held whole as text and again as bytes.
        codec = "utf-8" if encoding == "utf-8-sig" or source.fmt == "jsonl" else encoding
        with path.open("wb") as f:
            if encoding == "utf-8-sig" and source.fmt == "csv":
                f.write(b"\xef\xbb\xbf")
            for i, part in enumerate(frame.iter_slices(WRITE_ROWS)):
                if source.fmt == "csv":
                    text = part.write_csv(include_header=i == 0)
                else:
                    text = part.write_ndjson()
                if codec == "gbk":
                    text = text.translate(GBK_STAND_INS)
                f.write(text.encode(codec))
            if frame.height == 0 and source.fmt == "csv":
                f.write(frame.write_csv().encode(codec))
    else:
        buffer = io.BytesIO()
        book = xlsxwriter.Workbook(buffer, {"constant_memory": True, "in_memory": True})
        book.set_properties(
            {"created": datetime.combine(as_of, time(0)), "author": "citydata demo"}
        )
        sheet = book.add_worksheet("数据")
        for c, name in enumerate(frame.columns):
            sheet.write_string(0, c, name)
        for r, row in enumerate(frame.iter_rows(), start=1):
            for c, value in enumerate(row):
                if value is not None:
                    sheet.write_string(r, c, value)
        book.close()
        path.write_bytes(buffer.getvalue())


def _file_name(source: Source) -> str:
    ext = {"csv": "csv", "jsonl": "jsonl", "xlsx": "xlsx"}[source.fmt]
    return f"{source.code.replace('/', '_')}_{source.name}.{ext}"


# ---------------------------------------------------------------- catalog


def _unit_credit_code(index: int) -> str:
    body = f"11430100MB{index:07d}"
    return body + credit_check_digit(body)


def build_catalog(sources: list[Source], rng: np.random.Generator) -> dict:
    units = [
        {
            "code": code,
            "name": name,
            "short_name": short,
            "credit_code": _unit_credit_code(i),
            "level": "city",
            "contact": "数据管理员",
            "phone": f"0731-8899{i:04d}",
        }
        for i, (code, name, short) in enumerate(UNITS, start=1)
    ]
    # The service halls below the city (district, street, community): they run matters of the
    # service platform and send no files of their own.
    units += [
        {
            "code": hall["code"],
            "name": hall["name"],
            "short_name": hall["short_name"],
            "credit_code": _unit_credit_code(i),
            "level": hall["level"],
            "contact": "窗口负责人",
            "phone": f"0731-8899{i:04d}",
        }
        for i, hall in enumerate(hall_units(), start=len(UNITS) + 1)
    ]
    classes = [_class_entry(s) for s in sources]
    # The rest of each department's catalog: classes it declares and shares through interfaces
    # or on request, without batch files on this platform yet.
    short = {code: s for code, _, s in UNITS}
    extra_topics = REGISTER_TOPICS[8:] + [
        "业务统计",
        "办件结果",
        "公示公告",
        "专项检查",
        "电子证照",
        "培训考核",
        "应急值守",
        "政策文件",
        "专家库",
        "设备台账",
    ]
    k = 0
    while len(classes) < TARGET_CLASSES:
        ui = k % len(UNITS)
        ti = k // len(UNITS)
        unit = UNITS[ui][0]
        topic = extra_topics[ti % len(extra_topics)]
        share = str(["unconditional", "conditional", "none"][int(rng.choice(3, p=[0.5, 0.4, 0.1]))])
        classes.append(
            {
                "code": f"3{ui + 1:02d}{100 + ti:03d}/00001",
                "name": f"{short[unit]}{topic}",
                "category": "department",
                "classification": f"3{ui + 1:02d}{100 + ti:03d}",
                "classification_name": topic,
                "provider_code": unit,
                "summary": f"{short[unit]}{topic}数据，通过接口提供",
                "format_class": "interface",
                "format_type": "REST",
                "share_type": share,
                "share_condition": ""
                if share == "unconditional"
                else "依据部门职责和相关法律法规，经审核后提供",
                "share_methods": ["service"] if share != "none" else ["other"],
                "open_type": "closed",
                "open_condition": "",
                "update_cycle": "irregular",
                "publish_date": "2020-10-31",
                "related_codes": [],
                "secret": "non_classified",
                "base_db": "none",
                "status": "published",
                "version": 1,
                "fields": [
                    field_spec("record_id", "记录标识", "C", 32, key=True),
                    field_spec("title", "标题", "C", 200, required=True),
                    field_spec("issued_on", "日期", "D", rules=["past_date"]),
                ],
            }
        )
        k += 1
    return {"format": "citydata-catalog/1", "units": units, "classes": classes}


def _class_entry(s: Source) -> dict:
    category = "basic" if s.code.startswith("1") else "department"
    return {
        "code": s.code,
        "name": s.name,
        "category": category,
        "classification": s.code.split("/")[0],
        "classification_name": s.name,
        "provider_code": s.unit,
        "summary": s.summary,
        "format_class": s.format_class,
        "format_type": s.fmt.upper(),
        "share_type": s.share_type,
        "share_condition": s.share_condition,
        "share_methods": {
            "unconditional": ["system", "online_query", "download"],
            "conditional": ["system", "online_query"],
            "none": ["other"],
        }[s.share_type],
        "open_type": s.open_type,
        "open_condition": s.open_condition,
        "update_cycle": s.update_cycle,
        "publish_date": "2020-10-31",
        "related_codes": [],
        "secret": "non_classified",
        "base_db": s.base_db,
        "status": "published",
        "version": 1,
        "fields": s.fields,
    }


# ---------------------------------------------------------------- the truth, file by file

ERROR_SCHEMA = {
    "file": pl.String,
    "row": pl.Int64,
    "class_code": pl.String,
    "field": pl.String,
    "kind": pl.String,
    "rule": pl.String,
    "original": pl.String,
    "value": pl.String,
}
ROW_SCHEMA = {
    "file": pl.String,
    "row": pl.Int64,
    "class_code": pl.String,
    "entity": pl.String,
    "entity_id": pl.Int64,
}


class _TruthTable:
    """One Parquet file written a part at a time (a row group per department file)."""

    def __init__(self, path: Path, schema: dict[str, pl.DataType]):
        import pyarrow.parquet as pq

        self.schema = pl.DataFrame(schema=schema).to_arrow().schema
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")

    def write(self, part: pl.DataFrame) -> None:
        if part.height:
            self.writer.write_table(part.to_arrow().cast(self.schema))

    def close(self) -> None:
        self.writer.close()


# ---------------------------------------------------------------- the whole city


def generate(
    out: Path,
    people: int = 20_000,
    seed: int = 2020,
    progress: Callable[[str, int, int], None] | None = None,
    errors: str = "default",
    *,
    as_of: date,
) -> dict:
    """The demo city in ``out``, living up to the day ``as_of`` (its year of cases, events and
    records ends as that day begins in Changsha, so none lies in the future on that day);
    ``errors`` names the error model (``profiles/<name>.toml``). The same seed and ``as_of``
    give the same bytes."""
    model = error_model(errors)
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(exist_ok=True)
    city = population(people, rng, as_of)
    companies = legal_persons(city, rng, as_of)
    homes = houses(city, companies, rng)
    sources = (
        person_sources(city, rng, as_of)
        + legal_sources(companies, rng)
        + housing_sources(homes, rng, as_of)
        + place_sources(people, rng, seed, as_of)
        + register_sources(companies, people, rng, as_of)
    )

    files, rules = [], Counter()
    # The truth of each file is written as the file is, not gathered for the end: at 10M people
    # the row-to-entity table alone would hold some eighty million rows.
    error_truth = _TruthTable(out / "truth/errors.parquet", ERROR_SCHEMA)
    provenance = _TruthTable(out / "truth/rows.parquet", ROW_SCHEMA)
    for i, source in enumerate(sources):
        if progress:
            progress(source.name, i, len(sources))
        frame, injected, positions = inject(source, rng, model)
        rel = Path("units") / source.unit / _file_name(source)
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        write_frame(source, frame, out / rel, source.encoding, as_of)
        # Where each planted problem ended up once duplicates were inserted (1-based rows).
        first_row = {int(p): r + 1 for r, p in reversed(list(enumerate(positions)))}
        error_truth.write(
            pl.DataFrame(
                [
                    {
                        "file": rel.as_posix(),
                        "row": first_row[item.row] + (1 if item.kind == "duplicate_row" else 0),
                        "class_code": source.code,
                        "field": item.field,
                        "kind": item.kind,
                        "rule": item.rule,
                        "original": item.original,
                        "value": item.value,
                    }
                    for item in injected
                ],
                schema=ERROR_SCHEMA,
            )
        )
        if source.entity_ids is not None:
            provenance.write(
                pl.DataFrame(
                    {
                        "file": rel.as_posix(),
                        "row": pl.int_range(1, len(frame) + 1, eager=True),
                        "class_code": source.code,
                        "entity": source.entity,
                        "entity_id": source.entity_ids.gather(positions),
                    },
                    schema=ROW_SCHEMA,
                )
            )
        by_rule = Counter(item.rule for item in injected if item.rule)
        rules += by_rule
        files.append(
            {
                "path": rel.as_posix(),
                "unit": source.unit,
                "class_code": source.code,
                "format": source.fmt,
                "encoding": source.encoding or None,
                "rows": len(frame),
                "bad_rows": sum(by_rule.values()),
                "bad_rows_by_rule": dict(sorted(by_rule.items())),
                "expect": "accept",
            }
        )
    files += _unreadable_files(out, sources, as_of)

    catalog = build_catalog(sources, rng)
    (out / "catalog.json").write_text(
        json.dumps(catalog, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    services = generate_services(out, catalog["units"], city, companies, seed, as_of)
    grid = generate_grid(out, people, seed, as_of)
    manifest = {
        "seed": seed,
        "people": people,
        "errors": model.name,
        "as_of": as_of.isoformat(),
        "units": len(catalog["units"]),
        "classes": len(catalog["classes"]),
        "classes_with_files": len(sources),
        "files": files,
        "bad_rows_by_rule": dict(sorted(rules.items())),
        "services": services,
        "grid": grid,
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    city.write_parquet(out / "truth/people.parquet")
    companies.write_parquet(out / "truth/legal_persons.parquet")
    homes.write_parquet(out / "truth/houses.parquet")
    error_truth.close()
    provenance.close()
    return manifest


def _unreadable_files(out: Path, sources: list[Source], as_of: date) -> list[dict]:
    """Two files a department gets wrong: GBK bytes declared as UTF-8, and a required column missing."""
    csvs = [s for s in sources if s.fmt == "csv" and s.base_db == "none"]
    wrong, missing = csvs[0], csvs[1]
    result = []
    path = Path("units") / wrong.unit / (_file_name(wrong)[:-4] + "_补报.csv")
    write_frame(wrong, wrong.frame.head(50), out / path, "gbk", as_of)
    result.append(
        {
            "path": path.as_posix(),
            "unit": wrong.unit,
            "class_code": wrong.code,
            "format": "csv",
            "encoding": "utf-8",
            "rows": 50,
            "bad_rows": 0,
            "bad_rows_by_rule": {},
            "expect": "fail",
            "problem": "wrong_encoding",
        }
    )
    required = next(f for f in missing.fields if f["required"] and not f["is_key"])
    path = Path("units") / missing.unit / (_file_name(missing)[:-4] + "_缺列.csv")
    trimmed = Source(
        **{**missing.__dict__, "fields": [f for f in missing.fields if f is not required]}
    )
    write_frame(
        trimmed,
        missing.frame.head(50).drop(required["name"]),
        out / path,
        missing.encoding or "utf-8",
        as_of,
    )
    result.append(
        {
            "path": path.as_posix(),
            "unit": missing.unit,
            "class_code": missing.code,
            "format": "csv",
            "encoding": missing.encoding,
            "rows": 50,
            "bad_rows": 0,
            "bad_rows_by_rule": {},
            "expect": "fail",
            "problem": "missing_column",
            "column": required["label"],
        }
    )
    return result

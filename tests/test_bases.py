"""Base databases: deterministic keys, survivorship, provenance, as-of history, stable ids,
incremental runs, the review queue, a failed run, the API — and the demo city against its truth."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import func, select

from citydata.bases import resolution, service
from citydata.bases.models import Master, MasterLink, MasterValue, MatchReview
from citydata.bases.spec import SpecError, parse_specs
from citydata.catalog.models import ResourceClass
from citydata.catalog.service import import_catalog
from citydata.ingest.service import ingest
from conftest import DEMO_DAY, SEVEN_BASES

HOUSEHOLD, SOCIAL = "101001/00001", "101001/00002"
ZHANG = "11010519491231002X"  # 15-digit form: 110105491231002
LI = "360426199101010071"


@pytest.fixture
def catalog(store, demo_catalog):
    with store.session() as session:
        import_catalog(session, demo_catalog)


COLUMNS = {
    HOUSEHOLD: ["id_number", "name", "sex", "birth_date", "division", "address", "phone"],
    SOCIAL: ["insured_no", "id_number", "name", "birth_date", "phone"],
}


def stage(store, class_code: str, rows: list[tuple], path: Path, mode: str = "append"):
    """Write ``rows`` as the class's department would and ingest them as one batch."""
    pl.DataFrame(rows, schema=COLUMNS[class_code], orient="row").write_csv(path)
    return ingest(store, path, class_code, mode=mode)


def masters(store, base="population") -> dict[str, Master]:
    with store.session() as session:
        return {
            m.key: m
            for m in session.scalars(
                select(Master).where(Master.base == base, Master.merged_into.is_(None))
            )
        }


def test_a_legacy_15_digit_number_joins_the_18_digit_master(store, catalog, tmp_path):
    stage(
        store,
        HOUSEHOLD,
        [(ZHANG, "张三", "女", "1949-12-31", "430102", "芙蓉区五一大道1号", None)],
        tmp_path / "h.csv",
    )
    stage(
        store,
        SOCIAL,
        [
            ("S1", "110105491231002", "张三", "1949-12-31", "13812345678"),
            ("S2", LI, "李四", "1991-01-01", None),
        ],
        tmp_path / "s.csv",
    )
    report = service.resolve(store, "population")
    assert (report.rows_resolved, report.by_key, report.new_masters) == (3, 3, 2)
    found = masters(store)
    assert set(found) == {ZHANG, LI}
    assert found[ZHANG].record["phone"] == "13812345678"  # only social insurance knows it
    with store.session() as session:
        methods = session.execute(
            select(MasterLink.method, func.count()).group_by(MasterLink.method)
        ).all()
    assert dict(methods) == {"key": 3}


def test_survivorship_prefers_authority_then_recency_and_keeps_every_value(
    store, catalog, tmp_path
):
    stage(
        store,
        HOUSEHOLD,
        [(ZHANG, "张三", "女", "1949-12-31", "430102", "芙蓉区五一大道1号", None)],
        tmp_path / "h.csv",
    )
    stage(store, SOCIAL, [("S1", ZHANG, "张叁", "1949-12-31", "13812345678")], tmp_path / "s.csv")
    service.resolve(store, "population")
    master = masters(store)[ZHANG]
    assert master.record["name"] == "张三"  # household registration outranks social insurance
    with store.session() as session:
        data = service.master_dict(session, session.get(Master, master.id))
    names = {v["value"]: v for v in data["provenance"]["name"]}
    assert (
        set(names) == {"张三", "张叁"} and names["张三"]["chosen"] and not names["张叁"]["chosen"]
    )
    assert (names["张叁"]["class_code"], names["张叁"]["unit"], names["张叁"]["row"]) == (
        SOCIAL,
        "csrs",
        1,
    )
    # A newer household batch moves the address: the same authority, so recency decides.
    before = datetime.now(UTC)
    moved = [(ZHANG, "张三", "女", "1949-12-31", "430102", "岳麓区麓山南路2号", None)]
    assert stage(store, HOUSEHOLD, moved, tmp_path / "h2.csv", mode="upsert").rows_removed == 1
    report = service.resolve(store, "population")
    assert (report.links_dropped, report.changed_masters) == (1, 1)
    master = masters(store)[ZHANG]
    assert master.record["address"] == "岳麓区麓山南路2号" and master.version == 2
    with store.session() as session:
        old = service.master_dict(session, session.get(Master, master.id), as_of=before)
        never = service.master_dict(
            session, session.get(Master, master.id), as_of=before - timedelta(days=1)
        )
    assert old["version"] == 1 and old["record"]["address"] == "芙蓉区五一大道1号"
    assert never["version"] == 0 and never["record"] == {}


def test_reruns_keep_ids_and_new_batches_resolve_incrementally(store, catalog, tmp_path):
    stage(
        store,
        HOUSEHOLD,
        [(ZHANG, "张三", "女", "1949-12-31", "430102", None, None)],
        tmp_path / "h.csv",
    )
    service.resolve(store, "population")
    first = {k: m.id for k, m in masters(store).items()}
    again = service.resolve(store, "population")
    assert (again.rows_resolved, again.changed_masters) == (0, 0)
    stage(store, SOCIAL, [("S2", LI, "李四", "1991-01-01", None)], tmp_path / "s.csv")
    added = service.resolve(store, "population")
    assert (added.rows_resolved, added.new_masters) == (1, 1)
    full = service.resolve(store, "population", full=True)
    assert (full.new_masters, full.changed_masters) == (0, 0)
    now = {k: m.id for k, m in masters(store).items()}
    assert now[ZHANG] == first[ZHANG] and set(now) == {ZHANG, LI}


def test_a_run_that_fails_part_way_leaves_the_masters_as_they_were(
    store, catalog, tmp_path, monkeypatch
):
    stage(
        store,
        HOUSEHOLD,
        [(ZHANG, "张三", "女", "1949-12-31", "430102", None, None)],
        tmp_path / "h.csv",
    )
    service.resolve(store, "population")
    stage(store, SOCIAL, [("S2", LI, "李四", "1991-01-01", None)], tmp_path / "s.csv")

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(resolution, "golden_records", broken)
    with pytest.raises(RuntimeError):
        service.resolve(store, "population")
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Master)) == 1
        assert session.scalar(select(func.count()).select_from(MasterLink)) == 1


def test_review_decisions_move_rows_and_are_respected(store, catalog, client, tmp_path):
    from conftest import make_user

    stage(
        store,
        HOUSEHOLD,
        [
            (ZHANG, "张三", "女", "1949-12-31", "430102", None, None),
            (LI, "李四", "男", "1991-01-01", "430104", None, None),
        ],
        tmp_path / "h.csv",
    )
    batch = stage(
        store, SOCIAL, [("S9", None, "张三", "1949-12-31", "13800000000")], tmp_path / "s.csv"
    ).batch_id
    service.resolve(store, "population")
    found = masters(store)
    with store.session() as session:  # the kind of pairs the matcher leaves between thresholds
        wrong, right = found[LI].id, found[ZHANG].id
        for master_id in (wrong, right):
            session.add(
                MatchReview(
                    base="population",
                    batch_id=batch,
                    row=1,
                    class_code=SOCIAL,
                    master_id=master_id,
                    probability=0.9,
                )
            )
    other = make_user(store, "jy", "steward", "csjy")
    own = make_user(store, "rs", "steward", "csrs")
    url = "/api/v1/base/population/reviews/{}"
    # Another unit's steward sees none of these pairs (both records are shown in clear) ...
    assert (
        client.get(
            "/api/v1/base/population/reviews", headers={"Authorization": f"Bearer {other}"}
        ).json()
        == []
    )
    listed = client.get(
        "/api/v1/base/population/reviews", headers={"Authorization": f"Bearer {own}"}
    )
    first = listed.json()[0]["id"]
    assert (  # ... nor may decide one
        client.post(
            url.format(first),
            json={"decision": "reject"},
            headers={"Authorization": f"Bearer {other}"},
        ).status_code
        == 403
    )
    ids = {
        r["master_id"]: r["id"]
        for r in client.get(
            "/api/v1/base/population/reviews", headers={"Authorization": f"Bearer {own}"}
        ).json()
    }
    assert (
        client.post(
            url.format(ids[wrong]),
            json={"decision": "reject"},
            headers={"Authorization": f"Bearer {own}"},
        ).json()["status"]
        == "rejected"
    )
    answer = client.post(
        url.format(ids[right]),
        json={"decision": "confirm"},
        headers={"Authorization": f"Bearer {own}"},
    )
    assert answer.status_code == 200 and answer.json()["status"] == "confirmed"
    assert (
        client.post(
            url.format(ids[right]),
            json={"decision": "confirm"},
            headers={"Authorization": f"Bearer {own}"},
        ).status_code
        == 409
    )
    with store.session() as session:
        moved = session.scalar(select(MasterLink).where(MasterLink.batch_id == batch))
        assert (moved.master_id, moved.method) == (right, "review")
        phones = session.scalars(
            select(MasterValue.value).where(
                MasterValue.master_id == right, MasterValue.attribute == "phone"
            )
        ).all()
    assert phones == ["13800000000"]  # the confirmed row's values now count for the master
    assert masters(store)[ZHANG].record["phone"] == "13800000000"
    full = service.resolve(store, "population", full=True)  # decisions survive a full re-run
    with store.session() as session:
        assert (
            session.scalar(select(MasterLink.master_id).where(MasterLink.batch_id == batch))
            == right
        )
    assert full.by_review == 1


def test_records_api_for_administrators_with_provenance_search_and_as_of(
    store, catalog, client, admin_token, tmp_path
):
    from conftest import make_user

    stage(
        store,
        HOUSEHOLD,
        [(ZHANG, "张三", "女", "1949-12-31", "430102", None, None)],
        tmp_path / "h.csv",
    )
    service.resolve(store, "population")
    master_id = masters(store)[ZHANG].id
    admin = {"Authorization": f"Bearer {admin_token}"}
    record = client.get(f"/api/v1/base/population/records/{master_id}", headers=admin).json()
    assert (
        record["record"]["name"] == "张三"
        and record["provenance"]["name"][0]["class_code"] == HOUSEHOLD
    )
    assert (
        client.get(
            "/api/v1/base/population/records", params={"key": ZHANG.lower()}, headers=admin
        ).json()["count"]
        == 1
    )
    assert (
        client.get("/api/v1/base/population/records", params={"name": "张"}, headers=admin).json()[
            "results"
        ][0]["id"]
        == master_id
    )
    steward = make_user(store, "ga", "steward", "csga")
    assert (
        client.get(
            f"/api/v1/base/population/records/{master_id}",
            headers={"Authorization": f"Bearer {steward}"},
        ).status_code
        == 403
    )
    assert client.get("/api/v1/base/nowhere/records", headers=admin).status_code == 404


def test_settings_problems_name_the_line():
    good = Path(service.__file__).with_name("bases.toml").read_text(encoding="utf-8")
    assert set(parse_specs(good)) == SEVEN_BASES
    with pytest.raises(SpecError, match=r"第 \d+ 行.*未知的基础库「people」"):
        parse_specs(good.replace("[population]", "[people]"))
    with pytest.raises(SpecError, match=r"第 \d+ 行.*「sex」的类型「gender」"):
        parse_specs(good.replace('sex = "exact"', 'sex = "gender"'))
    with pytest.raises(SpecError, match="key「idno」"):
        parse_specs(good.replace('key = "id_number"', 'key = "idno"'))
    with pytest.raises(SpecError, match=r"第 \d+ 行: 关联「legal_rep_id = nobody」"):
        parse_specs(good.replace('legal_rep_id = "population"', 'legal_rep_id = "nobody"'))


def test_the_demo_city_resolves_against_its_truth(store, tmp_path):
    """Every file ingested, then resolved: person and legal-person matching measured pairwise;
    then the theme databases, checked against the truth."""
    from citydata.demo.generate import generate
    from citydata.demo.truth import linked_rows, resolution_scores

    city = tmp_path / "city"
    manifest = generate(city, 1500, seed=5, as_of=DEMO_DAY)
    with store.session() as session:
        import_catalog(session, city / "catalog.json")
    for entry in manifest["files"]:
        ingest(store, city / entry["path"], entry["class_code"], encoding=entry["encoding"])
    for base in service.base_codes():  # all seven, in order: links point to earlier bases
        report = service.resolve(store, base)
        assert report.masters > 0 and report.rows_resolved == linked_rows(store, base).height
        if base in {"population", "legal_person", "housing"}:
            scores = resolution_scores(store, city, base)
            assert scores["rows"] == report.rows_resolved, (base, scores)
            assert scores["f1"] >= 0.99, (base, scores)
    assert set(service.base_codes()) == SEVEN_BASES
    with store.engine.connect() as conn:
        # Links between bases: a house's owner and a company's representative name masters.
        unlinked = conn.exec_driver_sql(
            "SELECT count(*) FROM base_housing h LEFT JOIN masters m ON m.id = h.owner_id_number_master "
            "WHERE h.owner_id_number IS NOT NULL AND (m.key IS NULL OR m.key <> h.owner_id_number)"
        ).scalar()
        reps = conn.exec_driver_sql(
            "SELECT count(legal_rep_id), count(legal_rep_id_master) FROM base_legal_person"
        ).one()
        # The spatial join agrees with the grid cell each department wrote down.
        located = conn.exec_driver_sql(
            "SELECT count(*), count(located_grid), "
            "sum(CASE WHEN located_grid = grid_code THEN 1 ELSE 0 END) FROM base_event"
        ).one()
    assert unlinked == 0 and reps[0] == reps[1] > 0
    assert located[1] == located[2] and located[1] >= 0.95 * located[0], located
    # Rows without an ID number were matched, not given masters of their own.
    population = service.resolve(store, "population", full=True)
    assert population.by_match > 0 and population.new_masters == 0
    with store.session() as session:
        untraced = session.scalar(
            select(func.count())
            .select_from(MasterValue)
            .where(MasterValue.batch_id.is_(None) | MasterValue.row.is_(None))
        )
    assert untraced == 0

    # Theme databases over the published base tables, checked against the truth.
    from citydata.bases.themes import refresh, theme_rows

    results = {r["name"]: r for r in refresh(store, today=DEMO_DAY)}
    assert all(r["error"] is None for r in results.values()), results
    # The truth's residents whose household-registration row was accepted (a rejected row
    # cannot tell the platform where its person lives).
    truth_rows = pl.read_parquet(city / "truth/rows.parquet").filter(
        pl.col("class_code") == HOUSEHOLD
    )
    rejected = pl.read_parquet(city / "truth/errors.parquet").filter(pl.col("rule").is_not_null())
    registered = truth_rows.join(rejected, on=["file", "row"], how="anti")["entity_id"].unique()
    people = pl.read_parquet(city / "truth/people.parquet").filter(
        pl.col("person_id").is_in(registered.implode())
    )
    expected = (
        people.group_by("division")
        .agg(
            pl.len().alias("residents"),
            (pl.col("birth_date") <= DEMO_DAY.replace(year=DEMO_DAY.year - 60))
            .sum()
            .alias("elderly"),
        )
        .sort("division")
    )
    with store.session() as session:
        elderly = theme_rows(session, "elderly_by_district", limit=1000)
        assert session.get(ResourceClass, "201001/00001").category == "theme"
    got = pl.DataFrame(elderly["rows"]).select(
        "division", pl.col("residents", "elderly").cast(pl.UInt32)
    )
    assert got.equals(expected.cast({"residents": pl.UInt32, "elderly": pl.UInt32}))
    assert elderly["columns"][2] == {"name": "elderly", "label": "60岁及以上人口数"}
    registry = pl.read_parquet(city / "truth/rows.parquet").filter(
        pl.col("class_code") == "101005/00001"
    )
    kept = registry.join(rejected, on=["file", "row"], how="anti")["entity_id"].unique()
    houses = pl.read_parquet(city / "truth/houses.parquet").filter(
        pl.col("house_id").is_in(kept.implode())
    )
    assert results["housing_per_person"]["rows"] == houses["owner_person"].drop_nulls().n_unique()
    legal = masters(store, "legal_person")
    assert results["enterprise_profile"]["rows"] == len(legal)


def test_a_broken_theme_is_refused_with_its_reason_and_registers_nothing(store, catalog):
    from citydata.bases.themes import ThemeError, parse_theme, refresh_one

    good = (Path(service.__file__).parent / "themes/elderly_by_district.toml").read_text(
        encoding="utf-8"
    )
    with pytest.raises(ThemeError, match="SELECT"):
        parse_theme("x", good.replace("SELECT division,", "DELETE FROM masters; SELECT division,"))
    with pytest.raises(ThemeError, match="years_ago:N"):
        parse_theme("x", good.replace('"years_ago:60"', '"sixty"'))
    missing = parse_theme("x", good)  # base_population does not exist yet: nothing resolved
    with pytest.raises(ThemeError, match="无法执行"), store.session() as session:
        refresh_one(session, missing, date(2026, 6, 30))
    with store.session() as session:
        assert session.get(ResourceClass, "201001/00001") is None


def test_master_and_review_pages(store, catalog, client, tmp_path):
    from conftest import make_user

    stage(
        store,
        HOUSEHOLD,
        [(ZHANG, "张三", "女", "1949-12-31", "430102", "芙蓉区五一大道1号", None)],
        tmp_path / "h.csv",
    )
    stage(store, SOCIAL, [("S1", ZHANG, "张叁", "1949-12-31", None)], tmp_path / "s.csv")
    service.resolve(store, "population")
    master_id = masters(store)[ZHANG].id
    make_user(store, "boss", "admin")
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    client.post("/login", data={"username": "boss", "password": "password123", "csrf": token})
    page = client.get(f"/base/population/{master_id}").text
    assert "✔ 张三" in page and "张叁" in page and "/batches/" in page
    search = client.get("/base/population", params={"name": "张"}).text
    assert (
        "张三" in search and 'href="/base/event"' in search and 'href="/base/population"' in search
    )
    assert client.get("/base/population/reviews").status_code == 200


def test_a_key_that_is_not_the_rows_own_does_not_merge_two_people(store, catalog, tmp_path):
    """A child's clinic record with the mother's ID number, a record whose name belongs to
    nobody of that number: a key join would merge; resolution keeps them apart and asks."""
    mother = ("430102196805051223", "王秀英", "女", "1968-05-05", "430102", "芙蓉区八一路9号", None)
    stage(
        store,
        HOUSEHOLD,
        [mother, (LI, "李四", "男", "1991-01-01", "430104", None, None)],
        tmp_path / "h.csv",
    )
    stage(
        store,
        SOCIAL,
        [
            ("S1", mother[0], "刘子涵", "2016-03-02", None),  # the son, his mother's number
            ("S2", LI, "赵敏", "1991-01-01", None),  # a name that is not 李四's
            ("S3", mother[0], "王秀瑛", "1968-05-05", "13800000001"),  # a slip of one character
        ],
        tmp_path / "s.csv",
    )
    report = service.resolve(store, "population")
    assert report.rows_seen == 5
    found = masters(store)
    with store.session() as session:
        links = {
            row: master
            for row, master in session.execute(
                select(MasterLink.row, MasterLink.master_id).where(MasterLink.class_code == SOCIAL)
            )
        }
        reviews = session.execute(
            select(MatchReview.row, MatchReview.master_id, MatchReview.reason).where(
                MatchReview.class_code == SOCIAL
            )
        ).all()
    assert links[3] == found[mother[0]].id  # one character off: the same woman
    assert links[1] != found[mother[0]].id and links[2] != found[LI].id  # kept apart
    assert set(reviews) == {
        (1, found[mother[0]].id, "key_conflict"),
        (2, found[LI].id, "key_conflict"),
    }
    assert found[mother[0]].record["name"] == "王秀英" and report.reviews_opened == 2


def test_a_realistic_city_keeps_people_apart_who_share_a_number(store, tmp_path):
    """The realistic error model: many rows without a number, and rows with someone else's
    valid number. A key join alone merges people there; resolution must not."""
    from citydata.demo.generate import generate
    from citydata.demo.truth import resolution_scores

    city = tmp_path / "city"
    manifest = generate(city, 1500, seed=5, errors="realistic", as_of=DEMO_DAY)
    truth = pl.read_parquet(city / "truth/errors.parquet")
    assert {"id_foreign", "id_slip", "id_missing"} <= set(truth["kind"].to_list())
    with store.session() as session:
        import_catalog(session, city / "catalog.json")
    for entry in manifest["files"]:
        ingest(store, city / entry["path"], entry["class_code"], encoding=entry["encoding"])
    report = service.resolve(store, "population")
    scores = resolution_scores(store, city, "population")
    assert scores["precision"] >= 0.999, scores  # nobody merged with a stranger
    assert scores["f1"] >= 0.97, scores
    with store.session() as session:
        conflicts = session.scalar(select(func.count()).where(MatchReview.reason == "key_conflict"))
    assert conflicts > 0 and report.reviews_opened >= conflicts


def test_the_resolve_command_names_its_bases_and_reports_each(env, store, catalog, tmp_path):
    import json

    from typer.testing import CliRunner

    from citydata.cli import app

    stage(
        store,
        HOUSEHOLD,
        [(LI, "李四", "男", "1991-01-01", "430104", None, None)],
        tmp_path / "h.csv",
    )
    runner = CliRunner()
    done = runner.invoke(app, ["resolve", "--base", "population", "--json"])
    assert done.exit_code == 0, done.output
    (report,) = json.loads(done.output)
    assert (report["base"], report["rows_resolved"], report["masters"]) == ("population", 1, 1)
    unknown = runner.invoke(app, ["resolve", "--base", "nowhere"])
    assert unknown.exit_code != 0 and "nowhere" in unknown.output

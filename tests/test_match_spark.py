"""The matching model on Apache Spark (local mode, two cores): the same model, clusters and
master ids as on DuckDB; salting that changes nothing but the work's split; clear errors when
Spark cannot run. One Spark session serves the whole test run."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import subprocess
import sys
import uuid

import polars as pl
import pytest
from sqlalchemy import make_url, select
from typer.testing import CliRunner

from citydata.cli import app
from citydata.match import engines
from citydata.match.engines import EngineError, check_engine, salting_partitions
from conftest import POPULATION_CLASSES
from test_match import SETTINGS


def need_pyspark() -> None:
    """pyspark is a test dependency: missing, a local run skips; CI fails (it must install it)."""
    if importlib.util.find_spec("pyspark") is not None:
        return
    if os.environ.get("CI"):
        pytest.fail("pyspark is missing: CI installs it with the test extra (scripts/setup)")
    pytest.skip("pyspark is not installed (pip install 'citydata[spark]')")


@pytest.fixture(scope="session")
def spark():
    """Spark in local mode on two cores, started once; stopped at the end of the run."""
    need_pyspark()
    saved = os.environ.get("CITYDATA_SPARK_MASTER")
    os.environ["CITYDATA_SPARK_MASTER"] = "local[2]"
    session = engines.spark_session()
    yield session
    session.stop()
    engines._SESSION = None
    if saved is None:
        os.environ.pop("CITYDATA_SPARK_MASTER", None)
    else:
        os.environ["CITYDATA_SPARK_MASTER"] = saved


def _levels(model: dict) -> dict[tuple[str, int], tuple]:
    """(comparison, level number) -> (m, u); the levels' SQL differs only by its quoting."""
    return {
        (c["output_column_name"], number): (level.get("m_probability"), level.get("u_probability"))
        for c in model["comparisons"]
        for number, level in enumerate(c["comparison_levels"])
        if not level.get("is_null_level")
    }


def test_match_on_spark_gives_duckdbs_model_and_clusters_even_salted(
    spark, population_files, tmp_path, monkeypatch
):
    """`citydata match --engine spark` against `--engine duckdb` on the demo city's four
    population registers: every m and u equal, the same clusters, the same pairs for review.
    Spark's blocking rules are salted here (three salts each) — salting splits the work and
    must change nothing else."""
    import citydata.match.model as model
    import citydata.match.service as service

    paths, _, _ = population_files
    settings = tmp_path / "settings.toml"
    settings.write_text(SETTINGS, encoding="utf-8")
    models, salted = {}, []
    real_train, real_rules = service.train_and_predict, model._prediction_rules

    def spy(frame, match_settings, engine="duckdb"):
        matched = real_train(frame, match_settings, engine)
        models[engine] = matched.model
        return matched

    def rules_salted_three_ways(frame, match_settings, parallelism):
        monkeypatch.setattr(model, "salting_partitions", lambda sizes, p: 3 if p > 1 else 1)
        rules, salts = real_rules(frame, match_settings, parallelism)
        salted.append(salts)
        return rules, salts

    monkeypatch.setattr(service, "train_and_predict", spy)
    monkeypatch.setattr(model, "_prediction_rules", rules_salted_three_ways)
    out = {}
    for engine in ("duckdb", "spark"):
        result = CliRunner().invoke(
            app,
            [
                "match",
                *[str(p) for p, _ in paths],
                "--settings",
                str(settings),
                "--out",
                str(tmp_path / f"{engine}.csv"),
                "--review",
                str(tmp_path / f"{engine}-review.csv"),
                "--engine",
                engine,
            ],
        )
        assert result.exit_code == 0, result.output
        out[engine] = (
            pl.read_csv(tmp_path / f"{engine}.csv", infer_schema=False),
            pl.read_csv(tmp_path / f"{engine}-review.csv", infer_schema=False),
        )
    assert salted[0] == {} and len(salted[1]) == 3 and set(salted[1].values()) == {3}
    duck, spark_levels = _levels(models["duckdb"]), _levels(models["spark"])
    assert duck.keys() == spark_levels.keys() and len(duck) >= 15
    for level, (m, u) in duck.items():
        m2, u2 = spark_levels[level]
        assert (m is None) == (m2 is None) and (u is None) == (u2 is None), level
        assert m is None or m == pytest.approx(m2, rel=1e-9, abs=1e-12), (level, m, m2)
        assert u is None or isinstance(u, str) or u == pytest.approx(u2, rel=1e-9), (level, u, u2)
    (clusters, review), (clusters_s, review_s) = out["duckdb"], out["spark"]
    keys = ["source", "record_id", "cluster_id"]
    assert clusters.select(keys).equals(clusters_s.select(keys))
    assert clusters["cluster_id"].n_unique() < clusters.height  # records were merged
    weights = clusters.join(clusters_s, on=["source", "record_id"]).select(
        pl.col("match_weight").cast(pl.Float64), pl.col("match_weight_right").cast(pl.Float64)
    )
    assert ((weights[:, 0] - weights[:, 1]).abs().fill_null(0) <= 0.0011).all()
    assert weights[:, 0].null_count() == weights[:, 1].null_count()
    pair = ["source_l", "record_id_l", "source_r", "record_id_r"]
    assert review.select(pair).sort(pair).equals(review_s.select(pair).sort(pair))


def _clone(store, tmp_path) -> str:
    """A copy of the store's database, under a new URL."""
    store.engine.dispose()
    url = make_url(store.url)
    if url.get_backend_name() == "sqlite":
        copy = tmp_path / "clone.db"
        source, target = sqlite3.connect(url.database), sqlite3.connect(copy)
        source.backup(target)
        source.close(), target.close()
        return f"sqlite:///{copy}"
    from conftest import _pg_create

    return _pg_create(f"citydata_clone_{uuid.uuid4().hex[:10]}", template=url.database)


def test_resolve_on_spark_makes_the_masters_duckdb_makes(spark, store, tmp_path, monkeypatch):
    """A realistic small city's population registers staged once, resolved in one copy of
    the database with DuckDB and in another with `citydata resolve --engine spark`: each row
    joins the same master id, the masters carry the same records, the same reviews open."""
    from citydata import cli_common
    from citydata.bases import service
    from citydata.bases.models import Master, MasterLink, MatchReview
    from citydata.catalog.service import import_catalog
    from citydata.db.engine import Store
    from citydata.demo.generate import generate
    from citydata.ingest.service import ingest

    city = tmp_path / "city"
    manifest = generate(city, 600, seed=9, errors="realistic")
    with store.session() as session:
        import_catalog(session, city / "catalog.json")
    for entry in manifest["files"]:
        if entry["class_code"] in POPULATION_CLASSES:
            ingest(store, city / entry["path"], entry["class_code"], encoding=entry["encoding"])
    other_url = _clone(store, tmp_path)
    report = service.resolve(store, "population", engine="duckdb")
    assert report.by_match > 0 and report.reviews_opened > 0

    monkeypatch.setenv("CITYDATA_DATABASE_URL", other_url)
    cli_common.store.cache_clear()
    done = CliRunner().invoke(app, ["resolve", "--base", "population", "--engine", "spark"])
    cli_common.store.cache_clear()
    assert done.exit_code == 0, done.output

    def state(target) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        with target.session() as session:
            links = session.execute(
                select(MasterLink.batch_id, MasterLink.row, MasterLink.master_id)
            ).all()
            masters = session.execute(select(Master.id, Master.key, Master.record)).all()
            reviews = session.execute(
                select(MatchReview.batch_id, MatchReview.row, MatchReview.master_id)
            ).all()
        return tuple(  # type: ignore[return-value]
            pl.DataFrame(rows, orient="row", schema=names).sort(names)
            for rows, names in (
                (links, ["batch_id", "row", "master_id"]),
                (masters, ["id", "key", "record"]),
                (reviews, ["batch_id", "row", "master_id"]),
            )
        )

    other = Store(other_url)
    try:
        duck, spark_state = state(store), state(other)
    finally:
        other.engine.dispose()
        if not other_url.startswith("sqlite"):
            from conftest import _pg_drop

            _pg_drop(make_url(other_url).database)
    assert duck[0].height == report.rows_resolved
    for ours, theirs in zip(duck, spark_state, strict=True):
        assert ours.equals(theirs)


def test_salting_splits_only_rules_whose_largest_block_outweighs_a_task():
    skewed = [20_000] + [2] * 50_000  # one name+date shared by 20,000 records
    even = [40] * 10_000
    assert salting_partitions(skewed, parallelism=10) == 10  # capped at the parallelism
    assert salting_partitions([5_000, 5_000] + [2] * 10, parallelism=10) == 5
    assert salting_partitions(even, parallelism=10) == 1
    assert salting_partitions(skewed, parallelism=1) == 1  # DuckDB: never
    assert salting_partitions([300] * 3, parallelism=10) == 1  # too few pairs to matter


def test_spark_without_pyspark_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(engines, "_SESSION", None)
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark raises ImportError
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(EngineError, match=r"citydata\[spark\]"):
        check_engine("spark")
    with pytest.raises(EngineError, match="未知的匹配引擎「sparkle」"):
        check_engine("sparkle")
    data = tmp_path / "a.csv"
    pl.DataFrame({"rec": ["1", "2"], "name": ["张三", "张三"]}).write_csv(data)
    settings = tmp_path / "s.toml"
    settings.write_text('record_id = "rec"\n[columns]\nname = "person_name"\n')
    out = tmp_path / "o.csv"
    result = CliRunner().invoke(
        app,
        ["match", str(data), "--settings", str(settings), "--out", str(out), "--engine", "spark"],
    )
    assert result.exit_code == 1 and "citydata[spark]" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_resolve_refuses_an_unknown_engine_before_touching_anything(env, store):
    result = CliRunner().invoke(app, ["resolve", "--engine", "hadoop"])
    assert result.exit_code == 1 and "未知的匹配引擎「hadoop」" in result.output


def test_pyspark_and_splink_stay_unimported_until_an_engine_is_asked_for():
    code = (
        "import sys, citydata.cli, citydata.match.model, citydata.bases.resolution;"
        "print(sorted(m for m in ('pyspark', 'splink', 'duckdb') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"

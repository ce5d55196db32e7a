"""`citydata match`: settings checked before work, Chinese-aware normalisation, and clusters that
agree with the demo city's truth."""

from __future__ import annotations

import polars as pl
import pytest
from typer.testing import CliRunner

from citydata.cli import app
from citydata.demo.truth import pairwise_scores
from citydata.match.prepare import prepare
from citydata.match.settings import SettingsError, parse_settings
from conftest import POPULATION_CLASSES

SETTINGS = """record_id = "rec"
[columns]
id_number = "identifier"
name = "person_name"
birth_date = "date"
phone = "phone"
address = "address"
"""


def test_settings_problems_name_the_line():
    with pytest.raises(SettingsError, match="第 4 行.*「name」.*「nickname」"):
        parse_settings(SETTINGS.replace('name = "person_name"', 'name = "nickname"'))
    with pytest.raises(SettingsError, match="第 1 行.*未知的设置项「threshold」"):
        parse_settings("threshold = 0.5\n" + SETTINGS)
    settings = parse_settings(SETTINGS)
    with pytest.raises(SettingsError, match="第 6 行.*「phone」不在 a.csv"):
        settings.check_columns(["rec", "id_number", "name", "birth_date", "address"], "a.csv")


def test_normalisation_makes_formatting_differences_vanish():
    frame = pl.DataFrame(
        {
            "id": ["４３０１０２８５０１０１１２３", "43010219850101123x"],
            "n": ["张 晓", "张小"],
            "d": ["1985/01/01", "19850101"],
            "a": ["湖南省长沙市芙蓉区五一大道１号", "芙蓉区五一大道1号"],
            "p": ["+86 138-1234-5678", "13812345678"],
        }
    )
    kinds = {"id": "identifier", "n": "person_name", "d": "date", "a": "address", "p": "phone"}
    a, b = prepare(frame, kinds).to_dicts()
    assert a["id"] == b["id"] == "43010219850101123X"  # full-width, 15 digits, lower-case x
    assert a["n__pinyin"] == b["n__pinyin"] == "zhangxiao" and a["n"] != b["n"]
    assert a["d"] == b["d"] == "1985-01-01"
    assert a["a"] == b["a"] == "芙蓉区五一大道1号"
    assert a["p"] == b["p"] == "13812345678"


def test_match_cli_clusters_agree_with_the_truth(population_files, tmp_path):
    paths, truth, errors = population_files
    settings = tmp_path / "settings.toml"
    settings.write_text(SETTINGS, encoding="utf-8")
    out = tmp_path / "clusters.csv"
    result = CliRunner().invoke(
        app, ["match", *[str(p) for p, _ in paths], "--settings", str(settings), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    clusters = pl.read_csv(out, infer_schema=False)
    assert clusters.columns == ["source", "record_id", "cluster_id", "match_weight"]
    origin = {p.name: original for p, original in paths}
    labelled = clusters.with_columns(
        pl.col("source").replace_strict(origin), pl.col("record_id").cast(pl.Int64)
    ).join(
        truth.select(pl.col("file").alias("source"), pl.col("row").alias("record_id"), "entity_id"),
        on=["source", "record_id"],
    )
    assert labelled.height == clusters.height  # every record has its true person
    scores = pairwise_scores(labelled, "cluster_id", "entity_id")
    assert scores["precision"] >= 0.99 and scores["recall"] >= 0.99, scores
    # The hard rows: no ID number, a 15-digit one, a homophone or a typo in the name.
    hard = errors.filter(
        pl.col("kind").is_in(["id_missing", "id_legacy_15", "name_homophone", "name_typo"])
        & pl.col("class_code").is_in(POPULATION_CLASSES)
    ).select(pl.col("file").alias("source"), pl.col("row").alias("record_id"), "kind")
    checked = hard.join(labelled, on=["source", "record_id"])
    assert set(checked["kind"]) == {"id_missing", "id_legacy_15", "name_homophone", "name_typo"}
    mates = labelled.group_by("entity_id").agg(pl.col("cluster_id").n_unique().alias("clusters"))
    split = checked.join(mates, on="entity_id").filter(pl.col("clusters") > 1)
    assert split.height <= max(1, checked.height // 50), split  # at most 2% of hard rows split off


def test_match_cli_refuses_bad_settings_before_work(tmp_path):
    data = tmp_path / "a.csv"
    pl.DataFrame({"rec": ["1"], "name": ["张三"]}).write_csv(data)
    settings = tmp_path / "s.toml"
    settings.write_text('record_id = "rec"\n[columns]\nname = "person_name"\nphone = "phone"\n')
    result = CliRunner().invoke(
        app, ["match", str(data), "--settings", str(settings), "--out", str(tmp_path / "o.csv")]
    )
    assert result.exit_code == 1
    assert "第 4 行" in result.output and "「phone」" in result.output
    assert not (tmp_path / "o.csv").exists()


def test_candidate_pairs_reach_records_whose_names_and_keys_are_all_mistyped():
    """Given and family name in two columns, a date and a postcode (FEBRL's shape): a record
    whose both names and identifier are mistyped is still paired through its date and postcode;
    one name alone never pairs records (it would pair millions in a city)."""
    from citydata.match.model import block_columns
    from citydata.match.prepare import pinyin_column

    settings = parse_settings(
        'record_id = "id"\n[columns]\ngiven = "person_name"\nfamily = "person_name"\n'
        'born = "date"\nssn = "identifier"\npostcode = "postcode"\n'
    )
    groups = block_columns(settings)
    given, family = pinyin_column("given"), pinyin_column("family")
    assert ("ssn",) in groups
    assert (given, family) in groups
    assert ("born", "postcode") in groups
    assert (given, "born") in groups and (family, "postcode") in groups
    assert all(len(g) > 1 or g == ("ssn",) for g in groups)

    one_name = parse_settings('record_id = "id"\n[columns]\nname = "person_name"\nborn = "date"\n')
    assert block_columns(one_name) == [(pinyin_column("name"), "born")]


def test_clusters_are_connected_components_named_by_their_smallest_record():
    from citydata.match.model import UID, clusters_at

    pairs = pl.DataFrame(
        {
            f"{UID}_l": [5, 3, 7, 1],
            f"{UID}_r": [3, 9, 8, 2],
            "match_weight": [9.0, 8.0, 1.0, 7.0],
            "match_probability": [0.999, 0.995, 0.85, 0.99],
        }
    )
    found = clusters_at(pl.Series(range(10)), pairs, 0.99).sort(UID)
    # 5–3–9 chain into one cluster named 3; 1–2 into 1; 7–8 is below the threshold
    assert found.rows() == [(1, 1), (2, 1), (3, 3), (5, 3), (9, 3)]
    assert clusters_at(pl.Series(range(3)), pairs.clear(), 0.99).height == 0

"""Aggregation: readers, rules, modes, duplicates, unreadable files, a killed batch, CLI and API,
and the demo city's planted errors rejected exactly as its truth lists them."""

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from citydata.catalog.service import import_catalog
from citydata.cli import app
from citydata.ingest import service, staging
from citydata.ingest.models import Batch, Reject
from citydata.standards import id_check_digit
from conftest import DEMO_DAY, make_user

POP = "101001/00001"
LABELS = {
    "id_number": "公民身份号码",
    "name": "姓名",
    "sex": "性别",
    "birth_date": "出生日期",
    "ethnicity": "民族",
    "division": "户籍地行政区划",
    "address": "户籍地址",
    "phone": "联系电话",
}
GOOD = [
    (
        "11010519491231002X",
        "张三",
        "女",
        "1949-12-31",
        "汉族",
        "430102",
        "长沙市芙蓉区五一大道1号",
        "13812345678",
    ),
    (
        "360426199101010071",
        "李四",
        "男",
        "1991-01-01",
        "汉族",
        "430104",
        "长沙市岳麓区麓山南路2号",
        "13912345678",
    ),
    (
        "430122850101123",
        "王五",
        "男",
        "1985-01-01",
        "苗族",
        "430112",
        "长沙市望城区雷锋大道3号",
        None,
    ),
]


VALID = "43010219900101123" + id_check_digit("43010219900101123")


def valid_id_numbers(n: int) -> list[str]:
    """``n`` different valid ID numbers (Furong district, born 1990-01-01)."""
    return [
        (first17 := f"43010219900101{i:03d}") + id_check_digit(first17) for i in range(100, 100 + n)
    ]


def people_frame(rows=GOOD, chinese=True) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=list(LABELS), orient="row")
    return frame.rename(LABELS) if chinese else frame


def staged(store, code=POP, batch_id=None) -> pl.DataFrame:
    from citydata.catalog.service import get_class

    with store.session() as session:
        table = staging.table_name(get_class(session, code).code)
    query = (
        f"select * from {table}"
        + (f" where _batch_id = {batch_id}" if batch_id else "")
        + " order by _batch_id, _row"
    )
    with store.engine.connect() as conn:
        if not store.engine.dialect.has_table(conn, table):
            return pl.DataFrame()
        result = conn.execute(text(query))
        return pl.DataFrame(result.all(), schema=list(result.keys()), orient="row")


def write(frame: pl.DataFrame, path: Path, encoding="utf-8") -> Path:
    if path.suffix == ".csv":
        data = frame.write_csv()
        raw = data.encode("utf-8" if encoding == "utf-8-sig" else encoding)
        path.write_bytes(b"\xef\xbb\xbf" + raw if encoding == "utf-8-sig" else raw)
    elif path.suffix == ".xlsx":
        frame.write_excel(path)
    elif path.suffix == ".jsonl":
        frame.write_ndjson(path)
    else:
        frame.write_parquet(path)
    return path


@pytest.mark.parametrize(
    "name,encoding",
    [
        ("p.csv", "utf-8"),
        ("p.csv", "utf-8-sig"),
        ("p.csv", "gbk"),
        ("p.csv", "gb18030"),
        ("p.xlsx", None),
        ("p.jsonl", None),
        ("p.parquet", None),
    ],
)
def test_each_reader_stages_the_rows_as_sent(store, sample_catalog, tmp_path, name, encoding):
    path = write(people_frame(), tmp_path / name, encoding or "utf-8")
    report = service.ingest(store, path, POP)
    assert report.status == "committed", report.message
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (3, 3, 0)
    if encoding in {"gbk", "gb18030"}:
        assert report.encoding == "gb18030"  # detected; GB18030 reads GBK exactly
    rows = staged(store, batch_id=report.batch_id)
    assert rows["id_number"].to_list() == [r[0] for r in GOOD]  # the legacy number is kept as sent
    assert rows["name"].to_list() == ["张三", "李四", "王五"]
    assert rows["_row"].to_list() == [1, 2, 3]


@pytest.mark.parametrize("name", ["p.csv", "p.parquet", "p.xlsx"])
def test_a_file_is_read_in_chunks_and_keys_are_unique_across_them(
    store, sample_catalog, tmp_path, monkeypatch, name
):
    from citydata.ingest import readers

    monkeypatch.setattr(readers, "CHUNK_ROWS", 2)  # 3 good rows + a repeat: chunks [1,2] [3,4]
    path = write(people_frame([*GOOD, GOOD[0]]), tmp_path / name)
    report = service.ingest(store, path, POP)
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (4, 3, 1)
    assert [(r["row"], r["rule"]) for r in report.rejections] == [(4, "duplicate_key")]
    assert staged(store)["_row"].to_list() == [1, 2, 3]
    assert report.quality["key_uniqueness"] == 0.75


@pytest.mark.parametrize("colliding", [False, True])
def test_repeated_keys_are_exact_even_when_hashes_collide(colliding):
    """Keys are compared by hash first; with every hash made equal the answer must not change."""
    from citydata.ingest.validate import BatchKeys

    class Colliding(BatchKeys):
        @staticmethod
        def hash(key: pl.Series) -> pl.Series:
            return pl.Series([7] * key.len(), dtype=pl.UInt64)

    keys = (Colliding if colliding else BatchKeys)(["a", "b"])
    chunks = [
        pl.DataFrame({"a": ["1", "1", "2", None, "3"], "b": ["x", "y", "x", "x", "z"]}),
        pl.DataFrame({"a": ["1", "4", "4", "2", "3"], "b": ["y", "x", "x", "y", None]}),
    ]
    flags = [keys.repeated(chunk).to_list() for chunk in chunks]
    assert flags == [
        [False, False, False, False, False],  # (1,x) (1,y) (2,x) all new; a missing key is no key
        [True, False, True, False, False],  # (1,y) again; (4,x) twice; (2,y) is new
    ]
    assert (keys.keyed_rows, keys.distinct()) == (8, 6)


def test_values_with_backslashes_tabs_and_line_breaks_are_staged_exactly(
    store, sample_catalog, tmp_path
):
    """PostgreSQL's COPY text format gives \\, tab and line breaks a meaning of their own, and
    \\N means NULL: such values must still arrive as sent."""
    tricky = ["C:\\户籍\\N", "五一\t大道", "第一行\n第二行", "回\r车", "\\N", "\\.", "\\\\"]
    rows = [
        (GOOD[0][0], "张三", "女", "1949-12-31", "汉族", "430102", tricky[0], None),
        *[
            (id_number, "李四", "男", "1991-01-01", "汉族", "430104", address, None)
            for id_number, address in zip(
                valid_id_numbers(len(tricky) - 1), tricky[1:], strict=True
            )
        ],
    ]
    report = service.ingest(store, write(people_frame(rows), tmp_path / "t.csv"), POP)
    assert report.rows_accepted == len(tricky), report.rejections
    assert staged(store)["address"].to_list() == tricky
    assert staged(store)["phone"].to_list() == [None] * len(tricky)


@pytest.mark.parametrize(
    "content,plain",
    [
        (b"a,b\r\n1,2\r\n", True),  # CRLF line ends are plain
        (b"a,b\n1,2\n", True),
        (b'a,b\n1,"2"\n', False),  # a quote: a value may hold a line break
        (b"a,b\n1,C:\\x\n", False),
        (b"a,b\n1,2\t3\n", False),
        (b"a,b\n1,2\r3\n", False),  # a carriage return of its own
        (b"a,b\r\n1,2\r", False),
    ],
)
def test_file_facts_tell_plain_bytes_from_ones_copy_would_misread(tmp_path, content, plain):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    for block in (1, 2, 3, 1 << 20):  # a CRLF split between two reads still counts as one
        assert service.file_facts(path, block) == (hashlib.sha256(content).hexdigest(), plain)


@pytest.mark.parametrize("address", ["C:\\户籍\\N", "五一\t大道"])
def test_a_backslash_or_tab_outside_quotes_is_staged_exactly(
    store, sample_catalog, tmp_path, address
):
    """Such a file is not plain: its rows must not go through COPY's text format."""
    row = (GOOD[0][0], "张三", "女", "1949-12-31", "汉族", "430102", address, None)
    path = write(people_frame([row]), tmp_path / "p.csv")
    assert b'"' not in path.read_bytes()  # no quotes: the character itself must be caught
    assert service.ingest(store, path, POP).rows_accepted == 1
    assert staged(store)["address"].to_list() == [address]


def test_bulk_insert_keeps_empty_text_apart_from_null(store):
    """COPY on PostgreSQL: an empty string, a NULL and a literal \\N must stay three things."""
    from sqlalchemy import Column, Integer, MetaData, Table, Text

    table = Table("t_bulk", MetaData(), Column("n", Integer), Column("v", Text))
    values = ["", None, "\\N", "a,b", 'say "hi"', "行一\n行二"]
    with store.engine.begin() as conn:
        table.create(conn)
        staging.insert_frame(conn, table, pl.DataFrame({"n": range(len(values)), "v": values}))
    with store.engine.connect() as conn:
        assert [v for _, v in conn.execute(table.select().order_by(table.c.n))] == values


def test_a_file_with_a_header_and_no_rows_is_an_empty_batch(store, sample_catalog, tmp_path):
    report = service.ingest(store, write(people_frame([]), tmp_path / "empty.csv"), POP)
    assert (report.status, report.rows_read, report.rows_accepted) == ("committed", 0, 0)
    assert staged(store).height == 0


def test_columns_match_by_field_name_too(store, sample_catalog, tmp_path):
    path = write(people_frame(chinese=False), tmp_path / "names.csv")
    assert service.ingest(store, path, POP).rows_accepted == 3


def test_every_rule_rejects_with_its_name(store, sample_catalog, tmp_path):
    bad = [
        (
            "11010519491231002X",
            "甲",
            "女",
            "1949-12-31",
            "汉族",
            "430102",
            None,
            "13812345678",
        ),  # good
        ("11010519491231003X", "乙", "女", "1949-12-31", "汉族", "430102", None, None),  # id_number
        ("360426199101010071", None, "男", "1991-01-01", "汉族", "430104", None, None),  # required
        (
            "43010219900101123X",
            "丙",
            "X",
            "1990-01-01",
            "汉族",
            "430102",
            None,
            None,
        ),  # enum (id also bad)
        (
            VALID,
            "丁",
            "男",
            "2099-01-01",
            "汉族",
            "439999",
            None,
            "1234",
        ),  # past_date, division, mobile
        (
            VALID,
            "戊",
            "男",
            "1990-13-01",
            "汉族",
            "430102",
            "x" * 201,
            None,
        ),  # type, length, duplicate
    ]
    report = service.ingest(store, write(people_frame(bad), tmp_path / "bad.csv"), POP, today=None)
    with store.session() as session:
        found = set(session.execute(select(Reject.row, Reject.field, Reject.rule)).all())
    assert found == {
        (2, "id_number", "id_number"),
        (3, "name", "required"),
        (4, "sex", "enum"),
        (4, "id_number", "id_number"),
        (5, "birth_date", "past_date"),
        (5, "division", "division"),
        (5, "phone", "mobile"),
        (6, "birth_date", "type"),
        (6, "address", "length"),
        (6, "id_number", "duplicate_key"),
    }
    assert (report.rows_accepted, report.rows_rejected) == (1, 5)
    assert staged(store)["name"].to_list() == ["甲"]


def test_coordinates_must_fall_inside_the_city(store, sample_catalog, tmp_path):
    frame = pl.DataFrame(
        {
            "部件编码": ["a", "b", "c"],
            "部件类型": ["井盖"] * 3,
            "经度": ["112.98", "121.47", "东经"],
            "纬度": ["28.2", "28.2", "28.2"],
        }
    )
    report = service.ingest(store, write(frame, tmp_path / "c.csv"), "101004/00001")
    assert {(r["row"], r["rule"]) for r in report.rejections} == {
        (2, "longitude"),
        (3, "longitude"),
        (3, "type"),
    }


def test_modes_append_upsert_delete_replace(store, sample_catalog, tmp_path):
    service.ingest(store, write(people_frame(), tmp_path / "a.csv"), POP)
    changed = [(GOOD[1][0], "李四四", *GOOD[1][2:])]
    up = service.ingest(store, write(people_frame(changed), tmp_path / "u.csv"), POP, mode="upsert")
    assert (up.rows_accepted, up.rows_removed) == (1, 1)
    rows = staged(store)
    assert sorted(rows["name"].to_list()) == ["张三", "李四四", "王五"] and rows.height == 3
    keys = pl.DataFrame({"公民身份号码": [GOOD[0][0], "110105194912310000"]})
    gone = service.ingest(store, write(keys, tmp_path / "d.csv"), POP, mode="delete")
    assert gone.rows_removed == 1 and gone.rows_rejected == 1  # the second key is no valid ID
    assert sorted(staged(store)["name"].to_list()) == ["李四四", "王五"]
    new = service.ingest(
        store, write(people_frame(GOOD[:1]), tmp_path / "r.csv"), POP, mode="replace"
    )
    assert new.rows_removed == 2 and staged(store)["name"].to_list() == ["张三"]
    with store.session() as session:
        history = [(b.mode, b.status) for b in session.scalars(select(Batch).order_by(Batch.id))]
    assert history == [
        ("append", "committed"),
        ("upsert", "committed"),
        ("delete", "committed"),
        ("replace", "committed"),
    ]


def test_a_field_added_to_the_class_later_gets_its_own_values(store, sample_catalog, tmp_path):
    """The staging table gains the column at its end, while the field sits in the middle of the
    class: each value must still land in its own column, and a field left out stays empty."""
    from citydata.catalog.models import Field
    from citydata.catalog.service import get_class

    first = service.ingest(store, write(people_frame(GOOD[:1]), tmp_path / "a.csv"), POP)
    with store.session() as session:
        rc = get_class(session, POP)
        for f in rc.fields:
            f.position += f.position >= 2  # the new field goes in as the third
        rc.fields.append(Field(position=2, name="former_name", label="曾用名", data_type="C"))
    frame = people_frame(GOOD[1:2]).drop("户籍地址").with_columns(曾用名=pl.lit("李小四"))
    second = service.ingest(
        store, write(frame.select(reversed(frame.columns)), tmp_path / "b.csv"), POP
    )
    assert second.status == "committed", second.message
    rows = staged(store)
    assert rows["former_name"].to_list() == [None, "李小四"]
    assert rows["name"].to_list() == ["张三", "李四"]
    assert rows["phone"].to_list() == [GOOD[0][7], GOOD[1][7]]
    assert rows["address"].to_list() == [GOOD[0][6], None]
    assert rows["_batch_id"].to_list() == [first.batch_id, second.batch_id]


def test_same_file_twice_is_a_no_op_that_says_so(store, sample_catalog, tmp_path):
    path = write(people_frame(), tmp_path / "p.csv")
    first = service.ingest(store, path, POP)
    again = service.ingest(store, path, POP)
    assert (
        again.status == "duplicate"
        and again.batch_id == first.batch_id
        and str(first.batch_id) in again.message
    )
    assert staged(store).height == 3
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 1
        assert session.scalar(select(Batch.file_hash)) == service.file_facts(path)[0]


def test_a_resubmission_found_out_after_its_rows_were_sent_is_rolled_back(
    store, sample_catalog, tmp_path, monkeypatch
):
    """Writing starts before the file's hash is known: when the hash arrives late, the rows
    already sent are rolled back and the batch record removed."""
    from citydata.ingest import readers

    path = write(people_frame(), tmp_path / "p.csv")
    first = service.ingest(store, path, POP)
    monkeypatch.setattr(readers, "CHUNK_ROWS", 1)  # three chunks, all written before the hash
    facts, heard, written = service.file_facts, [], threading.Event()
    send, chunks = staging.BatchWriter.write, []

    def counted_write(self, *args, **kwargs):
        send(self, *args, **kwargs)
        chunks.append(1)
        if len(chunks) == 3:
            self._last.result()  # the third chunk has reached the database
            written.set()

    def late_facts(p):  # the hash is known only once every row was sent
        assert written.wait(60), "the rows were never written"
        return facts(p)

    monkeypatch.setattr(staging.BatchWriter, "write", counted_write)
    monkeypatch.setattr(service, "file_facts", late_facts)
    again = service.ingest(store, path, POP, on_batch=heard.append)
    assert (again.status, again.batch_id) == ("duplicate", first.batch_id)
    assert heard == []  # no batch to follow was ever announced
    assert staged(store)["_batch_id"].to_list() == [first.batch_id] * 3
    with store.session() as session:
        assert session.scalars(select(Batch.id)).all() == [first.batch_id]


def test_unreadable_files_fail_the_batch_and_write_nothing(store, sample_catalog, tmp_path):
    gbk = write(people_frame(), tmp_path / "gbk.csv", "gbk")
    report = service.ingest(store, gbk, POP, encoding="utf-8")
    assert report.status == "failed" and "gbk.csv" in report.message and "utf-8" in report.message
    missing = write(people_frame().drop("姓名"), tmp_path / "missing.csv")
    report = service.ingest(store, missing, POP)
    assert (
        report.status == "failed"
        and "missing.csv" in report.message
        and "「姓名」" in report.message
    )
    (tmp_path / "x.doc").write_text("hello")
    assert "无法识别的文件格式" in service.ingest(store, tmp_path / "x.doc", POP).message
    assert staged(store).height == 0
    with store.session() as session:
        assert [b.status for b in session.scalars(select(Batch))] == ["failed"] * 3
    with pytest.raises(service.IngestError):
        service.ingest(store, gbk, POP, unit_code="csjy")


def test_a_file_that_stops_being_utf8_past_its_first_mib_fails_naming_the_line(
    store, sample_catalog, tmp_path, monkeypatch
):
    """UTF-8 is settled from the first MiB and Polars checks the rest as it parses: a GBK row
    far down the file still fails the whole batch, chunks already written included."""
    good = people_frame()
    rows = pl.concat([good] * 20_000)  # ~1.6 MiB of UTF-8 Chinese text
    path = tmp_path / "mixed.csv"
    rows.write_csv(path)
    with path.open("ab") as f:
        f.write(",".join(good.row(0)).encode("gbk") + b"\n")
    from citydata.ingest import readers

    monkeypatch.setattr(readers, "CHUNK_ROWS", 10_000)  # good chunks are written before the bad row
    report = service.ingest(store, path, POP)
    assert report.status == "failed"
    assert f"第 {rows.height + 2} 行附近" in report.message and "mixed.csv" in report.message
    assert staged(store).height == 0


def test_a_batch_killed_midway_leaves_no_rows_and_is_marked_interrupted(
    store, sample_catalog, tmp_path
):
    n = 200_000
    big = pl.DataFrame(
        {
            "公民身份号码": [GOOD[0][0]] * n,
            "姓名": ["张三"] * n,
            "性别": ["女"] * n,
            "出生日期": ["1949-12-31"] * n,
            "户籍地行政区划": ["430102"] * n,
        }
    )
    big = big.with_columns(pl.format("{}", pl.int_range(n)).alias("民族"))
    path = write(big, tmp_path / "big.csv")
    written = tmp_path / "written"
    # The child stops for good once three chunks have reached the database, uncommitted: the
    # kill lands in the middle of the batch on every run, however fast the machine.
    code = f"""
import time
from datetime import date, timedelta
from pathlib import Path
from citydata.db.engine import Store
from citydata.ingest import readers, service, staging

readers.CHUNK_ROWS = 50_000
write, calls = staging.BatchWriter.write, []

def slow_write(self, *args, **kwargs):
    write(self, *args, **kwargs)
    calls.append(1)
    if len(calls) == 3:
        self._last.result()  # this chunk and the two before it are written
        Path({str(written)!r}).touch()
        time.sleep(600)

staging.BatchWriter.write = slow_write
service.ingest(Store({store.url!r}), Path({str(path)!r}), {POP!r})
"""
    child = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while not written.exists() and time.time() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert written.exists(), "the child never got three chunks into the database"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with store.session() as session:
        assert session.scalar(select(Batch.status)) == "running"
    assert staged(store).height == 0
    follow = service.ingest(store, write(people_frame(), tmp_path / "p.csv"), POP)
    with store.session() as session:
        assert [b.status for b in session.scalars(select(Batch).order_by(Batch.id))] == [
            "interrupted",
            "committed",
        ]
    assert staged(store).height == follow.rows_accepted == 3


def test_cli_ingest_json_report_and_batch_commands(env, store, sample_catalog, tmp_path):
    rows = [*GOOD, ("11010519491231003X", "乙", "女", "1949-12-31", "汉族", "430102", None, None)]
    path = write(people_frame(rows), tmp_path / "p.csv", "gbk")
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(path), "--class", POP, "--unit", "csga", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {k: report[k] for k in ("status", "rows_read", "rows_accepted", "rows_rejected")} == {
        "status": "committed",
        "rows_read": 4,
        "rows_accepted": 3,
        "rows_rejected": 1,
    }
    assert report["rejections"] == [
        {"row": 4, "field": "id_number", "rule": "id_number", "value": "11010519491231003X"}
    ]
    listed = json.loads(runner.invoke(app, ["batch", "list", "--json"]).output)
    assert listed["count"] == 1 and listed["results"][0]["batch_id"] == report["batch_id"]
    shown = json.loads(
        runner.invoke(app, ["batch", "show", str(report["batch_id"]), "--json"]).output
    )
    assert shown["quality"]["completeness"]["phone"] == 0.5 and shown["quality"]["validity"] == 0.75
    quality = json.loads(runner.invoke(app, ["quality", "--json"]).output)
    assert quality["units"]["csga"]["classes"] == 1 and 0 < quality["classes"][POP]["score"] < 100
    other = write(people_frame(GOOD[:1]), tmp_path / "q.csv", "gbk")
    failed = runner.invoke(app, ["ingest", str(other), "--class", POP, "--encoding", "utf-8"])
    assert failed.exit_code == 1 and "q.csv" in failed.output


def test_api_upload_needs_the_owning_steward_and_offers_rejects(
    client, store, sample_catalog, tmp_path
):
    own = make_user(store, "ga", "steward", "csga")
    other = make_user(store, "jy", "steward", "csjy")
    rows = [*GOOD, ("11010519491231003X", "乙", "女", "1949-12-31", "汉族", "430102", None, None)]
    data = people_frame(rows).write_csv().encode("gbk")

    def post(token):
        return client.post(
            "/api/v1/batches",
            data={"class": POP},
            files={"file": ("p.csv", data, "text/csv")},
            headers={"Authorization": f"Bearer {token}"},
        )

    assert post(other).status_code == 403
    r = post(own)
    assert r.status_code == 201 and r.json()["rows_rejected"] == 1
    batch_id = r.json()["batch_id"]
    mine = {"Authorization": f"Bearer {own}"}
    shown = client.get(f"/api/v1/batches/{batch_id}", headers=mine).json()["rejections"][0]
    # masked jointly: the class also holds the birth date, so the digits after the division go
    assert shown["rule"] == "id_number" and shown["value"] == "110105************"
    assert client.get(f"/api/v1/batches/{batch_id}").status_code == 401
    assert client.get(f"/api/v1/batches/{batch_id}/rejects.csv").status_code == 401
    csv = client.get(
        f"/api/v1/batches/{batch_id}/rejects.csv", headers={"Authorization": f"Bearer {own}"}
    )
    frame = pl.read_csv(io.BytesIO(csv.content))
    assert frame["行号"].to_list() == [4] and frame["规则"].to_list() == ["id_number"]
    assert (
        client.get(
            f"/api/v1/batches/{batch_id}/rejects.csv", headers={"Authorization": f"Bearer {other}"}
        ).status_code
        == 403
    )
    assert "已入库" in client.get(f"/batches/{batch_id}", headers=mine).text
    assert client.get("/api/v1/batches", headers=mine).json()["count"] == 1


def test_demo_city_ingests_and_rejects_exactly_the_planted_rows(store, tmp_path):
    from citydata.demo.generate import generate

    city = tmp_path / "city"
    manifest = generate(city, 1500, seed=5, as_of=DEMO_DAY)
    with store.session() as session:
        import_catalog(session, city / "catalog.json")
    truth = pl.read_parquet(city / "truth/errors.parquet").filter(pl.col("rule").is_not_null())
    for entry in manifest["files"]:
        report = service.ingest(
            store,
            city / entry["path"],
            entry["class_code"],
            entry["unit"],
            encoding=entry["encoding"],
        )
        if entry["expect"] == "fail":
            assert report.status == "failed", entry
            continue
        assert report.status == "committed", (entry, report.message)
        with store.session() as session:
            found = set(
                session.execute(
                    select(Reject.row, Reject.rule).where(Reject.batch_id == report.batch_id)
                ).all()
            )
        planted = set(
            truth.filter(pl.col("file") == entry["path"]).select("row", "rule").iter_rows()
        )
        assert found == planted, entry["path"]
        assert report.rows_accepted == entry["rows"] - entry["bad_rows"]
    # The demo city's elderly hold codes younger than themselves, as real residents do: 芙蓉区's
    # 430102 dates from 1983, and people born long before carry it, accepted.
    with store.session() as session:
        elderly = session.execute(
            text(
                "SELECT count(*) FROM stg_101001_00001 "
                "WHERE id_number LIKE '430102%' AND birth_date < '1983-01-01'"
            )
        ).scalar()
    assert elderly > 10


def test_upload_page_runs_in_the_background_and_the_batch_page_follows_it(
    client, store, sample_catalog, tmp_path
):
    import re

    make_user(store, "ga", "steward", "csga")
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    client.post("/login", data={"username": "ga", "password": "password123", "csrf": token})
    form = client.get("/batches").text
    token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    data = people_frame().write_csv().encode("gbk")
    answer = client.post(
        "/batches/upload",
        data={"class_code": POP, "mode": "append", "csrf": token},
        files={"file": ("p.csv", data, "text/csv")},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    batch_id = int(answer.headers["location"].rsplit("/", 1)[1])
    deadline = time.time() + 30
    while time.time() < deadline:
        page = client.get(f"/batches/{batch_id}").text
        if "处理中" not in page:
            break
        assert 'http-equiv="refresh"' in page  # a running batch's page keeps itself current
        time.sleep(0.1)
    assert "已入库" in page and 'http-equiv="refresh"' not in page
    assert staged(store, batch_id=batch_id).height == 3
    with store.session() as session:
        assert session.get(Batch, batch_id).submitted_by == "ga"


def test_a_departments_file_of_ordinary_residents_loses_only_its_planted_rows(
    store, sample_catalog, tmp_path
):
    """Made here, not by the demo generator: 2,000 residents of today's districts born
    1940–2015, each number with a right check digit, GBK with CRLF as a department's export
    tool writes it — and a few rows broken on purpose."""
    import random

    rng = random.Random(11)
    today = [
        "430102",
        "430103",
        "430104",
        "430105",
        "430111",
        "430112",
        "430121",
        "430181",
        "430182",
    ]
    rows, planted = [], {}
    for n in range(1, 2001):
        born = date(1940, 1, 1) + timedelta(
            days=rng.randrange((date(2015, 12, 31) - date(1940, 1, 1)).days)
        )
        code = rng.choice(today)
        serial = f"{n % 1000:03d}"  # numbers differ, as a county's register keeps them
        first17 = f"{code}{born:%Y%m%d}{serial}"
        number = first17 + id_check_digit(first17)
        if n % 97 == 0:  # a typing slip: the check digit no longer fits
            number = number[:-1] + ("0" if number[-1] != "0" else "1")
            planted[n] = "id_number"
        elif n % 101 == 0:  # 长沙市市区, retired before the first numbers were issued
            first17 = f"430120{born:%Y%m%d}{serial}"
            number = first17 + id_check_digit(first17)
            planted[n] = "id_number"
        elif n % 103 == 0:  # 望城县's code on someone born after it was retired
            born = date(2015, 6, 1)
            first17 = f"430122{born:%Y%m%d}{serial}"
            number = first17 + id_check_digit(first17)
            planted[n] = "id_number"
        sex = "男" if int(number[16]) % 2 else "女"
        rows.append((number, f"居民{n}", sex, born.isoformat(), "汉族", code, None, None))
    path = tmp_path / "户籍人口.csv"
    text_ = people_frame(rows).write_csv(line_terminator="\r\n")
    path.write_bytes(text_.encode("gbk"))
    report = service.ingest(store, path, POP)
    assert report.status == "committed", report.message
    with store.session() as session:
        found = dict(
            session.execute(
                select(Reject.row, Reject.rule).where(Reject.batch_id == report.batch_id)
            ).all()
        )
        elderly = [r for r in rows if r[0].startswith("430102") and r[3] < "1983"]
        kept = session.execute(
            text(
                "SELECT count(*) FROM stg_101001_00001 WHERE id_number LIKE '430102%' AND birth_date < '1983'"
            )
        ).scalar()
    assert found == planted and report.rows_rejected == len(planted) > 0
    assert kept == len(elderly) > 50  # 芙蓉区's elderly, their code younger than themselves
    explained = service.rejects_export(store.sessions(), report.batch_id).decode("utf-8-sig")
    assert "430120：1983 年后停用，早于首次发证" in explained
    assert "430122：2011 年后停用，早于出生年份 2015" in explained

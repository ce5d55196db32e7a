"""Operations: backup and restore on both stores — into an empty database, with the same rows,
an audit chain that verifies, keys that still decrypt, files back in place, and a server that
answers a sharing lookup; a backup taken while batches and lookups run is one consistent state."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from citydata import cli_common, keys
from citydata.app import create_app
from citydata.audit import service as audit
from citydata.catalog.models import ResourceClass
from citydata.cli import app as cli
from citydata.config import Settings
from citydata.db.engine import Store
from citydata.ingest import staging
from citydata.ingest.models import Batch
from citydata.ingest.service import ingest
from citydata.ops import backup as ops_backup
from citydata.share.models import ShareSubscription
from conftest import fixed_clock
from sharing import FIELDS, HOUSEHOLD, LOOPBACK, PEOPLE, call, granted

LOOKUP = {"keys": [PEOPLE[0][0]], "fields": ["name", "id_number"]}


def settings_for(url: str, data_dir: Path) -> Settings:
    return Settings(
        database_url=url, data_dir=data_dir, webhook_seconds=0, webhook_allow_hosts=LOOPBACK
    )


def run(monkeypatch, url: str, data_dir: Path, *args: str):
    monkeypatch.setenv("CITYDATA_DATABASE_URL", url)
    monkeypatch.setenv("CITYDATA_DATA_DIR", str(data_dir))
    monkeypatch.delenv("CITYDATA_SECRET_KEY", raising=False)
    monkeypatch.delenv("CITYDATA_KEY_FILE", raising=False)
    cli_common.store.cache_clear()
    try:
        return CliRunner().invoke(cli, list(args))
    finally:
        cli_common.store.cache_clear()


def counts(url: str) -> dict[str, int]:
    store = Store(url)
    try:
        with store.engine.connect() as conn:
            return ops_backup.count_rows(conn)
    finally:
        store.engine.dispose()


def test_backup_and_restore_round_trip_into_an_empty_database(
    city, people, tmp_path, empty_url, monkeypatch
):
    data = tmp_path / "data"
    settings = settings_for(city.url, data)
    server = create_app(city, settings, clock=fixed_clock)
    with TestClient(server) as api:
        headers = granted(city)
        answers = [call(api, headers, "lookup", LOOKUP) for _ in range(3)]
        assert [a.status_code for a in answers] == [200] * 3
        hook = call(api, headers, "subscriptions", {"url": "http://127.0.0.1:9/hook"})
    assert hook.status_code == 200, hook.text
    photo = data / "grid_photos" / "ab" / "abcdef.jpg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"\xff\xd8 a photo \xff\xd9")
    before = counts(city.url)

    folder = tmp_path / "backup"
    made = run(monkeypatch, city.url, data, "backup", str(folder))
    assert made.exit_code == 0, made.output
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["tables"] == before and manifest["keys"] is not None
    assert [f["path"] for f in manifest["files"]] == ["grid_photos/ab/abcdef.jpg"]
    assert (folder / "keys" / "secret.keys").stat().st_mode & 0o077 == 0

    elsewhere = tmp_path / "data-restored"
    restored = run(monkeypatch, empty_url, elsewhere, "restore", str(folder))
    assert restored.exit_code == 0, restored.output
    assert "审计链完整" in restored.output
    assert counts(empty_url) == before
    assert (elsewhere / "grid_photos/ab/abcdef.jpg").read_bytes() == photo.read_bytes()
    assert (elsewhere / "secret.keys").read_text() == (data / "secret.keys").read_text()

    again = Store(empty_url)
    try:
        with again.session() as session:
            assert audit.verify(session).ok
            secret = session.scalar(select(ShareSubscription.signing_secret))
        # encrypted at rest, readable with the restored keys and only with them
        restored_keys = keys.load(settings_for(empty_url, elsewhere))
        assert secret.startswith(keys.ENCRYPTED) and restored_keys.decrypt(secret)
        with pytest.raises(keys.UnknownKey):
            keys.Keys(("another-installation",)).decrypt(secret)
        with TestClient(create_app(again, settings_for(empty_url, elsewhere))) as api:
            answer = call(api, headers, "lookup", LOOKUP)
        assert answer.status_code == 200, answer.text
        assert answer.json()["records"] == answers[0].json()["records"]
        assert answer.json()["records"][0]["name"] == "张*"  # masked, as before
    finally:
        again.engine.dispose()


def test_restore_refuses_a_database_that_is_not_empty_unless_forced(city, tmp_path, monkeypatch):
    data = tmp_path / "data"
    folder = tmp_path / "backup"
    assert run(monkeypatch, city.url, data, "backup", str(folder)).exit_code == 0
    refused = run(monkeypatch, city.url, data, "restore", str(folder))
    assert refused.exit_code == 1
    assert "不是空的" in refused.output and "--force" in refused.output
    # nothing was touched: the database still answers as before
    assert counts(city.url) == json.loads((folder / "manifest.json").read_text())["tables"]
    with city.engine.begin() as conn:
        conn.execute(text("DELETE FROM batch_rejects"))
    forced = run(monkeypatch, city.url, data, "restore", str(folder), "--force")
    assert forced.exit_code == 0, forced.output
    assert counts(city.url) == json.loads((folder / "manifest.json").read_text())["tables"]


def test_backup_refuses_a_folder_in_use_and_restore_a_folder_that_is_no_backup(
    city, tmp_path, monkeypatch
):
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    made = run(monkeypatch, city.url, tmp_path / "data", "backup", str(used))
    assert made.exit_code == 1 and "不是空文件夹" in made.output
    assert (used / "notes.txt").read_text() == "mine"
    restored = run(monkeypatch, city.url, tmp_path / "data", "restore", str(used))
    assert restored.exit_code == 1 and "manifest.json" in restored.output


def test_a_backup_taken_while_batches_and_lookups_run_is_one_consistent_state(
    city, people, tmp_path, empty_url, monkeypatch
):
    data = tmp_path / "data"
    server = create_app(city, settings_for(city.url, data), clock=fixed_clock)
    files = []
    for i in range(6):
        path = tmp_path / f"batch-{i}.csv"
        rows = [(f"43010219900101{1000 + i * 50 + j:04d}"[:18], f"王{i}{j}", "男", "1990-01-01",
                 "430102", "长沙市芙蓉区", None) for j in range(40)]  # fmt: skip
        pl.DataFrame(rows, schema=FIELDS, orient="row").write_csv(path)
        files.append(path)
    stop = threading.Event()
    lookups = []

    with TestClient(server) as api:
        headers = granted(city)

        def look() -> None:
            while not stop.is_set():
                lookups.append(call(api, headers, "lookup", LOOKUP).status_code)

        def load() -> None:
            for path in files:
                ingest(city, path, HOUSEHOLD)

        threads = [threading.Thread(target=look), threading.Thread(target=load)]
        for t in threads:
            t.start()
        try:
            while len(lookups) < 5:  # the load is under way
                threading.Event().wait(0.01)
            folder = tmp_path / "backup"
            made = run(monkeypatch, city.url, data, "backup", str(folder))
        finally:
            threads[1].join()
            stop.set()
            threads[0].join()
    assert made.exit_code == 0, made.output
    assert set(lookups) == {200}
    restored = run(monkeypatch, empty_url, tmp_path / "data-restored", "restore", str(folder))
    assert restored.exit_code == 0, restored.output

    snapshot = Store(empty_url)
    try:
        with snapshot.session() as session:
            report = audit.verify(session)
            assert report.ok, report.problems
            kept = session.execute(select(Batch.id, Batch.status, Batch.rows_accepted)).all()
            conn = session.connection()
            table = staging.staging_table(session.get(ResourceClass, HOUSEHOLD))
            # a batch is in the backup whole, or not visibly at all
            for batch_id, status, accepted in kept:
                staged = staging.count(conn, table, batch_id)
                assert staged == (accepted if status == "committed" else 0), (batch_id, status)
            audited = session.scalar(select(func.count()).select_from(audit.AuditEntry))
        assert report.entries == audited
    finally:
        snapshot.engine.dispose()
    # lookups went on while the backup ran: the live chain went on past the snapshot's
    assert counts(empty_url)["audit_entries"] < counts(city.url)["audit_entries"]

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from citydata.cli import app
from citydata.migrations import current_revision, head_revision, include_object, metadata


def test_migrations_match_the_models(store):
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        diff = compare_metadata(context, metadata)
    assert diff == []
    assert current_revision(store.engine) == head_revision(store.engine)


def test_init_twice_is_harmless(tmp_path, monkeypatch):
    from citydata import cli_common

    url = f"sqlite:///{tmp_path}/fresh.db"
    monkeypatch.setenv("CITYDATA_DATABASE_URL", url)
    monkeypatch.setenv("CITYDATA_ADMIN_PASSWORD", "first-admin-pw")
    cli_common.store.cache_clear()
    runner = CliRunner()
    first = runner.invoke(app, ["init"])
    assert first.exit_code == 0, first.output
    assert "已升级" in first.output
    store = cli_common.store()
    tables = set(inspect(store.engine).get_table_names())
    with store.engine.connect() as conn:
        users = conn.execute(text("select count(*) from users")).scalar()
    second = runner.invoke(app, ["init"])
    assert second.exit_code == 0, second.output
    assert "已是最新版本" in second.output
    assert set(inspect(store.engine).get_table_names()) == tables
    with store.engine.connect() as conn:
        assert conn.execute(text("select count(*) from users")).scalar() == users == 1
    cli_common.store.cache_clear()


def test_init_generates_an_admin_password_once(tmp_path, monkeypatch):
    from citydata import cli_common

    monkeypatch.setenv("CITYDATA_DATABASE_URL", f"sqlite:///{tmp_path}/gen.db")
    monkeypatch.delenv("CITYDATA_ADMIN_PASSWORD", raising=False)
    cli_common.store.cache_clear()
    runner = CliRunner()
    first = runner.invoke(app, ["init"]).output
    assert "初始密码" in first
    password = first.rsplit("：", 1)[1].strip()
    from citydata.accounts.service import authenticate

    with cli_common.store().session() as session:
        assert authenticate(session, "admin", password) is not None
    assert "初始密码" not in runner.invoke(app, ["init"]).output
    cli_common.store.cache_clear()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(store):
    if store.engine.dialect.name != "sqlite":
        return
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_init_refuses_a_short_admin_password_with_a_message(tmp_path, monkeypatch):
    from citydata import cli_common

    monkeypatch.setenv("CITYDATA_DATABASE_URL", f"sqlite:///{tmp_path}/short.db")
    monkeypatch.setenv("CITYDATA_ADMIN_PASSWORD", "short")
    cli_common.store.cache_clear()
    result = CliRunner().invoke(app, ["init"])
    assert result.exit_code == 1
    assert "CITYDATA_ADMIN_PASSWORD" in result.output and "至少 8 位" in result.output
    assert "Traceback" not in result.output
    cli_common.store.cache_clear()


def test_upgrading_a_database_with_sharing_data_keeps_it(tmp_path):
    """0004 rebuilds share_applications (SQLite batch mode) while decisions reference it: the
    rows must survive, with foreign keys checked again afterwards."""
    from alembic import command
    from sqlalchemy import create_engine

    from citydata.catalog.service import import_catalog
    from citydata.db.engine import Store
    from citydata.mechanisms import changes
    from citydata.migrations import alembic_config, upgrade
    from conftest import SAMPLE

    url = f"sqlite:///{tmp_path}/old.db"
    engine = create_engine(url)
    command.upgrade(alembic_config(engine), "0003")
    store = Store(url)
    with store.session() as session:
        import_catalog(session, SAMPLE)
        changes.unmark(session)  # 0003 predates the table of data versions
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO share_applications (id, consumer_code, class_code, provider_code, "
                "fields, unmasked, granted, granted_unmasked, purpose, legal_basis, system_name, "
                "daily_volume, valid_until, status, reason, applicant, created_at) VALUES "
                "(1, 'csscjg', '101001/00001', 'csga', '[]', '[]', '[]', '[]', 'p', 'l', 's', "
                "10, '2030-01-01', 'pending', '', 'admin', '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO share_decisions (application_id, action, by, at, reason, fields) "
                "VALUES (1, 'submit', 'admin', '2026-01-01 00:00:00', '', '[]')"
            )
        )
    store.engine.dispose()
    before, after = upgrade(engine)
    assert (before, after) == ("0003", head_revision(engine))
    with engine.connect() as conn:
        assert conn.execute(
            text("select channel, consumer_code from share_applications")
        ).all() == [("share", "csscjg")]
        assert conn.execute(text("select count(*) from share_decisions")).scalar() == 1
        assert conn.execute(text("pragma foreign_key_check")).all() == []
    fresh = Store(url)
    with fresh.engine.connect() as conn:
        assert conn.execute(text("pragma foreign_keys")).scalar() == 1
    fresh.engine.dispose()

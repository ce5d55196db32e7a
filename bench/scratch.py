"""A PostgreSQL database of a benchmark's own, made for its run and dropped after."""

from __future__ import annotations


def scratch_database(url: str, name: str, create: bool) -> str:
    """Drop ``name`` on the server at ``url`` (and make it again when ``create``); its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        if create:
            conn.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)

"""Alembic environment: the engine comes from citydata (config.attributes['engine'])."""

from alembic import context

from citydata.migrations import include_object, metadata

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        raw = connection.connection.driver_connection
        # Batch mode rebuilds a table by copy-and-drop; with foreign keys enforced, dropping a
        # table that others reference (share_applications <- share_decisions) fails. The pragma
        # only takes effect outside a transaction, so it is set before ours begins.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
        # pysqlite runs DDL outside any transaction; begin one ourselves so that a failed
        # migration leaves the schema exactly as it was.
        previous = raw.isolation_level
        raw.isolation_level = None
    try:
        with connection.begin():
            if sqlite:
                connection.exec_driver_sql("BEGIN")
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=sqlite,
                compare_type=True,
                include_object=include_object,
            )
            context.run_migrations()
    finally:
        if sqlite:
            raw.isolation_level = previous
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()

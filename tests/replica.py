"""A PostgreSQL streaming replica of the test server, on this machine: a second cluster on port
5434 made by ``pg_basebackup -R`` from the primary the tests use (CITYDATA_TEST_DATABASE_URL).

What the primary must allow is checked first: ``wal_level`` replica or logical and free WAL
senders (both need a restart to change, so a primary without them is skipped with the reason);
a replication connection from 127.0.0.1 in ``pg_hba.conf`` (added, and the server reloaded, when
the file is writable here — as on the CI machine, where the tests run as root — else skipped
with the line to add)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PORT = 5434
HBA_LINE = "host replication all 127.0.0.1/32 trust  # citydata tests: streaming replica"


class Unavailable(Exception):
    """The replica cannot be made here; the message says why and what would fix it."""


@dataclass
class Replica:
    primary_url: str
    folder: Path
    bin: Path

    def url(self, database: str) -> str:
        return (
            make_url(self.primary_url)
            .set(host="127.0.0.1", port=PORT, database=database)
            .render_as_string(hide_password=False)
        )

    def admin(self):
        """A superuser connection to the replica (pausing and resuming its replay)."""
        return create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")

    def stop(self) -> None:
        _run(
            self,
            [str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop"],
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def _as_owner(cmd: list[str]) -> list[str]:
    """PostgreSQL's servers refuse to run as root: as root, run them as ``postgres``."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(replica: Replica | None, cmd: list[str], check: bool = True):
    done = subprocess.run(_as_owner(cmd), capture_output=True, text=True, timeout=180)
    if check and done.returncode != 0:
        raise Unavailable(f"{' '.join(cmd[:2])}: {done.stderr.strip() or done.stdout.strip()}")
    return done


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _allow_replication(conn) -> None:
    rules = conn.execute(
        text(
            "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NULL AND "
            "'replication' = ANY(database) AND type = 'host'"
        )
    ).scalar()
    if rules:
        return
    hba = Path(conn.execute(text("SHOW hba_file")).scalar())
    if not os.access(hba, os.W_OK):
        raise Unavailable(
            f"the primary allows no replication connection: add «{HBA_LINE}» to {hba} "
            "and reload it (SELECT pg_reload_conf())"
        )
    with hba.open("a", encoding="utf-8") as f:
        f.write(f"\n{HBA_LINE}\n")
    conn.execute(text("SELECT pg_reload_conf()"))
    time.sleep(0.5)


def start(primary_url: str) -> Replica:
    """Check the primary, copy it, start the copy as a hot standby; raises Unavailable."""
    url = make_url(primary_url)
    if url.host not in {"127.0.0.1", "localhost"}:
        raise Unavailable(f"the primary is on {url.host}: the replica is made on this machine")
    if not _port_free(PORT):
        raise Unavailable(f"port {PORT} is taken: the replica needs it")
    engine = create_engine(primary_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if (
            conn.execute(
                text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            ).scalar()
            is not True
        ):
            raise Unavailable("the tests' role is not a superuser: it cannot copy the primary")
        wal_level = conn.execute(text("SHOW wal_level")).scalar()
        if wal_level not in {"replica", "logical"}:
            raise Unavailable(
                f"wal_level is {wal_level}: set it to replica and restart the primary"
            )
        senders = int(conn.execute(text("SHOW max_wal_senders")).scalar())
        busy = conn.execute(text("SELECT count(*) FROM pg_stat_replication")).scalar()
        if senders - busy < 2:  # the base backup streams on two; the standby then takes one
            raise Unavailable(f"max_wal_senders is {senders} with {busy} in use: 2 free needed")
        _allow_replication(conn)
        major = int(conn.execute(text("SHOW server_version_num")).scalar()) // 10000
        # a hot standby needs at least the primary's values of these
        needed = {
            name: conn.execute(text(f"SHOW {name}")).scalar()
            for name in (
                "max_connections",
                "max_worker_processes",
                "max_wal_senders",
                "max_prepared_transactions",
                "max_locks_per_transaction",
            )
        }
    engine.dispose()
    binaries = Path(f"/usr/lib/postgresql/{major}/bin")
    if not (binaries / "pg_basebackup").exists() or not (binaries / "pg_ctl").exists():
        raise Unavailable(f"no PostgreSQL {major} server programs in {binaries}")
    folder = Path(tempfile.mkdtemp(prefix="citydata-replica-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    replica = Replica(primary_url, folder, binaries)
    data = folder / "data"
    try:
        _run(
            replica,
            [
                str(binaries / "pg_basebackup"),
                "-D",
                str(data),
                "-R",
                "-X",
                "stream",
                "-h",
                "127.0.0.1",
                "-p",
                str(url.port or 5432),
                "-U",
                url.username or "postgres",
                "--checkpoint=fast",
            ],
        )
        settings = {
            "port": PORT,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": "''",
            "hot_standby": "on",
            "hot_standby_feedback": "on",
            **needed,
        }
        files = {
            "postgresql.conf": "".join(f"{k} = {v}\n" for k, v in settings.items()),
            "pg_hba.conf": "host all all 127.0.0.1/32 trust\n",
            "pg_ident.conf": "",
        }
        for name, body in files.items():
            path = data / name
            if not path.exists():  # Debian keeps them in /etc, so the copy lacks them
                path.write_text(body, encoding="utf-8")
                if os.geteuid() == 0:
                    shutil.chown(path, "postgres", "postgres")
        _run(
            replica,
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(folder / "log"),
                "-w",
                "-t",
                "90",
                "start",
            ],
        )
        wait_for_database(replica, "postgres")
    except BaseException:
        replica.stop()
        raise
    return replica


def wait_for_database(replica: Replica, database: str, seconds: float = 60) -> None:
    """Until the replica has replayed the creation of ``database`` (made on the primary)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            engine = create_engine(replica.url(database))
            with engine.connect() as conn:
                if conn.execute(text("SELECT pg_is_in_recovery()")).scalar():
                    return
        except Exception as exc:
            if time.monotonic() > deadline:
                log = _run(replica, ["tail", "-n", "20", str(replica.folder / "log")], check=False)
                raise Unavailable(
                    f"{database} never reached the replica: {exc}\n{log.stdout}"
                ) from exc
            time.sleep(0.2)
        finally:
            engine.dispose()

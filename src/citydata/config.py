"""Settings read from the environment, with defaults that work on a fresh machine."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


@dataclass(frozen=True)
class Limits:
    """What an upload may be, checked before it is parsed (a 5 KB workbook can claim a sheet of
    17 billion cells)."""

    upload_bytes: int = 2 << 30  # 2 GiB
    rows: int = 20_000_000
    columns: int = 500
    sheet_cells: int = 60_000_000  # rows × columns of an Excel sheet's used range
    unzipped_bytes: int = 4 << 30  # an Excel file's parts, uncompressed

    @classmethod
    def from_env(cls) -> Limits:
        env = os.environ
        mib = 1 << 20
        return cls(
            upload_bytes=int(env.get("CITYDATA_MAX_UPLOAD_MB", cls.upload_bytes // mib)) * mib,
            rows=int(env.get("CITYDATA_MAX_ROWS", cls.rows)),
            columns=int(env.get("CITYDATA_MAX_COLUMNS", cls.columns)),
            sheet_cells=int(env.get("CITYDATA_MAX_SHEET_CELLS", cls.sheet_cells)),
            unzipped_bytes=int(env.get("CITYDATA_MAX_UNZIPPED_MB", cls.unzipped_bytes // mib))
            * mib,
        )


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///citydata.db"
    # Keys sign cookies and encrypt secrets kept at rest; comma-separated, newest first. Empty:
    # read from (or made in) key_file — never from the database, where a data path could reach.
    secret_key: str = ""
    key_file: Path | None = None  # default: <data_dir>/secret.keys
    language: str = "zh"
    admin_password: str | None = None
    data_dir: Path = field(default_factory=lambda: Path("citydata-data"))
    open_rate_per_minute: int = 600  # anonymous open-data calls per IP address
    webhook_seconds: float = 10  # how often the server sends due webhook notices; 0: never
    # how often the server looks for stale cockpit summaries (and pages for new ones); 0: never
    brain_seconds: float = 30
    # Whether this process takes part in the scheduled work (webhook rounds, refreshes,
    # retention); each round runs once across every process that does (mechanisms.schedule).
    schedule: bool = True
    audit_years: int = 20  # audit entries are kept this long, then dropped by the schedule
    # Only these addresses (or networks) may tell us the client's address (X-Forwarded-For)
    # and scheme (X-Forwarded-Proto); nobody by default.
    trusted_proxies: tuple[str, ...] = ()
    # Webhook hosts an administrator allows although they resolve to private addresses.
    webhook_allow_hosts: tuple[str, ...] = ()
    open_sql_url: str | None = None  # PostgreSQL: the reader role's URL, if made by hand
    metrics_token: str = ""  # a scraper's bearer token for /metrics; none: this machine only
    # The 审图号 of the approved base map the spatial base holds (地图审核管理规定): shown on
    # every map; empty: the map says its outlines are for illustration only.
    map_approval: str = ""
    # A streaming replica for the rows sharing and open-data calls deliver (docs/scale.md).
    read_database_url: str | None = None
    limits: Limits = field(default_factory=Limits)

    @property
    def keys_path(self) -> Path:
        return self.key_file or self.data_dir / "secret.keys"

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            database_url=env.get("CITYDATA_DATABASE_URL", cls.database_url),
            secret_key=env.get("CITYDATA_SECRET_KEY", ""),
            key_file=Path(env["CITYDATA_KEY_FILE"]) if env.get("CITYDATA_KEY_FILE") else None,
            language=env.get("CITYDATA_LANGUAGE", "zh"),
            admin_password=env.get("CITYDATA_ADMIN_PASSWORD") or None,
            data_dir=Path(env.get("CITYDATA_DATA_DIR", "citydata-data")),
            open_rate_per_minute=int(env.get("CITYDATA_OPEN_RATE", cls.open_rate_per_minute)),
            webhook_seconds=float(env.get("CITYDATA_WEBHOOK_SECONDS", cls.webhook_seconds)),
            brain_seconds=float(env.get("CITYDATA_BRAIN_SECONDS", cls.brain_seconds)),
            schedule=env.get("CITYDATA_SCHEDULE", "1").strip().lower() not in {"0", "off", "no"},
            audit_years=int(env.get("CITYDATA_AUDIT_YEARS", cls.audit_years)),
            trusted_proxies=_list(env.get("CITYDATA_TRUSTED_PROXIES")),
            webhook_allow_hosts=_list(env.get("CITYDATA_WEBHOOK_ALLOW_HOSTS")),
            open_sql_url=env.get("CITYDATA_OPEN_SQL_URL") or None,
            metrics_token=env.get("CITYDATA_METRICS_TOKEN", ""),
            map_approval=env.get("CITYDATA_MAP_APPROVAL", "").strip(),
            read_database_url=env.get("CITYDATA_READ_DATABASE_URL") or None,
            limits=Limits.from_env(),
        )

"""Settings read from the environment, with defaults that work on a fresh machine."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///citydata.db"
    secret_key: str = ""
    language: str = "zh"
    admin_password: str | None = None
    data_dir: Path = field(default_factory=lambda: Path("citydata-data"))
    open_rate_per_minute: int = 600  # anonymous open-data calls per IP address
    webhook_seconds: float = 10  # how often the server sends due webhook notices; 0: never

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            database_url=env.get("CITYDATA_DATABASE_URL", cls.database_url),
            secret_key=env.get("CITYDATA_SECRET_KEY", ""),
            language=env.get("CITYDATA_LANGUAGE", "zh"),
            admin_password=env.get("CITYDATA_ADMIN_PASSWORD") or None,
            data_dir=Path(env.get("CITYDATA_DATA_DIR", "citydata-data")),
            open_rate_per_minute=int(env.get("CITYDATA_OPEN_RATE", cls.open_rate_per_minute)),
            webhook_seconds=float(env.get("CITYDATA_WEBHOOK_SECONDS", cls.webhook_seconds)),
        )

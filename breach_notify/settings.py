"""Configuration: environment variables ``BREACH_NOTIFY_*``, then CLI options."""

from __future__ import annotations

from datetime import time
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an operator may tune. Paths derive from ``home``."""

    model_config = SettingsConfigDict(env_prefix="BREACH_NOTIFY_", env_file=None, extra="ignore")

    home: Path = Path(".breach-notify")
    keyring: Path | None = None

    # DuckDB
    memory_limit: str = "4GB"
    threads: int | None = None
    lock_timeout_seconds: float = 30.0

    # Ingest
    default_k: int = 50
    #: A longer line of a dump is not read: it counts as invalid (``line_too_long``).
    max_line_bytes: int = 1 << 20
    #: A compressed dump (``.gz``, zip member) that decompresses to more is refused.
    max_decompressed_bytes: int = 256 << 30
    #: A compressed dump that decompresses to more times its size is refused (a "bomb").
    max_compression_ratio: float = 100.0

    # Notices
    org_name: str = "Privacy Watch"
    advice_url: str = "https://example.org/leak"
    quiet_start: time = time(9, 0)
    quiet_end: time = time(20, 0)
    default_language: str = "en"
    # Prefect global concurrency limit (with slot decay) that paces SMS across workers, in
    # segments; flow runs acquire it per chunk. A limit that does not exist changes nothing.
    sms_rate_limit: str = "breach-notify-sms"
    opt_out_line: str | None = None  # None: each language's own "Reply STOP to opt out"

    # Webhooks
    public_url: str | None = None
    max_body_bytes: int = 16_384

    # Schedules (cron strings, in ``schedule_timezone``)
    schedule_timezone: str = "UTC"
    schedule_ingest_cron: str = "0 2 * * *"
    schedule_send_cron: str = "15 9-19 * * *"
    schedule_housekeeping_cron: str = "30 3 * * *"
    inbox: Path | None = None
    #: Follow inbox folders, files and ``breach.toml`` that are symlinks to outside the inbox.
    inbox_follow_symlinks: bool = False
    gateway: str = "dryrun://"

    @property
    def db_path(self) -> Path:
        return self.home / "breach-notify.duckdb"

    @property
    def keyring_path(self) -> Path:
        return self.keyring if self.keyring is not None else self.home / "keyring.json"

    @property
    def outbox_dir(self) -> Path:
        return self.home / "outbox"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def tmp_dir(self) -> Path:
        return self.home / "tmp"

    def ensure_home(self) -> None:
        """Create the data dir (0700) and its temp dir."""
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.tmp_dir.mkdir(exist_ok=True, mode=0o700)

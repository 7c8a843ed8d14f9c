"""Configuration: environment variables ``BREACH_NOTIFY_*``, then CLI options."""

from __future__ import annotations

from datetime import time
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from breach_notify.errors import BadInput


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

    # Webhooks and the event journal (breach_notify/events)
    public_url: str | None = None
    max_body_bytes: int = 16_384
    # The self-check API refuses requests without a valid proof of work (the pages' ALTCHA,
    # so it needs pow_enabled) unless this is off. Its limits (``limits`` notation): per client
    # address, per bucket (with few bucket bits this is a second global limit), and for all.
    self_check_require_pow: bool = True
    self_check_limit_per_client: str = "20/hour;60/day"
    self_check_limit_per_bucket: str = "30/hour;200/day"
    self_check_limit_global: str = "2000/hour;20000/day"
    # Inbound words that make an unknown number pending (comma-separated; START always does),
    # answered in English, and the same in French.
    join_keywords: str = "JOIN"
    join_keywords_fr: str = "INSCRIRE"
    # With a twilio:// gateway: ask Twilio Lookup (line type intelligence, a paid query) after
    # answering a sign-up or a JOIN, and send nothing to a number that is not a mobile.
    lookup_line_type: bool = False

    # The sign-up pages (breach_notify.web.pages): who runs the service, which countries may
    # sign up (ISO codes, comma-separated; empty: every country), the proof of work and limits
    # (``limits`` notation, several separated by ";"), the daily budget of sign-up code SMS.
    org_contact_url: str = "https://example.org/contact"
    allowed_countries: str = ""
    pow_enabled: bool = True
    pow_cost: int = 5_000  # PBKDF2-SHA256 iterations per try; ~256 tries per solve
    limit_per_client: str = "10/hour;30/day"
    limit_per_client_without_pow: str = "3/hour;5/day"
    limit_without_pow: str = "30/hour"  # all clients without JavaScript together
    limit_per_number: str = "3/hour;5/day"
    limit_per_prefix: str = "20/hour;100/day"
    limit_confirm_per_client: str = "20/hour"
    signup_sms_daily_budget: int = 500
    # Behind a reverse proxy every client has the proxy's address: take the client's from the
    # last X-Forwarded-For entry instead (only when the proxy sets it).
    web_trust_proxy: bool = False
    web_max_connections: int = 1024  # beyond it uvicorn answers 503
    journal_max_bytes: int = 1 << 30  # a full journal answers 503 (nothing half-written)
    journal_retention_hours: float = 48.0  # applied entries kept this long (replay guard)
    events_alarm_seconds: float = 300.0  # ``status`` alarms when a pending event is this old

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
    def journal_path(self) -> Path:
        return self.home / "journal" / "events.sqlite3"

    @property
    def outbox_dir(self) -> Path:
        return self.home / "outbox"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def tmp_dir(self) -> Path:
        return self.home / "tmp"

    def check_home(self) -> None:
        """Refuse (``BadInput``) a data dir that is, or lies under, something not a directory."""
        for path in (self.home, *self.home.parents):
            if path.exists():
                if not path.is_dir():
                    where = "is" if path == self.home else f"lies under {path}, which is"
                    raise BadInput(
                        f"--home (BREACH_NOTIFY_HOME) {self.home} {where} a file, not a "
                        "directory; pass a directory (it is created if missing)"
                    )
                return

    @property
    def allowed_country_codes(self) -> frozenset[str]:
        """``allowed_countries`` as upper-case codes; empty means every country."""
        return frozenset(c.strip().upper() for c in self.allowed_countries.split(",") if c.strip())

    def ensure_home(self) -> None:
        """Create the data dir (0700) and its temp dir."""
        self.check_home()
        for path in (self.home, self.tmp_dir):
            try:
                path.mkdir(parents=True, exist_ok=True, mode=0o700)
            except (FileExistsError, NotADirectoryError):
                raise BadInput(
                    f"{path} is a file, not a directory; move it away or pass another --home"
                ) from None

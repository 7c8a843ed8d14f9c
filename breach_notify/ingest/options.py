"""What an ingest is asked to do, and how both readers do it.

:class:`IngestOptions` is what the operator gives (``ingest`` options, or a ``breach.toml``),
validated when it is made: the one breach-id rule and the one format registry
(:data:`~breach_notify.ingest.formats.FORMATS`). :class:`IngestSpec` adds the resource settings
both readers obey, and the self-check's tagging plan when the ingest tags
(:mod:`.selfcheck`). Both are frozen and picklable and hold ids, a title, a format, a region,
``k``, limits and paths only (never a number, never a key), so Prefect tasks and Dask workers
may carry them. The text rules (:mod:`breach_notify.text_rules`: no phone number in a title or
breach id, titles short and printable) are checked when the options are made, so every entry
point (CLI, inbox, flows) gets them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import phonenumbers

from breach_notify import text_rules
from breach_notify.errors import BadInput
from breach_notify.ingest.formats import FORMATS, ReadLimits
from breach_notify.settings import Settings

if TYPE_CHECKING:
    from breach_notify.ingest.selfcheck import TagPlan

#: A breach id: a letter or digit, then letters, digits, ``.``, ``_`` or ``-``; 64 at most.
#: Always matched whole (``fullmatch``): ``$`` would let a trailing newline through.
BREACH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: The largest ``k`` the store holds (``breaches.k`` is a 32-bit INTEGER).
MAX_K = 2**31 - 1


def memory_bytes(limit: str) -> int | None:
    """A DuckDB memory limit (``4GB``, ``512MiB``…) in bytes; ``None`` when it does not parse."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*", limit.upper())
    if not m:
        return None
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[m.group(2)]
    return int(float(m.group(1)) * scale)


def check_breach_id(value: object) -> str:
    """``value`` if it is a usable breach id, else ``BadInput`` naming the rule."""
    if not isinstance(value, str) or BREACH_ID.fullmatch(value) is None:
        raise BadInput(
            "a breach id is 1-64 letters, digits, '.', '_' or '-', starting with a letter or "
            "digit (e.g. fb-2021-fr)"
        )
    return value


@dataclass(frozen=True)
class IngestOptions:
    """The options of one ingest; ``BadInput`` (naming the fix) when one is unusable."""

    breach_id: str
    fmt: str = "facebook-2021"
    title: str | None = None
    phone_column: str | None = None
    default_region: str | None = None
    k: int | None = None
    #: Also store the numbers' self-check tags (``--self-check``, ``self_check`` in breach.toml).
    self_check: bool = False

    def __post_init__(self) -> None:
        check_breach_id(self.breach_id)
        text_rules.check_breach_id(self.breach_id)
        if self.fmt not in FORMATS:
            raise BadInput(f"unknown format {self.fmt!r}; choose one of {', '.join(FORMATS)}")
        if self.title is not None and not isinstance(self.title, str):
            raise BadInput("the title must be text")
        text_rules.check_title(self.title)
        if self.phone_column is not None:
            if self.fmt != "csv":
                raise BadInput("--phone-column (phone_column) applies to --format csv only")
            if not isinstance(self.phone_column, str) or not self.phone_column:
                raise BadInput("the phone column must be a column name")
        if self.default_region is not None:
            region = self.default_region
            if not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS:
                raise BadInput(f"unknown region {region!r}; give a two-letter code such as GB")
            object.__setattr__(self, "default_region", region.upper())
        if self.k is not None and (
            not isinstance(self.k, int) or isinstance(self.k, bool) or not 1 <= self.k <= MAX_K
        ):
            raise BadInput(
                "k must be a whole number from 1 to 2^31 - 1 (the smallest bucket size; "
                "the default is BREACH_NOTIFY_DEFAULT_K)"
            )
        if not isinstance(self.self_check, bool):
            raise BadInput("self_check must be true or false")


@dataclass(frozen=True)
class IngestSpec:
    """The options and the limits both readers obey (from :class:`Settings`)."""

    options: IngestOptions
    memory_limit: str = "1GB"
    threads: int | None = None
    tmp_dir: Path | None = None
    limits: ReadLimits = field(default_factory=ReadLimits)
    #: The self-check tagging of this ingest (:func:`.selfcheck.plan`), None when it does not tag.
    self_check: TagPlan | None = None

    @classmethod
    def of(cls, settings: Settings, options: IngestOptions) -> IngestSpec:
        """The spec of ``options`` under ``settings`` (creates the data dir); ``BadInput`` for
        an unusable ingest setting, naming it."""
        _check_setting("DEFAULT_K", settings.default_k, 1, MAX_K, "2^31 - 1")
        _check_setting("MAX_LINE_BYTES", settings.max_line_bytes, 64, 1 << 30, "2^30")
        _check_setting("MAX_DECOMPRESSED_BYTES", settings.max_decompressed_bytes, 1, 2**62, "2^62")
        _check_setting("MAX_COMPRESSION_RATIO", settings.max_compression_ratio, 1, 1e9, "10^9")
        settings.ensure_home()
        return cls(
            options=options,
            memory_limit=settings.memory_limit,
            threads=settings.threads,
            tmp_dir=settings.tmp_dir,
            limits=ReadLimits(
                max_line_bytes=settings.max_line_bytes,
                max_decompressed_bytes=settings.max_decompressed_bytes,
                max_compression_ratio=settings.max_compression_ratio,
            ),
        )


def _check_setting(name: str, value: float, low: float, high: float, shown: str) -> None:
    """``BadInput`` unless ``low <= value <= high`` (``shown``: ``high`` as the message says it,
    a long run of digits would be redacted as a possible phone number)."""
    if not low <= value <= high:
        raise BadInput(f"BREACH_NOTIFY_{name} must be from {low} to {shown}")

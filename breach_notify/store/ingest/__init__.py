"""The ingest stage: dump files → deduplicated, k-anonymous pseudonyms in DuckDB (DESIGN §1-§5).

``ingest`` is the whole stage, all-or-nothing, built from three runner-independent steps that a
scale-out runner (Dask) can call itself:

- ``plan_shards(paths, fmt)`` → picklable ``Shard`` s (path + byte range, no personal data);
- ``process_shard(shard, keyring_path, key_id, spec, out_dir)`` → ``ShardResult`` (counts) and
  hash-partitioned Parquet of (pseudonym, kinds); the worker loads its key from the keyring;
- ``merge_shards(settings, spec, results)`` → ``IngestReport``, one DuckDB transaction.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import phonenumbers

from breach_notify.crypto import Keyring
from breach_notify.errors import BadInput
from breach_notify.settings import Settings
from breach_notify.store.db import connect
from breach_notify.store.ingest.formats import FORMATS, Shard, plan_shards
from breach_notify.store.ingest.merge import (
    IngestReport,
    breach_summary,
    check_formats,
    list_breaches,
    merge_shards,
)
from breach_notify.store.ingest.rows import KINDS
from breach_notify.store.ingest.stage import IngestSpec, ShardResult, process_shard

__all__ = [
    "FORMATS",
    "KINDS",
    "IngestReport",
    "IngestSpec",
    "Shard",
    "ShardResult",
    "breach_summary",
    "check_formats",
    "ingest",
    "list_breaches",
    "make_spec",
    "merge_shards",
    "plan_shards",
    "process_shard",
]

_BREACH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def make_spec(
    settings: Settings,
    breach_id: str,
    *,
    title: str | None = None,
    fmt: str = "facebook-2021",
    phone_column: str | None = None,
    default_region: str | None = None,
    k: int | None = None,
) -> IngestSpec:
    """Validate the options of an ingest and bundle them (with memory settings) as a spec."""
    if not _BREACH_ID.match(breach_id or ""):
        raise BadInput("a breach id is 1-64 letters, digits, '.', '_' or '-' (e.g. fb-2021-fr)")
    if fmt not in FORMATS:
        raise BadInput(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    region = default_region.upper() if default_region else None
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        raise BadInput(f"unknown region {default_region!r}; give a two-letter code such as GB")
    if k is not None and k < 1:
        raise BadInput("--k must be at least 1")
    if fmt == "facebook-2021" and phone_column:
        raise BadInput("--phone-column applies to --format csv only")
    settings.ensure_home()
    return IngestSpec(
        breach_id=breach_id,
        fmt=fmt,
        title=title,
        phone_column=phone_column,
        default_region=region,
        k=k,
        memory_limit=settings.memory_limit,
        threads=settings.threads,
        tmp_dir=settings.tmp_dir,
    )


def ingest(
    settings: Settings,
    keyring: Keyring,
    paths: list[Path],
    breach_id: str,
    *,
    title: str | None = None,
    fmt: str = "facebook-2021",
    phone_column: str | None = None,
    default_region: str | None = None,
    k: int | None = None,
    progress: bool | None = False,
) -> IngestReport:
    """Normalise, pseudonymise, deduplicate and bucket ``paths`` into breach ``breach_id``.

    All-or-nothing: the store changes in one transaction at the end, or not at all. Files whose
    content is already recorded for the breach are skipped, so a re-run changes nothing.
    """
    started = time.monotonic()
    spec = make_spec(
        settings,
        breach_id,
        title=title,
        fmt=fmt,
        phone_column=phone_column,
        default_region=default_region,
        k=k,
    )
    shards = plan_shards([Path(p) for p in paths], fmt, exclude=settings.home)
    conn = connect(settings)
    try:
        row = conn.execute("SELECT key_id FROM breaches WHERE id = ?", [breach_id]).fetchone()
        known = {
            r[0]
            for r in conn.execute(
                "SELECT content_sha256 FROM breach_files WHERE breach_id = ?", [breach_id]
            ).fetchall()
        }
    finally:
        conn.close()
    key_id = str(row[0]) if row else keyring.active_id("pseudonym")
    keyring.pseudonymizer(key_id)  # fails early (BadInput) if the breach's key is gone
    todo = [s for s in shards if s.content_sha256 not in known]
    skipped = len({s.content_sha256 for s in shards} - {s.content_sha256 for s in todo})
    out_dir = Path(tempfile.mkdtemp(prefix="ingest-", dir=settings.tmp_dir))
    try:
        results = _run_shards(todo, settings, keyring, key_id, spec, out_dir, bool(progress))
        report = merge_shards(settings, spec, results)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    report.files_skipped = skipped
    report.shards = len(todo)
    report.seconds = time.monotonic() - started
    return report


def _run_shards(
    shards: list[Shard],
    settings: Settings,
    keyring: Keyring,
    key_id: str,
    spec: IngestSpec,
    out_dir: Path,
    progress: bool,
) -> list[ShardResult]:
    """Shards one after another, each using all DuckDB threads (measured faster on few cores
    than shards side by side); a progress bar on stderr when asked."""
    keyring_path = _keyring_path(settings, keyring)
    total = sum(s.nbytes for s in shards)
    tick: Callable[[int], None] = lambda n: None  # noqa: E731
    bar = None
    if progress and shards:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        from breach_notify.flows.cli.common import err

        bar = Progress(
            "ingest",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        task = bar.add_task("ingest", total=total)
        tick = lambda n: bar.update(task, advance=n)  # noqa: E731
        bar.start()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            futures = [
                pool.submit(process_shard, s, keyring_path, key_id, spec, out_dir, tick=tick)
                for s in shards
            ]
            return [f.result() for f in futures]
    finally:
        if bar is not None:
            bar.stop()


def _keyring_path(settings: Settings, keyring: Keyring) -> Path:
    """Where workers load keys from: the keyring's own file (or the environment, see Keyring)."""
    path = getattr(keyring, "_path", None)
    return Path(path) if path is not None else settings.keyring_path

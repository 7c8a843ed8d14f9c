"""The ingest stage: dump files → deduplicated, k-anonymous pseudonyms in DuckDB (DESIGN §1-§5).

``ingest`` is the whole stage, all-or-nothing, built from three runner-independent steps that a
scale-out runner (Dask) can call itself:

- ``plan_shards(paths, fmt)`` → picklable ``Shard`` s (path + byte range, no personal data);
- ``process_shard(shard, keyring_path, key_id, spec, out_dir)`` → ``ShardResult`` (counts) and
  hash-partitioned Parquet of (pseudonym, kinds); the worker loads its key from the keyring;
- ``merge_shards(settings, spec, results)`` → ``IngestReport``, one DuckDB transaction.

The default runner (:func:`ingest`) reads whole plain ``facebook-2021`` files with DuckDB's own
CSV reader instead (:mod:`.duckdb_reader`: no Arrow line reader, no Parquet; pseudonyms go straight
into a temp table of the store connection) and falls back to ``process_shard`` for every other
file and for a file DuckDB's reader refuses; the merge is the same.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import duckdb
import phonenumbers

from breach_notify import text_rules
from breach_notify.crypto import Keyring, Pseudonymizer
from breach_notify.errors import BadInput
from breach_notify.ingest import duckdb_reader, selfcheck
from breach_notify.ingest.arrow_reader import IngestSpec, ShardResult, process_shard
from breach_notify.ingest.formats import FORMATS, Shard, plan_shards
from breach_notify.ingest.merge import (
    IngestReport,
    breach_summary,
    check_formats,
    list_breaches,
    merge_into,
    merge_shards,
)
from breach_notify.kinds import KINDS
from breach_notify.settings import Settings
from breach_notify.store.db import connect

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
    text_rules.check_breach(breach_id, title)
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
    self_check: bool = False,
    progress: Progress | None = None,
) -> IngestReport:
    """Normalise, pseudonymise, deduplicate and bucket ``paths`` into breach ``breach_id``.

    All-or-nothing: the store changes in one transaction at the end, or not at all. Files whose
    content is already recorded for the breach are skipped, so a re-run changes nothing.
    With ``self_check`` (always, for a breach that already has them) the numbers' self-check
    tags are stored too, in the same transaction (:mod:`.selfcheck`).
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
    out_dir = Path(tempfile.mkdtemp(prefix="ingest-", dir=settings.tmp_dir))
    try:
        row = conn.execute("SELECT key_id FROM breaches WHERE id = ?", [breach_id]).fetchone()
        known = {
            r[0]
            for r in conn.execute(
                "SELECT content_sha256 FROM breach_files WHERE breach_id = ?", [breach_id]
            ).fetchall()
        }
        key_id = str(row[0]) if row else keyring.active_id("pseudonym")
        p = keyring.pseudonymizer(key_id)  # fails early (BadInput) if the breach's key is gone
        todo = [s for s in shards if s.content_sha256 not in known]
        tags = selfcheck.plan(
            conn,
            keyring,
            _keyring_path(settings, keyring),
            breach_id,
            enabled=self_check,
            nbytes=sum(s.nbytes for s in todo),
            out_dir=out_dir,
        )
        spec = dataclasses.replace(spec, self_check=tags)
        skipped = len({s.content_sha256 for s in shards} - {s.content_sha256 for s in todo})
        results, acc = _run_files(conn, todo, settings, keyring, p, spec, out_dir, progress)
        report = merge_into(conn, settings, spec, results, acc=acc)
    finally:
        conn.close()  # drops the temp table bn_acc
        shutil.rmtree(out_dir, ignore_errors=True)
    report.files_skipped = skipped
    report.shards = len(todo)
    report.seconds = time.monotonic() - started
    return report


def _run_files(
    conn: duckdb.DuckDBPyConnection,
    todo: list[Shard],
    settings: Settings,
    keyring: Keyring,
    p: Pseudonymizer,
    spec: IngestSpec,
    out_dir: Path,
    progress: Progress | None,
) -> tuple[list[ShardResult], str | None]:
    """Whole plain facebook files through DuckDB's own reader into the temp table
    ``bn_acc`` (:mod:`.duckdb_reader`, measured ~2x the Arrow path); every other file (and a file
    DuckDB's reader refuses) through :func:`process_shard` and Parquet."""
    by_file: dict[tuple[Path, str], list[Shard]] = {}
    for s in todo:
        by_file.setdefault((s.path, s.content_sha256 + (s.member or "")), []).append(s)
    results: list[ShardResult] = []
    rest: list[Shard] = []
    acc = None
    report_progress = progress if progress is not None and todo else _no_progress
    with report_progress(sum(s.nbytes for s in todo)) as tick:
        with duckdb_reader.shared_limit(conn, spec) as reading:
            for index, group in enumerate(by_file.values()):
                if duckdb_reader.eligible(spec, group):
                    if acc is None:
                        duckdb_reader.create_acc(conn)
                        acc = duckdb_reader.ACC
                    try:
                        results.append(
                            duckdb_reader.process_file(conn, index, group, reading, p, tick)
                        )
                        continue
                    except duckdb_reader.Fallback:
                        pass
                rest += group
        results += _run_shards(rest, settings, keyring, p.key_id, spec, out_dir, tick)
    return results, acc


def _run_shards(
    shards: list[Shard],
    settings: Settings,
    keyring: Keyring,
    key_id: str,
    spec: IngestSpec,
    out_dir: Path,
    tick: Callable[[int], None],
) -> list[ShardResult]:
    """Shards one after another, each using all DuckDB threads (measured faster on few cores
    than shards side by side)."""
    keyring_path = _keyring_path(settings, keyring)
    return [process_shard(s, keyring_path, key_id, spec, out_dir, tick=tick) for s in shards]


#: Progress reporting, passed in by the caller (the CLI draws a bar): given the total bytes to
#: read, a context whose value is called with the bytes done since the last call.
Progress = Callable[[int], AbstractContextManager[Callable[[int], None]]]


@contextmanager
def _no_progress(total: int) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


def _keyring_path(settings: Settings, keyring: Keyring) -> Path:
    """Where workers load keys from: the keyring's own file (or the environment, see Keyring)."""
    return keyring.path if keyring.path is not None else settings.keyring_path

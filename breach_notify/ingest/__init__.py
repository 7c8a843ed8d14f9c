"""The ingest stage: dump files → deduplicated, k-anonymous pseudonyms in DuckDB (docs/DESIGN.md).

``ingest`` is the whole stage, all-or-nothing. Its options are one :class:`IngestOptions`
(validated when made); both readers obey one :class:`IngestSpec` (the options and the limits)
and share one verdict tally (:mod:`.tally`) over the same row and normalisation SQL:

- :mod:`.duckdb_reader`: whole plain ``facebook-2021`` files, read by DuckDB's own CSV reader;
- :mod:`.arrow_reader`: everything else (``.gz``, zip members, CSV, small files many to a
  query, and a file DuckDB's reader refuses), read by Arrow's CSV reader.

On the default runner (:func:`ingest`) both put pseudonyms into a temp table of the store
connection (``bn_acc``) and the merge (:mod:`.merge`) adds them in one transaction. A scale-out
runner (Dask) calls the three runner-independent steps itself:

- ``plan_shards(paths, fmt)`` → picklable ``Shard`` s (path + byte range, no personal data);
- ``process_shard(shard, keyring_path, key_id, spec, out_dir)`` → ``ShardResult`` (counts) and
  one Parquet file of (pseudonym, kinds, prefix); the worker loads its key from the keyring;
- ``merge_shards(settings, spec, results)`` → ``IngestReport``, one DuckDB transaction.
"""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import duckdb

from breach_notify.crypto import Keyring, Pseudonymizer
from breach_notify.ingest import arrow_reader, duckdb_reader, selfcheck
from breach_notify.ingest.arrow_reader import process_shard
from breach_notify.ingest.formats import FORMATS, Shard, plan_shards
from breach_notify.ingest.merge import (
    IngestReport,
    check_formats,
    merge_into,
    merge_shards,
)
from breach_notify.ingest.options import IngestOptions, IngestSpec, check_breach_id
from breach_notify.ingest.sinks import AccSink, DropSink, RetrySink
from breach_notify.ingest.tally import ShardResult
from breach_notify.kinds import KINDS
from breach_notify.settings import Settings
from breach_notify.store.breaches import breach_summary, list_breaches
from breach_notify.store.db import connect

__all__ = [
    "FORMATS",
    "KINDS",
    "IngestOptions",
    "IngestReport",
    "IngestSpec",
    "Progress",
    "Shard",
    "ShardResult",
    "breach_summary",
    "check_breach_id",
    "check_formats",
    "ingest",
    "list_breaches",
    "merge_shards",
    "plan_shards",
    "process_shard",
]

#: Plain files smaller than this are read many to a query by the Arrow reader: DuckDB's own
#: reader would plan its whole query for each of them.
SMALL_FILE_BYTES = 8 << 20

#: Progress reporting, passed in by the caller (the CLI draws a bar): given the total bytes to
#: read, a context whose value is called with the bytes done since the last call.
Progress = Callable[[int], AbstractContextManager[Callable[[int], None]]]


def ingest(
    settings: Settings,
    keyring: Keyring,
    paths: list[Path],
    options: IngestOptions,
    *,
    progress: Progress | None = None,
) -> IngestReport:
    """Normalise, pseudonymise, deduplicate and bucket ``paths`` into breach
    ``options.breach_id``.

    All-or-nothing: the store changes in one transaction at the end, or not at all. Files whose
    content is already recorded for the breach are skipped, so a re-run changes nothing.
    With ``options.self_check`` (always, for a breach that already has them) the numbers'
    self-check tags are stored too, in the same transaction (:mod:`.selfcheck`); with
    ``options.self_check``, files already recorded but not yet tagged under the active OPRF key
    are read again for their tags only (the re-tag pass: it needs the raw files, as numbers are
    not stored).
    """
    started = time.monotonic()
    spec = IngestSpec.of(settings, options)
    shards = plan_shards([Path(p) for p in paths], options.fmt, exclude=settings.home)
    conn = connect(settings)
    # Made only when the ingest tags for the self-check (selfcheck.plan creates it), so an
    # ingest without tags leaves nothing in tmp/ even when killed.
    out_dir = settings.tmp_dir / f"ingest-{secrets.token_hex(6)}"
    try:
        bid = options.breach_id
        row = conn.execute("SELECT key_id FROM breaches WHERE id = ?", [bid]).fetchone()
        known = {
            r[0]
            for r in conn.execute(
                "SELECT content_sha256 FROM breach_files WHERE breach_id = ?", [bid]
            ).fetchall()
        }
        key_id = str(row[0]) if row else keyring.active_id("pseudonym")
        p = keyring.pseudonymizer(key_id)  # fails early (BadInput) if the breach's key is gone
        todo = [s for s in shards if s.content_sha256 not in known]
        given_known = {s.content_sha256: s.size for s in shards if s.content_sha256 in known}
        plans = selfcheck.plan_call(
            conn,
            keyring,
            _keyring_path(settings, keyring),
            bid,
            enabled=options.self_check,
            new_bytes=sum(s.nbytes for s in todo),
            out_dir=out_dir,
            new_digests=frozenset(s.content_sha256 for s in todo),
            known=given_known,
        )
        skipped = len({s.content_sha256 for s in shards} - {s.content_sha256 for s in todo})
        results = _read(conn, todo, dataclasses.replace(spec, self_check=plans.new), p, progress)
        tagging = _tagging(plans, results) if results or options.self_check else []
        redo = [s for s in shards if s.content_sha256 in plans.retag_digests]
        if plans.retag is not None and redo:
            # the re-tag pass: tags only; the breach's pseudonyms and counts stay as they are
            again = _read(
                conn,
                redo,
                dataclasses.replace(spec, self_check=plans.retag),
                p,
                progress,
                sink=DropSink(),
            )
            work = next((w for w in tagging if w.plan is plans.retag), None)
            if work is None:
                work = selfcheck.Tagged(plans.retag)
                tagging.append(work)
            work.files += [f for r in again for f in r.tag_files]
            work.digests |= {s.content_sha256 for s in redo}
        report = merge_into(
            conn,
            settings,
            dataclasses.replace(spec, self_check=plans.new),
            results,
            acc=True,
            tagging=tagging,
            prefer=plans.retag.key_id if plans.retag else None,
            retagged=len({s.content_sha256 for s in redo}),
        )
    finally:
        conn.close()  # drops the temp table bn_acc
        shutil.rmtree(out_dir, ignore_errors=True)  # staged self-check tags
    report.files_skipped = skipped
    report.shards = len(todo)
    report.seconds = time.monotonic() - started
    return report


def _tagging(plans: selfcheck.Plans, results: list[ShardResult]) -> list[selfcheck.Tagged]:
    """The new files' staged tags (none when this call does not tag them)."""
    if plans.new is None:
        return []
    files = [f for r in results for f in r.tag_files]
    return [selfcheck.Tagged(plans.new, files, {r.shard.content_sha256 for r in results})]


def _read(
    conn: duckdb.DuckDBPyConnection,
    todo: list[Shard],
    spec: IngestSpec,
    p: Pseudonymizer,
    progress: Progress | None,
    *,
    sink: RetrySink | None = None,
) -> list[ShardResult]:
    """Whole plain facebook files of at least :data:`SMALL_FILE_BYTES` through DuckDB's own
    reader (:mod:`.duckdb_reader`, measured ~2x the Arrow path); every other shard, and a file
    DuckDB's reader refuses, through the Arrow reader. Both into ``bn_acc`` (or ``sink``)."""
    by_file: dict[tuple[Path, str], list[Shard]] = {}
    for s in todo:
        by_file.setdefault((s.path, s.content_sha256 + (s.member or "")), []).append(s)
    if sink is None:
        sink = AccSink(conn)
    results: list[ShardResult] = []
    rest: list[Shard] = []
    report_progress = progress if progress is not None and todo else _no_progress
    with (
        report_progress(sum(s.nbytes for s in todo)) as tick,
        duckdb_reader.reading(conn, spec) as reader,
    ):
        for group in by_file.values():
            if group[0].size >= SMALL_FILE_BYTES and duckdb_reader.eligible(spec, group):
                try:
                    results.append(duckdb_reader.process_file(reader, sink, group, p, tick))
                    continue
                except duckdb_reader.Fallback:
                    pass
            rest += group
        results += arrow_reader.read_shards(rest, reader.spec, p, sink, tick=tick)
    return results


@contextmanager
def _no_progress(total: int) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


def _keyring_path(settings: Settings, keyring: Keyring) -> Path:
    """Where the tagger loads keys from: the keyring's own file (or the environment, see
    Keyring)."""
    return keyring.path if keyring.path is not None else settings.keyring_path

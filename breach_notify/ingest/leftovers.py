"""Debris of crashed runs in the data dir's temp directory (``HOME/tmp``), and its removal.

A kill -9 can leave there a work directory (``ingest-*``, where the ingest stages the
self-check's tags, or ``shards-*``, the distributed runner's Parquet directory) and DuckDB spill
files.
Housekeeping (a plain function, which the Prefect ``housekeeping`` flow calls) removes them.
"""

from __future__ import annotations

import shutil
import time
from datetime import timedelta
from pathlib import Path

#: Work directories the ingest makes in the temp directory.
WORK_DIRS = ("ingest-*", "shards-*")


def remove_leftovers(
    tmp_dir: Path, *, max_age: timedelta = timedelta(hours=24), now: float | None = None
) -> int:
    """Remove empty work directories at once (a run that needs its directory makes it again)
    and anything older than ``max_age``; returns how many entries were removed."""
    if not tmp_dir.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - max_age.total_seconds()
    removed = 0
    for entry in tmp_dir.iterdir():
        try:
            empty_work_dir = (
                entry.is_dir()
                and not entry.is_symlink()
                and any(entry.match(pattern) for pattern in WORK_DIRS)
                and not any(entry.iterdir())
            )
            if not empty_work_dir and entry.lstat().st_mtime >= cutoff:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:  # gone meanwhile (its run finished)
            continue
        removed += 1
    return removed

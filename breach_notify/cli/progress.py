"""Progress bars on stderr for the long commands."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from breach_notify.cli.common import err


@contextmanager
def byte_bar(total: int) -> Iterator[Callable[[int], None]]:
    """A bar of bytes done out of ``total``; yields the function that advances it."""
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
    bar.start()
    try:
        yield lambda n: bar.update(task, advance=n)
    finally:
        bar.stop()

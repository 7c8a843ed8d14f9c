"""Choosing the task runner: threads by default, a Dask cluster for scale-out.

Dask workers are separate processes that report their task runs to Prefect themselves. Without a
real Prefect server each would start its own temporary server on the same SQLite file (measured
on 3.9.1), so the Dask mode requires ``PREFECT_API_URL`` and says so instead of hanging.
"""

from __future__ import annotations

import os
from typing import Any

from breach_notify.errors import BadInput

RUNNERS = ("threads", "dask")


def check(kind: str, address: str | None = None) -> None:
    """Raise ``BadInput`` (exit 2) when ``kind`` cannot run in this environment."""
    if kind not in RUNNERS:
        raise BadInput(f"unknown task runner {kind!r}; use one of {', '.join(RUNNERS)}")
    if address and kind != "dask":
        raise BadInput("--dask-address needs --task-runner dask")
    if kind == "dask" and not os.environ.get("PREFECT_API_URL"):
        raise BadInput(
            "--task-runner dask needs a real Prefect server (Dask workers cannot share the "
            "embedded one): start one with 'prefect server start' and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api, or use --task-runner threads"
        )


def make(kind: str, address: str | None = None, n_workers: int = 2) -> Any:
    """The Prefect task runner for ``kind``: a thread pool, or Dask (a cluster at ``address``,
    else a ``LocalCluster`` of ``n_workers`` single-threaded worker processes)."""
    check(kind, address)
    if kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=max(2, os.cpu_count() or 2))
    from prefect_dask.task_runners import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": n_workers,
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": None,
        },
    )

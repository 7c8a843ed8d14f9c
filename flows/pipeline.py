"""The flows: ``ingest_inbox``, ``match_subscribers``, ``send_notices``, ``housekeeping`` and
``pipeline`` (all four in order, then the report artifact).

Parameters are paths, ids, a gateway URL and counts — never a number, never a key. Every flow
leaves a Markdown artifact (counts only) when it is the top-level run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from prefect import flow, runtime
from prefect.artifacts import create_markdown_artifact

from breach_notify import redact
from breach_notify.errors import BadInput
from breach_notify.ingest.inbox import Plan
from breach_notify.store import report
from breach_notify.store.db import session
from flows import dask_runner, tasks

SAFE_FLOW: dict[str, Any] = {"log_prints": False, "persist_result": False}
ARTIFACT_KEY = "breach-notify-report"


@flow(name="ingest-inbox", **SAFE_FLOW)
def ingest_inbox(
    inbox: str | None = None,
    home: str | None = None,
    keyring: str | None = None,
    sharded: bool = False,
) -> dict[str, Any]:
    """Ingest every breach folder of the inbox; files already ingested are skipped.

    ``sharded`` splits the files into shards processed on the flow's task runner (threads, or
    Dask workers) and merged in one step; otherwise each breach is one all-or-nothing task.
    """
    redact.install()
    settings = tasks.settings_for(home, keyring)
    where = inbox or (str(settings.inbox) if settings.inbox else None)
    if where is None:
        raise BadInput("no inbox given; pass --inbox DIR or set BREACH_NOTIFY_INBOX")
    plans = tasks.plan_inbox(home, where)
    reports = []
    for plan in plans:
        if not plan.files and not plan.retag:
            continue
        if sharded and plan.files:
            reports.append(_ingest_sharded(home, keyring, plan))
            if plan.retag:  # the self-check's re-tag pass is not sharded: the local path
                again = dataclasses.replace(plan, files=(), files_skipped=0)
                reports.append(tasks.ingest_breach(home, keyring, again))
        else:
            reports.append(tasks.ingest_breach(home, keyring, plan))
    result = {
        "breaches": reports,
        "files_ingested": sum(len(p.files) for p in plans),
        "files_skipped": sum(p.files_skipped for p in plans),
    }
    _report_if_top_level(home, {"ingest": result})
    return result


def _ingest_sharded(home: str | None, keyring: str | None, plan: Plan) -> dict[str, Any]:
    """Plan shards, run them on the task runner (in parallel), merge once into DuckDB."""
    shard_plan = tasks.plan_shards_task(home, keyring, plan)
    futures = [
        tasks.process_shard_task.submit(shard_plan, index)
        for index in range(len(shard_plan.shards))
    ]
    results = [f.result() for f in futures]
    report: dict[str, Any] = tasks.merge_shards_task(home, keyring, shard_plan, results)
    return report


@flow(name="match-subscribers", **SAFE_FLOW)
def match_subscribers(
    home: str | None = None, breach: str | None = None, keyring: str | None = None
) -> dict[str, Any]:
    """Create pending notices for active subscribers found in breaches."""
    redact.install()
    result = tasks.match_task(home, breach, keyring)
    _report_if_top_level(home, {"match": result})
    return result


@flow(name="send-notices", **SAFE_FLOW)
def send_notices(
    gateway: str | None = None,
    home: str | None = None,
    keyring: str | None = None,
    rate: float | None = None,
    max_messages: int | None = None,
    ignore_quiet_hours: bool = False,
    resend_in_doubt: bool = False,
    match_first: bool = True,
) -> dict[str, Any]:
    """Work the outbox through the gateway (default: the configured one).

    ``match_first`` creates notices for new matches before sending (what the hourly schedule
    wants); ``pipeline`` matches in its own step and turns it off.
    """
    redact.install()
    url = gateway or tasks.settings_for(home).gateway
    result: dict[str, Any] = {}
    if match_first:
        result["match"] = tasks.match_task(home, None, keyring)
    result.update(
        tasks.send_task(home, keyring, url, rate, max_messages, ignore_quiet_hours, resend_in_doubt)
    )
    _report_if_top_level(home, {"send": result})
    return result


@flow(name="housekeeping", **SAFE_FLOW)
def housekeeping(home: str | None = None) -> dict[str, Any]:
    """Expire unconfirmed subscriptions; remove leftovers of crashed runs."""
    redact.install()
    result: dict[str, Any] = dict(tasks.expire_pending_task(home))
    result["leftovers_removed"] = tasks.retention_task(home)
    _report_if_top_level(home, {"housekeeping": result})
    return result


@flow(name="pipeline", **SAFE_FLOW)
def pipeline(
    inbox: str | None = None,
    gateway: str | None = None,
    home: str | None = None,
    keyring: str | None = None,
    rate: float | None = None,
    max_messages: int | None = None,
    ignore_quiet_hours: bool = False,
    resend_in_doubt: bool = False,
    task_runner: str = "threads",
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Ingest the inbox, match, send, housekeeping; then the report. Returns counts per stage."""
    redact.install()
    settings = tasks.settings_for(home, keyring)
    stages: dict[str, Any] = {}
    if inbox or settings.inbox:
        dask_runner.check(task_runner, dask_address)
        ingest = ingest_inbox.with_options(task_runner=dask_runner.make(task_runner, dask_address))
        stages["ingest"] = ingest(inbox, home, keyring, sharded=task_runner == "dask")
    else:
        stages["ingest"] = {"breaches": [], "files_ingested": 0, "files_skipped": 0}
    stages["match"] = match_subscribers(home, None, keyring)
    stages["send"] = send_notices(
        gateway,
        home,
        keyring,
        rate,
        max_messages,
        ignore_quiet_hours,
        resend_in_doubt,
        match_first=False,
    )
    stages["housekeeping"] = housekeeping(home)
    summary = write_report(home, stages)
    return {"stages": stages, "report": summary}


def write_report(home: str | None, stages: dict[str, Any]) -> dict[str, Any]:
    """Summarise the store and this run's counts; leave it as the Markdown artifact."""
    settings = tasks.settings_for(home)
    with session(settings) as conn:
        summary = report.summarize(conn, stages, settings.default_k)
    create_markdown_artifact(
        key=ARTIFACT_KEY,
        markdown=report.markdown(summary, stages),
        description="breach-notify run report (counts only, small cells suppressed)",
    )
    return summary


def _report_if_top_level(home: str | None, stages: dict[str, Any]) -> None:
    if runtime.flow_run.parent_flow_run_id is None:
        write_report(home, stages)


def home_path(home: Path) -> str:
    """The data dir as the absolute path the flows take."""
    return str(home.resolve())

"""Prefect tasks over the stages. Batch-sized: a breach, a shard, the outbox — never a row.

Every task takes and returns ids, paths and counts only, is never cached and never persists its
result, and re-raises failures without their original text (:func:`scrubbed`): DuckDB and Twilio
errors can quote the value they choked on. Keys are loaded from the keyring file inside the task.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE

from breach_notify.crypto import Keyring
from breach_notify.errors import BadInput, BreachNotifyError, OperationalError
from breach_notify.ingest import inbox as inbox_mod
from breach_notify.ingest import selfcheck
from breach_notify.ingest.formats import Shard
from breach_notify.ingest.options import IngestSpec
from breach_notify.redact import redact
from breach_notify.settings import Settings
from breach_notify.store.db import session

P = ParamSpec("P")
R = TypeVar("R")

#: Options shared by every task: nothing cached, nothing persisted, prints not captured.
SAFE: dict[str, Any] = {"persist_result": False, "cache_policy": NO_CACHE, "log_prints": False}


class StageFailed(OperationalError):
    """A stage failed; the message names the stage and the error class, never a value."""


class StageBadInput(BadInput):
    """A stage refused its input (exit 2); the message is the stage's own, redacted."""


def scrubbed(fn: Callable[P, R]) -> Callable[P, R]:
    """Re-raise any failure of ``fn`` as a fresh exception with no cause, context or raw text.

    Our own errors keep their message (written to be safe, redacted once more); anything else
    keeps only its class name.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        replacement: Exception
        try:
            return fn(*args, **kwargs)
        except BadInput as exc:
            replacement = StageBadInput(redact(str(exc)))
        except BreachNotifyError as exc:
            replacement = StageFailed(redact(str(exc)))
        except Exception as exc:
            replacement = StageFailed(
                f"{fn.__name__} failed ({type(exc).__name__}; message withheld, it may quote data)"
            )
        # Raised outside the handler so that no __context__ links back to the original.
        raise replacement

    return wrapper


def settings_for(home: str | None, keyring: str | None = None) -> Settings:
    """Settings from the environment, with the data dir and keyring given by the flow."""
    overrides: dict[str, Any] = {}
    if home:
        overrides["home"] = Path(home)
    if keyring:
        overrides["keyring"] = Path(keyring)
    return Settings(**overrides)


# -- ingest ---------------------------------------------------------------------------------


@task(name="plan-inbox", **SAFE)
@scrubbed
def plan_inbox(home: str | None, inbox: str) -> list[inbox_mod.Plan]:
    """The breaches of the inbox with their not-yet-ingested files (options, paths, counts)."""
    settings = settings_for(home)
    folders = inbox_mod.read_inbox(Path(inbox), follow_symlinks=settings.inbox_follow_symlinks)
    oprf = None
    if any(f.options.self_check for f in folders):
        ring = Keyring.load(settings.keyring_path)
        oprf = ring.active_id("oprf") if "oprf" in ring.key_ids else None
    with session(settings) as conn:
        return [inbox_mod.plan(conn, folder, oprf) for folder in folders]


@task(name="ingest-breach", **SAFE)
@scrubbed
def ingest_breach(home: str | None, keyring: str | None, plan: inbox_mod.Plan) -> dict[str, Any]:
    """Ingest one breach's new files in one all-or-nothing call (with the self-check's re-tag
    pass over ``plan.retag``: the local path); returns the ingest counts."""
    from breach_notify.ingest import ingest

    settings = settings_for(home, keyring)
    ring = Keyring.load(settings.keyring_path)
    report = ingest(settings, ring, [*plan.files, *plan.retag], plan.options)
    return _counts(report.as_dict())


#: Smallest shard when splitting for a cluster (tiny files stay whole).
MIN_SHARD_BYTES = 16 * 1024


@dataclass(frozen=True)
class ShardPlan:
    """One breach's shards for a cluster: the spec, shards (paths and byte ranges), the key id,
    the keyring's path and a fresh Parquet directory (no personal data, no key)."""

    spec: IngestSpec
    shards: tuple[Shard, ...]
    key_id: str
    keyring_path: Path
    out_dir: Path


@task(name="plan-shards", **SAFE)
@scrubbed
def plan_shards_task(
    home: str | None, keyring: str | None, plan: inbox_mod.Plan, parallel: int = 4
) -> ShardPlan:
    """Shards of one breach's new files, sized so that ``parallel`` workers all get some."""
    from breach_notify.ingest import plan_shards
    from breach_notify.ingest.formats import SHARD_BYTES

    settings = settings_for(home, keyring)
    ring = Keyring.load(settings.keyring_path)
    spec = IngestSpec.of(settings, plan.options)
    paths = list(plan.files)
    total = sum(p.stat().st_size for p in paths)
    shard_bytes = max(MIN_SHARD_BYTES, min(SHARD_BYTES, -(-total // max(parallel, 1))))
    shards = plan_shards(paths, plan.options.fmt, shard_bytes=shard_bytes)
    out_dir = Path(tempfile.mkdtemp(prefix="shards-", dir=settings.tmp_dir))
    keyring_path = settings.keyring_path.resolve()
    with session(settings) as conn:
        row = conn.execute(
            "SELECT key_id FROM breaches WHERE id = ?", [plan.options.breach_id]
        ).fetchone()
        tags = selfcheck.plan(
            conn,
            ring,
            keyring_path,
            plan.options.breach_id,
            enabled=plan.options.self_check,
            nbytes=total,
            out_dir=out_dir,
        )
    spec = dataclasses.replace(spec, self_check=tags)  # the workers tag their own shards
    key_id = str(row[0]) if row else ring.active_id("pseudonym")
    ring.pseudonymizer(key_id)  # fails early if the breach's key is gone
    return ShardPlan(spec, tuple(shards), key_id, keyring_path, out_dir)


@task(name="process-shard", **SAFE)
@scrubbed
def process_shard_task(shard_plan: ShardPlan, index: int) -> Any:
    """One shard on whichever worker runs it: normalise, pseudonymise, write Parquet.

    The worker loads the key from the keyring path itself; the result is counts and file paths.
    """
    from breach_notify.ingest import process_shard

    return process_shard(
        shard_plan.shards[index],
        shard_plan.keyring_path,
        shard_plan.key_id,
        shard_plan.spec,
        shard_plan.out_dir,
    )


@task(name="merge-shards", **SAFE)
@scrubbed
def merge_shards_task(
    home: str | None, keyring: str | None, shard_plan: ShardPlan, results: list[Any]
) -> dict[str, Any]:
    """Merge every shard of a breach into DuckDB in one transaction; remove the Parquet."""
    from breach_notify.ingest import merge_shards

    settings = settings_for(home, keyring)
    try:
        report = merge_shards(settings, shard_plan.spec, results)
    finally:
        shutil.rmtree(shard_plan.out_dir, ignore_errors=True)
    report.shards = len(shard_plan.shards)
    return _counts(report.as_dict())


def _counts(report: dict[str, Any]) -> dict[str, Any]:
    """The ingest fields of the CLI contract (and nothing that is not a count or an id)."""
    keep = (
        "breach",
        "rows_read",
        "rows_invalid",
        "invalid_by_reason",
        "rows_duplicate",
        "distinct_numbers",
        "new_numbers",
        "prefix_bits",
        "k",
        "min_bucket",
        "seconds",
        "files",
        "files_skipped",
        "shards",
        "self_check",
    )
    return {key: report[key] for key in keep if key in report}


# -- match, send, housekeeping -------------------------------------------------------------


@task(name="match", **SAFE)
@scrubbed
def match_task(
    home: str | None, breach_id: str | None = None, keyring: str | None = None
) -> dict[str, Any]:
    """Pending notices for active subscribers found in breaches.

    Subscriber pseudonyms under every breach's key version are brought up to date first, so
    a breach hashed under an older pseudonym key still matches after a rotation.
    """
    from breach_notify.notify.match import match

    settings = settings_for(home, keyring)
    ring = Keyring.load(settings.keyring_path)
    with session(settings) as conn:
        report = match(conn, breach_id=breach_id, keyring=ring)
    return _as_dict(report)


@task(name="send", **SAFE)
@scrubbed
def send_task(
    home: str | None,
    keyring: str | None,
    gateway: str,
    rate: float | None = None,
    max_messages: int | None = None,
    ignore_quiet_hours: bool = False,
    resend_in_doubt: bool = False,
) -> dict[str, Any]:
    """Work the outbox through the gateway; the sender opens and closes the store itself.

    Paced by the Prefect global rate limit ``settings.sms_rate_limit`` when the server has one.
    """
    from breach_notify.notify.sender import send
    from breach_notify.sms.gateway import open_gateway
    from flows.pacing import shared_pace

    settings = settings_for(home, keyring)
    ring = Keyring.load(settings.keyring_path)
    gw = open_gateway(gateway, settings)
    try:
        report = send(
            settings,
            ring,
            gw,
            rate=rate,
            max_messages=max_messages,
            ignore_quiet_hours=ignore_quiet_hours,
            resend_in_doubt=resend_in_doubt,
            pace=shared_pace(settings.sms_rate_limit),
        )
    finally:
        gw.close()
    return _as_dict(report)


@task(name="expire-pending", **SAFE)
@scrubbed
def expire_pending_task(home: str | None) -> dict[str, int]:
    """Expire subscriptions whose double opt-in was never confirmed; purge old code rows."""
    from breach_notify.subscribers import housekeeping

    with session(settings_for(home)) as conn:
        return {k: int(v) for k, v in housekeeping.run(conn, datetime.now(UTC)).items()}


@task(name="retention", **SAFE)
@scrubbed
def retention_task(home: str | None, max_age_hours: float = 24.0) -> int:
    """Remove leftovers of crashed runs: empty work dirs at once, the rest after the cut-off."""
    from breach_notify.ingest.leftovers import remove_leftovers

    tmp_dir = settings_for(home).tmp_dir
    return remove_leftovers(tmp_dir, max_age=timedelta(hours=max_age_hours))


def _as_dict(report: Any) -> dict[str, Any]:
    """A stage report as a plain dict of counts."""
    if isinstance(report, dict):
        return dict(report)
    as_dict = getattr(report, "as_dict", None)
    if callable(as_dict):
        return dict(as_dict())
    from dataclasses import asdict, is_dataclass

    if is_dataclass(report) and not isinstance(report, type):
        return asdict(report)
    raise TypeError(f"unexpected stage report {type(report).__name__}")

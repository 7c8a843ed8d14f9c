"""The leak-proof Prefect environment, applied before ``prefect`` is imported.

Prefect reads its settings from the environment once, at import. :func:`apply` therefore sets
them first: no caching (the default cache key is an unsalted hash of the inputs), no persisted
results, no print capture, no telemetry, a start-up timeout that fits this machine, a logging
config that puts :class:`~breach_notify.redact.RedactingFilter` on every Prefect handler (the API
log handler included) and, with no ``PREFECT_API_URL``, ``PREFECT_HOME`` inside the data dir.
The same variables go to the servers and workers this project starts (:func:`environment`).

Note: this does not make a stray parameter safe; flows and tasks must still take ids, paths and
counts only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from breach_notify.settings import Settings

LOGGING_CONFIG = Path(__file__).with_name("logging.yml")


def forced_for(source_root: str) -> dict[str, str]:
    """The forced values for a checkout at ``source_root`` (the directory that holds ``flows/``).

    Only the logging config's path depends on where the source lives; the copies in ``infra/``
    (image at ``/app``, ``prefect.yaml`` at ``{{ $BREACH_NOTIFY_SRC }}``) are checked against this
    by ``tests/test_prefect_env_drift.py``.
    """
    return {
        "PREFECT_TASKS_DEFAULT_NO_CACHE": "true",
        "PREFECT_TASKS_DISABLE_CACHING": "true",
        "PREFECT_TASKS_DEFAULT_PERSIST_RESULT": "false",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
        "PREFECT_LOGGING_LOG_PRINTS": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_SETTINGS_PATH": f"{source_root.rstrip('/')}/flows/logging.yml",
    }


# Values forced whatever the operator's environment says.
FORCED: Mapping[str, str] = forced_for(str(LOGGING_CONFIG.parent.parent))

# Values used unless the operator set them.
DEFAULTS: Mapping[str, str] = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
}


def environment(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) with the project's Prefect settings applied."""
    env = dict(os.environ if base is None else base)
    env.update(FORCED)
    for key, value in DEFAULTS.items():
        env.setdefault(key, value)
    if not env.get("PREFECT_API_URL"):
        env.pop("PREFECT_API_URL", None)
        env["PREFECT_HOME"] = str(settings.prefect_home.resolve())
    return env


def apply_forced(environ: dict[str, str] | None = None) -> None:
    """Set the forced values and defaults (not ``PREFECT_HOME``) if Prefect is not imported yet.

    Run when ``flows`` is imported, so that a script or worker importing the flows
    directly gets no caching, no persisted results and the redacting logging config too.
    """
    if "prefect" in sys.modules:
        return
    target = os.environ if environ is None else environ
    target.update(FORCED)
    for key, value in DEFAULTS.items():
        target.setdefault(key, value)


def apply(settings: Settings) -> None:
    """Set the environment for this process. Call before the first ``import prefect``.

    Raises ``RuntimeError`` when Prefect was imported earlier with a different home, since its
    settings would then silently be the old ones.
    """
    env = environment(settings)
    changed = {k: v for k, v in env.items() if os.environ.get(k) != v}
    if "prefect" in sys.modules and changed:
        stale = sorted(k for k in changed if k.startswith("PREFECT_HOME") or k == "PREFECT_API_URL")
        if stale:
            raise RuntimeError(f"prefect was imported before its environment was set ({stale})")
    os.environ.update(changed)
    if "PREFECT_HOME" in env:
        settings.ensure_home()
        Path(env["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True, mode=0o700)

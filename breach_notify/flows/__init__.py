"""Orchestration: Prefect flows over the stages, the CLI, the webhook app, schedules.

Importing this package sets Prefect's leak-proof settings (no caching, no persisted results,
redacting log config, no telemetry) unless Prefect is already imported; ``PREFECT_HOME`` is
placed by :func:`breach_notify.flows.prefect_env.apply`, which needs the data dir.
"""

from breach_notify.flows import prefect_env as _prefect_env

_prefect_env.apply_forced()

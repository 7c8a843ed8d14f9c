"""Prefect: the flows and tasks over the stages, their schedules and servers.

This is the only place that imports Prefect. Deployments reference the entrypoints as
``flows/pipeline.py:<flow>``; the CLI reaches them through ``breach_notify.cli.orchestration``.

Importing this package sets Prefect's leak-proof settings (no caching, no persisted results,
redacting log config, no telemetry) unless Prefect is already imported; ``PREFECT_HOME`` is
placed by :func:`flows.prefect_env.apply`, which needs the data dir.
"""

from flows import prefect_env as _prefect_env

#: Lets the CLI tell this package from any other importable ``flows``.
PROJECT = "breach-notify flows"

_prefect_env.apply_forced()

"""Orchestration: Prefect flows over the stages, the CLI, the webhook app, schedules."""

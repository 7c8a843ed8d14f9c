"""Deployments on a real Prefect server: ``prefect deploy`` from the repository root with
``infra/prefect.yaml`` (entrypoints ``flows/pipeline.py:<flow>``), a process work pool and a worker
whose flow runs start in ``BREACH_NOTIFY_SRC``, a triggered ``pipeline`` run with the expected
outcome."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.flows import REPO, api, prepared_home, processes_under, server_env, small_sample
from support.privacy import scan

from breach_notify.settings import Settings
from flows import pipeline as flows_pipeline
from flows import prefect_env
from flows.serve import PrefectServer

PREFECT_YAML = REPO / "infra" / "prefect.yaml"


def test_prefect_yaml_shape() -> None:
    spec = yaml.safe_load(PREFECT_YAML.read_text())
    deps = {d["name"]: d for d in spec["deployments"]}
    assert set(deps) == {"pipeline", "ingest-nightly", "send-hourly", "housekeeping-daily"}
    assert deps["send-hourly"]["concurrency_limit"] == 1
    s = Settings()
    assert deps["ingest-nightly"]["schedules"][0]["cron"] == s.schedule_ingest_cron
    assert deps["send-hourly"]["schedules"][0]["cron"] == s.schedule_send_cron
    assert deps["housekeeping-daily"]["schedules"][0]["cron"] == s.schedule_housekeeping_cron
    for d in deps.values():
        assert d["work_pool"]["name"] == "breach-notify"
        path, _, name = d["entrypoint"].partition(":")
        assert path == "flows/pipeline.py" and (REPO / path).is_file()
        assert getattr(flows_pipeline, name).name  # a Prefect flow of that module
    # Flow runs start in the worker's source root, where the relative entrypoints resolve.
    [step] = spec["pull"]
    assert step["prefect.deployments.steps.set_working_directory"] == {
        "directory": "{{ $BREACH_NOTIFY_SRC }}"
    }


def _prefect(
    env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", *args],
        env=env,
        cwd=REPO,  # `prefect deploy` from the repository root, as infra/README.md says
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_deploy_and_run_pipeline_on_a_worker(tmp_path: Path, server: PrefectServer) -> None:
    sample = small_sample(tmp_path / "sample", seed=11)
    home = tmp_path / "home"
    prepared_home(home, sample)
    env = server_env(
        server.api_url,
        tmp_path / "client",
        BREACH_NOTIFY_HOME=str(home),
        BREACH_NOTIFY_INBOX=str(sample.inbox),
        BREACH_NOTIFY_GATEWAY="dryrun://",
        BREACH_NOTIFY_SRC=str(REPO),
    )
    res = _prefect(env, "work-pool", "create", "breach-notify", "--type", "process")
    assert res.returncode == 0, res.stderr
    res = _prefect(env, "deploy", "--all", "--prefect-file", str(PREFECT_YAML))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]

    deployments = {d["name"]: d for d in api(server.api_url, "POST", "/deployments/filter", {})}
    assert set(deployments) == {"pipeline", "ingest-nightly", "send-hourly", "housekeeping-daily"}
    assert deployments["send-hourly"]["global_concurrency_limit"]["limit"] == 1
    crons = {n: [s["schedule"]["cron"] for s in d["schedules"]] for n, d in deployments.items()}
    assert crons["send-hourly"] == ["15 9-19 * * *"] and crons["pipeline"] == []
    for d in deployments.values():
        assert d["entrypoint"].startswith("flows/pipeline.py:")
        # `prefect deploy` resolves {{ $BREACH_NOTIFY_SRC }} from its own environment.
        assert d["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
        ]
        # The leak-proof environment, its logging config resolved to this checkout.
        assert d["job_variables"]["env"] == prefect_env.forced_for(str(REPO))

    worker = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", "breach-notify"],
        env=env,
        cwd=tmp_path,  # not the source root: the pull step moves each flow run there
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        res = _prefect(
            env,
            "deployment",
            "run",
            "pipeline/pipeline",
            "--watch",
            "--watch-timeout",
            "150",
            "--param",
            "ignore_quiet_hours=true",
            "--param",
            "rate=1000",
        )
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()

    runs = api(server.api_url, "POST", "/flow_runs/filter", {})
    pipeline = [r for r in runs if r["deployment_id"] == deployments["pipeline"]["id"]]
    assert len(pipeline) == 1 and pipeline[0]["state_type"] == "COMPLETED"
    lines = (home / "outbox" / "dryrun.jsonl").read_text().splitlines()
    assert len(lines) == sample.expected_notices
    artifacts = api(server.api_url, "POST", "/artifacts/filter", {})
    assert any(a["key"] == "breach-notify-report" for a in artifacts)

    server.stop()
    assert not list(processes_under(tmp_path))
    assert scan([tmp_path / "server", tmp_path / "client", home], sample.numbers) == []

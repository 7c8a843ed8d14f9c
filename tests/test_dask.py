"""Scale-out: ingest shards on a Dask ``LocalCluster`` (2 workers) against a real Prefect server
give exactly the pseudonyms and counts of the default runner; without a server, a clear exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from support.flows import (
    api,
    clean_env,
    cli,
    prepared_home,
    processes_under,
    server_env,
    small_sample,
)
from support.privacy import scan

from flows.serve import PrefectServer


def test_dask_without_server_is_exit_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli(home, "keys", "init").code == 0
    res = cli(
        home,
        "run",
        "--gateway",
        "dryrun://",
        "--task-runner",
        "dask",
        "--dask-address",
        "tcp://127.0.0.1:1",
        "--json",
        env=clean_env(),
        timeout=60,
    )
    assert res.code == 2 and "PREFECT_API_URL" in res.json["error"]
    assert res.seconds < 20


def _store(home: Path) -> dict[str, Any]:
    conn = duckdb.connect(str(home / "breach-notify.duckdb"), read_only=True)
    try:
        return {
            "pseudonyms": conn.execute(
                "SELECT breach_id, pseudonym, kinds FROM breach_pseudonyms ORDER BY ALL"
            ).fetchall(),
            "breaches": conn.execute(
                "SELECT id, rows_read, rows_invalid, rows_duplicate, distinct_numbers,"
                " prefix_bits, min_bucket, k, invalid_by_reason FROM breaches ORDER BY id"
            ).fetchall(),
            "notices": conn.execute("SELECT count(*) FROM notices").fetchall(),
        }
    finally:
        conn.close()


def _comparable(report: dict[str, Any]) -> list[dict[str, Any]]:
    drop = {"seconds", "shards", "files"}
    return sorted(
        ({k: v for k, v in b.items() if k not in drop} for b in report["ingest"]["breaches"]),
        key=lambda b: b["breach"],
    )


@pytest.mark.slow
def test_dask_gives_the_same_pseudonyms_and_counts(tmp_path: Path, server: PrefectServer) -> None:
    sample = small_sample(tmp_path / "sample", seed=23)
    threads_home, dask_home = tmp_path / "threads", tmp_path / "dask"
    prepared_home(threads_home, sample)
    prepared_home(dask_home, sample, keyring=threads_home / "keyring.json")
    env = server_env(server.api_url, tmp_path / "client")
    args = (
        "run",
        "--inbox",
        str(sample.inbox),
        "--gateway",
        "dryrun://",
        "--ignore-quiet-hours",
        "--rate",
        "1000",
        "--json",
    )

    by_threads = cli(threads_home, *args, env=env)
    assert by_threads.code == 0, by_threads.stderr[-3000:]
    by_dask = cli(dask_home, *args, "--task-runner", "dask", env=env, timeout=300)
    assert by_dask.code == 0, by_dask.stderr[-3000:]
    print(f"threads {by_threads.seconds:.1f}s, dask {by_dask.seconds:.1f}s")

    assert by_dask.json["prefect_api"] == server.api_url
    assert _comparable(by_dask.json) == _comparable(by_threads.json)
    a, b = _store(threads_home), _store(dask_home)
    assert a["pseudonyms"] and a == b
    assert a["notices"] == [(sample.expected_notices,)]

    # The shards ran as task runs of their own, reported to the real server.
    tasks = api(server.api_url, "POST", "/task_runs/filter", {})
    shard_runs = [t for t in tasks if t["name"].startswith("process-shard")]
    assert len(shard_runs) >= 2 and all(t["state_type"] == "COMPLETED" for t in shard_runs)

    server.stop()
    assert not list(processes_under(tmp_path))
    written = [tmp_path / "server", tmp_path / "client", threads_home, dask_home]
    assert scan(written, sample.numbers, [by_dask.stdout, by_dask.stderr]) == []

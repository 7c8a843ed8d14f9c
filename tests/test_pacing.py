"""SMS pacing across workers: a Prefect global rate limit (slot decay) slows a real run's sender."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.flows import api, cli, prepared_home, processes_under, server_env, small_sample
from support.privacy import scan

from flows.serve import PrefectServer


@pytest.mark.slow
def test_global_rate_limit_paces_the_sender(tmp_path: Path, server: PrefectServer) -> None:
    sample = small_sample(tmp_path / "sample", seed=31)
    home = tmp_path / "home"
    prepared_home(home, sample)
    env = server_env(server.api_url, tmp_path / "client")
    limit, decay = 5, 10.0
    api(
        server.api_url,
        "POST",
        "/v2/concurrency_limits/",
        {"name": "breach-notify-sms", "limit": limit, "slot_decay_per_second": decay},
    )

    res = cli(
        home,
        "run",
        "--inbox",
        str(sample.inbox),
        "--gateway",
        "dryrun://",
        "--ignore-quiet-hours",
        "--rate",
        "1000",
        "--json",
        env=env,
    )
    assert res.code == 0, res.stderr[-3000:]
    send = res.json["send"]
    n = sample.expected_notices
    assert send["sent"] == n and send["segments"] == n
    # Unpaced, the dry-run sends these in well under a second; the shared limit lets `limit`
    # segments through at once and then `decay` per second.
    print(f"paced send: {n} segments in {send['seconds']:.2f}s")
    assert send["seconds"] >= 0.8 * (n - limit) / decay, send
    assert len((home / "outbox" / "dryrun.jsonl").read_text().splitlines()) == n

    server.stop()
    assert not list(processes_under(tmp_path))
    written = [tmp_path / "server", tmp_path / "client", home]
    assert scan(written, sample.numbers, [res.stdout, res.stderr]) == []

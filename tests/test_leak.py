"""The leak test: after the embedded pipeline has run (twice) and its Prefect server has stopped,
no input number — in any format — is in ``prefect.db`` (+ ``-wal``), Prefect's storage, the data
dir, logs or captured output. A deliberately leaking flow must make the same scan fail."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from privacy import scan
from test_flows_helpers import clean_env, embedded_run, processes_under


@pytest.fixture(scope="session")
def run_once(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return embedded_run(tmp_path_factory.mktemp("embedded"))


def _written(home: Path) -> list[Path]:
    prefect = home / "prefect"
    assert (prefect / "prefect.db").is_file()
    return [home]  # the data dir holds PREFECT_HOME: prefect.db, -wal, storage, logs


def test_nothing_leaks(run_once) -> None:  # type: ignore[no-untyped-def]
    assert run_once.first.code == 0 and run_once.second.code == 0, run_once.first.stderr[-2000:]
    # Prefect has finished writing: the runs are final and no process of ours is left.
    assert not list(processes_under(run_once.home))
    texts = [r.stdout for r in (run_once.first, run_once.second)]
    texts += [r.stderr for r in (run_once.first, run_once.second)]
    hits = scan(_written(run_once.home), run_once.sample.numbers, texts)
    assert hits == []
    # The scan looked where the numbers would be: prefect.db exists and is not empty.
    assert (run_once.home / "prefect" / "prefect.db").stat().st_size > 100_000


LEAKY = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from breach_notify.settings import Settings
    from breach_notify.flows import prefect_env

    prefect_env.apply(Settings(home=Path(sys.argv[1])))
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    @task(persist_result=False, cache_policy=NO_CACHE)
    def count(number: str) -> int:
        return len(number)

    @flow(name="leaky")
    def leaky(number: str) -> int:  # a number as a flow parameter: stored by Prefect
        return count(number)

    leaky(sys.argv[2])
    """
)


def test_negative_control_a_leaking_flow_is_caught(run_once) -> None:  # type: ignore[no-untyped-def]
    number = sorted(run_once.sample.numbers)[0]
    proc = subprocess.run(
        [sys.executable, "-c", LEAKY, str(run_once.home), number],
        capture_output=True, text=True, env=clean_env(), timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    hits = scan(_written(run_once.home), [number])
    assert any("prefect.db" in h for h in hits), hits

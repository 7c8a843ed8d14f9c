"""The leak test: after the embedded pipeline has run (twice) and its Prefect server has stopped,
no input number — in any format — is in ``prefect.db`` (+ ``-wal``), Prefect's storage, the data
dir, logs or captured output. A deliberately leaking flow must make the same scan fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from support.flows import EmbeddedRun, PrefectDB, clean_env, processes_under
from support.privacy import scan


def _written(home: Path) -> list[Path]:
    prefect = home / "prefect"
    assert (prefect / "prefect.db").is_file()
    return [home]  # the data dir holds PREFECT_HOME: prefect.db, -wal, storage, logs


def test_nothing_leaks(run_once: EmbeddedRun) -> None:
    assert run_once.first.code == 0 and run_once.second.code == 0, run_once.first.stderr[-2000:]
    # Prefect has finished writing: the runs are final and no process of ours is left.
    assert not list(processes_under(run_once.home))
    texts = [r.stdout for r in (run_once.first, run_once.second)]
    texts += [r.stderr for r in (run_once.first, run_once.second)]
    hits = scan(_written(run_once.home), run_once.sample.numbers, texts)
    assert hits == []
    # The scan looked where the numbers would be: prefect.db exists and is not empty.
    assert (run_once.home / "prefect" / "prefect.db").stat().st_size > 100_000


CONTROL = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from breach_notify.settings import Settings
    from flows import prefect_env

    prefect_env.apply(Settings(home=Path(sys.argv[1])))
    from prefect import flow, get_run_logger, task
    from prefect.artifacts import create_markdown_artifact
    from flows.tasks import SAFE, scrubbed

    NUMBER = os.environ["CONTROL_NUMBER"]  # never a parameter: only the task body sees it

    @task(**SAFE)
    @scrubbed
    def careless() -> None:
        get_run_logger().info("about to fail on %s", NUMBER)    # redacted by the filter
        get_run_logger().warning(f"raw {NUMBER}")                 # redacted by the filter
        print(NUMBER)                                             # not captured: log_prints off
        raise ValueError(f"could not convert {NUMBER!r}")         # text withheld by scrubbed

    @task(**SAFE)
    def leaky() -> None:
        create_markdown_artifact(markdown=f"oops {NUMBER}", key="leak")  # nothing stops this

    @flow(name="control")
    def control(mode: str) -> None:
        if mode == "careless":
            try:
                careless()
            except Exception:
                pass
        else:
            leaky()

    control(sys.argv[2])
    """
)


def _control(home: Path, number: str, mode: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-c", CONTROL, str(home), mode],
        capture_output=True,
        text=True,
        env=clean_env(CONTROL_NUMBER=number),
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_controls_redaction_holds_and_a_leaking_task_is_caught(
    run_once: EmbeddedRun, tmp_path: Path
) -> None:
    number = sorted(run_once.sample.numbers)[0]
    home = tmp_path / "home"  # a copy: the leaking control writes a number, others read the run
    shutil.copytree(run_once.home, home, symlinks=True)
    # Careless logging, printing and exception text in a task: all stopped by the project.
    careless = _control(home, number, "careless")
    assert "[redacted]" in careless.stderr and "message withheld" in careless.stderr
    # (the print reaches the script's own stdout, by design; Prefect must not have captured it)
    assert scan(_written(home), [number], [careless.stderr]) == []
    db = PrefectDB(home / "prefect" / "prefect.db")
    shipped = db.rows("SELECT message FROM log WHERE message LIKE '%about to fail on%'")
    assert shipped == [("about to fail on [redacted]",)]  # the API log handler was filtered too
    # A task that writes the number into an artifact: the scan must catch it.
    _control(home, number, "leaky")
    hits = scan(_written(home), [number])
    assert any("prefect.db" in h for h in hits), hits

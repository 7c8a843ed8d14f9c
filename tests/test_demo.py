"""``breach-notify demo``: the bundled sample through embedded Prefect, then the plaintext scan."""

from __future__ import annotations

import csv
import filecmp
from pathlib import Path

import pytest
from support.flows import DemoRun, processes_under
from support.privacy import scan, scan_keys

from breach_notify.demo import DATA, INBOX, SUBSCRIBERS
from breach_notify.demo.sample import write_sample


def test_bundled_sample_is_what_the_generator_writes(tmp_path: Path) -> None:
    sample = write_sample(tmp_path)
    for rel in (
        "subscribers.csv",
        "inbox/demo-fb-us/United States.txt",
        "inbox/demo-fb-us/breach.toml",
        "inbox/demo-csv-au/members.csv",
        "inbox/demo-csv-au/breach.toml",
    ):
        assert filecmp.cmp(tmp_path / rel, DATA / rel, shallow=False), rel
    with SUBSCRIBERS.open() as fh:
        assert {row["phone"] for row in csv.DictReader(fh)} <= sample.numbers
    assert sorted(p.name for p in INBOX.iterdir()) == ["demo-csv-au", "demo-fb-us"]


@pytest.mark.slow
def test_demo_completes_and_leaves_no_number(demo_once: DemoRun) -> None:
    truth, home, res = demo_once.truth, demo_once.home, demo_once.run
    assert res.code == 0, res.stderr[-3000:]
    # Its time is measured, not asserted: ~30-55 s here on a quiet machine, 108-170 s while other
    # work loads the 2 cores. The subprocess timeout above is the hang guard.
    print(f"demo took {res.seconds:.1f}s")
    assert "Breaches" in res.stdout and "demo-fb-us" in res.stdout
    assert "dryrun.jsonl" in res.stdout and f"--home {home} ui" in res.stdout
    outbox = home / "outbox" / "dryrun.jsonl"
    assert len(outbox.read_text().splitlines()) == truth.expected_notices
    assert not list(processes_under(home))  # the temporary server is gone: writing is over
    assert scan([home], truth.numbers, [res.stdout, res.stderr]) == []
    assert scan_keys([home], home / "keyring.json", [res.stdout, res.stderr]) == []

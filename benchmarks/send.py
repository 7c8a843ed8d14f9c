"""Benchmark: match time and dry-run send throughput.

    .venv/bin/python benchmarks/send.py [--subscribers 100000] [--breach 1000000]

Builds a throwaway data dir with ``--subscribers`` active subscribers (sealed numbers and keyed
pseudonyms, written directly) and a breach of ``--breach`` pseudonyms that contains every
subscriber, then times ``match`` (set-based SQL) and ``send`` through ``dryrun://`` with no rate
limit and quiet hours ignored. Prints the numbers and their ratio to the targets.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from breach_notify.crypto import Keyring
from breach_notify.notify.match import match
from breach_notify.notify.sender import send
from breach_notify.settings import Settings
from breach_notify.sms.gateway import open_gateway
from breach_notify.store import db

TARGET_SEND_PER_S = 2000.0


def build(settings: Settings, ring: Keyring, subscribers: int, breach: int) -> tuple[float, float]:
    """Load the data; return (match seconds, Python set-intersection baseline seconds)."""
    rng = random.Random(42)
    numbers = sorted({f"+336{rng.randrange(10**8):08d}" for _ in range(int(subscribers * 1.1))})
    numbers = numbers[:subscribers]
    sealer, pseudo = ring.sealer(), ring.pseudonymizer()
    ids = [f"S{i:09d}" for i in range(len(numbers))]
    sealed = [sealer.seal(n, sid) for n, sid in zip(numbers, ids, strict=True)]
    pseudonyms = [pseudo.pseudonym(n) for n in numbers]
    subs = pa.table(
        {
            "id": ids,
            "pseudonym": pa.array(pseudonyms, pa.binary()),
            "sealed": pa.array([s.blob for s in sealed], pa.binary()),
            "seal_key_id": [s.key_id for s in sealed],
            "language": [rng.choice(["en", "fr"]) for _ in ids],
        }
    )
    others = breach - len(numbers)
    members = pa.table(
        {
            "pseudonym": pa.array(
                pseudonyms + [os.urandom(32) for _ in range(others)], pa.binary()
            ),
            "kinds": pa.array([rng.randrange(1, 2**10) for _ in range(breach)], pa.uint16()),
        }
    )
    del numbers
    with db.session(settings) as conn:
        conn.execute("SELECT 1").fetchall()  # finish the migration check's result first
        conn.register("subs_in", subs)
        conn.register("members_in", members)
        conn.execute(
            "INSERT INTO subscribers (id, status, pseudonym, pseudonym_key_id, sealed, seal_key_id,"
            " language, confirmed_at, consent_source)"
            " SELECT id, 'active', pseudonym, ?, sealed, seal_key_id, language, now(), 'bench'"
            " FROM subs_in",
            [pseudo.key_id],
        )
        conn.execute(
            "INSERT INTO breaches (id, title, format, key_id, k, distinct_numbers)"
            " VALUES ('bench', 'Benchmark breach 2021', 'csv', ?, 50, ?)",
            [pseudo.key_id, breach],
        )
        conn.execute(
            "INSERT INTO breach_pseudonyms (breach_id, pseudonym, kinds, prefix)"
            " SELECT 'bench', pseudonym, kinds, pseudonym[1:4]::BIT::UINTEGER FROM members_in"
        )
        started = time.perf_counter()
        report = match(conn)
        seconds = time.perf_counter() - started
        # Baseline: the obvious Python way (fetch both sides, intersect sets).
        started = time.perf_counter()
        members_set = {
            bytes(r[0])
            for r in conn.execute(
                "SELECT pseudonym FROM breach_pseudonyms WHERE breach_id = 'bench'"
            ).fetchall()
        }
        found = sum(
            bytes(r[0]) in members_set
            for r in conn.execute(
                "SELECT pseudonym FROM subscribers WHERE status = 'active'"
            ).fetchall()
        )
        baseline = time.perf_counter() - started
    assert report.new_notices == len(ids) == found, report
    return seconds, baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--breach", type=int, default=1_000_000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bn-bench-send-"))
    try:
        settings = Settings(home=home)
        ring = Keyring.create(settings.keyring_path)
        t0 = time.perf_counter()
        match_s, baseline_s = build(settings, ring, args.subscribers, args.breach)
        setup_s = time.perf_counter() - t0 - match_s - baseline_s
        gateway = open_gateway("dryrun://", settings)
        started = time.perf_counter()
        report = send(
            settings,
            ring,
            gateway,
            rate=None,
            max_messages=None,
            ignore_quiet_hours=True,
            resend_in_doubt=False,
        )
        send_s = time.perf_counter() - started
        gateway.close()
        assert report.sent == args.subscribers, report
        lines = sum(1 for _ in (settings.outbox_dir / "dryrun.jsonl").open())
        per_s = report.sent / send_s
        pairs = args.breach * args.subscribers
        print(f"setup (seal, pseudonymise, load): {setup_s:.1f} s")
        print(
            f"match: {args.breach:,} breach pseudonyms x {args.subscribers:,} subscribers "
            f"-> {args.subscribers:,} notices in {match_s:.2f} s "
            f"({args.breach / match_s:,.0f} breach rows/s; {pairs:.1e} pairs)"
        )
        print(
            f"match baseline (fetch + Python set intersection, no inserts): {baseline_s:.2f} s "
            f"-> SQL match is {baseline_s / match_s:.1f}x faster"
        )
        print(
            f"send (dryrun://, no rate limit): {report.sent:,} notices in {send_s:.1f} s = "
            f"{per_s:,.0f} notices/s; {lines:,} outbox lines"
        )
        print(f"ratio to target {TARGET_SEND_PER_S:,.0f}/s: {per_s / TARGET_SEND_PER_S:.2f}x")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()

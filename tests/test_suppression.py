"""Consent that lasts: opt-outs and erasures leave an HMAC-only suppression entry that an
operator's import cannot get past; only the person's own fresh double opt-in lifts it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from support import privacy
from support.sender import add_breach
from support.subscribers import DE_MOBILE, GB_MOBILE, GB_MOBILE_2, GB_MOBILE_3, last_code

from breach_notify.cli import main
from breach_notify.crypto import Keyring
from breach_notify.notify.match import match
from breach_notify.numbers import parse_number
from breach_notify.settings import Settings
from breach_notify.sms.gateways.memory import SHARED
from breach_notify.store.db import session
from breach_notify.subscribers import consent, erasure, events, optin, registry, suppression

NUMBERS = [GB_MOBILE, GB_MOBILE_2, GB_MOBILE_3, DE_MOBILE]


@pytest.fixture
def run(home: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    outputs: list[str] = []

    def call(*args: str) -> tuple[int, str, str]:
        code = main(["--home", str(home), *args])
        captured = capsys.readouterr()
        outputs.extend([captured.out, captured.err])
        return code, captured.out, captured.err

    call.outputs = outputs  # type: ignore[attr-defined]
    assert call("keys", "init")[0] == 0
    SHARED.clear()
    return call


def _status(conn: duckdb.DuckDBPyConnection, ring: Keyring, number: str) -> str | None:
    sub = registry.find(conn, ring, parse_number(number))
    return None if sub is None else sub.status


def test_import_skips_an_erased_and_an_opted_out_number_and_counts_them_suppressed(
    tmp_path: Path, home: Path, run: Callable[..., tuple[int, str, str]]
) -> None:
    old = tmp_path / "old.csv"
    old.write_text(f"phone\n{GB_MOBILE}\n{GB_MOBILE_2}\n")
    assert (
        run("subscribers", "import", str(old), "--consent-source", "2019 list", "--confirmed")[0]
        == 0
    )
    settings = Settings(home=home)
    ring = Keyring.load(settings.keyring_path)
    with session(settings) as conn:
        opted = registry.find(conn, ring, parse_number(GB_MOBILE))
        assert opted is not None
        consent.opt_out(conn, opted.id, "sms")
    assert run("subscribers", "remove", GB_MOBILE_2)[0] == 0

    again = tmp_path / "again.csv"
    again.write_text(f"phone\n{GB_MOBILE}\n{GB_MOBILE_2}\n{GB_MOBILE_3}\n")
    code, out, _ = run(
        "subscribers",
        "import",
        str(again),
        "--consent-source",
        "2019 list",
        "--confirmed",
        "--json",
    )
    report = json.loads(out)
    assert code == 0
    assert (report["imported"], report["suppressed"], report["duplicate"]) == (1, 2, 0)
    code, out, _ = run(
        "subscribers", "import", str(again), "--consent-source", "x", "--gateway", "memory://",
        "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["suppressed"] == 2
    assert SHARED.outbox == []  # no code went to either (the third one is already active)

    with session(settings) as conn:
        add_breach(conn, ring, "leak", [GB_MOBILE, GB_MOBILE_2, GB_MOBILE_3])
        match(conn)
        noticed = conn.execute("SELECT count(*) FROM notices").fetchone()
        assert noticed == (1,)  # the third number only
        assert _status(conn, ring, GB_MOBILE) == "opted_out"
        assert _status(conn, ring, GB_MOBILE_2) is None
        stored = conn.execute("SELECT reason FROM suppressions ORDER BY reason").fetchall()
        assert stored == [("erased",), ("opted_out",)]
    hits = privacy.scan([home], NUMBERS, texts=run.outputs)  # type: ignore[attr-defined]
    assert hits == []


def test_the_persons_own_double_opt_in_lifts_the_suppression(
    settings: Settings, keyring: Keyring
) -> None:
    number = parse_number(DE_MOBILE)
    SHARED.clear()
    with session(settings) as conn:
        optin.add(conn, keyring, settings, SHARED, number)
        optin.confirm(conn, keyring, number, last_code(SHARED))
        sub = registry.find(conn, keyring, number)
        assert sub is not None
        erasure.erase(conn, sub.id, "cli")
        assert suppression.is_suppressed(conn, keyring, number)
        optin.add(conn, keyring, settings, SHARED, number, now=events.utcnow())
        assert suppression.is_suppressed(conn, keyring, number)  # asking is not confirming
        optin.confirm(conn, keyring, number, last_code(SHARED))
        assert not suppression.is_suppressed(conn, keyring, number)
        assert _status(conn, keyring, DE_MOBILE) == "active"


def test_a_yes_reply_lifts_it_and_start_resumes_and_lifts(
    settings: Settings, keyring: Keyring
) -> None:
    number = parse_number(GB_MOBILE_3)
    SHARED.clear()
    with session(settings) as conn:
        optin.add(conn, keyring, settings, SHARED, number)
        sub = registry.find(conn, keyring, number)
        assert sub is not None
        consent.opt_out(conn, sub.id, "sms")
        assert suppression.is_suppressed(conn, keyring, number)
        optin.join_by_sms(conn, keyring, settings, number)
        assert suppression.is_suppressed(conn, keyring, number)
        assert optin.confirm_by_reply(conn, sub.id, "sms", events.utcnow())
        assert not suppression.is_suppressed(conn, keyring, number)
        consent.opt_out(conn, sub.id, "sms")
        assert suppression.is_suppressed(conn, keyring, number)
        assert consent.resume(conn, sub.id, "sms")
        assert not suppression.is_suppressed(conn, keyring, number)


def test_suppression_entries_hold_pseudonyms_under_every_key_and_nothing_else(
    settings: Settings, keyring: Keyring
) -> None:
    number = parse_number(GB_MOBILE)
    with session(settings) as conn:
        sid = registry.create(
            conn, keyring, number, status="active", language="en", now=events.utcnow()
        )
        erasure.erase(conn, sid, "cli")
        cols = [r[0] for r in conn.execute("DESCRIBE suppressions").fetchall()]
        assert cols == ["key_id", "pseudonym", "reason", "created_at"]
        rows = conn.execute("SELECT key_id, pseudonym FROM suppressions").fetchall()
        assert rows == [("p1", keyring.pseudonymizer("p1").pseudonym(number.value))]

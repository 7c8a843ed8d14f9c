"""``subscribers import`` through the CLI (in process, memory gateway): with and without
``--confirmed``, invalid and duplicate rows, bad files refused with nothing changed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from support import privacy
from support.subscribers import (
    DE_MOBILE,
    GB_FIXED,
    GB_MOBILE,
    GB_MOBILE_2,
    GB_MOBILE_3,
    US_MOBILE,
    snapshot,
)

from breach_notify.cli import main
from breach_notify.sms.gateways.memory import SHARED

NUMBERS = [GB_MOBILE, GB_MOBILE_2, GB_MOBILE_3, US_MOBILE, DE_MOBILE, GB_FIXED]
CSV = (
    "name,phone,language\n"
    "a,+447400123456,en\n"
    "b,07400 123457,fr\n"  # national form, needs --default-region GB
    "c,+44 7400 123456,en\n"  # duplicate of the first
    "d,+12015550123,\n"
    "e,not a number,en\n"
    "f,+442079460000,en\n"  # fixed line: not SMS-capable
    "g,+49 151 23456789,xx-invalid-language-tag\n"
    ",,\n"  # blank row: skipped
)


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
    return call


def _db(home: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(home / "breach-notify.duckdb"), read_only=True)


def _scan(home: Path, run: Callable[..., object]) -> None:
    hits = privacy.scan([home], NUMBERS, texts=run.outputs)  # type: ignore[attr-defined]
    assert hits == []


def test_import_confirmed(tmp_path: Path, home: Path, run) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "list.csv"
    f.write_text(CSV)
    sent_before = len(SHARED.outbox)
    code, out, _ = run(
        "subscribers",
        "import",
        str(f),
        "--default-region",
        "GB",
        "--consent-source",
        "paper forms 2024, box 3",
        "--confirmed",
        "--json",
    )
    assert code == 0
    import json

    got = json.loads(out)
    assert got["imported"] == 4 and got["duplicate"] == 1 and got["invalid"] == 2
    assert got["status"] == "active"
    assert got["invalid_by_reason"] == {"not_a_number": 1, "not_sms_capable": 1}
    assert len(SHARED.outbox) == sent_before  # no code sent for confirmed imports
    with _db(home) as c:
        rows = c.execute(
            "SELECT status, language, consent_source, confirmed_at IS NOT NULL"
            " FROM subscribers ORDER BY language"
        ).fetchall()
        events = c.execute(
            "SELECT event, source, count(*) FROM subscriber_events GROUP BY ALL ORDER BY 1"
        ).fetchall()
    # The bad language tag falls back to the default; consent evidence recorded on every row.
    assert rows == [("active", "en", "paper forms 2024, box 3", True)] * 3 + [
        ("active", "fr", "paper forms 2024, box 3", True)
    ]
    assert events == [("confirmed", "import", 4), ("imported", "import", 4)]
    # Importing the same file again changes nothing.
    code, out, _ = run(
        "subscribers",
        "import",
        str(f),
        "--default-region",
        "GB",
        "--consent-source",
        "paper forms 2024",
        "--confirmed",
        "--json",
    )
    assert json.loads(out)["imported"] == 0 and json.loads(out)["duplicate"] == 5
    _scan(home, run)


def test_import_unconfirmed_sends_codes_and_keeps_pending(tmp_path: Path, home: Path, run) -> None:  # type: ignore[no-untyped-def]
    import json

    f = tmp_path / "list.csv"
    f.write_text("phone\n+447400123456\n+12015550123\n")
    before = len(SHARED.outbox)
    code, out, _ = run(
        "subscribers",
        "import",
        str(f),
        "--consent-source",
        "web form",
        "--gateway",
        "memory://",
        "--json",
    )
    assert code == 0, out
    got = json.loads(out)
    assert (got["imported"], got["status"], got["codes_sent"]) == (2, "pending", 2)
    sent = SHARED.outbox[before:]
    assert sorted(m.to.value for m, _, _ in sent) == sorted([GB_MOBILE, US_MOBILE])
    with _db(home) as c:
        assert c.execute("SELECT DISTINCT status FROM subscribers").fetchall() == [("pending",)]
    # The code from the SMS confirms.
    body = next(m.body for m, _, _ in sent if m.to.value == GB_MOBILE)
    import re

    the_code = re.search(r"\d{6}", body).group(0)  # type: ignore[union-attr]
    assert run("subscribers", "confirm", GB_MOBILE, the_code, "--json")[0] == 0
    # --confirmed import of a pending number activates it with the evidence.
    code, out, _ = run(
        "subscribers", "import", str(f), "--consent-source", "signed form", "--confirmed", "--json"
    )
    assert json.loads(out)["imported"] == 1 and json.loads(out)["duplicate"] == 1
    with _db(home) as c:
        assert c.execute("SELECT DISTINCT status FROM subscribers").fetchall() == [("active",)]
    _scan(home, run)


def test_import_never_reactivates_an_opt_out(tmp_path: Path, home: Path, run) -> None:  # type: ignore[no-untyped-def]
    import json

    f = tmp_path / "list.csv"
    f.write_text("phone\n+447400123456\n")
    run("subscribers", "import", str(f), "--consent-source", "x", "--confirmed")
    from breach_notify.settings import Settings
    from breach_notify.store.db import session
    from breach_notify.subscribers import consent

    with session(Settings(home=home)) as c:
        sid = c.execute("SELECT id FROM subscribers").fetchone()[0]  # type: ignore[index]
        consent.opt_out(c, sid, "sms")
    code, out, _ = run(
        "subscribers", "import", str(f), "--consent-source", "x", "--confirmed", "--json"
    )
    report = json.loads(out)
    assert code == 0 and report["suppressed"] == 1 and report["duplicate"] == 0
    with _db(home) as c:
        assert c.execute("SELECT status FROM subscribers").fetchall() == [("opted_out",)]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"name,number\nx,+447400123456\n", "no 'phone' column"),
        (b"", "no 'phone' column"),
        (b"phone\n\xff\xfe+447400123456\n", "not UTF-8"),
        (b'phone,language\n"+447400123456,en\n', "not valid CSV"),
        (None, "no such file"),
    ],
)
def test_bad_file_is_refused_and_nothing_changes(
    tmp_path: Path,
    home: Path,
    run,
    content: bytes | None,
    problem: str,  # type: ignore[no-untyped-def]
) -> None:
    import json

    good = tmp_path / "good.csv"
    good.write_text("phone\n+447911123456\n")
    assert run("subscribers", "import", str(good), "--consent-source", "x", "--confirmed")[0] == 0
    with _db(home) as c:
        before = snapshot(c)
    f = tmp_path / "bad.csv"
    if content is not None:
        f.write_bytes(content)
    code, out, err = run(
        "subscribers", "import", str(f), "--consent-source", "x", "--confirmed", "--json"
    )
    assert code == 2
    assert problem in json.loads(out)["error"] and problem in err
    with _db(home) as c:
        assert snapshot(c) == before
    _scan(home, run)


def test_consent_source_is_required(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "l.csv"
    f.write_text("phone\n+447400123456\n")
    assert run("subscribers", "import", str(f), "--confirmed")[0] == 2
    assert run("subscribers", "import", str(f), "--confirmed", "--consent-source", "  ")[0] == 2


def test_consent_source_with_a_phone_number_is_refused(tmp_path: Path, home: Path, run) -> None:  # type: ignore[no-untyped-def]
    import json

    f = tmp_path / "l.csv"
    f.write_text("phone\n+447400123456\n")
    for source, named in (
        ("call-centre, caller +44 7911 123456", "contains a phone number"),
        ("x" * 201, "at most 200"),
    ):
        code, out, err = run(
            "subscribers", "import", str(f), "--confirmed", "--consent-source", source, "--json"
        )
        assert code == 2 and named in json.loads(out)["error"]
        assert "7911" not in out + err
    with _db(home) as c:
        assert c.execute("SELECT count(*) FROM subscribers").fetchone() == (0,)
    assert privacy.scan([home], [*NUMBERS, "+447911123456"], texts=run.outputs) == []

"""The outbox owns every notice state transition: no other module writes ``notices.state``."""

from __future__ import annotations

import re
from pathlib import Path

import breach_notify

ROOT = Path(breach_notify.__file__).parent
OUTBOX = ROOT / "notify" / "outbox.py"
_UPDATE_NOTICES = re.compile(r"\bUPDATE\s+notices\b", re.IGNORECASE)


def modules_updating_notices(root: Path) -> list[str]:
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.suffix in (".py", ".sql")
        and "migrations" not in path.parts
        and _UPDATE_NOTICES.search(path.read_text(encoding="utf-8"))
    )


def test_only_the_outbox_updates_notices() -> None:
    assert modules_updating_notices(ROOT) == [str(OUTBOX.relative_to(ROOT))]


def test_the_check_finds_an_update_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "notify").mkdir()
    (tmp_path / "notify" / "outbox.py").write_text('"UPDATE notices SET state = 1"')
    (tmp_path / "stray.py").write_text("q = \"update  notices set state = 'sent'\"")
    assert modules_updating_notices(tmp_path) == ["notify/outbox.py", "stray.py"]

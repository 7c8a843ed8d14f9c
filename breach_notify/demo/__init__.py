"""The bundled demo: a synthetic inbox (two breaches) and subscribers, fictional numbers only.

:func:`prepare` makes a data dir ready for ``demo``: a keyring if there is none, the subscribers
imported as confirmed (consent source ``demo``). The inbox is read in place, never copied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from breach_notify.crypto import Keyring
from breach_notify.settings import Settings
from breach_notify.store.db import session

DATA = Path(__file__).with_name("data")
INBOX = DATA / "inbox"
SUBSCRIBERS = DATA / "subscribers.csv"


def prepare(settings: Settings) -> tuple[Path, dict[str, Any]]:
    """Keyring (created if missing) and subscribers; returns the inbox and the import counts."""
    from breach_notify.subscribers.importer import import_file

    settings.ensure_home()
    path = settings.keyring_path
    ring = Keyring.load(path) if path.exists() else Keyring.create(path)
    with session(settings) as conn:
        report = import_file(
            conn, ring, settings, SUBSCRIBERS, consent_source="demo", confirmed=True, gateway=None
        )
    return INBOX, report.as_dict()

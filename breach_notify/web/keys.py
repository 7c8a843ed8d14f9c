"""The keyring as the web process holds it: loaded once, reloaded when the file is replaced.

It makes a sender's pseudonyms (every pseudonym key version) and seals a JOIN's number under the
active seal key (the MessageSid as associated data) for the journal.

Requests never read the keyring file. At most every ``CHECK_SECONDS`` the file's identity
(inode, size, mtime) is compared with the loaded one; a rotation (a new file renamed into place)
is picked up then. A keyring that fails to load keeps the previous one in service (and is
logged without detail).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path

from breach_notify.crypto import Keyring, KeyringError, Pseudonymizer, Sealer
from breach_notify.numbers import E164, InvalidNumber, parse_number

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class Keys:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._from_env = bool(os.environ.get("BREACH_NOTIFY_KEYRING_JSON"))
        self._identity = _identity(path)
        self._checked = time.monotonic()
        self._install(Keyring.load(path))
        self.reloads = 0

    def _install(self, ring: Keyring) -> None:
        self._pseudonymizers: list[Pseudonymizer] = [
            ring.pseudonymizer(kid) for kid in ring.key_ids["pseudonym"]
        ]
        self._sealer: Sealer = ring.sealer()

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._from_env or now - self._checked < CHECK_SECONDS:
            return
        with self._lock:
            if now - self._checked < CHECK_SECONDS:
                return
            self._checked = now
            seen = _identity(self.path)
            if seen == self._identity:
                return
            try:
                ring = Keyring.load(self.path)
            except KeyringError:
                log.error("the keyring changed but does not load; still using the previous one")
                return
            self._identity = seen
            self._install(ring)
            self.reloads += 1
            log.info("keyring reloaded")

    def pseudonyms(self, raw: str) -> dict[str, str]:
        """``key id → hex pseudonym`` of the number ``raw`` under every pseudonym key version;
        empty when ``raw`` is not a valid number (a short code, an alphanumeric sender)."""
        number = self.number(raw)
        return {} if number is None else self.pseudonyms_of(number)

    @staticmethod
    def number(raw: str) -> E164 | None:
        """``raw`` as a valid number, or None (a short code, an alphanumeric sender)."""
        try:
            return parse_number(raw)
        except InvalidNumber:
            return None

    def pseudonyms_of(self, number: E164) -> dict[str, str]:
        self._refresh()
        return {p.key_id: p.pseudonym(number.value).hex() for p in self._pseudonymizers}

    def seal(self, number: E164, message_id: str) -> tuple[str, bytes]:
        """``number`` sealed under the active seal key with ``message_id`` as associated data:
        (key id, blob). Opened by the applier (``notify.applier``) with the same id."""
        self._refresh()
        sealed = self._sealer.seal(number.value, row_id=message_id)
        return sealed.key_id, sealed.blob

    def recipient_pseudonyms(self, raw: str) -> dict[str, str]:
        """:meth:`pseudonyms` of a status callback's ``To``, which Twilio sends in E.164: taken
        as it is when it has that shape (no ``phonenumbers`` parse per callback). It only serves
        to find an in-flight notice, so a number that is not canonical merely finds none."""
        if not _E164.fullmatch(raw):
            return self.pseudonyms(raw)
        self._refresh()
        return {p.key_id: p.pseudonym(raw).hex() for p in self._pseudonymizers}

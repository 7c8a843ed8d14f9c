"""The keyring: versioned keys per purpose, in a 0600 JSON file or the environment.

Purposes: ``pseudonym`` (HMAC of numbers), ``seal`` (AES-GCM of subscriber numbers), ``code``
(HMAC of confirmation codes), ``oprf`` (seeds of the self-check's OPRF keys; optional, so older
keyrings still load: made by ``keys init``, ``keys rotate --oprf`` or on first need). Each
purpose has an active key id and may keep older versions.
``BREACH_NOTIFY_KEYRING_JSON`` (the file's content) takes precedence over the file, for
containers whose secrets arrive as environment variables.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from breach_notify.crypto.pseudonymizer import Pseudonymizer
from breach_notify.crypto.sealer import Sealer
from breach_notify.errors import BadInput

if TYPE_CHECKING:
    from breach_notify.crypto.oprf import OprfServer

PURPOSES = ("pseudonym", "seal", "code", "oprf")
_OPTIONAL = ("oprf",)
_PREFIX = {"pseudonym": "p", "seal": "s", "code": "c", "oprf": "o"}
_FORMAT = "breach-notify-keyring/1"
ENV_VAR = "BREACH_NOTIFY_KEYRING_JSON"


class KeyringError(BadInput):
    """The keyring is missing, malformed, exposed, or would be overwritten."""


class Keyring:
    """Load with :meth:`load`, create with :meth:`create`. Key bytes never leave this package."""

    def __init__(self, data: dict[str, Any], path: Path | None) -> None:
        self._path = path
        self._active: dict[str, str] = {}
        self._keys: dict[str, dict[str, bytes]] = {}
        try:
            if data.get("format") != _FORMAT:
                raise ValueError
            for purpose in PURPOSES:
                if purpose in _OPTIONAL and purpose not in data:
                    continue
                section = data[purpose]
                self._keys[purpose] = {
                    kid: base64.b64decode(v, validate=True) for kid, v in section["keys"].items()
                }
                self._active[purpose] = str(section["active"])
                if self._active[purpose] not in self._keys[purpose]:
                    raise ValueError
        except (KeyError, ValueError, TypeError, AttributeError):
            raise KeyringError(
                "the keyring is malformed; restore it from backup (lost keys cannot be rebuilt)"
            ) from None

    def __repr__(self) -> str:
        return f"Keyring(path={self._path!s}, key_ids={self.key_ids!r})"

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path) -> Keyring:
        """Create a new keyring file (mode 0600). Refuses to overwrite an existing one."""
        if path.exists():
            raise KeyringError(
                f"a keyring already exists at {path}; refusing to overwrite it "
                "(use 'keys rotate' for new key versions)"
            )
        data: dict[str, Any] = {"format": _FORMAT}
        for purpose in PURPOSES:
            kid = f"{_PREFIX[purpose]}1"
            data[purpose] = {"active": kid, "keys": {kid: _new_key()}}
        ring = cls(data, path)
        ring._write(exclusive=True)
        return ring

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Load from ``BREACH_NOTIFY_KEYRING_JSON`` if set, else from ``path`` (must be 0600)."""
        env = os.environ.get(ENV_VAR)
        if env:
            try:
                return cls(json.loads(env), None)
            except json.JSONDecodeError:
                raise KeyringError(f"{ENV_VAR} is not valid JSON") from None
        try:
            st = path.stat()
        except FileNotFoundError:
            raise KeyringError(
                f"no keyring at {path}; create one with 'breach-notify keys init'"
            ) from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyringError(
                f"keyring {path} is readable by group or others; fix with 'chmod 600 {path}'"
            )
        try:
            return cls(json.loads(path.read_text()), path)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            raise KeyringError(f"keyring {path} cannot be read as JSON; restore it") from None

    # -- use ----------------------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """The file this keyring was loaded from; None when it came from the environment."""
        return self._path

    @property
    def key_ids(self) -> dict[str, list[str]]:
        return {p: sorted(self._keys[p]) for p in PURPOSES if p in self._keys}

    def active_id(self, purpose: str) -> str:
        return self._active[purpose]

    def pseudonymizer(self, key_id: str | None = None) -> Pseudonymizer:
        """The pseudonymizer for ``key_id`` (default: the active pseudonym key)."""
        kid = key_id or self._active["pseudonym"]
        if kid not in self._keys["pseudonym"]:
            raise KeyringError(f"pseudonym key {kid!r} is not in the keyring")
        return Pseudonymizer(kid, self._keys["pseudonym"][kid])

    def code_hasher(self) -> Pseudonymizer:
        """Keyed hash for confirmation codes (HMAC under the active ``code`` key)."""
        kid = self._active["code"]
        return Pseudonymizer(kid, self._keys["code"][kid])

    def sealer(self) -> Sealer:
        return Sealer(self._active["seal"], self._keys["seal"])

    def oprf_server(self, key_id: str | None = None) -> OprfServer:
        """The self-check's OPRF key ``key_id`` (default: the active one)."""
        from breach_notify.crypto.oprf import OprfServer  # loads libsodium: only when needed

        keys = self._keys.get("oprf", {})
        kid = key_id or self._active.get("oprf")
        if kid is None or kid not in keys:
            raise KeyringError(
                f"OPRF key {kid or '(active)'} is not in the keyring; "
                "add one with 'breach-notify keys rotate --oprf'"
            )
        return OprfServer(kid, keys[kid])

    def ensure_oprf(self) -> str:
        """The active OPRF key id, adding a first OPRF key (and saving) to an older keyring."""
        if "oprf" in self._active:
            return self._active["oprf"]
        return self.rotate("oprf")

    def rotate(self, purpose: str) -> str:
        """Add a new active key version for ``purpose``, keep the old ones, save. Returns its id."""
        if purpose not in PURPOSES:
            raise KeyringError(f"unknown key purpose {purpose!r}; choose one of {PURPOSES}")
        if self._path is None:
            raise KeyringError(
                f"the keyring comes from {ENV_VAR}; rotate in the file it was made from"
            )
        keys = self._keys.setdefault(purpose, {})
        n = 1 + max((int(k[len(_PREFIX[purpose]) :]) for k in keys), default=0)
        kid = f"{_PREFIX[purpose]}{n}"
        keys[kid] = base64.b64decode(_new_key())
        self._active[purpose] = kid
        self._write(exclusive=False)
        return kid

    # -- private ------------------------------------------------------------------------------

    def _write(self, *, exclusive: bool) -> None:
        assert self._path is not None
        data: dict[str, Any] = {"format": _FORMAT}
        for purpose in self._keys:
            data[purpose] = {
                "active": self._active[purpose],
                "keys": {k: base64.b64encode(v).decode() for k, v in self._keys[purpose].items()},
            }
        text = json.dumps(data, indent=2)
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self._path if exclusive else self._path.with_suffix(".tmp")
        if not exclusive:
            target.unlink(missing_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(target, flags, 0o600)
        except FileExistsError:
            raise KeyringError(
                f"a keyring already exists at {target}; refusing to overwrite it"
            ) from None
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if not exclusive:
            os.replace(target, self._path)


def _new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()

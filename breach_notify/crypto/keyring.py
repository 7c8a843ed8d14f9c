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
import re
import stat
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from breach_notify.crypto.pseudonymizer import Pseudonymizer
from breach_notify.crypto.sealer import Sealer
from breach_notify.errors import BadInput, OperationalError

if TYPE_CHECKING:
    from breach_notify.crypto.oprf import OprfServer

PURPOSES = ("pseudonym", "seal", "code", "oprf")
_OPTIONAL = ("oprf",)
_PREFIX = {"pseudonym": "p", "seal": "s", "code": "c", "oprf": "o"}
_FORMAT = "breach-notify-keyring/1"
ENV_VAR = "BREACH_NOTIFY_KEYRING_JSON"
KEY_BYTES = 32
MAX_KEYRING_BYTES = 1 << 20
"""A keyring holds a few hundred bytes per key version; anything beyond this is not one."""
_KEY_ID = {p: re.compile(rf"{_PREFIX[p]}[1-9][0-9]{{0,8}}") for p in PURPOSES}


class KeyringError(BadInput):
    """The keyring is missing, malformed, exposed, or would be overwritten."""


class Keyring:
    """Load with :meth:`load`, create with :meth:`create`. Key bytes never leave this package."""

    def __init__(self, data: dict[str, Any], path: Path | None) -> None:
        self._path = path
        self._backup: Path | None = None
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
        for purpose in PURPOSES:
            for kid, key in self._keys.get(purpose, {}).items():  # optional ones may be absent
                if not _KEY_ID[purpose].fullmatch(kid):
                    raise KeyringError(
                        f"the keyring has a {purpose} key id that is not "
                        f"'{_PREFIX[purpose]}<number>'; restore the keyring from backup"
                    )
                if len(key) != KEY_BYTES:
                    raise KeyringError(
                        f"{purpose} key {kid} in the keyring is {len(key)} bytes, not {KEY_BYTES}; "
                        "keys are 32 random bytes, base64-encoded. Restore the keyring from "
                        "backup, or create a new one with 'keys init' if nothing depends on it"
                    )

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
            if len(env) > MAX_KEYRING_BYTES:
                raise KeyringError(
                    f"{ENV_VAR} is larger than {MAX_KEYRING_BYTES} bytes; set it to the content "
                    "of the keyring file"
                )
            return cls(_parse(env, ENV_VAR), None)
        return cls(_read_json(path), path)

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
        key = base64.b64decode(_new_key())
        keys[kid] = key
        self._active[purpose] = kid
        self._write(exclusive=False)
        self._confirm_saved(purpose, kid, key)
        return kid

    @property
    def backup_path(self) -> Path | None:
        """The copy of the keyring as it was before the last :meth:`rotate`, if any."""
        return self._backup

    # -- private ------------------------------------------------------------------------------

    def _serialise(self) -> bytes:
        data: dict[str, Any] = {"format": _FORMAT}
        for purpose in self._keys:
            data[purpose] = {
                "active": self._active[purpose],
                "keys": {k: base64.b64encode(v).decode() for k, v in self._keys[purpose].items()},
            }
        return json.dumps(data, indent=2).encode()

    def _write(self, *, exclusive: bool) -> None:
        assert self._path is not None
        if not exclusive:
            self._backup = _replace_through_links(self._path, self._serialise())
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if self._path.parent.is_dir():
                raise KeyringError(
                    f"a keyring already exists at {self._path}; refusing to overwrite it"
                ) from None
            raise KeyringError(
                f"cannot create the keyring {self._path}: a file is in the way of its directory; "
                "pass --keyring (or --home) naming a path in a directory"
            ) from None
        except NotADirectoryError:
            raise KeyringError(
                f"cannot create the keyring {self._path}: a file is in the way of its directory; "
                "pass --keyring (or --home) naming a path in a directory"
            ) from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(self._serialise())
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(self._path.parent)

    def _confirm_saved(self, purpose: str, kid: str, key: bytes) -> None:
        """Read the keyring back through its path, as the next process will; the new key must
        be there and active, or nothing may be migrated to it."""
        assert self._path is not None
        saved = Keyring(_read_json(self._path), self._path)
        if saved._keys[purpose].get(kid) != key or saved._active[purpose] != kid:
            raise OperationalError(
                f"the new {purpose} key {kid} is not in {self._path} after writing it; nothing "
                "was migrated. Check that the file (or its link target) is writable and retry"
            )


def _read_json(path: Path) -> Any:
    """The parsed content of the keyring file at ``path`` (following links), checked: a regular
    file (a FIFO would block the read forever), owner-only, of a bounded size."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyringError(
            f"no keyring at {path}; create one with 'breach-notify keys init'"
        ) from None
    except OSError as exc:
        raise KeyringError(
            f"keyring {path} cannot be reached ({exc.strerror}); point --keyring "
            "(BREACH_NOTIFY_KEYRING) at the keyring file"
        ) from None
    _check_file(path, st)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise KeyringError(f"keyring {path} cannot be opened ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        _check_file(path, os.fstat(fd))  # the file opened is the file checked
        data = fh.read(MAX_KEYRING_BYTES + 1)
    if len(data) > MAX_KEYRING_BYTES:
        raise KeyringError(
            f"keyring {path} is larger than {MAX_KEYRING_BYTES} bytes, so it is not a keyring; "
            "point --keyring at the keyring file or restore it from backup"
        )
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise KeyringError(f"keyring {path} cannot be read as JSON; restore it") from None
    return _parse(text, f"keyring {path}")


def _check_file(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _NOT_FILES if test(st.st_mode)), "not a regular file")
        raise KeyringError(
            f"keyring {path} is {kind}; point --keyring (BREACH_NOTIFY_KEYRING) at the keyring file"
        )
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyringError(
            f"keyring {path} is readable by group or others; fix with 'chmod 600 {path}'"
        )
    if st.st_size > MAX_KEYRING_BYTES:
        raise KeyringError(
            f"keyring {path} is larger than {MAX_KEYRING_BYTES} bytes, so it is not a keyring; "
            "point --keyring at the keyring file or restore it from backup"
        )


_NOT_FILES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe), not a file"),
    (stat.S_ISSOCK, "a socket, not a file"),
    (stat.S_ISCHR, "a device, not a file"),
    (stat.S_ISBLK, "a device, not a file"),
)


def _parse(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise KeyringError(f"{what} cannot be read as JSON; restore it") from None


def _replace_through_links(path: Path, data: bytes) -> Path:
    """Atomically replace the file ``path`` leads to (following every symlink, so a keyring kept
    on a mounted volume and linked from the data dir stays a link), keeping a 0600 backup of
    the old content next to it. Returns the backup's path.

    Order: backup written and fsynced, new content in a temp file in the target's directory,
    fsynced, renamed over the target, directory fsynced. A failure leaves the target as it was.
    """
    target = Path(os.path.realpath(path))
    directory = target.parent
    try:
        old = target.read_bytes()
        backup = _write_new(directory, f"{target.name}.bak-{_stamp()}", old)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(directory)
    except OSError as exc:
        raise OperationalError(
            f"could not write the keyring {target} ({exc.strerror or type(exc).__name__}); "
            "it is unchanged and nothing was migrated. Make its directory writable and retry"
        ) from None
    return backup


def _write_new(directory: Path, name: str, data: bytes) -> Path:
    """Create ``directory/name`` (0600, never overwriting), write ``data`` and fsync it."""
    for n in range(100):
        path = directory / (name if n == 0 else f"{name}-{n}")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return path
    raise FileExistsError(name)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()

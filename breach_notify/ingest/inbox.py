"""The inbox: one folder per breach, holding its dump files and a ``breach.toml``.

    INBOX/
      fb-2021-cz/
        breach.toml        title = "Facebook 2021, Czech Republic"
        Czech Republic.txt format = "facebook-2021"   (or "csv", with phone_column)
                           default_region = "CZ"  k = 50   (both optional)
                           self_check = true  (optional: tags for the private self-check)

The folder name is the breach id. Files already ingested into that breach are recognised by
content hash (table ``breach_files``) and skipped; with ``self_check = true``, those not yet
tagged under the active OPRF key are planned for the self-check's re-tag pass (``Plan.retag``).
Hidden files and ``breach.toml`` are not data.
A folder, file or ``breach.toml`` that is a symlink to outside the inbox is refused unless
``BREACH_NOTIFY_INBOX_FOLLOW_SYMLINKS`` allows it; an unknown ``breach.toml`` key is refused.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import duckdb

from breach_notify import text_rules
from breach_notify.errors import BadInput
from breach_notify.ingest.formats import content_digest
from breach_notify.ingest.options import IngestOptions, check_breach_id

MANIFEST = "breach.toml"
#: The keys a ``breach.toml`` may hold.
KEYS = ("title", "format", "phone_column", "default_region", "k", "self_check")


@dataclass(frozen=True)
class BreachFolder:
    """One breach of the inbox: its ingest options (from ``breach.toml``) and data files."""

    options: IngestOptions
    files: tuple[Path, ...]

    @property
    def breach_id(self) -> str:
        return self.options.breach_id


@dataclass(frozen=True)
class Plan:
    """A breach's files not yet ingested: options, paths and a count (no personal data, so
    Prefect tasks may carry it)."""

    options: IngestOptions
    files: tuple[Path, ...]
    files_skipped: int = 0
    #: Files already ingested to read again for the self-check's tags (``self_check = true``
    #: and not yet tagged under the active OPRF key); given to the local ingest path.
    retag: tuple[Path, ...] = ()


def read_inbox(inbox: Path, *, follow_symlinks: bool = False) -> list[BreachFolder]:
    """Every breach folder of ``inbox``, sorted by id. Raises ``BadInput`` naming the fix.

    ``follow_symlinks``: accept folders and files that are symlinks to outside the inbox.
    """
    if not inbox.is_dir():
        raise BadInput(f"inbox {inbox} is not a directory; create it or pass --inbox DIR")
    root = inbox.resolve()
    folders = []
    for sub in sorted(p for p in inbox.iterdir() if p.is_dir() and not p.name.startswith(".")):
        _check_name(sub)
        _inside(sub, root, follow_symlinks)
        manifest = sub / MANIFEST
        if not manifest.is_file():
            raise BadInput(f"{sub} has no {MANIFEST}; add one with at least title and format")
        _inside(manifest, root, follow_symlinks)
        folders.append(read_folder(sub, root=root, follow_symlinks=follow_symlinks))
    return folders


def _check_name(folder: Path) -> None:
    """A folder name holding a phone number is refused before any message quotes it (the
    options check it again as the breach id)."""
    text_rules.check_breach_id(
        folder.name, f"an inbox folder of {folder.parent} (its name is the breach id)"
    )


def _inside(path: Path, root: Path, follow_symlinks: bool) -> None:
    """``BadInput`` when ``path`` resolves to outside ``root`` (through a symlink) and such
    links are not to be followed."""
    if not follow_symlinks and not path.resolve().is_relative_to(root):
        raise BadInput(
            f"{path} is a symlink to outside the inbox; move what it points to into the inbox, "
            "or set BREACH_NOTIFY_INBOX_FOLLOW_SYMLINKS=true to follow such links"
        )


def read_folder(
    folder: Path, *, root: Path | None = None, follow_symlinks: bool = False
) -> BreachFolder:
    """One breach folder: the folder name is the breach id, ``breach.toml`` the options; its
    files must lie inside ``root`` (default: the folder's parent, the inbox) unless
    ``follow_symlinks``."""
    root = root if root is not None else folder.parent.resolve()
    _check_name(folder)
    try:
        check_breach_id(folder.name)
    except BadInput as exc:
        raise BadInput(f"inbox folder {folder.name!r} is not a usable breach id: {exc}") from None
    where = folder / MANIFEST
    _inside(where, root, follow_symlinks)
    try:
        manifest = tomllib.loads(where.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{where} is not valid TOML ({type(exc).__name__})") from None
    unknown = sorted(set(manifest) - set(KEYS))
    if unknown:
        raise BadInput(
            f"{where}: unknown key {unknown[0]!r}; the keys are {', '.join(KEYS)} "
            "(check its spelling)"
        )
    title = manifest.get("title")
    if not isinstance(title, str) or not title:
        raise BadInput(f"{where} needs a title")
    if manifest.get("format") == "csv" and not isinstance(manifest.get("phone_column"), str):
        raise BadInput(f"{where}: a csv breach needs phone_column")
    try:
        options = IngestOptions(
            breach_id=folder.name,
            fmt=manifest.get("format"),  # type: ignore[arg-type]
            title=title,
            phone_column=manifest.get("phone_column"),
            default_region=manifest.get("default_region"),
            k=manifest.get("k"),
            self_check=manifest.get("self_check", False),
        )
    except BadInput as exc:
        raise BadInput(f"{where}: {exc}") from None
    files = tuple(
        sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
        )
    )
    for path in files:
        _inside(path, root, follow_symlinks)
    return BreachFolder(options, files)


def plan(
    conn: duckdb.DuckDBPyConnection, folder: BreachFolder, oprf_key: str | None = None
) -> Plan:
    """The folder's files not yet ingested into its breach, and with ``self_check`` those
    held but not tagged under ``oprf_key`` (the active OPRF key; None: not tagged at all)."""
    fresh = new_files(conn, folder)
    retag: list[Path] = []
    if folder.options.self_check:
        tagged = {
            str(row[0])
            for row in conn.execute(
                "SELECT content_sha256 FROM selfcheck_files"
                " WHERE breach_id = ? AND oprf_key_id = ?",
                [folder.breach_id, oprf_key or ""],
            ).fetchall()
        }
        held = {
            str(row[0])
            for row in conn.execute(
                "SELECT content_sha256 FROM breach_files WHERE breach_id = ?", [folder.breach_id]
            ).fetchall()
        }
        seen: set[str] = set()
        for path in folder.files:
            if path in fresh:
                continue
            digest = content_digest(path)
            if digest in held and digest not in tagged and digest not in seen:
                retag.append(path)
                seen.add(digest)
    return Plan(folder.options, tuple(fresh), len(folder.files) - len(fresh), tuple(retag))


def new_files(conn: duckdb.DuckDBPyConnection, folder: BreachFolder) -> list[Path]:
    """The files of ``folder`` whose content is not yet recorded for its breach."""
    known = {
        row[0]
        for row in conn.execute(
            "SELECT content_sha256 FROM breach_files WHERE breach_id = ?", [folder.breach_id]
        ).fetchall()
    }
    fresh: list[Path] = []
    seen: set[str] = set()
    for path in folder.files:
        digest = content_digest(path)  # the same identity as the ingest's
        if digest not in known and digest not in seen:
            fresh.append(path)
            seen.add(digest)
    return fresh

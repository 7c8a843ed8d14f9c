"""The inbox: one folder per breach, holding its dump files and a ``breach.toml``.

    INBOX/
      fb-2021-cz/
        breach.toml        title = "Facebook 2021, Czech Republic"
        Czech Republic.txt format = "facebook-2021"   (or "csv", with phone_column)
                           default_region = "CZ"  k = 50   (both optional)
                           self_check = true  (optional: tags for the private self-check)

The folder name is the breach id. Files already ingested into that breach are recognised by
content hash (table ``breach_files``) and skipped. Hidden files and ``breach.toml`` are not data.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from breach_notify import text_rules
from breach_notify.errors import BadInput
from breach_notify.ingest.formats import content_digest

MANIFEST = "breach.toml"
FORMATS = ("facebook-2021", "csv")
_BREACH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class BreachFolder:
    """One breach of the inbox: its id, manifest values and data files (sorted)."""

    breach_id: str
    title: str
    fmt: str
    files: tuple[Path, ...]
    phone_column: str | None = None
    default_region: str | None = None
    k: int | None = None
    self_check: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def read_inbox(inbox: Path) -> list[BreachFolder]:
    """Every breach folder of ``inbox``, sorted by id. Raises ``BadInput`` naming the fix."""
    if not inbox.is_dir():
        raise BadInput(f"inbox {inbox} is not a directory; create it or pass --inbox DIR")
    folders = []
    for sub in sorted(p for p in inbox.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (sub / MANIFEST).is_file():
            raise BadInput(f"{sub} has no {MANIFEST}; add one with at least title and format")
        folders.append(read_folder(sub))
    return folders


def read_folder(folder: Path) -> BreachFolder:
    """One breach folder: validates the id and ``breach.toml``."""
    if not _BREACH_ID.match(folder.name):
        raise BadInput(
            f"inbox folder {folder.name!r} is not a usable breach id; use letters, digits, "
            "'.', '_' or '-' (at most 64)"
        )
    try:
        manifest = tomllib.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{folder / MANIFEST} is not valid TOML ({type(exc).__name__})") from None
    title = manifest.get("title")
    fmt = manifest.get("format")
    if not isinstance(title, str) or not title:
        raise BadInput(f"{folder / MANIFEST} needs a title")
    text_rules.check_title(title, f"{folder / MANIFEST}: title")
    text_rules.check_breach_id(folder.name, f"inbox folder {folder}")
    if fmt not in FORMATS:
        raise BadInput(f"{folder / MANIFEST}: format must be one of {', '.join(FORMATS)}")
    phone_column = manifest.get("phone_column")
    if fmt == "csv" and not isinstance(phone_column, str):
        raise BadInput(f"{folder / MANIFEST}: a csv breach needs phone_column")
    region = manifest.get("default_region")
    if region is not None and (not isinstance(region, str) or len(region) != 2):
        raise BadInput(f"{folder / MANIFEST}: default_region must be a two-letter region code")
    k = manifest.get("k")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 2):
        raise BadInput(f"{folder / MANIFEST}: k must be an integer of at least 2")
    self_check = manifest.get("self_check", False)
    if not isinstance(self_check, bool):
        raise BadInput(f"{folder / MANIFEST}: self_check must be true or false")
    files = tuple(
        sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
        )
    )
    known = {"title", "format", "phone_column", "default_region", "k", "self_check"}
    return BreachFolder(
        breach_id=folder.name,
        title=title,
        fmt=fmt,
        files=files,
        phone_column=phone_column,
        default_region=region.upper() if region else None,
        k=k,
        self_check=self_check,
        extra={key: v for key, v in manifest.items() if key not in known},
    )


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

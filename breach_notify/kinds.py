"""Kinds of field a dump row can expose, and their bits in a breach's ``kinds`` mask.

Shared by the ingest (which sets the bits) and the notices and reports (which read them).
"""

from __future__ import annotations

KINDS: tuple[str, ...] = (
    "account_id",
    "name",
    "gender",
    "location",
    "relationship",
    "work",
    "date",
    "email",
    "birthday",
    "other",
)
#: Bit of each kind in ``breach_pseudonyms.kinds``.
BIT: dict[str, int] = {k: 1 << i for i, k in enumerate(KINDS)}

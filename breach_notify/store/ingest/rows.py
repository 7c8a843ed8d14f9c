"""Row SQL: split a dump row into its phone value and the bitmask of exposed kinds of field.

Both builders return a SELECT over ``bn_src`` with columns ``phone`` (the raw value, trimmed),
``kinds`` (USMALLINT) and ``pre`` (a verdict decided before normalisation: ``truncated_line``,
``empty``, or the internal markers ``_header`` / ``_blank`` for lines that are not rows).
"""

from __future__ import annotations

import re

KINDS = (
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
BIT = {k: 1 << i for i, k in enumerate(KINDS)}
HEADER_WORDS = ("phone", "phone_number", "phonenumber", "msisdn", "mobile", "tel", "number")
_WS = "' ' || chr(9) || chr(13)"
#: ``date`` as ``M/D/YYYY H:MM:SS AM`` followed by ``email`` and ``birthday`` (no colons).
_DATE = r":\d{1,2}/\d{1,2}/\d{2,4} \d{1,2}:\d{2}:\d{2}(?: ?[AaPp][Mm])?:[^:]*:[^:]*$"

#: CSV column-name keywords → kind (first match wins); other columns count as ``other``.
_CSV_KINDS = (
    (r"e-?mail", "email"),
    (r"birth|dob|bday", "birthday"),
    (r"gender|sex", "gender"),
    (r"name|first|last|surname", "name"),
    (r"city|town|location|address|country|region|zip|postcode", "location"),
    (r"relationship|marital", "relationship"),
    (r"work|company|employer|job|occupation", "work"),
    (r"date|time|created", "date"),
    (r"(^|_)id$|user_?id|account", "account_id"),
)


def kind_of_column(name: str) -> str:
    """The kind of field a CSV column holds, judged by its name."""
    low = name.strip().lower()
    for pattern, kind in _CSV_KINDS:
        if re.search(pattern, low):
            return kind
    return "other"


def _filled(expr: str) -> str:
    """Non-empty: at least one character (a whitespace-only value counts as exposed too)."""
    return f"(coalesce({expr}, '') <> '')"


def facebook_sql() -> str:
    """``phone:fb_id:first:last:gender:current_city:hometown:relationship:work:date:email:birthday``.

    ``date`` may hold ``M/D/YYYY H:MM:SS AM`` (three tokens) and ``work`` any number of colons:
    the first eight fields are read from the left, ``birthday``, ``email`` and ``date`` from the
    right, and ``work`` is what remains. Fewer than twelve tokens: ``truncated_line``.
    Arithmetic, not CASE chains: this runs once per row of hundreds of millions.
    """
    bits = [
        (_filled("t[2]"), BIT["account_id"]),
        (f"({_filled('t[3]')} OR {_filled('t[4]')})", BIT["name"]),
        (_filled("t[5]"), BIT["gender"]),
        (f"({_filled('t[6]')} OR {_filled('t[7]')})", BIT["location"]),
        (_filled("t[8]"), BIT["relationship"]),
        (f"(n - 2 - dt > 9 OR {_filled('t[9]')})", BIT["work"]),
        (f"(dt = 3 OR {_filled('t[n - 2]')})", BIT["date"]),
        (_filled("t[n - 1]"), BIT["email"]),
        (_filled("t[n]"), BIT["birthday"]),
    ]
    kinds = " + ".join(f"{cond}::INTEGER * {bit}" for cond, bit in bits)
    words = ", ".join(f"'{w}'" for w in HEADER_WORDS)
    return f"""
    SELECT phone,
        CASE WHEN n < 12 THEN 0 ELSE ({kinds}) END::USMALLINT AS kinds,
        CASE WHEN n < 12 THEN (CASE WHEN trim(line, {_WS}) = '' THEN '_blank'
                                    ELSE 'truncated_line' END)
             WHEN phone = '' THEN 'empty'
             WHEN NOT regexp_matches(phone, '^[0-9]') AND lower(phone) IN ({words})
             THEN '_header' END AS pre
    FROM (
        SELECT line, t, n, trim(t[1], {_WS}) AS phone,
            CASE WHEN n >= 14 AND regexp_matches(line, '{_DATE}') THEN 3 ELSE 1 END AS dt
        FROM (SELECT line, string_split(line, ':') AS t, len(t) AS n FROM bn_src)
    )
    """


def csv_sql(columns: tuple[str, ...], phone_index: int) -> str:
    """Columns ``c0``… of a CSV; ``phone_index`` is the phone column."""
    parts = []
    for i, name in enumerate(columns):
        if i != phone_index:
            parts.append(
                f"(CASE WHEN {_filled(f'c{i}')} THEN {BIT[kind_of_column(name)]} ELSE 0 END)"
            )
    kinds = " | ".join(parts) or "0"
    return f"""
    SELECT phone, ({kinds})::USMALLINT AS kinds,
        CASE WHEN phone = '' THEN 'empty' END AS pre
    FROM (SELECT *, trim(c{phone_index}, {_WS}) AS phone FROM bn_src)
    """

"""Row SQL: split a dump row into its phone value and the bitmask of exposed kinds of field.

Both builders return a SELECT over ``bn_src`` with columns ``phone`` (the raw value, trimmed),
``kinds`` (USMALLINT) and ``pre`` (a verdict decided before normalisation: ``truncated_line``,
``empty``, or the internal markers ``_header`` / ``_blank`` for lines that are not rows).
"""

from __future__ import annotations

import functools
import re

from breach_notify.kinds import BIT, KINDS

__all__ = ["BIT", "KINDS", "csv_sql", "facebook_sql", "kind_of_column"]

HEADER_WORDS = ("phone", "phone_number", "phonenumber", "msisdn", "mobile", "tel", "number")
_WS = "' ' || chr(9) || chr(13)"
#: ``date`` as ``M/D/YYYY H:MM:SS AM`` (its three colon-separated tokens joined again).
_DATE_TOKENS = r"\d{1,2}/\d{1,2}/\d{2,4} \d{1,2}:\d{2}:\d{2}(?: ?[AaPp][Mm])?"

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


def _trimmed(expr: str) -> str:
    """``expr`` without surrounding blanks; ``trim`` only runs on values holding one (it costs
    several times three ``contains``)."""
    blank = " OR ".join(f"contains({expr}, {c})" for c in ("' '", "chr(9)", "chr(13)"))
    return f"(CASE WHEN {blank} THEN trim({expr}, {_WS}) ELSE {expr} END)"


def _filled(expr: str) -> str:
    """Non-empty: at least one character (a whitespace-only value counts as exposed too)."""
    return f"(coalesce({expr}, '') <> '')"


@functools.cache
def facebook_sql(*, unit_separator_is_bad: bool = False, tagged: bool = False) -> str:
    """``phone:fb_id:first:last:gender:current_city:hometown:relationship:work:date:email:birthday``.

    ``date`` may hold ``M/D/YYYY H:MM:SS AM`` (three tokens) and ``work`` any number of colons:
    the first eight fields are read from the left, ``birthday``, ``email`` and ``date`` from the
    right, and ``work`` is what remains. Fewer than twelve tokens: ``truncated_line``.

    With ``dt`` = 3 when ``date`` holds a time (the three tokens before ``email`` match ``_DATE``,
    at least fourteen tokens) and 1 otherwise, ``work`` is exposed when ``n - 2 - dt > 9`` or
    token 9 is non-empty, ``date`` when ``dt = 3`` or token ``n - 2`` is non-empty. A time makes
    token ``n - 2`` non-empty, so ``date`` is simply token ``n - 2``; and ``dt`` changes ``work``
    only at exactly fourteen tokens with an empty token 9: only those rows run the regex.
    Arithmetic where it is cheap; CASE where an operand is costly, because DuckDB evaluates every
    operand of a projected ``OR`` / ``AND`` (measured: the date regex on every row doubled the
    cost of ``kinds``).

    With ``unit_separator_is_bad`` a line holding the byte 0x1F is a ``bad_line``, as the Arrow
    reader (which splits on it) counts it; DuckDB's own reader hands such a line over whole.
    ``tagged`` passes ``bn_src`` 's column ``f`` (the shard) through.
    """
    f = "f, " if tagged else ""
    bad = "WHEN contains(line, chr(31)) THEN 'bad_line'" if unit_separator_is_bad else ""
    date = f"regexp_full_match(t[n - 4] || ':' || t[n - 3] || ':' || t[n - 2], '{_DATE_TOKENS}')"
    work = (
        f"(CASE WHEN t[9] <> '' THEN true WHEN n < 13 THEN false WHEN n <> 14 THEN true"
        f" ELSE NOT {date} END)"
    )
    bits = [
        ("t[2] <> ''", BIT["account_id"]),
        ("(t[3] <> '' OR t[4] <> '')", BIT["name"]),
        ("t[5] <> ''", BIT["gender"]),
        ("(t[6] <> '' OR t[7] <> '')", BIT["location"]),
        ("t[8] <> ''", BIT["relationship"]),
        (work, BIT["work"]),
        ("t[n - 2] <> ''", BIT["date"]),
        ("t[n - 1] <> ''", BIT["email"]),
        ("t[n] <> ''", BIT["birthday"]),
    ]
    kinds = " + ".join(f"({cond})::INTEGER * {bit}" for cond, bit in bits)
    words = ", ".join(f"'{w}'" for w in HEADER_WORDS)
    # a header names the phone field (``phone``, ``Phone Number``, ``phone-number``…), however
    # many fields follow (a re-packed file's header can have fewer). The order of the WHENs is
    # measured: rows starting with a digit leave the CASE at the third (a header check first,
    # or ``n >= 12 AND ascii(…)`` first, cost ~20% of the whole query)
    header = (
        "regexp_full_match(phone, '[A-Za-z][A-Za-z_ -]*')"
        f" AND regexp_replace(lower(phone), '[ -]', '_', 'g') IN ({words})"
    )
    return f"""
    SELECT {f}phone,
        CASE WHEN n < 12 THEN 0 ELSE ({kinds}) END::USMALLINT AS kinds,
        CASE {bad}
             WHEN n < 12 THEN (CASE WHEN trim(line, {_WS}) = '' THEN '_blank'
                                    WHEN {header} THEN '_header'
                                    ELSE 'truncated_line' END)
             WHEN phone = '' THEN 'empty'
             WHEN ascii(phone) BETWEEN 48 AND 57 THEN NULL
             WHEN {header} THEN '_header' END AS pre
    FROM (
        SELECT {f}line, t, n, {_trimmed("t[1]")} AS phone
        FROM (SELECT {f}line, string_split(line, ':') AS t, len(t) AS n FROM bn_src)
    )
    """


@functools.cache
def csv_sql(columns: tuple[str, ...], phone_index: int, *, tagged: bool = False) -> str:
    """Columns ``c0``… of a CSV; ``phone_index`` is the phone column; ``tagged`` passes
    ``bn_src`` 's column ``f`` (the shard) through."""
    parts = []
    for i, name in enumerate(columns):
        if i != phone_index:
            parts.append(
                f"(CASE WHEN {_filled(f'c{i}')} THEN {BIT[kind_of_column(name)]} ELSE 0 END)"
            )
    kinds = " | ".join(parts) or "0"
    f = "f, " if tagged else ""
    return f"""
    SELECT {f}phone, ({kinds})::USMALLINT AS kinds,
        CASE WHEN phone = '' THEN 'empty' END AS pre
    FROM (SELECT *, {_trimmed(f"c{phone_index}")} AS phone FROM bn_src)
    """

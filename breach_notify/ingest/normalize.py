"""Phone-number normalisation as DuckDB SQL, generated from ``phonenumbers``' own metadata.

The SQL reproduces ``phonenumbers.parse`` + ``is_valid_number`` + E.164 formatting for the shapes
it can decide with certainty: digits with ``+``, an IDD prefix or a default region, separated by
spaces, dots, dashes, slashes or parentheses. For those rows it yields either the E.164 string or
an invalid reason (``invalid_country_code``, ``not_valid``). Every other row (letters, extensions,
national prefix transform rules, odd lengths, a national number starting with the region's own
calling code, …) yields neither, and the caller decides it with the reference verdict
(:func:`breach_notify.numbers.verdict`).

Note: the regular expressions are ``phonenumbers``' own; they compile in RE2 unchanged
(``tests/test_normalize.py`` checks every one).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from phonenumbers import PhoneMetadata
from phonenumbers import phonenumberutil as _pnu

from breach_notify.ingest.containment import contained

#: Characters the SQL path accepts around digits (and a run of leading ``+``).
_PUNCT = r" ().\/-"
_SHAPE = rf"^[{_PUNCT}]*\+*[0-9{_PUNCT}]*$"
_MAX_RAW = 64
_MAX_NSN = 17
_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)


def _q(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _meta_for_cc(cc: int) -> PhoneMetadata:
    """The metadata parse() uses for an international number with calling code ``cc``."""
    region = _pnu.region_code_for_country_code(cc)
    meta = PhoneMetadata.metadata_for_region_or_calling_code(cc, region)
    assert meta is not None
    return meta


def _length_letter(n: int) -> str:
    """The one-letter length head of ``_bn_s``: ``chr(64 + n)`` (B for 2 … Q for 17); half
    the cost of a two-digit ``lpad`` head, measured."""
    return chr(64 + n)


def _desc_regex(desc: object | None) -> str | None:
    """``L(?:pattern)`` where L is the length letter: possible lengths checked in the regex."""
    pattern = getattr(desc, "national_number_pattern", None)
    if desc is None or not pattern:
        return None
    lengths: tuple[int, ...] = desc.possible_length  # type: ignore[attr-defined]
    if lengths:
        letters = "".join(_length_letter(n) for n in lengths if 0 <= n <= _MAX_NSN)
        if not letters:
            return None
        head = f"[{letters}]"
    else:
        head = "[A-Z]"
    return f"{head}(?:{pattern})"


def _validity(meta: PhoneMetadata) -> tuple[str | None, str | None]:
    """(general, any type) regexes over ``LL || nsn``; both must match for a valid number."""
    general = _desc_regex(meta.general_desc)
    names = [t for t in _TYPES if not (t == "mobile" and meta.same_mobile_and_fixed_line_pattern)]
    types = [r for r in (_desc_regex(getattr(meta, t)) for t in names) if r is not None]
    return general, ("|".join(f"(?:{t})" for t in types) if types else None)


def _length_ok(meta: PhoneMetadata) -> list[int]:
    """Lengths for which parse() keeps a stripped national prefix (IS_POSSIBLE or TOO_LONG)."""
    keep = (_pnu.ValidationResult.IS_POSSIBLE, _pnu.ValidationResult.TOO_LONG)
    return [n for n in range(_MAX_NSN + 1) if _pnu._test_number_length("0" * n, meta) in keep]


@dataclass(frozen=True)
class _Strip:
    """Keyed regexes for national-prefix stripping: keys are calling codes, plus ``R`` (region)."""

    prefix: str  # over ``key || n0`` (no separator: calling codes are prefix-free)
    general: str
    length_ok: str
    transform_keys: tuple[str, ...]


def _strip_regexes(entries: list[tuple[str, PhoneMetadata]]) -> _Strip:
    prefix, general, length_ok, transform = [], [], [], []
    for key, meta in entries:
        npfp = meta.national_prefix_for_parsing
        if npfp:
            prefix.append(f"{key}(?:{npfp})")
            if meta.national_prefix_transform_rule:
                transform.append(key)
        pattern = meta.general_desc.national_number_pattern if meta.general_desc else None
        if pattern:
            general.append(f"{key}#(?:{pattern})")
        lengths = _length_ok(meta)
        if lengths:
            length_ok.append(f"{key}#(?:{'|'.join(str(n) for n in lengths)})")
    return _Strip(
        prefix="^(?:" + "|".join(prefix) + ")",
        general="^(?:" + "|".join(general) + ")$",
        length_ok="^(?:" + "|".join(length_ok) + ")$",
        transform_keys=tuple(transform),
    )


@functools.cache
def _calling_codes() -> tuple[int, ...]:
    return tuple(sorted(_pnu.COUNTRY_CODE_TO_REGION_CODE))


def _region_valid(meta: PhoneMetadata) -> str:
    g, t = _validity(meta)
    if not (g and t):
        return "false"
    if contained(t, g):  # proven: whatever a type accepts, the general pattern accepts
        return f"regexp_full_match(_bn_s, {_q(t)})"
    return f"(regexp_full_match(_bn_s, {_q(g)}) AND regexp_full_match(_bn_s, {_q(t)}))"


@functools.cache
def _validity_sql() -> str:
    """SQL over ``_bn_cc``, ``_bn_nsn`` and ``_bn_s`` (= L || nsn): true when the number is valid.

    Dispatches on the calling code (first digit, then the code) to small constant regexes: one
    huge alternation was measured several times slower (RE2's DFA budget). Shared codes (+1, +7,
    +44, …) follow ``_region_code_for_number_from_list``: the first region whose leading digits
    match, or which validates the number when it has none, decides.
    """
    by_digit: dict[str, list[str]] = {}
    for cc, regions in sorted(_pnu.COUNTRY_CODE_TO_REGION_CODE.items()):
        if len(regions) == 1:
            branch = _region_valid(_meta_for_cc(cc))
        else:
            whens = []
            for region in regions:
                meta = PhoneMetadata.metadata_for_region(region, None)
                if meta is None:
                    continue
                valid = _region_valid(meta)
                if meta.leading_digits is not None:
                    lead = _q("^(?:" + meta.leading_digits + ")")
                    whens.append(f"WHEN regexp_matches(_bn_nsn, {lead}) THEN {valid}")
                else:
                    whens.append(f"WHEN {valid} THEN true")
            branch = f"(CASE {' '.join(whens)} ELSE false END)"
        by_digit.setdefault(str(cc)[0], []).append(f"WHEN '{cc}' THEN {branch}")
    outer = " ".join(
        f"WHEN '{d}' THEN (CASE _bn_cc {' '.join(ws)} ELSE false END)"
        for d, ws in sorted(by_digit.items())
    )
    return f"(CASE left(_bn_cc, 1) {outer} ELSE false END)"


def phone_sql(source: str, column: str, region: str | None, *, plus: bool = False) -> str:
    """A SELECT over ``source`` adding ``e164`` and ``reason`` (both NULL: undecided).

    ``column`` holds the raw value; with ``plus`` the value is read as ``'+' || value`` (the
    ``facebook-2021`` convention); ``region`` is the default region for national forms. The
    result is one streaming projection (no joins, no materialisation of plaintext).
    """
    region = region.upper() if region else None
    meta = PhoneMetadata.metadata_for_region(region, None) if region else None
    if region and meta is None:
        raise ValueError("unknown region")
    entries = [(str(cc), _meta_for_cc(cc)) for cc in _calling_codes()]
    if meta is not None:
        entries.append(("R", meta))
    strip = _strip_regexes(entries)
    ccs = "^(?:" + "|".join(str(cc) for cc in _calling_codes()) + ")"
    transform = ", ".join(_q(k) for k in strip.transform_keys) or "''"
    raw = f"('+' || {column})" if plus else column
    if meta is not None:
        idd = meta.international_prefix or "NonMatch"
        own = str(meta.country_code)
        idd_len = f"""CASE WHEN NOT _bn_ok THEN NULL
            WHEN _bn_plus THEN 0
            WHEN regexp_matches(_bn_d, {_q("^(?:" + idd + ")[1-9]")})
            THEN length(regexp_extract(_bn_d, {_q("^(?:" + idd + ")")})) ELSE 0 END"""
        natl = f"""CASE WHEN _bn_idd = 0 AND NOT _bn_plus AND NOT starts_with(_bn_d, {_q(own)})
            THEN _bn_d END"""
        no_cc = "false"
    else:
        own = ""
        idd_len = "CASE WHEN _bn_ok THEN 0 END"
        natl = "NULL::VARCHAR"
        no_cc = "_bn_intl IS NOT NULL AND _bn_icc IS NULL"
    intl_n0 = "substr(_bn_intl, length(_bn_icc) + 1)"
    if meta is not None:
        intl = """CASE WHEN _bn_plus AND _bn_ok THEN _bn_d
                 WHEN _bn_idd > 0 THEN substr(_bn_d, _bn_idd + 1) END"""
        natl_col = f"CASE WHEN _bn_ok THEN {natl} END"
        picked = f"""CASE WHEN _bn_natl IS NOT NULL THEN 'R' ELSE _bn_icc END AS _bn_k,
            CASE WHEN _bn_natl IS NOT NULL THEN _bn_natl ELSE {intl_n0} END AS _bn_n0,
            CASE WHEN _bn_natl IS NOT NULL THEN {_q(own)} ELSE _bn_icc END AS _bn_cc"""
    else:  # no default region: every decidable number is international (fewer CASEs per row)
        intl = "CASE WHEN _bn_plus AND _bn_ok THEN _bn_d END"
        natl_col = "NULL::VARCHAR"
        picked = f"_bn_icc AS _bn_k, {intl_n0} AS _bn_n0, _bn_icc AS _bn_cc"
    valid = _validity_sql()
    # ``_bn_intl`` is ``_bn_icc || _bn_n0`` already: no concatenation for international numbers
    key_n0 = "CASE WHEN _bn_natl IS NULL THEN _bn_intl ELSE 'R' || _bn_n0 END"
    if meta is None:
        key_n0 = "_bn_intl"
    return f"""
    WITH bn0 AS (
        SELECT *,
            CASE WHEN TRY_CAST({column} AS UBIGINT)::VARCHAR = {column} THEN true
                 ELSE coalesce(regexp_full_match({column}, '[0-9]{{1,{_MAX_RAW - 1}}}'), false)
                 END AS _bn_fast
        FROM {source}
    ), bn1 AS (
        SELECT * EXCLUDE (_bn_fast),
            CASE WHEN _bn_fast THEN true
                 WHEN coalesce(length({raw}) <= {_MAX_RAW}, false)
                 THEN coalesce(regexp_full_match({raw}, {_q(_SHAPE)}), false)
                 ELSE false END AS _bn_ok0,
            CASE WHEN _bn_fast THEN {column}
                 ELSE regexp_replace({raw}, '[^0-9]', '', 'g') END AS _bn_d,
            CASE WHEN _bn_fast THEN {"true" if plus else "false"}
                 ELSE coalesce(contains({raw}, '+'), false) END AS _bn_plus
        FROM bn0
    ), bn2 AS (
        SELECT * EXCLUDE (_bn_ok0), _bn_ok0 AND length(_bn_d) >= 3 AS _bn_ok FROM bn1
    ), bn3 AS (
        SELECT *, {idd_len} AS _bn_idd FROM bn2
    ), bn4 AS (
        SELECT *, {intl} AS _bn_intl, {natl_col} AS _bn_natl FROM bn3
    ), bn5 AS (
        SELECT *, nullif(regexp_extract(_bn_intl, {_q(ccs)}), '') AS _bn_icc FROM bn4
    ), bn6 AS (
        SELECT *, {picked} FROM bn5
    ), bn7 AS (
        SELECT *,
            CASE WHEN length(_bn_n0) BETWEEN 2 AND {_MAX_NSN}
                 THEN regexp_extract({key_n0}, {_q(strip.prefix)}) END AS _bn_m
        FROM bn6
    ), bn8 AS (
        SELECT *, substr(_bn_n0, length(_bn_m) - length(_bn_k) + 1) AS _bn_rest FROM bn7
    ), bn9 AS (
        SELECT *,
            CASE WHEN _bn_m IS NULL OR (_bn_m <> '' AND _bn_k IN ({transform})) THEN NULL
                 WHEN _bn_m <> ''
                  AND NOT (regexp_full_match(_bn_k || '#' || _bn_n0, {_q(strip.general)})
                           AND NOT regexp_full_match(_bn_k || '#' || _bn_rest, {_q(strip.general)}))
                  AND regexp_full_match(_bn_k || '#' || length(_bn_rest)::VARCHAR,
                                        {_q(strip.length_ok)})
                 THEN _bn_rest ELSE _bn_n0 END AS _bn_nsn
        FROM bn8
    ), bn10 AS (
        SELECT *,
            CASE WHEN length(_bn_nsn) >= 2
                 THEN chr((64 + length(_bn_nsn))::INTEGER) || _bn_nsn END AS _bn_s
        FROM bn9
    ), bn11 AS (
        SELECT *,
            CASE WHEN _bn_s IS NULL THEN NULL WHEN {valid} THEN '+' || _bn_cc || _bn_nsn END AS e164
        FROM bn10
    )
    SELECT * EXCLUDE (_bn_ok, _bn_d, _bn_plus, _bn_idd, _bn_intl, _bn_natl, _bn_icc, _bn_k,
                      _bn_n0, _bn_cc, _bn_m, _bn_rest, _bn_nsn, _bn_s),
        CASE WHEN _bn_s IS NOT NULL AND e164 IS NULL THEN 'not_valid'
             WHEN {no_cc} THEN 'invalid_country_code' END AS reason
    FROM bn11
    """

"""SMS segment counting (GSM-7 with its two-septet characters, UCS-2 otherwise) and look-alikes.

A text is GSM-7 when every character is in the GSM 03.38 default alphabet or its extension
table; extension characters (``^{}\\[~]|€`` and form feed) cost two septets. One character
outside both turns the whole text into UCS-2 (UTF-16 code units). A single segment holds 160
septets or 70 units; a concatenated message spends a header per part: 153 septets or 67 units.

Note: this does not implement national language shift tables; carriers rarely honour them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7 = "GSM-7"
UCS2 = "UCS-2"

_SINGLE = {GSM7: 160, UCS2: 70}
_PART = {GSM7: 153, UCS2: 67}

# Characters a title or a configured text often carries that have a GSM-7 twin.
LOOKALIKES: dict[str, str] = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u00b4": "'",
    "`": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2039": "'",
    "\u203a": "'",
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2015": "-",
    "\u2212": "-",
    "\u2022": "-",
    "\u00b7": "-",
    "\u2026": "...",
    "\u00a0": " ",
    "\u2002": " ",
    "\u2003": " ",
    "\u2009": " ",
    "\u200a": " ",
    "\u202f": " ",
    "\u2007": " ",
    "\u3000": " ",
    "\t": " ",
    "\u200b": "",
    "\u200c": "",
    "\u200d": "",
    "\u2060": "",
    "\ufeff": "",
    "\u00e7": "Ç",
    "\u2122": "TM",
    "\u00a9": "(c)",
    "\u00ae": "(R)",
    # Letters without a decomposition to a GSM-7 base.
    "Ł": "L",
    "ł": "l",
    "Đ": "D",
    "đ": "d",
    "Œ": "OE",
    "œ": "oe",
    "Þ": "Th",
    "þ": "th",
    "ı": "i",
    "ð": "d",
}


@dataclass(frozen=True)
class Segments:
    """How a text travels: its encoding, its length in septets or UTF-16 units, and parts."""

    encoding: str
    units: int
    segments: int


_GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM-7 default alphabet or its extension table."""
    return _GSM7_ALL.issuperset(text)


def count(text: str) -> Segments:
    """Encoding, length and number of segments of ``text`` (an empty text is one segment)."""
    if is_gsm7(text):
        encoding = GSM7
        units = len(text) + sum(text.count(c) for c in GSM7_EXTENSION)
    else:
        encoding = UCS2
        units = len(text.encode("utf-16-le")) // 2
    if units <= _SINGLE[encoding]:
        return Segments(encoding, units, 1)
    if encoding == GSM7:
        widths = [2 if c in GSM7_EXTENSION else 1 for c in text]
    else:
        widths = [len(c.encode("utf-16-le")) // 2 for c in text]
    # Concatenated: a two-septet character or a surrogate pair is never split across parts.
    part, parts, room = 0, 1, _PART[encoding]
    for width in widths:
        if part + width > room:
            parts += 1
            part = 0
        part += width
    return Segments(encoding, units, parts)


def replace_lookalikes(text: str) -> str:
    """Replace curly quotes, dashes, ellipses, odd spaces and the like by their GSM-7 twins."""
    return "".join(LOOKALIKES.get(c, c) for c in text)


def to_gsm7(text: str, replacement: str = "?") -> str:
    """``text`` made GSM-7: look-alikes replaced, accents dropped where needed, the rest ``?``.

    Line breaks and control characters become spaces. The result never turns a message UCS-2.
    """
    out: list[str] = []
    for c in replace_lookalikes(text):
        if c in GSM7_BASIC or c in GSM7_EXTENSION:
            out.append(" " if c in "\n\r\f" else c)
            continue
        if unicodedata.category(c).startswith("C"):
            out.append(" ")
            continue
        base = "".join(b for b in unicodedata.normalize("NFKD", c) if not unicodedata.combining(b))
        base = replace_lookalikes(base)
        out.append(base if base and is_gsm7(base) else replacement)
    return "".join(out)

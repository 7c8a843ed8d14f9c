"""What an inbound SMS asks for: opt out, opt in, join, confirm, help, or nothing.

Keywords are matched case-insensitively with whitespace and punctuation ignored (``" Stop! "``,
``"opt-out"``). A clear free-text revocation ("please stop texting me", "unsubscribe me") also
opts out: when in doubt about a refusal, the safe error is to stop messaging. French replies
(OUI, AIDE, ARRET) count like their English twins. JOIN words (``settings.join_keywords``) ask an
unknown number to become pending; they never outrank a refusal.
"""

from __future__ import annotations

import re
import unicodedata
from enum import Enum


class Intent(Enum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    JOIN = "join"
    CONFIRM = "confirm"
    HELP = "help"
    NONE = "none"


OPT_OUT = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "ARRET"}
)
OPT_IN = frozenset({"START", "UNSTOP"})
CONFIRM = frozenset({"YES", "OUI"})
HELP = frozenset({"HELP", "INFO", "AIDE"})
JOIN = frozenset({"JOIN"})
FRENCH = frozenset({"ARRET", "OUI", "AIDE"})  # the French twins, answered in French

# Words that revoke consent wherever they stand in a message, and phrases that do.
_REVOKING_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "unsub", "optout", "revoke", "cancel"}
)
_REVOKING_PHRASES = re.compile(
    r"\b(opt(?:ing)? out|remove me|take me off|no more (?:texts?|messages?|sms)"
    r"|(?:do not|dont|don't|never) (?:text|message|sms|contact) me|leave me alone)\b"
)
_NEGATED = re.compile(r"\b(?:do not|dont|don't|never)\s+(?:stop|cancel|unsubscribe)\b")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def keyword(text: str) -> str:
    """The message reduced to letters and digits, upper-cased: ``" Stop! "`` → ``"STOP"``."""
    return "".join(ch for ch in _fold(text) if ch.isalnum()).upper()


def join_words(configured: str | None, default: frozenset[str] = JOIN) -> frozenset[str]:
    """``settings.join_keywords`` ("JOIN, INSCRIRE") as keywords; ``default`` when empty.

    Words that already mean something else (STOP, YES, HELP, …) are ignored.
    """
    words = {keyword(w) for w in (configured or "").split(",")} - {""}
    words -= OPT_OUT | OPT_IN | CONFIRM | HELP
    return frozenset(words) or default


def classify(text: str, join: frozenset[str] = JOIN) -> Intent:
    """The intent of an inbound message body; ``join`` is the set of JOIN keywords."""
    word = keyword(text)
    if word in OPT_OUT:
        return Intent.OPT_OUT
    if word in OPT_IN:
        return Intent.OPT_IN
    if word in CONFIRM:
        return Intent.CONFIRM
    if word in HELP:
        return Intent.HELP
    if word in join:
        return Intent.JOIN
    return Intent.OPT_OUT if revokes(text) else Intent.NONE


def revokes(text: str) -> bool:
    """A free-text message that clearly withdraws consent."""
    folded = re.sub(r"[’`]", "'", _fold(text))
    spaced = re.sub(r"[^\w']+", " ", folded).strip()
    if _NEGATED.search(spaced):
        return False
    if _REVOKING_PHRASES.search(spaced):
        return True
    return any(w.strip("'") in _REVOKING_WORDS for w in spaced.split())

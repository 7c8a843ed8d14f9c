"""The notice text, per language (English and French; English is the fallback).

A notice names the organisation, the breach, the kinds of data exposed, an advice URL and the
opt-out line, and must stay one GSM-7 segment. :func:`render` makes that so: placeholder values
are converted to GSM-7 (look-alikes replaced), and when the text would not fit the breach title
is shortened, then the list of kinds cut. Every language fits with an organisation name of up to
``MAX_ORG`` and an advice URL of up to ``MAX_URL`` characters, whatever title and kinds (tested).
Note: the phone number is never part of a text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from breach_notify.errors import BadInput
from breach_notify.kinds import KINDS
from breach_notify.settings import Settings
from breach_notify.sms import segments

# Bit i of ``breach_pseudonyms.kinds`` = KIND_BITS[i]: the ingest's own table, one source of truth.
KIND_BITS: tuple[str, ...] = KINDS
# Kinds of field as a recipient understands them, in display order (``date``, ``other``: none).
_GROUPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("name", frozenset({"name"})),
    ("gender", frozenset({"gender"})),
    ("location", frozenset({"location"})),
    ("relationship", frozenset({"relationship"})),
    ("work", frozenset({"work"})),
    ("email", frozenset({"email"})),
    ("birthday", frozenset({"birthday"})),
    ("account", frozenset({"account_id"})),
)
ALL_KINDS_MASK = (1 << len(KIND_BITS)) - 1
MAX_ORG = 24
MAX_URL = 32
MIN_TITLE = 16  # below this a shortened title says too little; cut the kinds instead


class TemplateError(BadInput):
    """The configured texts cannot fit one segment; the message says what to shorten."""


@dataclass(frozen=True)
class Language:
    """One language's wording. ``text`` has ``{org} {title} {kinds} {url} {opt_out}``."""

    code: str
    text: str
    kinds: str  # wraps the joined labels, e.g. " (also exposed: {labels})"
    labels: dict[str, str] = field(repr=False)
    opt_out: str = "Reply STOP to opt out."
    joiner: str = ", "


LANGUAGES: dict[str, Language] = {
    "en": Language(
        code="en",
        text='{org}: your number is in the "{title}" leak{kinds}. Advice: {url} {opt_out}',
        kinds=" (also: {labels})",
        labels={
            "name": "name",
            "gender": "gender",
            "location": "location",
            "relationship": "relationship",
            "work": "work",
            "email": "email",
            "birthday": "birthday",
            "account": "account ID",
        },
        opt_out="Reply STOP to opt out.",
    ),
    "fr": Language(
        code="fr",
        text='{org}: votre numéro est dans la fuite "{title}"{kinds}. Aide: {url} {opt_out}',
        kinds=" (aussi: {labels})",
        labels={
            "name": "nom",
            "gender": "genre",
            "location": "lieu",
            "relationship": "situation",
            "work": "emploi",
            "email": "e-mail",
            "birthday": "naissance",
            "account": "identifiant",
        },
        opt_out="STOP pour se désinscrire.",
    ),
}
FALLBACK = "en"


@dataclass(frozen=True)
class TemplateConfig:
    """What the operator configures: organisation name, advice URL, optional opt-out line."""

    org_name: str
    advice_url: str
    default_language: str = FALLBACK
    opt_out: str | None = None  # overrides every language's opt-out line when set

    @classmethod
    def from_settings(cls, settings: Settings) -> TemplateConfig:
        return cls(
            org_name=settings.org_name,
            advice_url=settings.advice_url,
            default_language=settings.default_language,
            opt_out=getattr(settings, "opt_out_line", None),
        )


@dataclass(frozen=True)
class Rendered:
    """A rendered notice: the text, the language used and how it travels."""

    text: str = field(repr=False)
    language: str
    segments: segments.Segments
    shortened: bool = False


def language_for(code: str | None, default: str = FALLBACK) -> Language:
    """The wording for ``code`` (``fr-CA`` → ``fr``), else ``default``, else English."""
    for candidate in (code, default):
        if candidate:
            primary = candidate.replace("_", "-").split("-")[0].strip().lower()
            if primary in LANGUAGES:
                return LANGUAGES[primary]
    return LANGUAGES[FALLBACK]


def kinds_from_mask(mask: int) -> list[str]:
    """The recipient-facing groups (``name``, ``location``, …) present in a kinds bitmask."""
    present = {name for i, name in enumerate(KIND_BITS) if mask >> i & 1}
    return [group for group, members in _GROUPS if present & members]


def render(
    language: str | None, title: str, kinds: int | Iterable[str], config: TemplateConfig
) -> Rendered:
    """The notice for one recipient, guaranteed one GSM-7 segment (or ``TemplateError``)."""
    lang = language_for(language, config.default_language)
    groups = kinds_from_mask(kinds) if isinstance(kinds, int) else list(kinds)
    labels = [lang.labels[g] for g in groups if g in lang.labels]
    clean_title = " ".join(segments.to_gsm7(title).replace('"', "'").split()) or "?"
    fixed = {
        "org": " ".join(segments.to_gsm7(config.org_name).split()),
        "url": segments.to_gsm7(config.advice_url).strip(),
        "opt_out": " ".join(segments.to_gsm7(config.opt_out or lang.opt_out).split()),
    }
    # Fewest cuts first: the whole list, then fewer kinds ("..." for the rest), then none.
    variants = [
        lang.joiner.join(labels[:n] + (["..."] if n < len(labels) else []))
        for n in range(len(labels), 0, -1)
    ]
    kinds_text = lang.kinds.format(labels=variants[0]) if labels else ""
    for kinds_part in [kinds_text, *(lang.kinds.format(labels=v) for v in variants[1:]), ""]:
        without_title = lang.text.format(title="", kinds=kinds_part, **fixed)
        room = segments.count(without_title).units
        room = 160 - room if segments.is_gsm7(without_title) else -1
        width = _septets(clean_title)
        if width <= room:
            text = lang.text.format(title=clean_title, kinds=kinds_part, **fixed)
            return _done(text, lang.code, shortened=kinds_part != kinds_text)
        if room >= MIN_TITLE:
            text = lang.text.format(title=_shorten(clean_title, room), kinds=kinds_part, **fixed)
            return _done(text, lang.code, shortened=True)
    raise TemplateError(
        f"the {lang.code!r} notice cannot fit one SMS segment even without the breach title; "
        "shorten the organisation name, the advice URL or the opt-out line"
    )


def _done(text: str, language: str, *, shortened: bool) -> Rendered:
    counted = segments.count(text)
    assert counted.encoding == segments.GSM7 and counted.segments == 1
    return Rendered(text, language, counted, shortened)


def _septets(text: str) -> int:
    return sum(2 if c in segments.GSM7_EXTENSION else 1 for c in text)


def _shorten(title: str, room: int) -> str:
    """The longest prefix of ``title`` plus ``...`` within ``room`` septets."""
    out: list[str] = []
    used = 3
    for c in title:
        w = 2 if c in segments.GSM7_EXTENSION else 1
        if used + w > room:
            break
        out.append(c)
        used += w
    return "".join(out).rstrip() + "..."

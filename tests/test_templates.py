"""Notice texts: one GSM-7 segment in every language, whatever the placeholders."""

from __future__ import annotations

import pytest

from breach_notify.notify import templates
from breach_notify.notify.templates import (
    ALL_KINDS_MASK,
    LANGUAGES,
    MAX_ORG,
    MAX_URL,
    TemplateConfig,
    TemplateError,
    render,
)
from breach_notify.settings import Settings
from breach_notify.sms import segments

WORST_TITLES = [
    "Facebook 2021",
    "x",
    "",
    "“Mega” leak – 533 million rows… ‘scraped’ — again",
    "{€}[~]^|\\" * 40,  # two-septet characters only
    "Données 2021: fuite d’ampleur « historique » 🙈",
    "数据泄露 " * 30,
    "A" * 500,
    "line\nbreak\ttab\x00nul",
]
CONFIGS = [
    TemplateConfig.from_settings(Settings()),
    TemplateConfig("O" * MAX_ORG, "https://" + "u" * (MAX_URL - 8)),
    TemplateConfig("Association Vie Privée 24", "https://vie-privee.example/fuite"[:MAX_URL]),
]


@pytest.mark.parametrize("language", sorted(LANGUAGES))
@pytest.mark.parametrize("title", WORST_TITLES)
@pytest.mark.parametrize("kinds", [0, 1, 0b101, ALL_KINDS_MASK])
@pytest.mark.parametrize("config", CONFIGS)
def test_every_language_fits_one_gsm7_segment(
    language: str, title: str, kinds: int, config: TemplateConfig
) -> None:
    r = render(language, title, kinds, config)
    counted = segments.count(r.text)
    assert counted.encoding == segments.GSM7, r.text
    assert counted.segments == 1 and counted.units <= 160
    assert r.language == language
    assert config.advice_url in r.text and "STOP" in r.text
    assert " ".join(config.org_name.split()) in r.text


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_typical_notice_is_not_shortened(language: str) -> None:
    r = render(language, "Facebook 2021", 0b11, TemplateConfig.from_settings(Settings()))
    assert not r.shortened
    assert "Facebook 2021" in r.text
    assert LANGUAGES[language].labels["name"] in r.text


def test_lookalikes_in_title_are_replaced() -> None:
    r = render("en", "“Big” leak – part 2…", 0, TemplateConfig.from_settings(Settings()))
    assert "'Big' leak - part 2..." in r.text
    assert segments.is_gsm7(r.text)


def test_language_fallback() -> None:
    cfg = TemplateConfig.from_settings(Settings())
    assert render("de", "T", 0, cfg).language == "en"
    assert render("fr-CA", "T", 0, cfg).language == "fr"
    assert render("FR_be", "T", 0, cfg).language == "fr"
    assert render(None, "T", 0, TemplateConfig("Org", "https://x.org", "fr")).language == "fr"


def test_opt_out_line_is_configurable() -> None:
    cfg = TemplateConfig("Org", "https://x.org", opt_out="Text STOP to end.")
    assert render("fr", "T", 0, cfg).text.endswith("Text STOP to end.")


def test_impossible_configuration_says_what_to_shorten() -> None:
    cfg = TemplateConfig("O" * 80, "https://" + "u" * 80)
    with pytest.raises(TemplateError, match="shorten the organisation name"):
        render("en", "T", 0, cfg)


def test_every_ingested_kind_is_shown_or_deliberately_not() -> None:
    shown = {m for _, members in templates._GROUPS for m in members}
    assert set(templates.KIND_BITS) - shown == {"date", "other"}


def test_kinds_from_mask() -> None:
    assert templates.kinds_from_mask(0) == []
    bits = {name: 1 << i for i, name in enumerate(templates.KIND_BITS)}
    mask = bits["name"] | bits["location"] | bits["email"] | bits["date"] | bits["other"]
    assert templates.kinds_from_mask(mask) == ["name", "location", "email"]
    assert templates.kinds_from_mask(bits["account_id"]) == ["account"]
    assert len(templates.kinds_from_mask(ALL_KINDS_MASK)) == 8


@pytest.mark.parametrize(
    ("text", "encoding", "units", "parts"),
    [
        ("", segments.GSM7, 0, 1),
        ("a" * 160, segments.GSM7, 160, 1),
        ("a" * 161, segments.GSM7, 161, 2),
        ("a" * 306, segments.GSM7, 306, 2),
        ("a" * 307, segments.GSM7, 307, 3),
        ("€" * 80, segments.GSM7, 160, 1),
        ("€" * 81, segments.GSM7, 162, 2),
        # an escape pair never straddles two parts: 152 + (2 → next part) + 152
        ("a" * 152 + "€" + "a" * 152, segments.GSM7, 306, 3),
        ("é" * 160, segments.GSM7, 160, 1),
        ("ж" * 70, segments.UCS2, 70, 1),
        ("ж" * 71, segments.UCS2, 71, 2),
        ("a" * 100 + "’", segments.UCS2, 101, 2),
        ("😀" * 35, segments.UCS2, 70, 1),
        ("😀" * 36, segments.UCS2, 72, 2),
        ("ê", segments.UCS2, 1, 1),
    ],
)
def test_segment_counting(text: str, encoding: str, units: int, parts: int) -> None:
    assert segments.count(text) == segments.Segments(encoding, units, parts)


def test_to_gsm7() -> None:
    assert segments.to_gsm7("“Mega” – leak…") == '"Mega" - leak...'
    assert segments.to_gsm7("Łódź ç ê") == "Lodz Ç e"
    assert segments.to_gsm7("数") == "?"
    assert segments.is_gsm7(segments.to_gsm7("🙈 \u00a0 \u200b x"))

"""The pages' languages and countries, the versioned consent text, the templates' CSP hygiene
and the vendored front-end files (fast: no server)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from breach_notify.web import abuse, i18n

WEB = Path(__file__).parent.parent / "breach_notify" / "web"

# Published consent texts are evidence: they never change. A new wording is a new version.
PUBLISHED = {
    ("1", "en"): "7c6068a93cb0d94baf2d2b779144301c67fafff0f4c6a49201505ab0199a0b78",
    ("1", "fr"): "e3262d63091e7c078334f30fd1236e0c0e2e6e454d49de5425e00c1b871ef0f1",
}


def test_published_consent_texts_never_change() -> None:
    for (version, lang), digest in PUBLISHED.items():
        text = i18n.CONSENT_TEXTS[version][lang]
        assert hashlib.sha256(text.encode()).hexdigest() == digest, (version, lang)
    assert set(i18n.CONSENT_TEXTS[i18n.CONSENT_VERSION]) == set(i18n.LANGUAGES)
    assert i18n.consent_id("fr") == f"signup-v{i18n.CONSENT_VERSION}-fr"
    for lang in i18n.LANGUAGES:  # it says what is sent, how often, and STOP / HELP
        text = i18n.consent_text(lang, "Org")
        assert "Org" in text and "STOP" in text and ("HELP" in text or "AIDE" in text)


def test_every_message_exists_in_both_languages() -> None:
    assert set(i18n.MESSAGES["en"]) == set(i18n.MESSAGES["fr"])
    used = set()
    for template in (WEB / "templates").glob("*.html"):
        used |= set(re.findall(r"(?<![\w.])t\('([a-z_]+)'", template.read_text()))
    used |= set(
        re.findall(r"'([a-z_]+_(?:title|body))'", (WEB / "templates/notice.html").read_text())
    )
    used |= set(re.findall(r'message\(lang, "([a-z_]+)"', (WEB / "pages.py").read_text()))
    assert used <= set(i18n.MESSAGES["en"]), used - set(i18n.MESSAGES["en"])


@pytest.mark.parametrize(
    ("header", "asked", "lang"),
    [
        ("fr-CH, fr;q=0.9, en;q=0.8", None, "fr"),
        ("de-DE,de;q=0.9,en;q=0.5", None, "en"),
        ("de, fr;q=0.1", None, "fr"),
        ("fr;q=0, en", None, "en"),
        (None, None, "en"),
        ("fr", "en", "en"),
        ("en", "xx", "en"),
        ("garbage;;q=abc,,", None, "en"),
    ],
)
def test_the_page_language_comes_from_the_choice_then_accept_language(
    header: str | None, asked: str | None, lang: str
) -> None:
    assert i18n.negotiate(header, asked) == lang


@pytest.mark.parametrize(
    ("header", "allowed", "country"),
    [
        ("fr-BE,fr;q=0.9", frozenset(), "BE"),
        ("fr", frozenset(), "FR"),
        ("en-US,en", frozenset(), "US"),
        ("en", frozenset(), "US"),
        ("de-AT", frozenset(), "AT"),
        ("en-GB,fr-FR;q=0.5", frozenset({"FR"}), "FR"),
        ("*", frozenset(), ""),
        (None, frozenset(), ""),
        ("zh-Hant-TW", frozenset(), "TW"),
    ],
)
def test_the_default_country_comes_from_accept_language_only(
    header: str | None, allowed: frozenset[str], country: str
) -> None:
    assert i18n.default_country(header, allowed) == country


def test_country_names_come_from_babel_in_the_page_language() -> None:
    fr = {c.code: c for c in i18n.countries("fr")}
    en = {c.code: c for c in i18n.countries("en")}
    assert fr["GB"].name == "Royaume-Uni" and en["GB"].name == "United Kingdom"
    assert fr["DE"].label == "Allemagne (+49)"
    names = [c.name for c in i18n.countries("fr")]
    assert names.index("Égypte") < names.index("Espagne")  # accents sort with their letter
    assert len(fr) > 240
    assert [c.code for c in i18n.countries("en", frozenset({"FR", "BE"}))] == ["BE", "FR"]
    assert dict(i18n.language_names()) == {"en": "English", "fr": "Français"}


# The one inline script allowed: /check's import map (not executed; its SHA-256 is in that
# page's CSP only, tested in tests/test_check_page.py).
INLINE_ALLOWED = {"check.html": '<script type="importmap">{{ importmap | safe }}</script>'}


def test_templates_hold_no_inline_script_or_style() -> None:
    for template in (WEB / "templates").glob("*.html"):
        html = template.read_text()
        allowed = INLINE_ALLOWED.get(template.name)
        if allowed:
            assert html.count(allowed) == 1, template.name
            html = html.replace(allowed, "")
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), template.name
        assert " style=" not in html and "<style" not in html, template.name
        assert not re.search(r"\son[a-z]+=", html), template.name  # no event handler attributes
        assert "http://" not in html and "https://" not in html, template.name


@pytest.mark.parametrize(
    "folder",
    [
        WEB / "static" / "vendor" / "altcha",
        WEB / "static" / "vendor" / "libphonenumber-js",
        Path(__file__).parent / "support/vendor/axe-core",
    ],
)
def test_vendored_files_are_the_published_ones_with_their_licence(folder: Path) -> None:
    manifest = json.loads((folder / "VENDOR.json").read_text())
    on_disk = {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file() and p.name != "VENDOR.json"
    }
    assert on_disk == manifest["files"]
    assert any(name.startswith("LICENSE") for name in on_disk)


def test_the_app_serves_axe_core_nowhere() -> None:
    static = WEB / "static"
    assert not [p for p in static.rglob("*") if "axe" in p.name]


def test_the_prefix_of_a_number_hides_its_last_four_digits() -> None:
    assert abuse.number_prefix("+447400123456") == "+44740012"

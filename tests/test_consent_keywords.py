"""Keyword classification: every keyword, any case, whitespace and punctuation, free text."""

from __future__ import annotations

import pytest

from breach_notify.subscribers.keywords import Intent, classify, keyword

OPT_OUT = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"]


@pytest.mark.parametrize("word", OPT_OUT)
@pytest.mark.parametrize("shape", ["{}", "{} ", "  {}\n", "{}!", "{}.", "'{}'", "{}?!"])
def test_opt_out_family_any_case_and_punctuation(word: str, shape: str) -> None:
    for variant in (word, word.lower(), word.capitalize()):
        assert classify(shape.format(variant)) is Intent.OPT_OUT


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("START", Intent.OPT_IN),
        (" unstop ", Intent.OPT_IN),
        ("Start!", Intent.OPT_IN),
        ("YES", Intent.CONFIRM),
        ("yes.", Intent.CONFIRM),
        (" Yes! ", Intent.CONFIRM),
        ("HELP", Intent.HELP),
        ("help?", Intent.HELP),
        ("Info", Intent.HELP),
        ("opt-out", Intent.OPT_OUT),
        ("Opt out", Intent.OPT_OUT),
        ("stop all", Intent.OPT_OUT),
        ("S T O P", Intent.OPT_OUT),
        ("ＳＴＯＰ", Intent.OPT_OUT),  # full-width letters fold to ASCII
    ],
)
def test_keywords(text: str, intent: Intent) -> None:
    assert classify(text) is intent


@pytest.mark.parametrize(
    "text",
    [
        "please stop texting me",
        "Stop sending me these",
        "unsubscribe me",
        "I want to opt out",
        "remove me from your list",
        "Take me off this list please",
        "no more texts",
        "Don't text me again",
        "don’t message me",
        "leave me alone",
        "cancel my subscription",
        "I revoke my consent",
    ],
)
def test_clear_free_text_revocations_opt_out(text: str) -> None:
    assert classify(text) is Intent.OPT_OUT


@pytest.mark.parametrize(
    "text",
    [
        "thanks!",
        "what is this?",
        "ok",
        "hello",
        "",
        "   ",
        "yes please tell me more",
        "don't stop sending, this is useful",
        "is my number in the leak?",
        "🙂",
    ],
)
def test_other_text_is_no_keyword(text: str) -> None:
    assert classify(text) is Intent.NONE


def test_keyword_normalisation() -> None:
    assert keyword(" Stop! ") == "STOP"
    assert keyword("opt-out") == "OPTOUT"

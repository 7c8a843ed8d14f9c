"""Regex containment proofs (``store/ingest/containment.py``) against brute force."""

from __future__ import annotations

import itertools
import random
import re

import pytest
from phonenumbers import PhoneMetadata

from breach_notify.ingest.containment import contained, counterexample
from breach_notify.ingest.normalize import _validity


@pytest.mark.parametrize(
    ("small", "big", "expected"),
    [
        (r"\d{3}", r"\d{2,4}", True),
        (r"\d{2,4}", r"\d{3}", False),
        (r"[1-9]\d{2}", r"\d{3}", True),
        (r"\d{3}", r"[1-9]\d{2}", False),
        (r"6\d{8}|7[0-8]\d{7}", r"[1-9]\d{8}", True),
        (r"6\d{8}|70\d{7}", r"[1-8]\d{8}", True),
        (r"6\d{8}|90\d{7}", r"[1-8]\d{8}", False),
        (r"(?:12|3)?4", r"1?2?3?4", True),
        (r"1?2?3?4", r"(?:12|3)?4", False),  # "24"
        (r"[^0-4@-Z]\d", r"[5-9]\d", True),  # the alphabet: digits and length letters
        (r"[^0-4]\d", r"[5-9]\d", False),  # "A0"
        (r"1\d*", r"1\d{0,5}", False),
        (r"1\d{0,5}", r"1\d*", True),
        (r"[IJ](?:6\d{7,8})", r"[IJ](?:[1-9]\d{7,8})", True),
        (r"[IJ](?:6\d{7,8})", r"[I](?:[1-9]\d{7,8})", False),
    ],
)
def test_known_pairs(small: str, big: str, expected: bool) -> None:
    assert contained(small, big) is expected


def test_unknown_constructs_and_budget_are_not_proofs() -> None:
    assert contained(r"^\d{3}$", r"\d{3}") is False  # anchors: not handled
    assert contained(r"(\d)\1", r"\d\d") is False  # back reference
    assert contained(r"\d{3}", r"\d{3}") is True
    assert contained(r"\d{6}", r"\d{6}", budget=2) is False


def _random_pattern(rng: random.Random, depth: int = 0) -> str:
    kind = rng.choice(["lit", "class", "digit", "alt", "seq", "rep"] if depth < 3 else ["lit"])
    if kind == "lit":
        return rng.choice("0123")
    if kind == "class":
        lo = rng.randint(0, 3)
        return f"[{lo}-{rng.randint(lo, 3)}]"
    if kind == "digit":
        return r"\d"
    if kind == "alt":
        return f"(?:{_random_pattern(rng, depth + 1)}|{_random_pattern(rng, depth + 1)})"
    if kind == "seq":
        return _random_pattern(rng, depth + 1) + _random_pattern(rng, depth + 1)
    low = rng.randint(0, 2)
    return f"(?:{_random_pattern(rng, depth + 1)}){{{low},{low + rng.randint(0, 1)}}}"


def test_random_bounded_patterns_agree_with_brute_force() -> None:
    """Random patterns over short digit strings: the proof equals checking every string."""
    rng = random.Random(7)
    words = ["".join(w) for n in range(7) for w in itertools.product("0123456789", repeat=n)]
    checked = 0
    for _ in range(120):
        small, big = _random_pattern(rng), _random_pattern(rng)
        s, b = re.compile(small), re.compile(big)
        if any(len(w) > 6 for w in _sample_matches(s)):
            continue
        truth = all(b.fullmatch(w) for w in words if s.fullmatch(w))
        assert contained(small, big) is truth, (small, big)
        witness = counterexample(small, big)
        assert (witness is None) is truth
        assert witness is None or (s.fullmatch(witness) and not b.fullmatch(witness))
        checked += 1
    assert checked > 80


def _sample_matches(pattern: re.Pattern[str]) -> list[str]:
    """Strings of length 7 the pattern matches (the brute force only reaches 6)."""
    return [w for w in ("0000000", "1111111", "3333333", "0123012") if pattern.fullmatch(w)]


def test_real_metadata_verdicts_are_sound() -> None:
    """Austria's and Germany's type patterns accept strings their general pattern rejects (the
    search shows one); the other regions here are proven."""
    for region in ("FR", "GB", "US", "IN", "BR", "AT", "DE"):
        meta = PhoneMetadata.metadata_for_region(region, None)
        assert meta is not None
        general, types = _validity(meta)
        assert general and types
        proven = contained(types, general)
        assert proven is (region not in ("AT", "DE")), region
        witness = counterexample(types, general)
        if not proven:
            assert witness is not None
            assert re.fullmatch(types, witness) and not re.fullmatch(general, witness)

"""Exact regular-language containment for ``phonenumbers``' patterns: ``L(small) ⊆ L(big)``?

A number is valid when its ``L || nsn`` string fully matches both the general pattern and the
alternation of the type patterns. Where every string the types accept is also accepted by the
general pattern, the general regex is redundant: this module proves that per region, so the SQL
runs one regex per row instead of two.

The proof: both patterns (parsed by Python's own regex parser) become ε-NFAs over the symbols
that can occur in ``L || nsn`` (digits and the length letters); a depth-first search over pairs of
ε-closed state sets (the product of the two subset automata) looks for a string accepted by
``small`` and not by ``big``. Anything the builder does not understand (anchors, back
references, look-arounds) or a search beyond ``budget`` pairs answers ``False`` ("not proven"),
which only costs speed.
"""

from __future__ import annotations

import functools
import re
from typing import Any

_C: Any
_P: Any
try:  # CPython's own regex parser (private, present since 3.11); without it nothing is proven
    from re import _constants as _C  # type: ignore[attr-defined,no-redef]
    from re import _parser as _P  # type: ignore[attr-defined,no-redef]
except ImportError:  # pragma: no cover
    _C = _P = None

_DIGITS = frozenset("0123456789")
#: What ``L || nsn`` can hold: ``chr(64 + length)`` letters and ASCII digits.
ALPHABET = _DIGITS | frozenset(chr(c) for c in range(64, 91))


class _Unknown(Exception):
    """A construct the NFA builder does not handle."""


class _Nfa:
    def __init__(self) -> None:
        self.eps: list[list[int]] = []
        self.edges: list[list[tuple[frozenset[str], int]]] = []

    def state(self) -> int:
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def closure(self, states: set[int] | frozenset[int]) -> frozenset[int]:
        seen, stack = set(states), list(states)
        while stack:
            for nxt in self.eps[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return frozenset(seen)

    def step(self, states: frozenset[int], symbol: str) -> frozenset[int]:
        return self.closure({t for s in states for chars, t in self.edges[s] if symbol in chars})


def _chars(items: Any) -> frozenset[str]:
    found: set[str] = set()
    negate = False
    for op, av in items:
        if op is _C.LITERAL:
            found.add(chr(av))
        elif op is _C.RANGE:
            found |= {chr(c) for c in range(av[0], av[1] + 1)}
        elif op is _C.CATEGORY and av is _C.CATEGORY_DIGIT:
            found |= _DIGITS
        elif op is _C.NEGATE:
            negate = True
        else:
            raise _Unknown(str(op))
    return ALPHABET - found if negate else frozenset(found) & ALPHABET


def _sequence(nfa: _Nfa, items: Any, at: int) -> int:
    for op, av in items:
        at = _item(nfa, op, av, at)
    return at


def _item(nfa: _Nfa, op: Any, av: Any, at: int) -> int:
    if op in (_C.LITERAL, _C.IN, _C.ANY):
        chars = (
            frozenset({chr(av)}) if op is _C.LITERAL else _chars(av) if op is _C.IN else ALPHABET
        )
        nxt = nfa.state()
        nfa.edges[at].append((chars, nxt))
        return nxt
    if op is _C.SUBPATTERN:
        return _sequence(nfa, av[3], at)
    if op is _C.BRANCH:
        end = nfa.state()
        for branch in av[1]:
            start = nfa.state()
            nfa.eps[at].append(start)
            nfa.eps[_sequence(nfa, branch, start)].append(end)
        return end
    if op in (_C.MAX_REPEAT, _C.MIN_REPEAT):  # greediness does not change the language
        low, high, sub = av
        for _ in range(low):
            at = _sequence(nfa, sub, at)
        if high is _C.MAXREPEAT:
            loop = nfa.state()
            nfa.eps[at].append(loop)
            nfa.eps[_sequence(nfa, sub, loop)].append(loop)
            return loop
        end = nfa.state()
        nfa.eps[at].append(end)
        for _ in range(high - low):
            at = _sequence(nfa, sub, at)
            nfa.eps[at].append(end)
        return end
    raise _Unknown(str(op))


def _compile(pattern: str) -> tuple[_Nfa, int, int]:
    nfa = _Nfa()
    start = nfa.state()
    end = _sequence(nfa, _P.parse(pattern), start)
    return nfa, start, end


def contained(small: str, big: str, budget: int = 200_000) -> bool:
    """True when every string fully matching ``small`` fully matches ``big`` (proven)."""
    return _search(small, big, budget) is True


def counterexample(small: str, big: str, budget: int = 200_000) -> str | None:
    """A string ``small`` fully matches and ``big`` does not, when the search finds one."""
    found = _search(small, big, budget)
    return found if isinstance(found, str) else None


@functools.cache
def _search(small: str, big: str, budget: int) -> bool | str:
    """``True`` (proven), a counterexample, or ``False`` (unknown construct or over budget)."""
    if _P is None:
        return False
    try:
        (ns, ss, es), (nb, sb, eb) = _compile(small), _compile(big)
    except (_Unknown, re.error):
        return False
    first = (ns.closure({ss}), nb.closure({sb}))
    path = {first: ""}
    stack = [first]
    while stack:
        pair = stack.pop()
        s_states, b_states = pair
        if es in s_states and eb not in b_states:
            return path[pair]
        symbols = {c for s in s_states for chars, _ in ns.edges[s] for c in chars}
        for symbol in sorted(symbols):
            nxt = (ns.step(s_states, symbol), nb.step(b_states, symbol))
            if nxt[0] and nxt not in path:
                if len(path) >= budget:
                    return False
                path[nxt] = path[pair] + symbol
                stack.append(nxt)
    return True

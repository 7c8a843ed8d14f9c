"""Dependencies true to the imports: what the code imports is declared in pyproject.toml, what is
declared is imported, no library is reached through a private module or name, and
constraints.txt pins exactly the installed closure of the declared requirements."""

from __future__ import annotations

import ast
import functools
import importlib.metadata as metadata
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from support.flows import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
OWN = frozenset({"breach_notify", "flows", "support"})

#: Private imports from libraries that are deliberate, with the reason.
PRIVATE_ALLOWED: dict[str, str] = {
    "breach_notify/ingest/containment.py: re._constants": (
        "CPython's own regex parser is what the containment proof reads; guarded by ImportError"
    ),
    "breach_notify/ingest/containment.py: re._parser": (
        "CPython's own regex parser is what the containment proof reads; guarded by ImportError"
    ),
}


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


DECLARED = _names(PYPROJECT["project"]["dependencies"])
DEV = _names(PYPROJECT["project"]["optional-dependencies"]["dev"])


def third_party_imports(
    *folders: str, source: dict[str, str] | None = None
) -> Iterator[tuple[str, str, int]]:
    """``(file, dotted name, line)`` of every absolute import of a module that is neither the
    standard library's nor this repository's. ``source`` replaces the files (for the checker)."""
    files = source or {
        str(p.relative_to(REPO)): p.read_text() for f in folders for p in (REPO / f).rglob("*.py")
    }
    # Modules importable by bare name: this repository's packages, and the files at the top of
    # tests/ and benchmarks/ (on sys.path when they run).
    local = OWN | {Path(name).stem for name in files if len(Path(name).parts) <= 2}
    for name, text in files.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for dotted in found:
                top = dotted.split(".")[0]
                if top not in local and top != "__future__":
                    yield name, dotted, node.lineno


@functools.cache
def _providers() -> Mapping[str, list[str]]:
    return metadata.packages_distributions()


def distributions_of(top: str) -> set[str]:
    """The installed distributions that provide the top-level import ``top``."""
    return {canonicalize_name(d) for d in _providers().get(top, [])}


def _undeclared(folders: tuple[str, ...], allowed: set[str]) -> dict[str, set[str]]:
    missing: dict[str, set[str]] = {}
    for name, dotted, line in third_party_imports(*folders):
        top = dotted.split(".")[0]
        if top in sys.stdlib_module_names:
            continue
        dists = distributions_of(top)
        if not dists & allowed:
            missing.setdefault(f"{top} (from {sorted(dists) or 'nothing installed'})", set()).add(
                f"{name}:{line}"
            )
    return missing


def test_package_imports_are_declared_dependencies() -> None:
    assert _undeclared(("breach_notify", "flows"), DECLARED) == {}


def test_declared_dependencies_are_imported() -> None:
    imported = {
        dist
        for _, dotted, _ in third_party_imports("breach_notify", "flows")
        for dist in distributions_of(dotted.split(".")[0])
    }
    assert DECLARED - imported == set(), "declared, never imported: drop them"


def test_tests_and_benchmarks_import_only_declared_or_dev_dependencies() -> None:
    assert _undeclared(("tests", "benchmarks"), DECLARED | DEV) == {}


def private_library_imports(*folders: str, source: dict[str, str] | None = None) -> list[str]:
    """``file: module.name`` for imports of a library's private module or name (``_x``)."""
    found = []
    for name, dotted, _ in third_party_imports(*folders, source=source):
        parts = dotted.split(".")
        private = [p for p in parts[1:] if p.startswith("_") and not p.startswith("__")]
        if private:
            found.append(f"{name}: {'.'.join(parts[: parts.index(private[0]) + 1])}")
    return sorted(set(found))


def test_no_private_imports_from_libraries() -> None:
    found = private_library_imports("breach_notify", "flows")
    assert [f for f in found if f not in PRIVATE_ALLOWED] == []
    assert sorted(set(PRIVATE_ALLOWED) - set(found)) == [], "gone: remove from PRIVATE_ALLOWED"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from typer._click.exceptions import ClickException", ["m.py: typer._click"]),
        ("import typer._click", ["m.py: typer._click"]),
        ("from re import _parser", ["m.py: re._parser"]),
        ("from typer import BadParameter\nimport duckdb", []),
        ("from ._impl import x\nfrom breach_notify.x import _y", []),  # ours: test_architecture
    ],
)
def test_private_import_checker(source: str, expected: list[str]) -> None:
    assert private_library_imports(source={"m.py": source}) == expected


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version and not any(c in version for c in "<>=~!*,; "), line
            pins[canonicalize_name(name)] = version
    return pins


def requirement_closure(roots: list[str]) -> set[str]:
    """Distributions needed by ``roots`` here (markers evaluated for this interpreter)."""
    needed: set[str] = set()
    todo = [(Requirement(r), frozenset[str]()) for r in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, _ = todo.pop()
        name = canonicalize_name(req.name)
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        needed.add(name)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            sub = Requirement(text)
            wanted = ["", *sorted(req.extras)]
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in wanted):
                todo.append((sub, frozenset()))
    return needed


def test_constraints_pin_exactly_what_the_requirements_need() -> None:
    pins = _pins()
    installs = [
        *PYPROJECT["project"]["dependencies"],
        *PYPROJECT["project"]["optional-dependencies"]["dev"],
    ]
    build = PYPROJECT["build-system"]["requires"]  # installed in pip's isolated build env
    needed = requirement_closure(installs)
    everything = needed | requirement_closure(build)
    assert sorted(everything - set(pins)) == [], "needed but not pinned in constraints.txt"
    assert sorted(set(pins) - everything) == [], "pinned but needed by nothing: remove"
    differ = {n: (pins[n], metadata.version(n)) for n in needed if metadata.version(n) != pins[n]}
    assert differ == {}, "the venv differs from constraints.txt (pinned, installed)"

"""The dependency rule of ``breach_notify/`` and ``flows/``, checked on imports read with ``ast``.

The rule (also in docs/ARCHITECTURE.md, kept equal by a test below):

- Rooms are the package's top-level modules and folders. A module may import its own room, any
  room of a lower layer of ``LAYERS``, and the peer rooms listed in ``PEERS``; nothing above. The
  base modules may import one another.
- The root ``flows/`` (all the Prefect code) may import any room except ``cli`` and ``web``.
- Nothing in ``breach_notify`` imports ``flows``, except modules of ``cli/`` that also import
  ``breach_notify.cli.orchestration`` (which puts the source root on ``sys.path``).
- ``prefect`` and ``prefect_dask`` are imported only in ``flows/``.
- No module imports a private name (``_x``) of another module; a package's own modules may import
  its private submodules and names (``crypto`` → ``crypto._hmacbatch``).

Imports inside functions and under ``TYPE_CHECKING`` count, as do ``importlib.import_module``
calls with a literal name. To amend: edit ``LAYERS``/``PEERS`` and the table in ARCHITECTURE.md.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.flows import REPO

PACKAGE = "breach_notify"
#: Lowest first. ``__init__`` is the package's own ``breach_notify/__init__.py``.
LAYERS: list[tuple[str, frozenset[str]]] = [
    (
        "base",
        frozenset({"__init__", "settings", "errors", "numbers", "redact", "kinds", "text_rules"}),
    ),
    ("crypto", frozenset({"crypto"})),
    ("store", frozenset({"store", "events"})),
    ("sms", frozenset({"sms"})),
    ("stages", frozenset({"ingest", "subscribers"})),
    ("notify", frozenset({"notify"})),
    ("entry points", frozenset({"web", "cli", "demo", "__main__"})),
]
#: Imports allowed between two rooms of one layer (importer, imported).
PEERS: frozenset[tuple[str, str]] = frozenset(
    {("cli", "web"), ("cli", "demo"), ("__main__", "cli")}
)
#: Rooms that may import any room of their own layer (the base modules).
OPEN: frozenset[str] = LAYERS[0][1]
#: Rooms the root ``flows/`` must not import.
NOT_FROM_FLOWS = frozenset({"cli", "web"})
#: Distributions whose code is orchestration: only ``flows/`` imports them.
PREFECT = frozenset({"prefect", "prefect_dask"})
ORCHESTRATION = f"{PACKAGE}.cli.orchestration"

#: Violations present when this test was written, each with who removes it. A fixed one fails the
#: test too (remove its line); a new one is not accepted here.
KNOWN_VIOLATIONS: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    target: str  # dotted module name, or module.name for ``from module import name``
    module: str  # the module part of target
    line: int


def _rank() -> dict[str, int]:
    return {room: i for i, (_, rooms) in enumerate(LAYERS) for room in rooms}


def room_of(module: str) -> str | None:
    """``breach_notify.notify.sender`` → ``notify``; ``breach_notify`` → ``__init__``; else None."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def imports(name: str, source: str, is_package: bool, known: set[str]) -> Iterator[Import]:
    """Every import of module ``name`` (source ``source``), relative ones resolved."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                # ``from pkg import mod`` imports the module ``pkg.mod``
                module = full if full in known else base
                yield Import(name, full, module, node.lineno)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            target = node.args[0].value
            yield Import(name, target, target, node.lineno)


def _peers(importer: str, imported: str) -> bool:
    """Whether ``importer`` may import ``imported``, a room of the same layer."""
    return importer in OPEN or (importer, imported) in PEERS


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def violations(sources: Mapping[str, tuple[str, bool]]) -> dict[str, str]:
    """``{"importer -> target": why}`` for the modules ``{name: (source, is_package)}``."""
    rank = _rank()
    known = set(sources)
    found: dict[str, str] = {}
    for name, (source, is_package) in sources.items():
        found_imports = list(imports(name, source, is_package, known))
        uses_orchestration = name == ORCHESTRATION or any(
            ORCHESTRATION in (i.module, i.target) for i in found_imports
        )
        mine = room_of(name)
        if mine is not None and mine not in rank:
            found[f"{name} -> (room {mine})"] = (
                f"room {mine!r} is not in LAYERS; add it there and to docs/ARCHITECTURE.md"
            )
        for imp in found_imports:
            key = f"{name} -> {imp.module}"
            top = imp.module.split(".")[0]
            theirs = room_of(imp.module)
            in_flows = name.split(".")[0] == "flows"
            # Private names: only the owning module or package (and its modules) may import them.
            parts = imp.target.split(".")
            for i, part in enumerate(parts):
                owner = ".".join(parts[:i])
                inside = name == owner or name.startswith(owner + ".")
                if _private(part) and not inside and top in (PACKAGE, "flows"):
                    found[f"{name} -> {imp.target}"] = f"imports the private name {part} of {owner}"
            if top in PREFECT and not in_flows:
                found[key] = "imports Prefect outside flows/"
            if top == "flows" and not in_flows and (mine != "cli" or not uses_orchestration):
                found[key] = "imports flows/ (only cli/ modules that use cli.orchestration may)"
            if theirs is None or theirs not in rank:
                continue
            if in_flows:
                if theirs in NOT_FROM_FLOWS:
                    found[key] = f"flows/ imports {theirs}/ (an entry point)"
                continue
            if mine is None or mine not in rank or theirs == mine:
                continue
            if rank[theirs] > rank[mine]:
                found[key] = f"{mine} (layer {rank[mine]}) imports {theirs} (layer {rank[theirs]})"
            elif rank[theirs] == rank[mine] and not _peers(mine, theirs):
                found[key] = f"{mine} imports its peer {theirs} (not in PEERS)"
    return found


def tree_sources(root: Path) -> dict[str, tuple[str, bool]]:
    """``{module: (source, is_package)}`` for every module of breach_notify/ and flows/."""
    sources = {}
    for top in (PACKAGE, "flows"):
        for path in sorted((root / top).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            sources[name] = (path.read_text(), is_package)
    return sources


def test_imports_follow_the_dependency_rule() -> None:
    found = violations(tree_sources(REPO))
    new = {k: v for k, v in found.items() if k not in KNOWN_VIOLATIONS}
    fixed = sorted(set(KNOWN_VIOLATIONS) - set(found))
    assert not new, "imports against the rule:\n" + "\n".join(f"{k}: {v}" for k, v in new.items())
    assert not fixed, "fixed, remove from KNOWN_VIOLATIONS: " + ", ".join(fixed)


def _check(module: str, source: str) -> dict[str, str]:
    """The checker over one synthetic module (``pkg.__init__`` names the package ``pkg``)."""
    is_package = module.endswith(".__init__")
    return violations({module.removesuffix(".__init__"): (source, is_package)})


@pytest.mark.parametrize(
    ("module", "source", "why"),
    [
        ("breach_notify.store.db", "from breach_notify.notify import sender", "store (layer 2)"),
        ("breach_notify.store.db", "from ..notify import sender", "imports notify"),
        ("breach_notify.crypto.keyring", "import breach_notify.subscribers.optin", "crypto"),
        ("breach_notify.subscribers.optin", "from breach_notify.notify import x", "subscribers"),
        ("breach_notify.ingest.rows", "from breach_notify.subscribers import x", "peer"),
        ("breach_notify.web.app", "from breach_notify.cli import common", "peer cli"),
        ("breach_notify.sms.gateway", "from breach_notify.subscribers import x", "sms"),
        ("breach_notify.crypto.keyring", "def f():\n    import prefect", "Prefect outside"),
        ("breach_notify.web.app", "from flows import pipeline", "imports flows/"),
        ("breach_notify.cli.status", "from flows.serve import healthy", "imports flows/"),
        ("flows.tasks", "from breach_notify.cli.common import out", "flows/ imports cli/"),
        ("flows.tasks", "from breach_notify.web import app", "flows/ imports web/"),
        ("breach_notify.notify.sender", "from breach_notify.store.db import _lock", "private"),
        ("breach_notify.cli.keys", "from breach_notify.crypto import _hmacbatch", "private"),
        ("breach_notify.attic.box", "import json", "not in LAYERS"),
        ("breach_notify.events.journal", "from breach_notify.store import db", "peer store"),
        ("breach_notify.store.db", "from breach_notify.events import journal", "peer events"),
        (
            "breach_notify.store.db",
            "import importlib\nimportlib.import_module('breach_notify.cli')",
            "store (layer 2) imports cli",
        ),
    ],
)
def test_checker_fails_on_a_wrong_import(module: str, source: str, why: str) -> None:
    found = _check(module, source)
    assert len(found) == 1 and why in next(iter(found.values())), found


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("breach_notify.notify.match", "from breach_notify.subscribers import registry"),
        ("breach_notify.subscribers.optin", "from breach_notify.sms import gateway"),
        ("breach_notify.store.db", "from breach_notify import errors, settings"),
        ("breach_notify.store.db", "from ..crypto import Keyring"),
        ("breach_notify.events.journal", "from breach_notify.errors import OperationalError"),
        ("breach_notify.notify.applier", "from breach_notify.events import journal"),
        ("breach_notify.web.app", "from breach_notify.events.journal import Entry"),
        ("breach_notify.cli.webhooks", "from breach_notify.web import server"),
        ("breach_notify.cli.pipeline", "from breach_notify.demo import prepare"),
        ("breach_notify.__main__", "from breach_notify.cli import main"),
        ("flows.tasks", "import prefect\nfrom breach_notify.notify.sender import Sender"),
        ("flows.pipeline", "from flows import tasks\nfrom breach_notify.demo import prepare"),
        (
            "breach_notify.cli.pipeline",
            "from breach_notify.cli import orchestration\nfrom flows.serve import healthy",
        ),
        (
            "breach_notify.crypto.pseudonymizer",
            "import importlib\nimportlib.import_module('breach_notify.crypto._hmacbatch')",
        ),
        ("breach_notify.ingest.__init__", "from breach_notify.ingest._impl import read"),
        ("breach_notify.ingest.rows", "import re\nfrom re import _parser"),  # test_dependencies
    ],
)
def test_checker_accepts_the_allowed_directions(module: str, source: str) -> None:
    assert _check(module, source) == {}


def test_architecture_doc_states_the_same_layers() -> None:
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    section = text.split("## Dependency rule", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if re.match(r"\|\s*\d+\s*\|", ln)]
    documented = []
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        names = frozenset(re.findall(r"`([^`]*)`", cells[2]))
        documented.append((cells[1], names))
    assert documented == LAYERS
    for importer, imported in PEERS:
        assert f"`{importer}` → `{imported}`" in section


def _documentable(path: Path) -> bool:
    """Every module, and every ``__init__.py`` that defines something (not just re-exports)."""
    if path.name != "__init__.py":
        return True
    tree = ast.parse(path.read_text())
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        for node in tree.body
    )


def test_architecture_doc_lists_every_module() -> None:
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    listed = set(re.findall(r"`((?:breach_notify|flows)/[\w/]+\.py)`", text))
    files = {p for top in (PACKAGE, "flows") for p in (REPO / top).rglob("*.py")}
    present = {str(p.relative_to(REPO)) for p in files if _documentable(p)}
    missing = sorted(present - listed)
    gone = sorted(listed - {str(p.relative_to(REPO)) for p in files})
    assert not missing, f"add to docs/ARCHITECTURE.md: {missing}"
    assert not gone, f"listed in docs/ARCHITECTURE.md but absent: {gone}"

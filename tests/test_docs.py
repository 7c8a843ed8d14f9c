"""The docs ship with the repository and stay true to it: every command and option of the CLI is
in docs/CLI.md, and nothing in the repository points at a path outside it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import typer.main
from support.flows import REPO

from breach_notify.cli import app

CLI_DOC = (REPO / "docs" / "CLI.md").read_text()


def _commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        if hasattr(command, "commands"):
            yield from _commands(command, path + " ")
        else:
            yield path, command


def test_every_command_and_option_is_in_the_cli_doc() -> None:
    missing = []
    commands = list(_commands(typer.main.get_command(app)))
    assert len(commands) > 15
    for path, command in commands:
        if f"`{path}" not in CLI_DOC:
            missing.append(path)
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--") and opt not in CLI_DOC:
                    missing.append(f"{path} {opt}")
    assert missing == []


def test_nothing_in_the_repository_points_outside_it() -> None:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    outside = ("../shared", "/work/shared", "shared/DESIGN", "shared/CLI")
    found = []
    for name in files:
        path = REPO / name
        if not path.is_file() or path.suffix in (".so", ".duckdb", ".gz", ".zip"):
            continue
        text = path.read_text(errors="replace")
        if name == "tests/test_docs.py":
            continue
        found += [f"{name}: {needle}" for needle in outside if needle in text]
    assert found == []

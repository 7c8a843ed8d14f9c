"""What every command shares: settings from the global options, output, errors."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from breach_notify import redact
from breach_notify.crypto import Keyring
from breach_notify.settings import Settings

# Markup off: everything printed is literal, so a value such as a breach title holding "[/x]" or
# "[link=…]" is shown as it is, never interpreted. Style with ``rich.text.Text`` instead.
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
out = Console(highlight=False, markup=False)

JsonOption = typer.Option(False, "--json", help="Print exactly one JSON object on stdout.")


def settings(ctx: typer.Context) -> Settings:
    """The settings built by the global options (``--home``, ``--keyring``)."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


def keyring(ctx: typer.Context) -> Keyring:
    return Keyring.load(settings(ctx).keyring_path)


def cells(*values: object) -> list[Text]:
    """Table cells shown literally (no markup), whatever console renders them."""
    return [Text(str(v)) for v in values]


def emit(as_json: bool, payload: dict[str, Any], human: str | None = None) -> None:
    """One JSON object on stdout with ``--json``; otherwise the human text (or the fields)."""
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str, sort_keys=True) + "\n")
        sys.stdout.flush()
        return
    if human is not None:
        out.print(human)
    else:
        for key, value in payload.items():
            out.print(f"{key}: {value}")


def setup_logging(verbose: bool) -> None:
    """Logs to stderr, through the redacting filter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    redact.install()

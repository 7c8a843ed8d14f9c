"""The ``breach-notify`` command line (the contract: docs/CLI.md)."""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import typer
from pydantic import ValidationError

from breach_notify import redact
from breach_notify.cli import (
    breaches,
    keys,
    notices,
    pipeline,
    selfcheck,
    status,
    subscribers,
    web,
)
from breach_notify.cli.common import err, setup_logging
from breach_notify.errors import BadInput, BreachNotifyError
from breach_notify.settings import Settings

app = typer.Typer(
    name="breach-notify",
    help="Warn the people who asked to be warned when their number leaks, by SMS, privately.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _globals(
    ctx: typer.Context,
    home: Path = typer.Option(
        None, "--home", envvar="BREACH_NOTIFY_HOME", help="Data dir [default: ./.breach-notify]."
    ),
    keyring: Path = typer.Option(
        None,
        "--keyring",
        envvar="BREACH_NOTIFY_KEYRING",
        help="Keyring file [default: HOME/keyring.json].",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress to stderr."),
) -> None:
    overrides: dict[str, object] = {}
    if home is not None:
        overrides["home"] = home
    if keyring is not None:
        overrides["keyring"] = keyring
    try:
        ctx.obj = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        # Name the settings, not their values (pydantic's text quotes the input).
        fields = ", ".join(
            sorted({"BREACH_NOTIFY_" + str(e["loc"][0]).upper() for e in exc.errors() if e["loc"]})
        )
        raise BadInput(f"invalid setting(s) {fields or '?'}; fix their values") from None
    ctx.obj.check_home()
    setup_logging(verbose)


for module in (keys, breaches, subscribers, notices, pipeline, web, status, selfcheck):
    module.register(app)

_GLOBAL_WITH_VALUE = ("--home", "--keyring")

#: The parser's errors (unknown option, missing argument, bad value): exit 2. typer 0.2x vendors
#: click and exports only ``BadParameter`` of that family; its base ``ClickException`` is taken from
#: there, not from the private ``typer._click`` (the separate ``click`` distribution's classes are
#: other classes and would not match).
UsageFailure: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def _hoist_globals(argv: list[str]) -> list[str]:
    """Accept the global options anywhere (``ingest --home X``) by moving them to the front."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg in _GLOBAL_WITH_VALUE and i + 1 < len(argv):
            front += [arg, argv[i + 1]]
            i += 2
            continue
        if any(arg.startswith(opt + "=") for opt in _GLOBAL_WITH_VALUE) or arg in (
            "-v",
            "--verbose",
        ):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main(argv: list[str] | None = None) -> int:
    """Entry point: maps errors to exit status 2 (bad input) or 1 (operational)."""
    os.umask(0o077)  # everything this process writes (DuckDB, Prefect, outbox) is owner-only
    args = _hoist_globals(list(sys.argv[1:] if argv is None else argv))
    as_json = "--json" in args
    try:
        result = app(args=args, prog_name="breach-notify", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        err.print("aborted")
        code = 1
    except UsageFailure as exc:
        # Usage errors: the parser's text may quote an argument, so it is redacted too.
        _fail(redact.redact(getattr(exc, "format_message", exc.__str__)()), 2, as_json)
        code = 2
    except BreachNotifyError as exc:
        _fail(redact.redact(str(exc)), exc.exit_code, as_json)
        code = exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        code = 130
    except Exception as exc:  # an unexpected failure: its text may quote a value, so withhold it
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        _fail(f"internal error ({type(exc).__name__} at {where}); please report it", 1, as_json)
        code = 1
    if argv is None:
        sys.exit(code)
    return code


def _fail(message: str, code: int, as_json: bool) -> None:
    err.print(f"error: {message}", markup=False)
    if as_json:
        sys.stdout.write(json.dumps({"error": message, "exit_code": code}) + "\n")

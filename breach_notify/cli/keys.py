"""``keys init`` and ``keys rotate``."""

from __future__ import annotations

import typer

from breach_notify.cli.common import JsonOption, emit, keyring, settings
from breach_notify.crypto import Keyring
from breach_notify.errors import BadInput

keys_app = typer.Typer(help="Create and rotate the keyring.", no_args_is_help=True)


@keys_app.command("init")
def init(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Create the keyring (mode 0600). Refuses to overwrite an existing one."""
    path = settings(ctx).keyring_path
    ring = Keyring.create(path)
    emit(
        as_json,
        {"keyring": str(path), "key_ids": ring.key_ids},
        f"keyring created at {path} (mode 0600). Back it up: without it nothing can be matched.",
    )


@keys_app.command("rotate")
def rotate(
    ctx: typer.Context,
    seal: bool = typer.Option(False, "--seal", help="New seal key; re-seal subscribers."),
    pseudonym: bool = typer.Option(
        False, "--pseudonym", help="New pseudonym key; re-pseudonymise subscribers."
    ),
    oprf: bool = typer.Option(
        False,
        "--oprf",
        help="New self-check OPRF key for breaches ingested from now on; "
        "tagged breaches keep their key until their files are ingested again.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Add a key version and migrate subscribers to it."""
    if seal + pseudonym + oprf != 1:
        raise BadInput("choose exactly one of --seal, --pseudonym or --oprf")
    ring = keyring(ctx)
    if oprf:
        new_id = ring.rotate("oprf")
        emit(
            as_json,
            {"key_ids": ring.key_ids, "active": new_id},
            f"new OPRF key {new_id}; breaches ingested with --self-check from now on use it",
        )
        return
    purpose = "seal" if seal else "pseudonym"
    new_id = ring.rotate(purpose)
    from breach_notify.subscribers import rotation

    migrated = rotation.apply(settings(ctx), ring, purpose)
    emit(
        as_json,
        {"key_ids": ring.key_ids, "active": new_id, "subscribers_migrated": migrated},
        f"new {purpose} key {new_id}; {migrated} subscribers migrated",
    )


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")

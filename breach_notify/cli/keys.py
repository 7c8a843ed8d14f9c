"""``keys init``, ``keys rotate`` and ``keys verify``."""

from __future__ import annotations

from typing import Any

import duckdb
import typer

from breach_notify.cli.common import JsonOption, emit, err, keyring, settings
from breach_notify.crypto import Keyring
from breach_notify.errors import BadInput
from breach_notify.notify import outbox
from breach_notify.store.db import session
from breach_notify.store.keycheck import check

keys_app = typer.Typer(help="Create, rotate and verify the keyring.", no_args_is_help=True)


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
    """Add a key version and migrate subscribers to it.

    The keyring file (or, if it is a symlink, the file it points to) is replaced atomically and
    the previous version kept next to it as ``NAME.bak-TIMESTAMP``. Subscribers are migrated only
    once the new key has been read back from the keyring path.
    """
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
    new_id = ring.rotate(purpose)  # durable and read back, or it raised: nothing migrated yet
    from breach_notify.subscribers import rotation

    migrated = rotation.apply(settings(ctx), ring, purpose)
    emit(
        as_json,
        {
            "key_ids": ring.key_ids,
            "active": new_id,
            "subscribers_migrated": migrated,
            "backup": str(ring.backup_path),
        },
        f"new {purpose} key {new_id}; {migrated} subscribers migrated; "
        f"previous keyring kept at {ring.backup_path}",
    )


@keys_app.command("verify")
def verify(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Check that every sealed number opens and every breach's key is in the keyring.

    Exit 0 when all is well, 1 naming the key ids and counts otherwise.
    """
    ring = keyring(ctx)
    with session(settings(ctx)) as conn:
        result = check(conn, ring)
        payload = result.as_dict()
        if result.ok:
            payload.update(on_keyring_verified(conn, ring))
    if result.ok:
        emit(
            as_json,
            payload,
            f"keyring verified: {result.sealed_checked} sealed numbers open, "
            f"{result.breaches_checked} breaches' keys present",
        )
        return
    for line in result.problems():
        err.print(f"error: {line}", markup=False)
    err.print(
        "error: restore the keyring that holds key(s) "
        f"{', '.join(result.missing_key_ids)} (a rotation keeps NAME.bak-TIMESTAMP next to the "
        "keyring), then run 'breach-notify keys verify' again",
        markup=False,
    )
    if as_json:
        emit(True, payload)
    raise typer.Exit(1)


def on_keyring_verified(conn: duckdb.DuckDBPyConnection, ring: Keyring) -> dict[str, Any]:
    """Work that waits for a verified keyring, run in ``keys verify``'s session once every check
    passed: notices whose number could not be opened go back to pending. Extra output fields."""
    return {"notices_retried": outbox.retry_undecryptable(conn, ring)}


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")

"""The safe surface over keys: a keyring, a pseudonymizer and a sealer.

Pads, nonces and raw key bytes stay inside this package; ``flows/`` and ``notify/`` use these
objects only.
"""

from breach_notify.crypto.keyring import Keyring, KeyringError
from breach_notify.crypto.pseudonymizer import Pseudonymizer, SqlExpression
from breach_notify.crypto.sealer import InvalidToken, Sealed, Sealer

__all__ = [
    "InvalidToken",
    "Keyring",
    "KeyringError",
    "Pseudonymizer",
    "Sealed",
    "Sealer",
    "SqlExpression",
]

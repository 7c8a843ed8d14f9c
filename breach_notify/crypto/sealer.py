"""Sealed subscriber numbers: AES-256-GCM, random 96-bit nonce, the row id as associated data."""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12
_CONTEXT = b"breach-notify/seal/v1"


class InvalidToken(Exception):
    """A sealed value could not be opened. Which check failed is deliberately not said."""

    def __init__(self) -> None:
        super().__init__("sealed value could not be opened (wrong key, wrong row, or tampered)")


@dataclass(frozen=True)
class Sealed:
    """What the store keeps: the key id and ``nonce || ciphertext || tag``."""

    key_id: str
    blob: bytes


class Sealer:
    """Seals with the active key; opens with whichever key id a value names."""

    def __init__(self, active: str, keys: dict[str, bytes]) -> None:
        if active not in keys:
            raise ValueError("active seal key id is not in the key set")
        for key in keys.values():
            if not isinstance(key, bytes) or len(key) != 32:
                raise ValueError("seal keys are 32 bytes (AES-256)")
        self.active = active
        self.__keys = dict(keys)

    def __repr__(self) -> str:
        return f"Sealer(active={self.active!r}, key_ids={sorted(self.__keys)!r})"

    def seal(self, plaintext: str, row_id: str) -> Sealed:
        return self._seal_with_nonce(plaintext, row_id, os.urandom(_NONCE))

    def open(self, sealed: Sealed, row_id: str) -> str:
        key = self.__keys.get(sealed.key_id)
        if key is None or len(sealed.blob) < _NONCE + 16:
            raise InvalidToken()
        nonce, body = sealed.blob[:_NONCE], sealed.blob[_NONCE:]
        try:
            data = AESGCM(key).decrypt(nonce, body, _aad(sealed.key_id, row_id))
        except InvalidTag:
            raise InvalidToken() from None
        return data.decode()

    def reseal(self, sealed: Sealed, row_id: str) -> Sealed:
        """Open under its own key and seal again under the active one."""
        return self.seal(self.open(sealed, row_id), row_id)

    def _seal_with_nonce(self, plaintext: str, row_id: str, nonce: bytes) -> Sealed:
        key = self.__keys[self.active]
        blob = nonce + AESGCM(key).encrypt(nonce, plaintext.encode(), _aad(self.active, row_id))
        return Sealed(self.active, blob)


def _aad(key_id: str, row_id: str) -> bytes:
    return b"|".join((_CONTEXT, key_id.encode(), row_id.encode()))

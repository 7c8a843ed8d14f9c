"""RFC 9497 OPRF and VOPRF over ristretto255-SHA512: the private self-check's cryptography.

Group arithmetic is libsodium's ristretto255 (bundled by ``rbcl``, called through ctypes, which
releases the GIL for each call); expand_message_xmd, the transcripts and the DLEQ proofs are
written here from the RFC text (RFC 9497 §2-§4.1, RFC 9380 §5.3.1 for expand_message_xmd).

The safe surface:

- :class:`OprfServer` (one key): ``evaluate(blinded) -> (evaluated, proof)`` (VOPRF, with a DLEQ
  proof) and ``tag(x)`` / ``tags(xs)`` (the first 16 bytes of ``Evaluate(k, x)``, the stored
  self-check tag);
- :class:`OprfClient` (one public key): ``blind(x)`` then ``finalize(blinded, evaluated,
  proof)``, which verifies the proof before unblinding and raises :class:`VerifyError` if it
  does not hold;
- :func:`bucket` : the public, unkeyed bucket of a number (the first ``bits`` bits of
  ``SHA-256(BUCKET_DOMAIN || x)``).

Scalars and elements are 32-byte strings (little-endian scalars, ristretto255 encodings); the
RFC-level functions below take their random scalars as arguments, so the RFC's test vectors are
reproduced exactly (``_rng`` is the seam of the two classes).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import hmac
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import rbcl

_sodium: Any = rbcl._sodium
# rbcl writes its libsodium to a new temporary file in every process and leaves it there; once
# loaded (mapped) the file is not needed, so remove it rather than fill /tmp (POSIX only).
with contextlib.suppress(KeyError, AttributeError, OSError):
    os.unlink(sys.modules["rbcl._sodium"].lib_path)

IDENTIFIER = b"ristretto255-SHA512"
MODE_OPRF = 0x00
MODE_VOPRF = 0x01
#: The order of ristretto255 (RFC 9496).
ORDER = 2**252 + 27742317777372353535851937790883648493
NE = NS = 32
NH = 64
TAG_BYTES = 16
PROOF_BYTES = 2 * NS
#: The public ``info`` of DeriveKeyPair for keys made from a keyring seed.
KEY_INFO = b"breach-notify self-check"
#: Domain of the public bucket hash.
BUCKET_DOMAIN = b"breach-notify/self-check/bucket/v1\x00"
_IDENTITY = bytes(NE)


class OprfError(ValueError):
    """An element or scalar that is not valid where it is used (message names no value)."""


class VerifyError(OprfError):
    """The server's proof does not show that it used the published key."""


def context_string(mode: int) -> bytes:
    """RFC 9497 §3.1: ``"OPRFV1-" || I2OSP(mode, 1) || "-" || identifier``."""
    return b"OPRFV1-" + bytes([mode]) + b"-" + IDENTIFIER


# -- hashing ---------------------------------------------------------------------------------

_ZPAD_STATE = hashlib.sha512(bytes(128))  # SHA-512 after Z_pad (its block size), copied per call


def _expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 §5.3.1 with SHA-512 (b_in_bytes 64, s_in_bytes 128)."""
    ell = -(-length // NH)
    if ell > 255 or length > 65535 or len(dst) > 255:
        raise OprfError("expand_message_xmd: length or DST too long")
    dst_prime = dst + bytes([len(dst)])
    h = _ZPAD_STATE.copy()
    h.update(msg + length.to_bytes(2, "big") + b"\x00" + dst_prime)
    b0 = h.digest()
    b = hashlib.sha512(b0 + b"\x01" + dst_prime).digest()
    out = [b]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b0, b, strict=True))
        b = hashlib.sha512(mixed + bytes([i]) + dst_prime).digest()
        out.append(b)
    return b"".join(out)[:length]


def _i2osp2(n: int) -> bytes:
    return n.to_bytes(2, "big")


def _lp(value: bytes) -> bytes:
    """``I2OSP(len(value), 2) || value``."""
    return _i2osp2(len(value)) + value


def _hash_to_group(msg: bytes, ctx: bytes) -> bytes:
    """hash_to_ristretto255 with DST ``"HashToGroup-" || contextString``."""
    uniform = _expand_message_xmd(msg, b"HashToGroup-" + ctx, 64)
    out = ctypes.create_string_buffer(NE)
    _sodium.crypto_core_ristretto255_from_hash(out, uniform)
    return out.raw


def _hash_to_scalar(msg: bytes, ctx: bytes, dst: bytes | None = None) -> bytes:
    """64 bytes of expand_message_xmd, read little-endian and reduced modulo the order."""
    uniform = _expand_message_xmd(msg, dst if dst is not None else b"HashToScalar-" + ctx, 64)
    out = ctypes.create_string_buffer(NS)
    _sodium.crypto_core_ristretto255_scalar_reduce(out, uniform)
    return out.raw


# -- group and scalar helpers (return codes checked) ----------------------------------------


def _valid_element(e: bytes) -> bool:
    return (
        isinstance(e, bytes)
        and len(e) == NE
        and e != _IDENTITY
        and _sodium.crypto_core_ristretto255_is_valid_point(e) == 1
    )


def _element(e: bytes, what: str) -> bytes:
    """DeserializeElement: a canonical encoding of a non-identity element."""
    if not _valid_element(e):
        raise OprfError(f"{what} is not a valid ristretto255 element")
    return e


def _scalar(s: bytes, what: str) -> bytes:
    """DeserializeScalar: 32 little-endian bytes below the order."""
    if not isinstance(s, bytes) or len(s) != NS or int.from_bytes(s, "little") >= ORDER:
        raise OprfError(f"{what} is not a canonical scalar")
    return s


def _mul(s: bytes, e: bytes) -> bytes:
    """``s * e``; OprfError for an invalid element or an identity result (zero scalar)."""
    out = ctypes.create_string_buffer(NE)
    if _sodium.crypto_scalarmult_ristretto255(out, s, e) != 0:
        raise OprfError("scalar multiplication failed")
    return out.raw


def _mul_base(s: bytes) -> bytes:
    out = ctypes.create_string_buffer(NE)
    if _sodium.crypto_scalarmult_ristretto255_base(out, s) != 0:
        raise OprfError("scalar multiplication failed")
    return out.raw


def _add(p: bytes, q: bytes) -> bytes:
    out = ctypes.create_string_buffer(NE)
    if _sodium.crypto_core_ristretto255_add(out, p, q) != 0:
        raise OprfError("element addition failed")
    return out.raw


def _scalar_op(name: str, *args: bytes) -> bytes:
    out = ctypes.create_string_buffer(NS)
    getattr(_sodium, f"crypto_core_ristretto255_scalar_{name}")(out, *args)
    return out.raw


def _invert(s: bytes) -> bytes:
    out = ctypes.create_string_buffer(NS)
    if _sodium.crypto_core_ristretto255_scalar_invert(out, s) != 0:
        raise OprfError("zero scalar has no inverse")
    return out.raw


def _random_scalar() -> bytes:
    """RandomScalar: uniform in [1, order) (libsodium's scalar_random never returns zero)."""
    out = ctypes.create_string_buffer(NS)
    _sodium.crypto_core_ristretto255_scalar_random(out)
    return out.raw


# -- RFC 9497 functions (random scalars passed in) ------------------------------------------


def _derive_key_pair(seed: bytes, info: bytes, mode: int) -> tuple[bytes, bytes]:
    """DeriveKeyPair (§3.2.1): (skS, pkS)."""
    if len(seed) != NS:
        raise OprfError("a key seed is 32 bytes")
    ctx = context_string(mode)
    derive_input = seed + _lp(info)
    for counter in range(256):
        sk = _hash_to_scalar(derive_input + bytes([counter]), ctx, b"DeriveKeyPair" + ctx)
        if sk != bytes(NS):
            return sk, _mul_base(sk)
    raise OprfError("DeriveKeyPair failed")  # pragma: no cover - probability 2^-2000


def _blind(x: bytes, blind: bytes, mode: int) -> bytes:
    """Blind (§3.3.1) with the given blind scalar: the blinded element."""
    element = _hash_to_group(x, context_string(mode))
    if element == _IDENTITY:
        raise OprfError("the input maps to the identity element")  # pragma: no cover
    return _mul(blind, element)


def _unblinded_output(x: bytes, blind: bytes, evaluated: bytes) -> bytes:
    """The last steps of Finalize: Hash(len||input||len||unblinded||"Finalize")."""
    n = _mul(_invert(blind), evaluated)
    return hashlib.sha512(_lp(x) + _lp(n) + b"Finalize").digest()


def _evaluate(sk: bytes, x: bytes, mode: int) -> bytes:
    """Evaluate (§3.3.1): the PRF output from the key and the input."""
    element = _hash_to_group(x, context_string(mode))
    if element == _IDENTITY:
        raise OprfError("the input maps to the identity element")  # pragma: no cover
    return hashlib.sha512(_lp(x) + _lp(_mul(sk, element)) + b"Finalize").digest()


def _composite_weights(
    b: bytes, cs: Sequence[bytes], ds: Sequence[bytes], ctx: bytes
) -> list[bytes]:
    seed = hashlib.sha512(_lp(b) + _lp(b"Seed-" + ctx)).digest()
    return [
        _hash_to_scalar(_lp(seed) + _i2osp2(i) + _lp(c) + _lp(d) + b"Composite", ctx)
        for i, (c, d) in enumerate(zip(cs, ds, strict=True))
    ]


def _combine(weights: Sequence[bytes], elements: Sequence[bytes]) -> bytes:
    total = _mul(weights[0], elements[0])
    for w, e in zip(weights[1:], elements[1:], strict=True):
        total = _add(total, _mul(w, e))
    return total


def _compute_composites(
    b: bytes, cs: Sequence[bytes], ds: Sequence[bytes], ctx: bytes
) -> tuple[bytes, bytes]:
    """ComputeComposites (§2.2.2): (M, Z) from the public values only."""
    weights = _composite_weights(b, cs, ds, ctx)
    return _combine(weights, cs), _combine(weights, ds)


def _compute_composites_fast(
    k: bytes, b: bytes, cs: Sequence[bytes], ds: Sequence[bytes], ctx: bytes
) -> tuple[bytes, bytes]:
    """ComputeCompositesFast (§2.2.1): M as above, Z = k * M."""
    m = _combine(_composite_weights(b, cs, ds, ctx), cs)
    return m, _mul(k, m)


def _challenge(b: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes, ctx: bytes) -> bytes:
    return _hash_to_scalar(_lp(b) + _lp(m) + _lp(z) + _lp(t2) + _lp(t3) + b"Challenge", ctx)


def _generate_proof(
    k: bytes, pk: bytes, cs: Sequence[bytes], ds: Sequence[bytes], r: bytes, mode: int
) -> bytes:
    """GenerateProof (§2.2.1) with A = the generator, B = pk, nonce ``r``: ``c || s``."""
    ctx = context_string(mode)
    m, z = _compute_composites_fast(k, pk, cs, ds, ctx)
    t2, t3 = _mul_base(r), _mul(r, m)
    c = _challenge(pk, m, z, t2, t3, ctx)
    s = _scalar_op("sub", r, _scalar_op("mul", c, k))
    return c + s


def _verify_proof(
    pk: bytes, cs: Sequence[bytes], ds: Sequence[bytes], proof: bytes, mode: int
) -> bool:
    """VerifyProof (§2.2.2) with A = the generator, B = pk. False on any malformed part."""
    try:
        if not isinstance(proof, bytes) or len(proof) != PROOF_BYTES:
            return False
        c, s = _scalar(proof[:NS], "c"), _scalar(proof[NS:], "s")
        ctx = context_string(mode)
        m, z = _compute_composites(pk, cs, ds, ctx)
        t2 = _add(_mul_base(s), _mul(c, pk))
        t3 = _add(_mul(s, m), _mul(c, z))
        return hmac.compare_digest(_challenge(pk, m, z, t2, t3, ctx), c)
    except OprfError:
        return False


def _blind_evaluate_batch(
    sk: bytes, pk: bytes, blinded: Sequence[bytes], r: bytes, mode: int = MODE_VOPRF
) -> tuple[list[bytes], bytes]:
    """BlindEvaluate (VOPRF, §3.3.2) over a batch: evaluated elements and one proof."""
    cs = [_element(b, "blinded element") for b in blinded]
    ds = [_mul(sk, c) for c in cs]
    return ds, _generate_proof(sk, pk, cs, ds, r, mode)


# -- the safe surface -------------------------------------------------------------------------


def _as_bytes(x: bytes | str) -> bytes:
    data = x.encode() if isinstance(x, str) else x
    if not isinstance(data, bytes) or len(data) > 65535:
        raise OprfError("an OPRF input is at most 65535 bytes")
    return data


class OprfServer:
    """The server's side under one key: VOPRF evaluations with proofs, and self-check tags.

    The key is ``DeriveKeyPair(seed, KEY_INFO)`` in VOPRF mode, from a 32-byte keyring seed.
    """

    def __init__(self, key_id: str, seed: bytes, *, _info: bytes = KEY_INFO) -> None:
        self.key_id = key_id
        self.__sk, self.public_key = _derive_key_pair(seed, _info, MODE_VOPRF)
        self._rng: Callable[[], bytes] = _random_scalar

    def __repr__(self) -> str:
        return f"OprfServer(key_id={self.key_id!r})"

    def evaluate(self, blinded: bytes) -> tuple[bytes, bytes]:
        """The evaluated element and a DLEQ proof (64 bytes) for one blinded element.

        Raises :class:`OprfError` when ``blinded`` is not a valid non-identity element.
        """
        evaluated, proof = self.evaluate_batch([blinded])
        return evaluated[0], proof

    def evaluate_batch(self, blinded: Sequence[bytes]) -> tuple[list[bytes], bytes]:
        """Evaluated elements and one batched DLEQ proof for several blinded elements."""
        if not blinded:
            raise OprfError("nothing to evaluate")
        return _blind_evaluate_batch(self.__sk, self.public_key, blinded, self._rng())

    def output(self, x: bytes | str) -> bytes:
        """The full 64-byte PRF output of ``x`` (what a client's :meth:`OprfClient.finalize`
        returns for the same input)."""
        return _evaluate(self.__sk, _as_bytes(x), MODE_VOPRF)

    def tag(self, x: bytes | str) -> bytes:
        """The stored self-check tag of ``x``: the first 16 bytes of its PRF output."""
        return self.output(x)[:TAG_BYTES]

    def tags(self, values: Iterable[bytes]) -> list[bytes]:
        """Tags of many encoded inputs (each libsodium call releases the GIL, so threads
        tagging separate batches run in parallel)."""
        sk, ctx = self.__sk, context_string(MODE_VOPRF)
        dst_prime = b"HashToGroup-" + ctx
        dst_prime += bytes([len(dst_prime)])
        zpad = _ZPAD_STATE.copy
        sha512 = hashlib.sha512
        from_hash = _sodium.crypto_core_ristretto255_from_hash
        scalarmult = _sodium.crypto_scalarmult_ristretto255
        point = ctypes.create_string_buffer(NE)
        product = ctypes.create_string_buffer(NE)
        tail = b"\x00\x40\x00" + dst_prime  # I2OSP(64, 2) || I2OSP(0, 1) || DST_prime
        b1_tail = b"\x01" + dst_prime
        out: list[bytes] = []
        append = out.append
        for x in values:
            if len(x) > 65535:
                raise OprfError("an OPRF input is at most 65535 bytes")
            h = zpad()
            h.update(x + tail)
            uniform = sha512(h.digest() + b1_tail).digest()  # ell = 1 for 64 bytes
            from_hash(point, uniform)
            if scalarmult(product, sk, point) != 0:
                raise OprfError("the input maps to the identity element")  # pragma: no cover
            append(
                sha512(
                    len(x).to_bytes(2, "big") + x + b"\x00\x20" + product.raw + b"Finalize"
                ).digest()[:TAG_BYTES]
            )
        return out


@dataclass(frozen=True)
class Blinded:
    """A client's blinded input: send :attr:`element`; keep the rest for :meth:`finalize`."""

    element: bytes
    _input: bytes = field(repr=False)
    _blind: bytes = field(repr=False)


class OprfClient:
    """The client's side against one published public key (VOPRF mode)."""

    def __init__(self, public_key: bytes) -> None:
        self.public_key = _element(public_key, "the public key")
        self._rng: Callable[[], bytes] = _random_scalar

    def blind(self, x: bytes | str) -> Blinded:
        data = _as_bytes(x)
        r = self._rng()
        return Blinded(_blind(data, r, MODE_VOPRF), data, r)

    def finalize(self, blinded: Blinded, evaluated: bytes, proof: bytes) -> bytes:
        """The 64-byte PRF output, after checking the proof against the public key.

        Raises :class:`VerifyError` when the proof does not hold (another key, a wrong proof, a
        malformed element).
        """
        if not _valid_element(evaluated) or not _verify_proof(
            self.public_key, [blinded.element], [evaluated], proof, MODE_VOPRF
        ):
            raise VerifyError("the server's proof does not match its published key")
        return _unblinded_output(blinded._input, blinded._blind, evaluated)

    def tag(self, blinded: Blinded, evaluated: bytes, proof: bytes) -> bytes:
        """:meth:`finalize` truncated to the stored tag's 16 bytes."""
        return self.finalize(blinded, evaluated, proof)[:TAG_BYTES]


def bucket_prefix(x: bytes | str) -> int:
    """The first 32 bits of ``SHA-256(BUCKET_DOMAIN || x)`` as an unsigned integer."""
    digest = hashlib.sha256(BUCKET_DOMAIN + _as_bytes(x)).digest()
    return int.from_bytes(digest[:4], "big")


def bucket(x: bytes | str, bits: int) -> int:
    """The public self-check bucket of ``x``: the first ``bits`` (0-32) bits of its hash."""
    if not 0 <= bits <= 32:
        raise ValueError("bucket bits are between 0 and 32")
    return bucket_prefix(x) >> (32 - bits)

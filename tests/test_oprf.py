"""RFC 9497 OPRF / VOPRF over ristretto255-SHA512: the RFC's vectors, then the safe surface."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from breach_notify.crypto import oprf

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "rfc9497_ristretto255_sha512.json").read_text()
)
MODES = {m["name"]: m for m in VECTORS["modes"]}
h = bytes.fromhex


def cases(mode: str) -> list[Any]:
    return [
        pytest.param(MODES[mode], v, id=f"{mode}-{i + 1}")
        for i, v in enumerate(MODES[mode]["vectors"])
    ]


def test_vector_file_names_its_source_and_holds_every_ristretto255_vector() -> None:
    assert "RFC 9497" in VECTORS["source"]
    assert [len(MODES[m]["vectors"]) for m in ("OPRF", "VOPRF")] == [2, 3]
    assert any(v["batch"] == 2 for v in MODES["VOPRF"]["vectors"])


@pytest.mark.parametrize("name", ["OPRF", "VOPRF"])
def test_context_and_derived_key_pair_match_the_rfc(name: str) -> None:
    mode = MODES[name]
    ctx = oprf.context_string(mode["mode"])
    assert b"HashToGroup-" + ctx == h(mode["groupDST"])
    sk, pk = oprf._derive_key_pair(h(mode["seed"]), h(mode["keyInfo"]), mode["mode"])
    assert sk.hex() == mode["skSm"]
    if "pkSm" in mode:
        assert pk.hex() == mode["pkSm"]


@pytest.mark.parametrize(("mode", "vector"), cases("OPRF"))
def test_oprf_mode_vectors(mode: dict[str, Any], vector: dict[str, Any]) -> None:
    sk = h(mode["skSm"])
    for x, blind, blinded, evaluated, output in zip(
        vector["input"],
        vector["blind"],
        vector["blindedElement"],
        vector["evaluationElement"],
        vector["output"],
        strict=True,
    ):
        assert oprf._blind(h(x), h(blind), oprf.MODE_OPRF).hex() == blinded
        assert oprf._mul(sk, h(blinded)).hex() == evaluated  # BlindEvaluate, OPRF mode
        assert oprf._unblinded_output(h(x), h(blind), h(evaluated)).hex() == output
        assert oprf._evaluate(sk, h(x), oprf.MODE_OPRF).hex() == output


@pytest.mark.parametrize(("mode", "vector"), cases("VOPRF"))
def test_voprf_mode_vectors_with_proofs(mode: dict[str, Any], vector: dict[str, Any]) -> None:
    sk, pk = h(mode["skSm"]), h(mode["pkSm"])
    blinded = [
        oprf._blind(h(x), h(b), oprf.MODE_VOPRF)
        for x, b in zip(vector["input"], vector["blind"], strict=True)
    ]
    assert [b.hex() for b in blinded] == vector["blindedElement"]
    evaluated, proof = oprf._blind_evaluate_batch(sk, pk, blinded, h(vector["proofRandomScalar"]))
    assert [e.hex() for e in evaluated] == vector["evaluationElement"]
    assert proof.hex() == vector["proof"]
    assert oprf._verify_proof(pk, blinded, evaluated, proof, oprf.MODE_VOPRF)
    outputs = [
        oprf._unblinded_output(h(x), h(b), e)
        for x, b, e in zip(vector["input"], vector["blind"], evaluated, strict=True)
    ]
    assert [o.hex() for o in outputs] == vector["output"]
    assert [oprf._evaluate(sk, h(x), oprf.MODE_VOPRF) for x in vector["input"]] == outputs


def vector_server_and_client(
    vector: dict[str, Any], index: int = 0
) -> tuple[oprf.OprfServer, oprf.OprfClient]:
    mode = MODES["VOPRF"]
    server = oprf.OprfServer("v1", h(mode["seed"]), _info=h(mode["keyInfo"]))
    server._rng = lambda: h(vector["proofRandomScalar"])
    client = oprf.OprfClient(server.public_key)
    client._rng = lambda: h(vector["blind"][index])
    return server, client


@pytest.mark.parametrize(("mode", "vector"), cases("VOPRF")[:2])
def test_safe_surface_reproduces_the_voprf_vectors(
    mode: dict[str, Any], vector: dict[str, Any]
) -> None:
    server, client = vector_server_and_client(vector)
    assert server.public_key.hex() == mode["pkSm"]
    blinded = client.blind(h(vector["input"][0]))
    assert blinded.element.hex() == vector["blindedElement"][0]
    evaluated, proof = server.evaluate(blinded.element)
    assert (evaluated.hex(), proof.hex()) == (vector["evaluationElement"][0], vector["proof"])
    assert client.finalize(blinded, evaluated, proof).hex() == vector["output"][0]
    assert server.output(h(vector["input"][0])).hex() == vector["output"][0]
    assert client.tag(blinded, evaluated, proof) == server.tag(h(vector["input"][0]))


def test_a_server_answering_with_another_key_is_not_verified() -> None:
    published = oprf.OprfServer("o1", bytes(range(32)))
    other = oprf.OprfServer("o2", bytes(range(1, 33)))
    client = oprf.OprfClient(published.public_key)
    blinded = client.blind("+447700900123")
    evaluated, proof = other.evaluate(blinded.element)
    with pytest.raises(oprf.VerifyError):
        client.finalize(blinded, evaluated, proof)


def test_a_tampered_proof_or_evaluation_is_not_verified() -> None:
    server = oprf.OprfServer("o1", bytes(range(32)))
    client = oprf.OprfClient(server.public_key)
    blinded = client.blind("+447700900123")
    evaluated, proof = server.evaluate(blinded.element)
    assert client.finalize(blinded, evaluated, proof) == server.output("+447700900123")
    bad_proofs = [
        bytes([proof[0] ^ 1]) + proof[1:],
        proof[:32] + bytes([proof[32] ^ 1]) + proof[33:],
        proof[:32] + (oprf.ORDER + 1).to_bytes(32, "little"),  # s not canonical
        proof[:63],
        b"",
    ]
    for bad in bad_proofs:
        with pytest.raises(oprf.VerifyError):
            client.finalize(blinded, evaluated, bad)
    other_element, _ = server.evaluate(client.blind("+447700900124").element)
    for bad_element in (other_element, bytes(32), b"\xff" * 32):
        with pytest.raises(oprf.VerifyError):
            client.finalize(blinded, bad_element, proof)


@pytest.mark.parametrize("element", [bytes(32), b"\xff" * 32, b"\x01" * 31, b"", "text"])
def test_server_refuses_an_identity_or_malformed_blinded_element(element: Any) -> None:
    server = oprf.OprfServer("o1", bytes(range(32)))
    with pytest.raises(oprf.OprfError, match="not a valid ristretto255 element"):
        server.evaluate(element)


def test_batch_tags_equal_single_tags_and_prf_outputs() -> None:
    server = oprf.OprfServer("o1", bytes(range(32)))
    values = [f"+4477009{i:05d}".encode() for i in range(50)] + [b"", b"x" * 300]
    tags = server.tags(values)
    assert tags == [server.tag(v) for v in values]
    assert tags == [server.output(v)[:16] for v in values]
    assert len(set(tags)) == len(values) and all(len(t) == 16 for t in tags)


def test_batch_tags_from_threads_agree() -> None:
    server = oprf.OprfServer("o1", bytes(range(32)))
    values = [f"+3361234{i:04d}".encode() for i in range(200)]
    results: dict[int, list[bytes]] = {}

    def work(i: int) -> None:
        results[i] = server.tags(values[i::2])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] + results[1] == server.tags(values[0::2]) + server.tags(values[1::2])


def test_blinding_is_random_and_hides_the_input() -> None:
    server = oprf.OprfServer("o1", bytes(range(32)))
    client = oprf.OprfClient(server.public_key)
    a, b = client.blind("+447700900123"), client.blind("+447700900123")
    assert a.element != b.element
    assert "+447700900123" not in repr(a)
    assert client.finalize(a, *server.evaluate(a.element)) == client.finalize(
        b, *server.evaluate(b.element)
    )


def test_keys_from_different_seeds_differ_and_repr_hides_the_key() -> None:
    a, b = oprf.OprfServer("o1", bytes(32)), oprf.OprfServer("o2", b"\x01" * 32)
    assert a.public_key != b.public_key
    assert repr(a) == "OprfServer(key_id='o1')"
    with pytest.raises(oprf.OprfError):
        oprf.OprfServer("o3", b"short")


def test_bucket_is_the_leading_bits_of_the_domain_separated_sha256() -> None:
    digest = hashlib.sha256(b"breach-notify/self-check/bucket/v1\x00+447700900123").digest()
    top = int.from_bytes(digest[:4], "big")
    assert oprf.bucket_prefix("+447700900123") == top
    assert oprf.bucket("+447700900123", 0) == 0
    assert oprf.bucket("+447700900123", 13) == top >> 19
    assert oprf.bucket("+447700900123", 32) == top
    with pytest.raises(ValueError):
        oprf.bucket("+447700900123", 33)

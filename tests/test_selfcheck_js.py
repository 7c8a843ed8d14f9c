"""The browser client (web/static/selfcheck.js) under node: RFC 9497 vectors through the vendored
@noble/curves, and answers made by the Python server settled as the Python client settles them."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from breach_notify.crypto import oprf

ROOT = Path(__file__).resolve().parent.parent
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None, reason="node is not installed: the JS self-check client is not tested"
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _fixture(tmp_path: Path) -> Path:
    """Config and answers from the Python server for numbers blinded with known scalars."""
    server = oprf.OprfServer("o1", bytes(range(32)))
    inside, outside = "+447700900123", "+33612345678"
    config = {
        "bucket_bits": 11,
        "keys": [{"id": "o1", "public_key": b64(server.public_key)}],
        "breaches": [
            {"id": "demo", "title": "Demo", "kinds": ["name", "email"], "key_id": "o1"},
        ],
    }
    padding = [bytes([i]) * 16 for i in range(1, 8)]
    tags = b"".join(sorted([*padding, server.tag(inside)]))
    cases = []
    for i, e164 in enumerate((inside, outside)):
        client = oprf.OprfClient(server.public_key)
        blind = (1000 + i).to_bytes(32, "little")
        client._rng = lambda blind=blind: blind
        blinded = client.blind(e164)
        evaluated, proof = server.evaluate(blinded.element)
        found = e164 == inside
        hit = [{"id": "demo", "title": "Demo", "kinds": ["name", "email"]}]
        cases.append(
            {
                "e164": e164,
                "blind": blind.hex(),
                "blinded": b64(blinded.element),
                "bucket": oprf.bucket(e164, 11),
                "answer": {
                    "evaluations": [
                        {"key_id": "o1", "evaluated": b64(evaluated), "proof": b64(proof)}
                    ],
                    "breaches": [{"id": "demo", "key_id": "o1", "tags": b64(tags)}],
                },
                "expect": {
                    "verified": True,
                    "found": found,
                    "breaches": hit if found else [],
                },
            }
        )
    path = tmp_path / "fixture.json"
    path.write_text(json.dumps({"config": config, "cases": cases}))
    return path


def test_js_client_passes_rfc9497_vectors_and_settles_python_answers(tmp_path: Path) -> None:
    assert NODE is not None
    run = subprocess.run(
        [NODE, "--import", "./tests/js/register.mjs", "--test", "tests/js/selfcheck.test.mjs"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "SELFCHECK_FIXTURE": str(_fixture(tmp_path))},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout and "# skipped 0" in run.stdout
    assert "# pass 7" in run.stdout

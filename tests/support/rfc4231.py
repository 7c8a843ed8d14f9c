"""The RFC 4231 HMAC-SHA256 test cases (``vectors/rfc4231_hmac_sha256.txt``), for the tests."""

from __future__ import annotations

from pathlib import Path

VECTORS = Path(__file__).parents[1] / "vectors" / "rfc4231_hmac_sha256.txt"


def vectors() -> list[tuple[str, bytes, bytes, str]]:
    """(case, key, data, expected hex MAC) per line of the vector file."""
    rows = []
    for line in VECTORS.read_text().splitlines():
        if line and not line.startswith("#"):
            case, key, data, mac = line.split("|")
            rows.append((case, bytes.fromhex(key), bytes.fromhex(data), mac))
    return rows

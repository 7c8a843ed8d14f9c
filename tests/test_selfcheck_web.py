"""The private self-check end to end: a breach ingested with --self-check, the real web app on
loopback (uvicorn), the Python client and the ``self-check`` CLI in a subprocess."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support.check import Recorder, serve
from support.privacy import scan
from support.synthetic import Truth, write_facebook

from breach_notify.cli.selfcheck import check
from breach_notify.crypto import Keyring
from breach_notify.crypto.oprf import OprfServer, bucket
from breach_notify.ingest import IngestOptions, ingest, selfcheck
from breach_notify.settings import Settings
from breach_notify.web import selfcheck as web_selfcheck
from breach_notify.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Site:
    url: str
    settings: Settings
    keyring: Keyring
    truth: Truth
    recorder: Recorder

    def cli(self, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "BREACH_NOTIFY_HOME": str(self.settings.home)}
        return subprocess.run(
            [sys.executable, "-m", "breach_notify", "self-check", *args, "--url", url or self.url],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("selfcheck")
    settings = Settings(home=base / "home", self_check_require_pow=False)
    keyring = Keyring.create(settings.keyring_path)
    dump = base / "United Kingdom.txt"
    truth = write_facebook(dump, 1200, seed=21, regions=("GB", "FR"))
    target, selfcheck.TARGET_BUCKET = selfcheck.TARGET_BUCKET, 64
    try:
        ingest(
            settings,
            keyring,
            [dump],
            IngestOptions("fb-gb", title="Facebook 2021 (GB)", self_check=True),
        )
    finally:
        selfcheck.TARGET_BUCKET = target
    other = base / "other.txt"
    write_facebook(other, 40, seed=22, regions=("US",))
    ingest(settings, keyring, [other], IngestOptions("tiny", title="A tiny leak", self_check=True))
    recorder = Recorder(create_app(settings, public_url="http://hooks.test", auth_token="t"))
    with serve(recorder) as url:
        yield Site(url, settings, keyring, truth, recorder)
    numbers = sorted(set(truth.numbers))[::10]
    texts = [body.decode("latin-1") for _, body in recorder.bodies]
    assert scan([settings.home], numbers, texts) == []


def config(site: Site) -> dict[str, Any]:
    return httpx.get(f"{site.url}/check/config").json()


def test_config_publishes_keys_bits_breaches_and_pad(site: Site) -> None:
    c = config(site)
    assert c["keys"] == [
        {
            "id": "o1",
            "public_key": base64.b64encode(site.keyring.oprf_server("o1").public_key).decode(),
        }
    ]
    ids = {b["id"]: b for b in c["breaches"]}
    assert set(ids) == {"fb-gb", "tiny"}
    assert ids["fb-gb"]["title"] == "Facebook 2021 (GB)" and ids["fb-gb"]["kinds"]
    assert ids["tiny"]["bucket_bits"] == 0 < ids["fb-gb"]["bucket_bits"] == c["bucket_bits"]
    assert c["pad_size"] >= 16 and c["pad_size"] & (c["pad_size"] - 1) == 0
    assert c["pow"] == {"required": False}


def test_a_number_in_the_breach_is_found_and_one_outside_is_not(site: Site) -> None:
    inside = sorted(site.truth.kinds)[3]
    got = check(inside, site.url)
    assert got.verified and got.found
    assert [b["id"] for b in got.breaches] == ["fb-gb"]
    assert got.breaches[0]["title"] == "Facebook 2021 (GB)"
    outside = check("+447700900999", site.url)
    assert outside.as_dict() == {
        "verified": True,
        "found": False,
        "bucket_bits": config(site)["bucket_bits"],
        "breaches": [],
    }


def test_cli_finds_a_national_number_and_sends_only_bucket_blinded_pow(site: Site) -> None:
    import phonenumbers

    inside = next(e for e in sorted(site.truth.kinds) if e.startswith("+44"))
    national = phonenumbers.format_number(
        phonenumbers.parse(inside), phonenumbers.PhoneNumberFormat.NATIONAL
    )
    before = len(site.recorder.bodies)
    run = site.cli(national, "--region", "GB", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["found"] is True and out["verified"] is True
    assert [b["id"] for b in out["breaches"]] == ["fb-gb"]
    assert set(out) == {"found", "breaches", "bucket_bits", "verified"}
    posted = [body for path, body in site.recorder.bodies[before:] if path == "/check/api"]
    assert len(posted) == 1
    for body in posted:
        sent = json.loads(body)
        assert set(sent) == {"bucket", "blinded", "pow"}
        assert sent["bucket"] == bucket(inside, out["bucket_bits"]) and sent["pow"] == ""
    all_sent = [body.decode("latin-1") for _, body in site.recorder.bodies[before:]]
    assert scan([], [inside], [*all_sent, run.stdout, run.stderr]) == []


def test_responses_for_the_fullest_and_the_emptiest_bucket_have_the_same_length(
    site: Site,
) -> None:
    c = config(site)
    bits = c["bucket_bits"]
    sizes = {b: 0 for b in range(2**bits)}
    for e in site.truth.kinds:
        sizes[bucket(e, bits)] += 1
    fullest, emptiest = max(sizes, key=sizes.get), min(sizes, key=sizes.get)  # type: ignore[arg-type]
    assert sizes[fullest] > sizes[emptiest]
    element = OprfServer("x", bytes(32)).public_key
    lengths = []
    for b in (fullest, emptiest, fullest):
        body = {"bucket": b, "blinded": base64.b64encode(element).decode(), "pow": ""}
        r = httpx.post(f"{site.url}/check/api", json=body)
        assert r.status_code == 200
        lengths.append(len(r.content))
        tags = base64.b64decode(r.json()["breaches"][0]["tags"])
        assert len(tags) == 16 * c["pad_size"]
        listed = [tags[i : i + 16] for i in range(0, len(tags), 16)]
        assert listed == sorted(listed)
    assert len(set(lengths)) == 1


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"not json", 400, "must be JSON"),
        (
            json.dumps({"bucket": 0, "blinded": "", "pow": "", "number": "+447700900123"}),
            400,
            "exactly {bucket, blinded, pow}",
        ),
        (json.dumps({"bucket": 0, "blinded": ""}), 400, "exactly"),
        (json.dumps({"bucket": True, "blinded": "", "pow": ""}), 400, "'bucket'"),
        (json.dumps({"bucket": 2**40, "blinded": "", "pow": ""}), 400, "'bucket'"),
        (json.dumps({"bucket": 0, "blinded": "AAAA", "pow": ""}), 400, "32-byte"),
        (
            json.dumps({"bucket": 0, "blinded": base64.b64encode(bytes(32)).decode(), "pow": ""}),
            400,
            "not a valid ristretto255 element",
        ),
        (json.dumps({"bucket": 0, "blinded": "x" * 5000, "pow": ""}), 413, "over 4096"),
    ],
)
def test_malformed_requests_are_refused_without_echo(
    site: Site, body: Any, status: int, message: str
) -> None:
    r = httpx.post(f"{site.url}/check/api", content=body)
    assert r.status_code == status and message in r.json()["error"]
    assert "447700900123" not in r.text


def lying_server(site: Site, tamper: Callable[[dict[str, Any], bytes], None]) -> Starlette:
    """Publishes the real configuration, answers with the real tags, but evaluations altered by
    ``tamper(answer, blinded)``."""

    async def config_(request: Request) -> Response:
        return JSONResponse(config(site))

    async def api(request: Request) -> Response:
        body = await request.body()
        answer = httpx.post(f"{site.url}/check/api", content=body).json()
        tamper(answer, base64.b64decode(json.loads(body)["blinded"]))
        return JSONResponse(answer)

    return Starlette(
        routes=[Route("/check/config", config_), Route("/check/api", api, methods=["POST"])]
    )


def other_key(answer: dict[str, Any], blinded: bytes) -> None:
    evaluated, proof = OprfServer("o1", b"\x07" * 32).evaluate(blinded)
    answer["evaluations"][0].update(
        evaluated=base64.b64encode(evaluated).decode(), proof=base64.b64encode(proof).decode()
    )


def wrong_proof(answer: dict[str, Any], blinded: bytes) -> None:
    proof = bytearray(base64.b64decode(answer["evaluations"][0]["proof"]))
    proof[5] ^= 1
    answer["evaluations"][0]["proof"] = base64.b64encode(bytes(proof)).decode()


@pytest.mark.parametrize("tamper", [other_key, wrong_proof], ids=["other-key", "wrong-proof"])
def test_a_server_with_another_key_or_a_wrong_proof_is_not_verified(
    site: Site, tamper: Callable[[dict[str, Any], bytes], None]
) -> None:
    inside = sorted(site.truth.kinds)[5]
    with serve(lying_server(site, tamper)) as url:
        run = site.cli(inside, "--json", url=url)
        assert run.returncode == 1, run.stderr
        out = json.loads(run.stdout)
        assert out["verified"] is False and out["found"] is False and out["breaches"] == []


def test_proof_of_work_is_required_unless_turned_off(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    Keyring.create(settings.keyring_path)
    element = OprfServer("x", bytes(32)).public_key
    body = {"bucket": 0, "blinded": base64.b64encode(element).decode(), "pow": ""}

    def post(routes: list[Route]) -> httpx.Response:
        with serve(Starlette(routes=routes)) as url:
            return httpx.post(f"{url}/check/api", json=body)

    assert post(web_selfcheck.routes(settings)).status_code == 503
    seen: list[tuple[str, int, bytes]] = []

    def refuse(pow_: str, b: int, blinded: bytes) -> bool:
        seen.append((pow_, b, blinded))
        return False

    assert post(web_selfcheck.routes(settings, pow_check=refuse)).status_code == 403
    assert seen == [("", 0, element)]
    assert post(web_selfcheck.routes(settings, pow_check=lambda *a: True)).status_code == 200
    off = settings.model_copy(update={"self_check_require_pow": False})
    assert post(web_selfcheck.routes(off)).status_code == 200


def test_a_breach_tagged_while_serving_is_served_after_the_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_selfcheck, "RELOAD_SECONDS", 0.0)
    settings = Settings(home=tmp_path / "home", self_check_require_pow=False)
    keyring = Keyring.create(settings.keyring_path)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    write_facebook(a, 60, seed=31)
    tb = write_facebook(b, 60, seed=32)
    ingest(settings, keyring, [a], IngestOptions("first", self_check=True))
    with serve(Starlette(routes=web_selfcheck.routes(settings))) as url:
        assert [x["id"] for x in httpx.get(f"{url}/check/config").json()["breaches"]] == ["first"]
        inside = sorted(tb.kinds)[0]
        assert not check(inside, url).found
        ingest(settings, keyring, [b], IngestOptions("second", title="Second", self_check=True))
        time.sleep(0.05)  # a new modification time
        ids = [x["id"] for x in httpx.get(f"{url}/check/config").json()["breaches"]]
        assert ids == ["first", "second"]
        got = check(inside, url)
        assert got.verified and [x["id"] for x in got.breaches] == ["second"]

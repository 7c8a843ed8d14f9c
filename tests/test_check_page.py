"""The /check page and the self-check API as the web app serves them (no browser): the page's
headers (its import map allowed by hash, on that page only), its languages, and the API guarded by
the pages' ALTCHA proof of work and by the limits per client, per bucket and global."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from support.check import Recorder, serve
from support.privacy import scan
from support.synthetic import write_facebook

from breach_notify.crypto import Keyring
from breach_notify.crypto.oprf import OprfServer
from breach_notify.ingest import IngestOptions, ingest, selfcheck
from breach_notify.settings import Settings
from breach_notify.web import abuse
from breach_notify.web.app import create_app
from breach_notify.web.security import CSP

ELEMENT = base64.b64encode(OprfServer("x", bytes(32)).public_key).decode()


@dataclass
class App:
    url: str
    recorder: Recorder

    def post(self, bucket: int = 0, pow_: str = "", **headers: str) -> httpx.Response:
        body = {"bucket": bucket, "blinded": ELEMENT, "pow": pow_}
        return httpx.post(f"{self.url}/check/api", json=body, headers=headers, timeout=20)

    def solved(self) -> str:
        challenge = httpx.get(f"{self.url}/altcha/challenge", timeout=20).json()
        return abuse.solve(challenge)


@dataclass
class Store:
    settings: Settings
    inside: list[str]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A breach tagged for the self-check, in buckets of a few bits (so buckets differ)."""
    base = tmp_path_factory.mktemp("check")
    settings = Settings(home=base / "home")
    keyring = Keyring.create(settings.keyring_path)
    truth = write_facebook(base / "fb.txt", 300, seed=41, regions=("GB",))
    target, selfcheck.TARGET_BUCKET = selfcheck.TARGET_BUCKET, 32
    try:
        ingest(
            settings,
            keyring,
            [base / "fb.txt"],
            IngestOptions("fb", title="Facebook 2021", self_check=True),
        )
    finally:
        selfcheck.TARGET_BUCKET = target
    return Store(settings, sorted(truth.kinds))


@pytest.fixture
def app(store: Store) -> Iterator[Any]:
    settings = store.settings

    @contextmanager
    def running(**changes: Any) -> Iterator[App]:
        changed = settings.model_copy(update={"pow_cost": 100, **changes})
        recorder = Recorder(create_app(changed, public_url="http://hooks.test", auth_token="t"))
        with serve(recorder) as url:
            yield App(url, recorder)

    yield running


def inline_import_map(page: str) -> str:
    found = re.findall(r'<script type="importmap">(.*?)</script>', page, re.S)
    assert len(found) == 1
    return str(found[0])


def test_the_check_page_allows_its_import_map_by_hash_and_nothing_else(app: Any) -> None:
    with app() as a:
        r = httpx.get(f"{a.url}/check")
        assert r.status_code == 200
        imports = inline_import_map(r.text)
        digest = base64.b64encode(hashlib.sha256(imports.encode()).digest()).decode()
        csp = r.headers["content-security-policy"]
        assert csp == CSP.replace("script-src 'self'", f"script-src 'self' 'sha256-{digest}'")
        assert '"@noble/curves/":"/static/vendor/noble/curves/"' in imports
        for header in ("x-frame-options", "referrer-policy", "cross-origin-opener-policy"):
            assert header in r.headers
        assert r.headers["cache-control"] == "no-store"
        # every other inline <script> would be refused: only the import map and module files
        scripts = re.findall(r"<script\b[^>]*>", r.text)
        assert scripts == [
            '<script type="importmap">',
            '<script type="module" src="/static/js/check.js">',
        ]
        for path in ("/", "/signup", "/stop"):
            other = httpx.get(f"{a.url}{path}")
            assert other.headers["content-security-policy"] == CSP
            assert "importmap" not in other.text
        for asset in ("/static/js/check.js", "/static/js/normalize.js", "/static/selfcheck.js",
                      "/static/vendor/libphonenumber-js/libphonenumber-max.js",
                      "/static/vendor/noble/curves/ed25519.js"):  # fmt: skip
            got = httpx.get(f"{a.url}{asset}")
            assert got.status_code == 200 and "javascript" in got.headers["content-type"], asset


def test_the_check_form_has_no_named_field_and_waits_for_its_script(app: Any) -> None:
    with app() as a:
        page = httpx.get(f"{a.url}/check").text
    form = page[page.index('<form id="check-form"') : page.index("</form>")]
    assert '<fieldset id="check-fields" class="plain" disabled>' in form
    names = re.findall(r'\sname="([^"]+)"', form)
    assert names == ["altcha"]  # the proof-of-work widget's own field, nothing about the number
    assert "method=" not in form and "action=" not in form
    assert "<noscript>" in form


@pytest.mark.parametrize(
    ("accept", "query", "lang", "title", "country"),
    [
        ("en-GB,en", "", "en", "Is your number in a leak?", "GB"),
        ("fr-FR,fr", "", "fr", "Votre numéro est-il dans une fuite ?", "FR"),
        ("fr-BE", "?lang=en", "en", "Is your number in a leak?", "BE"),
    ],
)
def test_the_check_page_speaks_english_and_french(
    app: Any, accept: str, query: str, lang: str, title: str, country: str
) -> None:
    with app() as a:
        r = httpx.get(f"{a.url}/check{query}", headers={"Accept-Language": accept})
    page = html.unescape(r.text)
    assert f'<html lang="{lang}">' in page and title in page
    assert f'<option value="{country}" selected>' in page
    assert 'href="/signup?lang=' + lang in page
    assert 'aria-current="page">' + ("Check your number" if lang == "en" else "Vérifier") in page
    if lang == "fr":
        assert "identifiant de compte" in page and "Vérifier mon numéro" in page


def test_the_api_takes_each_altcha_solution_once(app: Any) -> None:
    with app() as a:
        assert a.post().status_code == 403  # no proof of work
        assert a.post(pow_="garbage").status_code == 403
        payload = a.solved()
        assert a.post(pow_=payload).status_code == 200
        assert a.post(pow_=payload).status_code == 403  # replayed
        config = httpx.get(f"{a.url}/check/config").json()
        assert config["pow"] == {"required": True} and config["bucket_bits"] >= 2
        page = httpx.get(f"{a.url}/check").text
        assert "<altcha-widget" in page


def test_without_required_proof_of_work_the_page_shows_no_widget(app: Any) -> None:
    with app(self_check_require_pow=False) as a:
        assert a.post(pow_="anything").status_code == 200
        assert "<altcha-widget" not in httpx.get(f"{a.url}/check").text


def test_a_required_proof_with_the_pages_proof_of_work_off_answers_503(app: Any) -> None:
    with app(pow_enabled=False) as a:
        r = a.post(pow_="anything")
        assert r.status_code == 503 and "not set up" in r.json()["error"]
        assert "<altcha-widget" not in httpx.get(f"{a.url}/check").text


def test_the_limit_per_client_address_answers_429_with_retry_after(app: Any) -> None:
    with app(
        self_check_require_pow=False, self_check_limit_per_client="3/hour", web_trust_proxy=True
    ) as a:
        first = {"X-Forwarded-For": "198.51.100.7"}
        assert [a.post(b, **first).status_code for b in range(4)] == [200, 200, 200, 429]
        refused = a.post(9, **first)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "600"
        assert a.post(0, **{"X-Forwarded-For": "198.51.100.8"}).status_code == 200


def test_the_limit_per_bucket_counts_one_bucket_whoever_asks(app: Any) -> None:
    with app(
        self_check_require_pow=False, self_check_limit_per_bucket="2/hour", web_trust_proxy=True
    ) as a:
        codes = [a.post(0, **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(3)]
        assert codes == [200, 200, 429]
        assert a.post(1, **{"X-Forwarded-For": "198.51.100.9"}).status_code == 200


def test_the_global_budget_is_spent_only_by_requests_with_a_valid_proof(app: Any) -> None:
    with app(self_check_limit_global="2/hour", web_trust_proxy=True) as a:
        for i in range(5):  # wrong proofs from many addresses spend nothing of the budget
            assert a.post(i, pow_="x", **{"X-Forwarded-For": f"203.0.113.{i}"}).status_code == 403
        ok = [a.post(i, pow_=a.solved(), **{"X-Forwarded-For": f"192.0.2.{i}"}) for i in range(3)]
        assert [r.status_code for r in ok] == [200, 200, 429]
        assert "retry later" in ok[-1].json()["error"]


def test_the_cli_solves_the_proof_of_work_the_server_requires(app: Any, store: Store) -> None:
    inside = store.inside[0]
    with app() as a:
        run = subprocess.run(
            [sys.executable, "-m", "breach_notify", "self-check", inside, "--url", a.url, "--json"],
            env={**os.environ, "BREACH_NOTIFY_HOME": str(store.settings.home)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout)
        assert out["verified"] and out["found"] and out["breaches"][0]["title"] == "Facebook 2021"
        [body] = a.recorder.posted("/check/api")
        sent = json.loads(body)
        assert set(sent) == {"bucket", "blinded", "pow"} and sent["pow"]
        texts = [run.stdout, run.stderr, *(b.decode() for _, b in a.recorder.bodies)]
        assert scan([store.settings.home], [inside], texts) == []

"""The /check page in a real browser: headless Chromium (Debian's packages) driven by Selenium,
against the whole web app on uvicorn and a breach ingested by the CLI with ``--self-check``.

A number in the breach is found with the breach's title and kinds, one outside it is not, a
number typed in national format with its country chosen is found; the proof of work is solved
by the page. Every request the server received is kept: the only POST bodies are exactly
``{bucket, blinded, pow}`` and no request holds the number in any form. A server answering with
another key or a wrong proof makes the page say the check could not be verified. Screenshots at
desktop and phone width, axe-core (no serious or critical violation), no CSP violation, nothing
loaded from elsewhere; the run ends with the plaintext scan of the data dir, logs and outputs.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from support import browser, privacy
from support.check import Recorder, serve
from support.flows import Run, cli
from support.synthetic import write_facebook

from breach_notify.crypto.oprf import OprfServer
from breach_notify.settings import Settings
from breach_notify.web.app import create_app
from breach_notify.web.selfcheck import Snapshots

pytestmark = browser.module_marks()

try:  # only when the browser can run: Selenium's helpers
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # pragma: no cover - selenium is a dev dependency
    pass

TITLE = "Facebook 2021 (test)"
LIST_TITLE = "A list of numbers only"
SHARED = 5  # the first GB numbers of the Facebook breach are in the list too
RESULT = "#check-result > section[id^=result-]:not([hidden]), #error-summary"


@dataclass
class Site:
    home: Path
    settings: Settings
    inside: list[str]  # E.164 numbers of the breach
    kinds: list[str]  # the kinds the Facebook breach exposed (as /check/config lists them)
    runs: list[Run]
    log: io.StringIO = field(default_factory=io.StringIO)
    recorders: list[Recorder] = field(default_factory=list)
    typed: list[str] = field(default_factory=list)  # every number typed into a page

    def app(self, tamper: str | None = None) -> Any:
        app: Any = create_app(self.settings, public_url="http://hooks.test", auth_token="t")
        if tamper is not None:
            app = Tampering(app, tamper)
        recorder = Recorder(app)
        self.recorders.append(recorder)
        return recorder


class Tampering:
    """ASGI wrapper: the real app's answers to ``POST /check/api``, with the evaluation made
    under another key (and a proof valid for that key) or with a proof altered by one bit."""

    def __init__(self, app: Any, how: str) -> None:
        self.app, self.how = app, how

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/check/api":
            await self.app(scope, receive, send)
            return
        sent: list[bytes] = []
        start: dict[str, Any] = {}

        async def hold(message: Any) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                sent.append(message.get("body", b""))
                if not message.get("more_body"):
                    body = self.alter(b"".join(sent)) if start["status"] == 200 else b"".join(sent)
                    headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
                    headers.append((b"content-length", str(len(body)).encode()))
                    await send({**start, "headers": headers})
                    await send({"type": "http.response.body", "body": body})

        self.blinded = b""

        async def reading() -> Any:
            message = await receive()
            if message["type"] == "http.request" and message.get("body"):
                self.blinded = base64.b64decode(json.loads(message["body"])["blinded"])
            return message

        await self.app(scope, reading, hold)

    def alter(self, body: bytes) -> bytes:
        answer = json.loads(body)
        ev = answer["evaluations"][0]
        if self.how == "other-key":
            evaluated, proof = OprfServer("o1", b"\x07" * 32).evaluate(self.blinded)
            ev["evaluated"] = base64.b64encode(evaluated).decode()
            ev["proof"] = base64.b64encode(proof).decode()
        else:
            proof = bytearray(base64.b64decode(ev["proof"]))
            proof[40] ^= 1
            ev["proof"] = base64.b64encode(bytes(proof)).decode()
        return json.dumps(answer).encode()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("check-browser")
    home = base / "home"
    dump = base / "United Kingdom.txt"
    truth = write_facebook(dump, 400, seed=51, regions=("GB", "FR"))
    runs = [cli(home, "keys", "init")]
    ingest = ["ingest", str(dump), "--breach", "fb-2021", "--title", TITLE, "--self-check"]
    runs.append(cli(home, *ingest, "--json"))
    listed = base / "list.csv"  # a second breach that exposed nothing but the numbers
    shared = [n for n in sorted(truth.kinds) if n.startswith("+44")][:SHARED]
    listed.write_text("phone\n" + "".join(f"0{n[3:]}\n" for n in shared))
    csv = ["ingest", str(listed), "--breach", "list-2022", "--title", LIST_TITLE, "--format",
           "csv", "--phone-column", "phone", "--default-region", "GB", "--self-check"]  # fmt: skip
    runs.append(cli(home, *csv, "--json"))
    assert all(r.code == 0 for r in runs), [r.stderr for r in runs]
    assert runs[1].json["self_check"]["tags"] == truth.distinct
    assert runs[2].json["self_check"]["tags"] == SHARED
    settings = Settings(home=home, pow_cost=2_000)
    dump.unlink()  # the raw files are gone, as after a real ingest: only the store remains
    listed.unlink()
    kinds = {b.id: b.kinds for b in Snapshots(settings).get().breaches}
    assert kinds["list-2022"] == [] and kinds["fb-2021"]
    site = Site(home, settings, sorted(truth.kinds), kinds["fb-2021"], runs)
    yield site
    # the plaintext scan: data dir, server logs, CLI outputs, every request the servers received
    texts = [site.log.getvalue(), *[r.stdout + r.stderr for r in site.runs]]
    for recorder in site.recorders:
        texts += [f"{m} {p} " + body.decode("latin-1") for m, p, body in recorder.requests]
    numbers = sorted(set(site.inside[::7]) | {n for n in site.typed if n.startswith("+")})
    hits = privacy.scan([home], numbers, texts)
    for typed in (n for n in site.typed if not n.startswith("+")):  # national, with its country
        region, national = typed.split(":", 1)
        hits += privacy.scan([home], [national], texts, region=region)
    assert hits == []


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    print(f"screenshots in {folder}")
    keep = os.environ.get("BREACH_NOTIFY_SCREENSHOTS")
    if keep:
        shutil.copytree(folder, keep, dirs_exist_ok=True)


@dataclass
class Visit:
    """One person's visit to /check: the browser, screenshots and checks of every state."""

    driver: WebDriver
    base: str
    shots: Path
    size: str
    site: Site
    step: int = 0

    def at(self, name: str) -> None:
        self.step += 1
        csp = [m for m in browser.console(self.driver) if "Content Security Policy" in m]
        assert csp == [], f"{name}: CSP violations {csp}"
        path = self.shots / f"{self.size}-{self.step:02d}-{name}.png"
        assert browser.screenshot(self.driver, path).stat().st_size > 5_000
        bad = browser.axe_violations(self.driver)
        assert bad == [], f"{name}: axe {[(v['id'], v['help']) for v in bad]}"
        browser.console(self.driver)  # drop what the injected axe itself logged

    def check(self, country: str, number: str) -> str:
        """Type and check a number; the id of what the page shows then."""
        if phonenumbers.is_valid_number(phonenumbers.parse(number, country)):
            self.site.typed.append(number if number.startswith("+") else f"{country}:{number}")
        Select(self.driver.find_element(By.ID, "country")).select_by_value(country)
        box = self.driver.find_element(By.ID, "number")
        box.clear()
        box.send_keys(number)
        self.driver.find_element(By.ID, "check-submit").click()
        WebDriverWait(self.driver, 90).until(
            lambda d: (
                (
                    d.find_elements(By.CSS_SELECTOR, RESULT)
                    and not d.find_element(By.ID, "check-status").text
                )
                or d.find_elements(By.CSS_SELECTOR, "#error-summary")
            )
        )
        shown = self.driver.find_elements(By.CSS_SELECTOR, RESULT)
        assert len(shown) == 1
        return str(shown[0].get_attribute("id"))

    def text(self, css: str) -> str:
        return str(self.driver.find_element(By.CSS_SELECTOR, css).text)


CASES = {
    # size: (Accept-Language, page language, country of the national number, labels)
    "desktop": ("en-GB,en", "en", "GB"),
    "phone": ("fr-FR,fr", "fr", "FR"),
}
WORDS = {
    "en": {"found": "Your number is in a leak", "two": "Your number is in 2 leaks",
           "only": "Only the number itself was exposed.", "none": "not in the leaks we know of",
           "signup": "Sign up for alerts", "kind": {"name": "name", "email": "email address"}},
    "fr": {"found": "Votre numéro est dans une fuite", "two": "Votre numéro est dans 2 fuites",
           "only": "Seul le numéro lui-même a été exposé.", "none": "pas dans les fuites",
           "signup": "S'inscrire aux alertes", "kind": {"name": "nom", "email": "adresse e-mail"}},
}  # fmt: skip


def outside_number(site: Site, region: str) -> str:
    """A valid mobile number of ``region`` that is not in the breach."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assert example is not None
    nsn = phonenumbers.national_significant_number(example)
    for last in range(1000):
        candidate = f"+{example.country_code}{nsn[:-3]}{last:03d}"
        parsed = phonenumbers.parse(candidate)
        if phonenumbers.is_valid_number(parsed) and candidate not in site.inside:
            return candidate
    raise AssertionError("no outside number")


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_numbers_in_and_out_of_the_breach_are_told_apart_in_the_browser(
    size: str, site: Site, shots: Path
) -> None:
    accept, lang, region = CASES[size]
    words = WORDS[lang]
    recorder = site.app()
    with serve(recorder, site.log) as base, browser.chromium(accept_language=accept) as driver:
        browser.set_size(driver, size)
        v = Visit(driver, base, shots, size, site)
        driver.get(f"{base}/check")
        WebDriverWait(driver, 20).until(
            lambda d: d.find_element(By.ID, "check-fields").is_enabled()
        )
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == lang
        v.at("check")

        # 1. a number of both breaches, typed in E.164: found, with their titles and kinds
        inside = next(n for n in site.inside if n.startswith("+44"))
        assert v.check("GB", inside) == "result-found"
        found = v.text("#result-found")
        assert words["two"] in found and TITLE in found and LIST_TITLE in found
        items = driver.find_elements(By.CSS_SELECTOR, "#found-list li")
        fb, only = (next(i.text for i in items if t in i.text) for t in (TITLE, LIST_TITLE))
        for kind in ("name", "email"):
            assert (words["kind"][kind] in fb) is (kind in site.kinds), kind
        assert words["only"] in only and words["only"] not in fb
        assert words["signup"] in v.text("#advice")
        link = driver.find_element(By.ID, "signup-link").get_attribute("href") or ""
        assert link.startswith(f"{base}/signup?lang={lang}")
        assert driver.switch_to.active_element.get_attribute("id") == "found-title"
        v.at("found")

        # 2. a valid number outside the breach: not found
        outside = outside_number(site, "GB")
        assert v.check("GB", outside) == "result-none"
        assert words["none"] in v.text("#result-none")
        v.at("not-found")

        # 3. a number of the Facebook breach only, in national format, its country chosen
        prefix = "+" + str(phonenumbers.country_code_for_region(region))
        e164 = [n for n in site.inside if n.startswith(prefix)][SHARED]
        national = phonenumbers.format_number(
            phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.NATIONAL
        )
        assert not national.startswith("+")
        assert v.check(region, national) == "result-found"
        found = v.text("#result-found")
        assert words["found"] in found and TITLE in found and LIST_TITLE not in found
        v.at("found-national")

        # 4. a number the page finds invalid: refused on the page, nothing sent
        posted = len(recorder.posted("/check/api"))
        assert v.check("GB", "+44 7400 1") == "error-summary"
        assert driver.find_element(By.ID, "number").get_attribute("aria-invalid") == "true"
        assert len(recorder.posted("/check/api")) == posted
        v.at("invalid")

        urls = browser.requested_urls(driver)
        assert urls and all(u.startswith(base + "/") for u in urls), urls
        assert any("/altcha/challenge" in u for u in urls)

    # What the server received: three checks, each exactly {bucket, blinded, pow}
    bodies = recorder.posted("/check/api")
    assert len(bodies) == 3
    for body in bodies:
        sent = json.loads(body)
        assert set(sent) == {"bucket", "blinded", "pow"}
        assert isinstance(sent["bucket"], int) and len(base64.b64decode(sent["blinded"])) == 32
        assert sent["pow"]  # the page solved the proof of work
    other = [(m, p) for m, p, _ in recorder.requests if m != "GET" and p != "/check/api"]
    assert other == []
    texts = [f"{m} {p} " + body.decode("latin-1") for m, p, body in recorder.requests]
    assert privacy.scan([], [inside, outside, e164], texts) == []


@pytest.mark.parametrize("how", ["other-key", "wrong-proof"])
def test_a_server_answering_with_another_key_or_a_wrong_proof_is_not_believed(
    how: str, site: Site, shots: Path
) -> None:
    recorder = site.app(tamper=how)
    with serve(recorder, site.log) as base, browser.chromium(accept_language="en-GB") as driver:
        browser.set_size(driver, "desktop")
        v = Visit(driver, base, shots, how, site)
        driver.get(f"{base}/check")
        WebDriverWait(driver, 20).until(
            lambda d: d.find_element(By.ID, "check-fields").is_enabled()
        )
        inside = next(n for n in site.inside if n.startswith("+44"))
        assert v.check("GB", inside) == "result-unverified"
        assert "The check could not be verified" in v.text("#result-unverified")
        assert not driver.find_element(By.ID, "result-found").is_displayed()
        v.at("unverified")
    assert len(recorder.posted("/check/api")) == 1


def test_without_javascript_the_page_can_send_nothing(site: Site, shots: Path) -> None:
    recorder = site.app()
    with (
        serve(recorder, site.log) as base,
        browser.chromium(javascript=False, accept_language="en-GB") as driver,
    ):
        browser.set_size(driver, "phone")
        driver.get(f"{base}/check")
        assert "needs JavaScript" in driver.find_element(By.TAG_NAME, "main").text
        assert not driver.find_element(By.ID, "number").is_enabled()
        assert not driver.find_element(By.ID, "check-submit").is_enabled()
        browser.screenshot(driver, shots / "nojs-01-check.png")
    assert [m for m, _, _ in recorder.requests if m != "GET"] == []
    assert all("?" not in p for _, p, _ in recorder.requests)

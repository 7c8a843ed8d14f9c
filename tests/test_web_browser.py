"""The sign-up and stop pages in a real browser: headless Chromium (Debian's packages) driven by
Selenium against the pages on uvicorn. Each step is screenshotted at desktop or phone width under
the test's tmp dir, checked with axe-core (no serious or critical violation), and the pages may
load nothing from anywhere but the app and break no CSP rule. The run ends with the plaintext scan.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import browser, privacy
from support.flows import Run
from support.front import Front, serve, wait_for
from support.subscribers import last_code

from breach_notify.crypto import Keyring
from breach_notify.settings import Settings
from breach_notify.sms.gateways.memory import MemoryGateway

pytestmark = browser.module_marks()

try:  # only when the browser can run: Selenium's helpers
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # pragma: no cover - selenium is a dev dependency
    pass


@dataclass
class Journey:
    """One person's visit: the browser, where screenshots go, and what every page did."""

    driver: WebDriver
    front: Front
    shots: Path
    size: str
    taken: list[Path] = field(default_factory=list)
    step: int = 0
    axe: bool = True  # axe-core needs JavaScript; the same pages are checked with it on

    def at(self, name: str) -> None:
        """Screenshot, CSP and axe checks for the page now shown."""
        self.step += 1
        csp = [m for m in browser.console(self.driver) if "Content Security Policy" in m]
        assert csp == [], f"{name}: CSP violations {csp}"
        self.taken.append(
            browser.screenshot(self.driver, self.shots / f"{self.size}-{self.step:02d}-{name}.png")
        )
        if self.axe:
            bad = browser.axe_violations(self.driver)
            assert bad == [], f"{name}: axe {[(v['id'], v['help']) for v in bad]}"
            browser.console(self.driver)  # drop what the injected axe itself logged

    def go(self, path: str) -> None:
        self.driver.get(self.front.base + path)

    def wait(self, css: str, timeout: float = 30) -> None:
        WebDriverWait(self.driver, timeout).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))

    def fill_number(self, country: str, number: str) -> None:
        Select(self.driver.find_element(By.ID, "country")).select_by_value(country)
        box = self.driver.find_element(By.ID, "number")
        box.clear()
        box.send_keys(number)

    def submit(self) -> None:
        self.driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()

    def code(self, text: str) -> None:
        self.driver.find_element(By.ID, "code").send_keys(text)
        self.submit()

    def heading(self) -> str:
        return str(self.driver.find_element(By.TAG_NAME, "h1").text)


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    print(f"screenshots in {folder}")
    keep = os.environ.get("BREACH_NOTIFY_SCREENSHOTS")
    if keep:  # a stable place to look at them after the run
        shutil.copytree(folder, keep, dirs_exist_ok=True)


@pytest.fixture
def site(settings: Settings, keyring: Keyring) -> Iterator[Front]:
    with serve(settings, MemoryGateway()) as front:
        yield front


def _listed(cli: Callable[..., Run]) -> list[dict[str, str]]:
    run = cli("subscribers", "list", "--json")
    assert run.code == 0, run.stderr
    return run.json["subscribers"]  # type: ignore[no-any-return]


CASES = {
    # size: (page language, Accept-Language, country chosen, national number, SMS language)
    "desktop": ("en", "en-US,en", "GB", "07400 123456", "en"),
    "phone": ("fr", "fr-FR,fr", "BE", "0470 12 34 56", "fr"),
}


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_sign_up_confirm_then_stop_in_the_browser(
    size: str, site: Front, shots: Path, cli: Callable[..., Run], home: Path
) -> None:
    lang, accept, country, national, sms_language = CASES[size]
    with browser.chromium(accept_language=accept) as driver:
        browser.set_size(driver, size)
        j = Journey(driver, site, shots, size)

        j.go("/")
        j.at("landing")
        driver.find_element(By.CSS_SELECTOR, "main a.button[href^='/signup']").click()
        j.wait("#country")
        default = Select(driver.find_element(By.ID, "country")).first_selected_option
        assert default.get_attribute("value") == ("US" if lang == "en" else "FR")
        j.at("signup")

        j.fill_number(country, national)
        Select(driver.find_element(By.ID, "language")).select_by_value(sms_language)
        j.submit()  # consent not ticked yet: the error summary, focused, links to the box
        j.wait(".error-summary")
        assert driver.switch_to.active_element.get_attribute("id") == "error-summary"
        consent = driver.find_element(By.ID, "consent")
        assert "consent-error" in (consent.get_attribute("aria-describedby") or "")
        assert driver.find_element(By.ID, "number").get_attribute("value") == national
        j.at("signup-error")

        consent.click()
        j.submit()  # the page's script solves the proof of work, then sends the form
        j.wait("#code", timeout=60)
        assert driver.find_element(By.ID, "code").get_attribute("autocomplete") == "one-time-code"
        j.at("code-sent")
        wait_for(lambda: len(site.gateway.outbox) == 1)
        body = site.gateway.outbox[-1][0].body
        assert ("OUI" in body) is (sms_language == "fr")
        j.code(last_code(site.gateway))
        j.wait(".panel.success")
        j.at("signed-up")
        [subscriber] = _listed(cli)
        assert (subscriber["status"], subscriber["language"]) == ("active", sms_language)

        driver.find_element(By.CSS_SELECTOR, "header nav a[href^='/stop']").click()
        j.wait("#country")
        assert "STOP" in driver.find_element(By.TAG_NAME, "main").text
        j.at("stop")
        j.fill_number(country, national)
        j.submit()
        j.wait("#code", timeout=60)
        j.at("stop-code-sent")
        wait_for(lambda: len(site.gateway.outbox) == 2)
        j.code(last_code(site.gateway))
        j.wait(".panel.success")
        j.at("stopped")
        assert _listed(cli)[0]["status"] == "opted_out"

        urls = browser.requested_urls(driver)
        assert urls and all(u.startswith(site.base + "/") for u in urls), urls
        assert any("/altcha/challenge" in u for u in urls)
        assert all(shot.stat().st_size > 5_000 for shot in j.taken)

    outputs = [site.logs(), *[r.stdout + r.stderr for r in cli.captured]]  # type: ignore[attr-defined]
    hits = privacy.scan([home], [f"+{32 if country == 'BE' else 44}{national[1:]}"], texts=outputs)
    assert hits == []


def test_the_sign_up_form_works_without_javascript(
    site: Front, shots: Path, cli: Callable[..., Run], home: Path
) -> None:
    with browser.chromium(javascript=False, accept_language="en-GB,en") as driver:
        browser.set_size(driver, "phone")
        j = Journey(driver, site, shots, "nojs", axe=False)
        j.go("/signup")
        assert "JavaScript is off" in driver.find_element(By.TAG_NAME, "main").text
        j.fill_number("GB", "07400 123457")
        driver.find_element(By.ID, "consent").click()
        j.at("signup")
        j.submit()
        j.wait("#code")
        j.at("code-sent")
        wait_for(lambda: len(site.gateway.outbox) == 1)
        j.code(last_code(site.gateway))
        j.wait(".panel.success")
        j.at("signed-up")
    assert _listed(cli)[0]["status"] == "active"
    outputs = [site.logs(), *[r.stdout + r.stderr for r in cli.captured]]  # type: ignore[attr-defined]
    assert privacy.scan([home], ["+447400123457"], texts=outputs) == []

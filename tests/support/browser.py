"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by Selenium: full-page
screenshots at desktop and phone width, the axe-core check from the vendored file, and the list
of every URL a page requested (to prove no third-party request)."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
CANDIDATES = {
    "chromium": ["/usr/bin/chromium", "/usr/lib/chromium/chromium"],
    "chromedriver": ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
}
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}


def find(name: str) -> str | None:
    for candidate in CANDIDATES[name]:
        if Path(candidate).exists():
            return candidate
    return shutil.which(name)


def missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    absent = [n for n in CANDIDATES if find(n) is None]
    if absent:
        return (
            f"{' and '.join(absent)} not installed; run scripts/ensure-chromium as root"
            " (apt-get install chromium chromium-driver)"
        )
    return None


def module_marks() -> list[pytest.MarkDecorator]:
    """``pytestmark`` of a browser test module: slow, and skipped (with the reason, shown in the
    summary) when Chromium or its driver is missing."""
    why_not = missing()
    skip = [pytest.mark.skip(reason=f"browser tests skipped: {why_not}")] if why_not else []
    return [pytest.mark.slow, *skip]


@contextmanager
def chromium(
    javascript: bool = True, accept_language: str = "en-US,en"
) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = find("chromium") or "chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-sync",
        "--disable-extensions",
        "--disable-component-update",
        "--metrics-recording-only",
        "--window-size=1280,900",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    prefs: dict[str, object] = {"intl.accept_languages": accept_language}
    if not javascript:
        prefs["profile.managed_default_content_settings.javascript"] = 2
    options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(
        service=Service(find("chromedriver") or "chromedriver"), options=options
    )
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        yield driver
    finally:
        driver.quit()


def set_size(driver: webdriver.Chrome, size: str) -> None:
    width, height = SIZES[size]
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": size == "phone"},
    )


def screenshot(driver: webdriver.Chrome, path: Path) -> Path:
    """The whole page (beyond the viewport) as a PNG."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    content = metrics.get("cssContentSize") or metrics["contentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {
                "x": 0,
                "y": 0,
                "width": content["width"],
                "height": content["height"],
                "scale": 1,
            },
        },
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def axe_violations(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the current page (WCAG 2.x A/AA rules and
    best practices). The test injects the vendored file; the app never serves it."""
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(JSON.stringify(r.violations))).catch(e => done(JSON.stringify("
        "[{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}])));"
    )
    found: list[dict[str, Any]] = json.loads(result)
    return [v for v in found if v.get("impact") in ("serious", "critical")]


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    """Every URL the browser asked for since the last call (from the performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def console(driver: webdriver.Chrome) -> list[str]:
    """Console messages since the last call (CSP violations show up here)."""
    return [str(e.get("message", "")) for e in driver.get_log("browser")]

"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, installed by
``tests/setup-services.sh``) driven with Selenium, pointed at Debian's binaries (Selenium
Manager never downloads a browser or driver here).

Without the browser the tests skip on a developer's machine and FAIL under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

ROOT = Path(__file__).parents[2]
SCREENSHOTS = Path(os.environ.get("STATUS_PAGE_SCREENSHOTS", ROOT / "test-output" / "screenshots"))
BROWSERS = ("chromium", "chromium-browser")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver")


def _find(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK)
                                       else None)  # fmt: skip
        if found:
            return found
    return None


def browser_or_skip() -> tuple[str, str]:
    """The paths of Chromium and its driver; skips (fails under ``CI=true``) without them."""
    browser, driver = _find(BROWSERS), _find(DRIVERS)
    if browser and driver:
        return browser, driver
    missing = "chromium" if not browser else "chromium-driver"
    message = f"{missing} is not installed (bash tests/setup-services.sh installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def chromium(*arguments: str, width: int = 1400, height: int = 1000) -> WebDriver:
    """A headless Chromium with its console log kept (``driver.get_log("browser")``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = browser_or_skip()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--no-first-run", "--disable-extensions",
                     f"--window-size={width},{height}", *arguments):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def severe(entries: list[dict[str, Any]], allowed: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The console entries at level SEVERE, but those whose message holds an ``allowed``
    text (a 404 of an API the daemon may not have, a 401 a test asks for)."""
    return [
        e for e in entries
        if e.get("level") == "SEVERE" and not any(text in e.get("message", "") for text in allowed)
    ]  # fmt: skip


def screenshot(driver: WebDriver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path

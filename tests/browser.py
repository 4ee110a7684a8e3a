"""A real headless browser for the tests of the report's and the dashboard's pages: Debian's
Chromium, driven through its own chromedriver by selenium (``.ci/run`` installs both)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def require_chromium() -> None:
    """Skips the test where the browser is missing on a developer's machine; fails it in CI,
    where ``.ci/run`` installs it."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (the dev extra)")
    if not missing:
        return
    why = (f"needs a headless Chromium: {', '.join(missing)} missing (apt-get install chromium "
           "chromium-driver; pip install -e '.[dev]')")
    if os.environ.get("CI"):
        pytest.fail(why + "; .ci/run installs them")
    pytest.skip(why)


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium that records the page's console, closed on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--window-size={width},{height}",
                # WebGL (the parallel coordinates) in software, without the warning that the
                # implicit fallback to it is deprecated.
                "--enable-unsafe-swiftshader"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """The console's errors since the last call (uncaught exceptions, failed loads, CSP)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait_for(driver: Any, script: str, timeout: float = 20.0) -> Any:
    """Polls ``script`` (JavaScript returning a value) until it is truthy; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {script}")
        time.sleep(0.1)


# plotly.js draws parallel coordinates with WebGL; where it can't (no WebGL, or a policy that
# blocks the functions its WebGL layer compiles) it writes a notice instead of failing.
PARCOORDS_DRAWN = ("var n = document.getElementById('ev-parcoords');"
                   "return !!n.querySelector('canvas') && !!n.querySelector('.main-svg')"
                   " && n.textContent.indexOf('WebGL is not supported') < 0")

"""A real browser for the portal tests: Debian's Chromium, headless, driven by Selenium through
Debian's chromedriver (both installed by ``python -m deploy.local deps``; no browser download).

``Browser`` adds what the page tests check on every page: the console's errors, horizontal
overflow at a given width, and screenshots kept as test artifacts (``.artifacts/screenshots/``,
git-ignored; ``LINKY_SCREENSHOT_DIR`` moves them, e.g. to docs/screenshots to refresh the README's).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from deploy.local.stack import TEST_PACKAGES, ensure_debian_packages
from tests.conftest import REPO_ROOT

os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never try to download a driver
SCREENSHOTS = Path(os.environ.get("LINKY_SCREENSHOT_DIR", REPO_ROOT / ".artifacts" / "screenshots"))


class Browser:
    def __init__(self, width: int = 1280, height: int = 900) -> None:
        paths = ensure_debian_packages(TEST_PACKAGES, quiet=True)
        options = webdriver.ChromeOptions()
        options.binary_location = paths["chromium"]
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--window-size={width},{height}", "--lang=fr-FR", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update"):  # fmt: skip
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(paths["chromedriver"]), options=options)
        self.driver.set_page_load_timeout(30)
        self._console: list[dict[str, Any]] = []

    def open(self, url: str) -> None:
        self.driver.get(url)

    def resize(self, width: int, height: int = 900) -> None:
        self.driver.set_window_size(width, height)

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return self.find(css).text

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = 20.0, every: float = 0.1) -> Any:
        """Poll until ``predicate()`` is truthy (a bound, not a timing assertion)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
            except Exception as exc:  # an element not there yet
                last = exc
            if last and not isinstance(last, Exception):
                return last
            time.sleep(every)
        raise AssertionError(f"timed out waiting for {what} (last: {last!r}); page text:\n{self.body_text()[:2000]}")

    def body_text(self) -> str:
        try:
            return self.driver.find_element(By.TAG_NAME, "body").text
        except Exception:
            return ""

    def console(self) -> list[dict[str, Any]]:
        """Every console entry since the browser started (the driver hands each out once)."""
        self._console += self.driver.get_log("browser")
        return self._console

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.console() if e.get("level") == "SEVERE"]

    def horizontal_overflow(self) -> int:
        """Pixels the page is wider than the window (0 = nothing overflows horizontally)."""
        return int(self.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth"))

    def overflowing(self) -> list[str]:
        """The elements that stick out on the right (tag#id.class and width), widest first."""
        return self.js(
            "const w = document.documentElement.clientWidth; const out = [];"
            "for (const e of document.querySelectorAll('body *')) {"
            "  const r = e.getBoundingClientRect();"
            "  if (r.right > w + 0.5 && e.offsetParent !== null) out.push([r.right, e.tagName.toLowerCase() +"
            "    (e.id ? '#' + e.id : '') + (e.className && e.className.baseVal === undefined ? '.' + e.className : '') +"
            "    ' ' + Math.round(r.width) + 'px']);"
            "} return out.sort((a, b) => b[0] - a[0]).slice(0, 8).map((x) => x[1]);")

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def quit(self) -> None:
        self.driver.quit()

"""The web chat in a real headless browser: Debian's ``chromium`` and ``chromium-driver``, driven by Selenium.

Shared by the browser test (``tests/interactive/test_web.py``) and the README's screenshot
(:mod:`bench.web_screenshot`). Selenium is used with the system's driver only: tools that download their own browser
build at install time fail offline.
"""
from __future__ import annotations

import contextlib
import shutil
import threading
from typing import Any, Iterator, Optional

from flask import Flask

MISSING = "no Chromium here: install Debian's chromium and chromium-driver (.ci/run does)"


def chromium_missing() -> Optional[str]:
    """Why no browser can run here (None when ``chromium`` and ``chromedriver`` are on the PATH)."""
    return None if shutil.which("chromium") and shutil.which("chromedriver") else MISSING


@contextlib.contextmanager
def served(app: Flask) -> Iterator[str]:
    """Serve ``app`` on a free localhost port in a thread; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()


@contextlib.contextmanager
def headless_chromium(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A Selenium driver of a headless Chromium window of ``width`` x ``height`` CSS pixels; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}",
                 "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver: Any, url: str, columns: int, timeout: float = 60) -> None:
    """Load the page at ``url``, wait for its ``columns`` model columns and start a new conversation."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, timeout).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".column")) == columns)
    driver.find_element(By.ID, "reset").click()


def send(driver: Any, message: str, turns: int, timeout: float = 60) -> None:
    """Type ``message``, send it, and wait until every column shows ``turns`` turns."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.ID, "message").send_keys(message)
    driver.find_element(By.ID, "send").click()
    WebDriverWait(driver, timeout).until(
        lambda d: all(len(column.find_elements(By.CSS_SELECTOR, ".turn")) == turns
                      for column in d.find_elements(By.CSS_SELECTOR, ".column")))

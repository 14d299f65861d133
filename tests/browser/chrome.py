"""Headless Debian Chromium through Selenium 4, shared by the browser tests and
``scripts/screenshots.py`` (imports nothing of the test harness).

``new_driver()`` starts ``/usr/bin/chromium`` through ``/usr/bin/chromedriver``: the driver's path
is given, so Selenium Manager never runs and nothing is downloaded. ``window(driver, "phone")``
sets a 360×740 page, ``"desktop"`` 1280×800. ``sign_in`` fills and sends the sign-in form.
``console_errors`` drains the console log and returns its SEVERE entries.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("JIAHE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("JIAHE_CHROMEDRIVER", "/usr/bin/chromedriver")
SIZES = {"phone": (360, 740), "desktop": (1280, 800)}
WAIT_S = 10.0
# Console entries that are not the page's fault: the browser asks every site for /favicon.ico.
IGNORED_CONSOLE = ("favicon.ico",)


def missing() -> str | None:
    """Why no browser can start here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


def new_driver() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        "--hide-scrollbars",
        "--lang=zh-CN",
        f"--window-size={SIZES['desktop'][0]},{SIZES['desktop'][1]}",
    ):
        options.add_argument(arg)
    # The staff's browsers ask for Chinese (messages the server translates follow Accept-Language).
    options.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh"})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # A path to the driver: Selenium skips Selenium Manager (no download, no network).
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


def window(driver: Any, size: str, height: int | None = None) -> None:
    """The page's viewport at 360×740 ("phone") or 1280×800 ("desktop"), or that width and
    ``height``."""
    width, default_height = SIZES[size]
    height = height or default_height
    driver.set_window_size(width, height)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    if inner[0] != width or inner[1] != height:  # a window with a frame: size the page, not the frame
        driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])


def console_errors(driver: Any) -> list[str]:
    """The SEVERE browser console entries since the last call (the log is drained)."""
    return [
        str(e.get("message", ""))
        for e in driver.get_log("browser")
        if e.get("level") == "SEVERE" and not any(s in str(e.get("message", "")) for s in IGNORED_CONSOLE)
    ]


def wait_for(driver: Any, condition: Any, timeout: float = WAIT_S) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def reloaded(driver: Any, old: Any) -> bool:
    """True once ``old`` (an element of the previous page) is gone and the new page has loaded."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        old.is_enabled()
    except StaleElementReferenceException:
        pass
    except WebDriverException as exc:
        # Asked in the middle of the navigation, chromedriver may answer that the node "does not
        # belong to the document" (an inspector error, not a stale element): gone all the same.
        if "does not belong to the document" not in str(exc):
            raise
    else:
        return False
    try:
        return bool(driver.execute_script("return document.readyState") == "complete")
    except WebDriverException:
        return False  # the new document is not there yet: ask again


def sign_in(driver: Any, base: str, username: str, password: str, *, next_url: str = "") -> None:
    """Open the sign-in form, fill it and send it; waits until the next page has loaded."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/web/login" + (f"?next={next_url}" if next_url else ""))
    form = driver.find_element(By.CSS_SELECTOR, "form[action='/web/login']")
    form.find_element(By.NAME, "username").send_keys(username)
    form.find_element(By.NAME, "password").send_keys(password)
    old = driver.find_element(By.TAG_NAME, "html")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, lambda d: reloaded(d, old))

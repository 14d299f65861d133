"""Browser harness: the real app served by uvicorn in a background thread, driven by Debian's
system Chromium through Selenium 4 (``/usr/bin/chromedriver``; Selenium Manager never runs and
nothing is downloaded).

- ``live_server`` (session): the app on a free port of 127.0.0.1 over the test database, with its
  own engine (its own event loop, in its thread). What a test commits through ``db`` is what the
  server sees; ``clean_db`` empties the tables before each test as for every other test.
- ``browser`` (session): one headless Chromium; ``driver`` (per test) hands it over with its
  cookies cleared, its window at 1280×800 and its console log drained, and fails the test on any
  SEVERE console entry left at the end (``console_errors`` for the expected ones).
- ``sign_in(driver, base, username, password)`` fills and sends the sign-in form;
  ``window(driver, "phone" | "desktop")`` sets 360×740 or 1280×800.

The tests run in the SQLite suite only (CI runs the suite twice; the browser sees the same pages
on either database) and skip with a reason when chromium or chromedriver is missing.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IS_PG

CHROMIUM = os.environ.get("JIAHE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("JIAHE_CHROMEDRIVER", "/usr/bin/chromedriver")
SIZES = {"phone": (360, 740), "desktop": (1280, 800)}
HERE = Path(__file__).parent
WAIT_S = 10.0
# Console entries that are not the page's fault: the browser asks every site for /favicon.ico.
IGNORED_CONSOLE = ("favicon.ico",)


def skip_reason() -> str | None:
    if IS_PG:
        return "browser tests run in the SQLite suite only (JIAHE_TEST_DATABASE_URL is PostgreSQL)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = skip_reason()
    if reason is None:
        return
    mark = pytest.mark.skip(reason=reason)
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(mark)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving a fresh app (own engine) in a daemon thread."""

    def __init__(self, settings: Any) -> None:
        import uvicorn

        from app.main import create_app

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-server", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server(settings: Any, migrated: str) -> Iterator[LiveServer]:
    server = LiveServer(settings)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
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
    try:
        yield driver
    finally:
        driver.quit()


def window(driver: Any, size: str) -> None:
    """360×740 ("phone") or 1280×800 ("desktop"): the page's viewport, not the window's frame."""
    width, height = SIZES[size]
    driver.set_window_size(width, height)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    if inner[0] != width:  # headless windows have no frame, but be exact where one exists
        driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])


def console_errors(driver: Any) -> list[str]:
    """The SEVERE browser console entries since the last call (the log is drained)."""
    return [
        str(e.get("message", ""))
        for e in driver.get_log("browser")
        if e.get("level") == "SEVERE" and not any(s in str(e.get("message", "")) for s in IGNORED_CONSOLE)
    ]


def assert_no_console_errors(driver: Any) -> None:
    errors = console_errors(driver)
    assert not errors, f"browser console errors: {errors}"


def wait_for(driver: Any, condition: Any, timeout: float = WAIT_S) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def sign_in(driver: Any, base: str, username: str, password: str, *, next_url: str = "") -> None:
    """Open the sign-in form, fill it and send it; waits until the next page has loaded."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/web/login" + (f"?next={next_url}" if next_url else ""))
    form = driver.find_element(By.CSS_SELECTOR, "form[action='/web/login']")
    form.find_element(By.NAME, "username").send_keys(username)
    form.find_element(By.NAME, "password").send_keys(password)
    old = driver.find_element(By.TAG_NAME, "html")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(driver, lambda d: _stale(old))


def _stale(element: Any) -> bool:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    return False


@pytest.fixture
def driver(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """The session's browser, fresh for this test: no cookies, desktop size, console drained;
    the test fails on console errors it left behind."""
    browser.get(live_server.base + "/web/static/css/app.css")  # on the origin, to clear its cookies
    browser.delete_all_cookies()
    window(browser, "desktop")
    browser.get_log("browser")
    yield browser
    leftover = console_errors(browser)
    assert not leftover, f"browser console errors: {leftover}"


@pytest.fixture
def base(live_server: LiveServer) -> str:
    return live_server.base

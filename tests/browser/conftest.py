"""Browser harness: the real app served by uvicorn in a background thread, driven by Debian's
system Chromium through Selenium 4 (``/usr/bin/chromedriver``; Selenium Manager never runs and
nothing is downloaded).

- ``live_server`` (session): the app on a free port of 127.0.0.1 over the test database, with its
  own engine (its own event loop, in its thread). What a test commits through ``db`` is what the
  server sees; ``clean_db`` empties the tables before each test as for every other test.
- ``browser`` (session): one headless Chromium; ``driver`` (per test) hands it over with its
  cookies cleared, its window at 1280×800 and its console log drained, and fails the test on any
  SEVERE console entry left at the end (``console_errors`` for the expected ones).
- ``tests/browser/chrome.py``: ``sign_in(driver, base, username, password)`` fills and sends the
  sign-in form; ``window(driver, "phone" | "desktop")`` sets 360×740 or 1280×800;
  ``console_errors(driver)``; ``assert_no_console_errors(driver)`` is here.

The tests run in the SQLite suite only (CI runs the suite twice; the browser sees the same pages
on either database) and skip with a reason when chromium or chromedriver is missing.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.chrome import console_errors, missing, new_driver, window
from tests.conftest import IS_PG

HERE = Path(__file__).parent


def skip_reason() -> str | None:
    if IS_PG:
        return "browser tests run in the SQLite suite only (JIAHE_TEST_DATABASE_URL is PostgreSQL)"
    return missing()


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
    driver = new_driver()
    try:
        yield driver
    finally:
        driver.quit()


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


def assert_no_console_errors(driver: Any) -> None:
    errors = console_errors(driver)
    assert not errors, f"browser console errors: {errors}"

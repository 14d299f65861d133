"""The first browser walk: sign in at phone width, the workbench and its menu, sign out; a wrong
password; and every page of ``PAGES`` opened by its role at both widths with no console error and
nothing wider than the screen."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.chrome import console_errors, reloaded, sign_in, wait_for, window
from tests.browser.conftest import assert_no_console_errors
from tests.factories import make_user

By = pytest.importorskip("selenium.webdriver.common.by", reason="selenium is not installed").By

TOWNSHIP = "430122100000"
AREAS = {"village": "430122100201", "township": TOWNSHIP, "county": "430122000000", "admin": "430122000000"}

# (menu key, role that opens it, path, its <h1>): adding a page to the walk is adding a line.
PAGES = [
    ("home", "township", "/web/", "工作台"),
    ("home", "village", "/web/", "工作台"),
    ("claims", "township", "/web/claims", "待遇申领"),
    ("notices", "county", "/web/notices", "公示"),
    ("checkups", "township", "/web/checkups", "三查"),
    ("conflicts", "township", "/web/conflicts", "同步冲突"),
    ("quality", "township", "/web/data-quality", "数据质量"),
    ("migrants", "township", "/web/migrants", "流动人口"),
    ("figures", "county", "/web/figures", "统计"),
    ("admin", "admin", "/web/admin", "管理"),
]


def h1(driver: Any) -> str:
    return str(driver.find_element(By.TAG_NAME, "h1").text.strip())


def page_width(driver: Any) -> int:
    return int(driver.execute_script("return document.documentElement.scrollWidth"))


async def test_township_at_phone_width_signs_in_uses_the_menu_and_signs_out(driver, base, db, areas) -> None:
    user, password = await make_user(db, role="township", area_code=TOWNSHIP, display_name="乔口镇 王丽")
    await db.commit()
    window(driver, "phone")
    assert driver.execute_script("return window.innerWidth") == 360

    sign_in(driver, base, user.username, password)
    assert driver.current_url == base + "/web/"
    assert h1(driver) == "工作台"
    assert "乔口镇 王丽" in driver.find_element(By.CSS_SELECTOR, "header.top").text
    assert page_width(driver) <= 360, "the page is wider than the phone"

    # The menu: the township's pages, one line that scrolls sideways at 360 px, 工作台 marked.
    menu = driver.find_element(By.CSS_SELECTOR, "nav.menu")
    assert menu.is_displayed()
    keys = [a.get_attribute("data-nav") for a in menu.find_elements(By.TAG_NAME, "a")]
    assert keys[0] == "home" and "claims" in keys and "quality" in keys and "admin" not in keys
    assert menu.find_element(By.CSS_SELECTOR, "a.on").get_attribute("data-nav") == "home"
    for link in menu.find_elements(By.TAG_NAME, "a"):  # each item reachable (the line scrolls sideways)
        driver.execute_script("arguments[0].scrollIntoView({inline: 'nearest', block: 'nearest'})", link)
        box = driver.execute_script(
            "var r = arguments[0].getBoundingClientRect(); return [r.left, r.right]", link
        )
        assert box[0] >= -1 and box[1] <= 361, f"menu item {link.text} cannot be brought into view: {box}"
        assert link.is_displayed()
    home_link = menu.find_element(By.CSS_SELECTOR, "a[data-nav='home']")
    driver.execute_script("arguments[0].scrollIntoView({inline: 'start', block: 'nearest'})", home_link)
    old = driver.find_element(By.TAG_NAME, "html")
    home_link.click()
    wait_for(driver, lambda d: reloaded(d, old))
    assert driver.current_url == base + "/web/" and h1(driver) == "工作台"
    assert_no_console_errors(driver)

    # Sign out: back to the form, and the workbench asks for a sign-in again.
    driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
    wait_for(driver, lambda d: d.current_url == base + "/web/login")
    driver.get(base + "/web/")
    assert driver.current_url == base + "/web/login?next=/web/"
    assert driver.find_element(By.NAME, "username").is_displayed()


async def test_a_wrong_password_shows_the_message(driver, base, db, areas) -> None:
    user, _ = await make_user(db, role="township", area_code=TOWNSHIP)
    await db.commit()
    window(driver, "phone")
    sign_in(driver, base, user.username, "not-the-password")
    assert driver.current_url == base + "/web/login"
    message = driver.find_element(By.ID, "login-error")
    assert message.is_displayed() and "用户名或密码错误" in message.text
    assert driver.find_element(By.NAME, "username").get_attribute("value") == user.username
    assert not driver.get_cookie("jiahe_session")
    # The form comes back with status 401, which the console reports; nothing else.
    errors = console_errors(driver)
    assert all("401" in e for e in errors), errors


@pytest.mark.parametrize("size", ["phone", "desktop"])
@pytest.mark.parametrize(("key", "role", "path", "title"), PAGES, ids=[f"{p[0]}-{p[1]}" for p in PAGES])
async def test_every_page_opens_for_its_role(driver, base, db, areas, key, role, path, title, size) -> None:
    user, password = await make_user(db, role=role, area_code=AREAS[role])
    await db.commit()
    window(driver, size)
    sign_in(driver, base, user.username, password, next_url=path)
    assert driver.current_url == base + path
    assert h1(driver) == title
    active = driver.find_elements(By.CSS_SELECTOR, "nav.menu a.on")
    assert [a.get_attribute("data-nav") for a in active] == [key]
    if size == "phone":
        assert page_width(driver) <= 360, f"{path} is wider than the phone"
    assert_no_console_errors(driver)


async def test_the_console_check_sees_script_errors(driver, base) -> None:
    """The harness's own check: an uncaught error and a console.error are both reported."""
    driver.get(base + "/web/login")
    driver.execute_script(
        "console.error('walk-check'); setTimeout(function () { throw new Error('boom'); }, 0)"
    )
    errors: list[str] = []
    wait_for(driver, lambda d: errors.extend(console_errors(d)) or any("boom" in e for e in errors))
    assert any("walk-check" in e for e in errors) and any("boom" in e for e in errors), errors

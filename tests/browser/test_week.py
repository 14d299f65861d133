"""The issue's walk in a real browser: a township reviews a submitted claim; the county
approves it, posts it and prints the public notice; the township resolves a sync conflict and
dismisses a data-quality fault; the county's figures draw their charts. No console error."""

from __future__ import annotations

from typing import Any

import pytest

from app.models.claims import Programme, RuleVersion
from app.services import claim_rules as rules
from tests.browser.chrome import reloaded, sign_in, wait_for, window
from tests.browser.conftest import assert_no_console_errors
from tests.factories import make_user
from tests.web.test_claims import claim, claimant
from tests.web.test_conflicts import household_conflict
from tests.web.test_quality import twins

By = pytest.importorskip("selenium.webdriver.common.by", reason="selenium is not installed").By
Select = pytest.importorskip("selenium.webdriver.support.ui", reason="selenium is not installed").Select

V1, V2 = "430122100201", "430122100202"
TOWNSHIP, COUNTY = "430122100000", "430122000000"


def click_and_wait(driver: Any, element: Any) -> None:
    old = driver.find_element(By.TAG_NAME, "html")
    element.click()
    wait_for(driver, lambda d: reloaded(d, old))


def sign_out(driver: Any, base: str) -> None:
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "form.logout button"))
    assert driver.current_url == base + "/web/login"


async def test_a_week_of_township_and_county_work(driver, base, db, areas, client_as) -> None:
    for p in rules.PROGRAMMES:
        db.add(Programme(**p))
    await db.flush()
    for v in rules.NATIONAL_DEFAULTS:
        db.add(RuleVersion(**v))
    await db.commit()
    village = await client_as("village", V1)
    mother, _ = await claimant(village, V1, "李秀英")
    submitted = await claim(village, mother, year=2024)
    keep, dup = await twins(village, await client_as("village", V2), V1, V2, name="周玉梅")
    household, conflict = await household_conflict(client_as)
    township, township_pw = await make_user(db, role="township", area_code=TOWNSHIP)
    county, county_pw = await make_user(db, role="county", area_code=COUNTY)
    await db.commit()

    # The township finds the submitted claim by name (the filter answers in place, htmx, and the
    # address bar follows), then reviews it: from its queue to the detail, 审核通过.
    sign_in(driver, base, township.username, township_pw, next_url="/web/claims")
    driver.find_element(By.NAME, "q").send_keys("李秀英")
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_for(driver, lambda d: "q=" in d.current_url)
    row = driver.find_element(By.CSS_SELECTOR, f"tr[data-id='{submitted['id']}']")
    assert "李秀英" in row.text
    click_and_wait(driver, row.find_element(By.LINK_TEXT, "详情"))
    driver.find_element(By.NAME, "comment").send_keys("材料齐全")
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "[data-action='review']"))
    assert "待审批" in driver.find_element(By.TAG_NAME, "main").text

    # …resolves the sync conflict, taking the phone's address…
    driver.get(base + "/web/conflicts")
    card = driver.find_element(By.CSS_SELECTOR, f"[data-id='{conflict['id']}']")
    take = card.find_elements(By.CSS_SELECTOR, "input[name='take'][value='address']")
    if take and not take[0].is_selected():
        take[0].click()
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "[data-action='resolve']"))
    assert not driver.find_elements(By.CSS_SELECTOR, f"[data-id='{conflict['id']}']")

    # …and dismisses a look-alike that is not a duplicate, with a reason.
    driver.get(base + "/web/data-quality")
    fault = driver.find_element(By.CSS_SELECTOR, f"tr[data-id='{dup['id']}']")
    fault.find_element(By.NAME, "reason").send_keys("同名同生日，不是同一人")
    fault.find_element(By.CSS_SELECTOR, "[data-action='dismiss']").click()
    # htmx: only the row changes (the page is not reloaded), saying what was done.
    done = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"tr[data-dismissed='{dup['id']}']"))
    assert "已忽略" in done[0].text
    assert not driver.find_elements(By.CSS_SELECTOR, f"tr[data-id='{dup['id']}']")
    assert_no_console_errors(driver)
    sign_out(driver, base)

    # The county approves and posts it, then prints the village's notice.
    sign_in(driver, base, county.username, county_pw, next_url="/web/claims")
    row = driver.find_element(By.CSS_SELECTOR, f"tr[data-id='{submitted['id']}']")
    click_and_wait(driver, row.find_element(By.LINK_TEXT, "详情"))
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "[data-action='approve']"))
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "[data-action='publish']"))
    assert "公示中" in driver.find_element(By.TAG_NAME, "main").text

    driver.get(base + "/web/notices")
    form = driver.find_element(By.CSS_SELECTOR, "form[action='/web/notices/print']")
    Select(form.find_element(By.NAME, "village_code")).select_by_value(V1)
    Select(form.find_element(By.NAME, "programme")).select_by_value("rural_reward")
    year = form.find_element(By.NAME, "year")
    year.clear()
    year.send_keys("2024")
    click_and_wait(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    pages = driver.find_elements(By.CSS_SELECTOR, ".print-page")
    assert len(pages) == 1 and "李秀英" in pages[0].text and "公示" in pages[0].text
    assert driver.find_element(By.CSS_SELECTOR, "[data-print]").is_displayed()
    # As printed: the menu and buttons are gone, the notice stays.
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        assert not driver.find_element(By.CSS_SELECTOR, "nav.menu").is_displayed()
        assert not driver.find_element(By.CSS_SELECTOR, "[data-print]").is_displayed()
        assert pages[0].is_displayed()
    finally:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})

    # The county's figures: every chart drawn (an SVG inside), no console error, also at 360 px.
    for size in ("desktop", "phone"):
        window(driver, size)
        driver.get(base + "/web/figures")
        charts = driver.find_elements(By.CSS_SELECTOR, "[data-chart]")
        assert charts, "the figures page has no chart"
        wait_for(
            driver,
            lambda d: all(
                c.get_attribute("data-drawn") for c in d.find_elements(By.CSS_SELECTOR, "[data-chart]")
            ),
        )
        for chart in driver.find_elements(By.CSS_SELECTOR, "[data-chart]"):
            assert chart.find_elements(By.TAG_NAME, "svg"), "a chart was not drawn"
        assert_no_console_errors(driver)

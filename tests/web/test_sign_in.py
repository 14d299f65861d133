"""Signing in to the workbench: the same users and throttle as the API, a revocable server-side
session in a strict cookie, CSRF on every change, and nothing for machine clients."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import select

from app.core import clock
from app.models.auth import LoginSession
from app.models.web import WebSession
from tests.factories import make_client, make_user
from tests.web.conftest import WebClient, csrf_of, sign_in

TOWNSHIP = "430122100000"


async def test_pages_need_a_sign_in_and_come_back_after_it(browser_anon: WebClient, db, areas) -> None:
    r = await browser_anon.get("/web/")
    assert r.status_code == 303
    assert r.headers["location"] == "/web/login?next=/web/"
    hx = await browser_anon.get("/web/", headers={"HX-Request": "true"})
    assert hx.status_code == 401 and hx.headers["HX-Redirect"].startswith("/web/login")

    user, password = await make_user(db, role="township", area_code=TOWNSHIP)
    await db.commit()
    form = await browser_anon.get("/web/login", params={"next": "/web/claims?status=submitted"})
    r = await browser_anon.post(
        "/web/login",
        data={
            "username": user.username.upper(),  # any case, as in the API
            "password": password,
            "csrf_token": csrf_of(form.text),
            "next": "/web/claims?status=submitted",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/web/claims?status=submitted"
    cookie = r.headers["set-cookie"]
    assert "jiahe_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/web" in cookie and "Secure" not in cookie  # Secure only in production
    home = await browser_anon.get("/web/")
    assert home.status_code == 200 and user.display_name in home.text
    assert "script-src 'self'" in home.headers["content-security-policy"]
    assert home.headers["cache-control"] == "no-store"

    # The database holds the token's digest, never the token; the login is a LoginSession.
    token = browser_anon.cookies["jiahe_session"]
    row = (await db.execute(select(WebSession))).scalar_one()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    login = await db.get(LoginSession, row.login_id)
    assert login is not None and login.principal_id == user.id


async def test_next_never_leaves_the_workbench(browser_anon: WebClient, db, areas) -> None:
    user, password = await make_user(db, role="county", area_code="430122000000")
    await db.commit()
    for target in ("https://evil.example/", "//evil.example/web/", "/web//evil.example", "/api/v1/me"):
        form = await browser_anon.get("/web/login")
        r = await browser_anon.post(
            "/web/login",
            data={
                "username": user.username,
                "password": password,
                "csrf_token": csrf_of(form.text),
                "next": target,
            },
        )
        assert r.status_code == 303 and r.headers["location"] == "/web/", target


async def test_wrong_password_throttle_and_machine_clients(browser_anon: WebClient, anon, db, areas) -> None:
    user, password = await make_user(db, role="township", area_code=TOWNSHIP)
    client, secret = await make_client(db)
    await db.commit()

    r = await sign_in(browser_anon, user.username, "wrong")
    assert r.status_code == 401 and "用户名或密码错误" in r.text
    assert "jiahe_session" not in browser_anon.cookies

    # A machine client's id and secret do not open the workbench.
    r = await sign_in(browser_anon, client.client_id, secret)
    assert r.status_code == 401

    # One throttle for the API and the web: failures through the API count here.
    for _ in range(9):
        await anon.post(
            "/api/v1/auth/token", data={"grant_type": "password", "username": user.username, "password": "x"}
        )
    r = await sign_in(browser_anon, user.username, password)
    assert r.status_code == 429 and "Retry-After" in r.headers
    assert "jiahe_session" not in browser_anon.cookies


async def test_sign_in_form_has_its_own_csrf(browser_anon: WebClient, db, areas) -> None:
    user, password = await make_user(db, role="township", area_code=TOWNSHIP)
    await db.commit()
    await browser_anon.get("/web/login")
    r = await browser_anon.post("/web/login", data={"username": user.username, "password": password})
    assert r.status_code == 403 and "jiahe_session" not in browser_anon.cookies
    r = await browser_anon.post(
        "/web/login", data={"username": user.username, "password": password, "csrf_token": "forged"}
    )
    assert r.status_code == 403
    assert (await db.execute(select(WebSession))).first() is None


async def test_a_change_without_the_csrf_token_is_refused(web_as, db) -> None:
    c = await web_as("township", TOWNSHIP)
    r = await c.post("/web/logout")
    assert r.status_code == 403 and 'data-status="403"' in r.text
    r = await c.post("/web/logout", headers={"X-CSRF-Token": "not-the-token"})
    assert r.status_code == 403
    assert (await c.get("/web/")).status_code == 200  # still signed in
    r = await c.post("/web/logout", headers={"HX-Request": "true"})
    assert r.status_code == 403 and r.headers["HX-Retarget"] == "#flash"


async def test_logout_ends_the_session(web_as, db) -> None:
    c = await web_as("township", TOWNSHIP)
    token = c.cookies["jiahe_session"]
    r = await c.submit("/web/logout")
    assert r.status_code == 303 and r.headers["location"] == "/web/login"
    # The old cookie, replayed, signs no one in.
    c.cookies.set("jiahe_session", token, path="/web")
    assert (await c.get("/web/")).status_code == 303
    assert (await db.execute(select(WebSession))).first() is None
    login = (await db.execute(select(LoginSession))).scalars().all()
    assert [x.revoked_reason for x in login] == ["logout"]


async def test_disabling_a_user_ends_their_web_session_at_once(web_as, client_as, db) -> None:
    c = await web_as("township", TOWNSHIP)
    admin = await client_as("admin", "430122000000")
    r = await admin.patch(f"/api/v1/users/{c.user.id}", json={"disabled": True}, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert (await c.get("/web/")).status_code == 303
    r = await c.submit("/web/logout")
    assert r.status_code == 303 and r.headers["location"].startswith("/web/login?next=")


async def test_idle_and_absolute_timeouts(web_as, settings) -> None:
    c = await web_as("county", "430122000000")
    start = clock.now()
    with clock.freeze(start + timedelta(minutes=settings.web_idle_minutes - 1)):
        assert (await c.get("/web/")).status_code == 200  # activity moves the idle clock
    with clock.freeze(start + timedelta(minutes=2 * settings.web_idle_minutes - 3)):
        assert (await c.get("/web/")).status_code == 200
    with clock.freeze(start + timedelta(minutes=3 * settings.web_idle_minutes)):
        assert (await c.get("/web/")).status_code == 303  # idle too long
    d = await web_as("county", "430122000000")
    start = clock.now()
    step = timedelta(minutes=settings.web_idle_minutes - 5)
    at = start
    while at - start < timedelta(hours=settings.web_session_hours) - step:
        at += step
        with clock.freeze(at):
            assert (await d.get("/web/")).status_code == 200
    with clock.freeze(start + timedelta(hours=settings.web_session_hours, minutes=1)):
        assert (await d.get("/web/")).status_code == 303  # past its hours, however active


async def test_menus_follow_the_role(web_as) -> None:
    village = await web_as("village", "430122100201")
    page = (await village.get("/web/")).text
    assert 'data-nav="claims"' in page and 'data-nav="admin"' not in page and 'data-nav="quality"' not in page
    admin = await web_as("admin", "430122000000")
    assert 'data-nav="admin"' in (await admin.get("/web/")).text


async def test_unknown_web_paths_are_html_404s(web_as) -> None:
    c = await web_as("township", TOWNSHIP)
    r = await c.get("/web/no-such-page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert (await c.get("/api/v1/no-such")).headers["content-type"] == "application/problem+json"


async def test_blank_form_fields_are_no_filter(web_as) -> None:
    c = await web_as("township", TOWNSHIP)
    assert (await c.get("/web/", params={"page_filter": ""})).status_code == 200
    r = await c.get("/web/", params={"page_filter": "x"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")


async def test_the_workbench_speaks_chinese_whatever_the_browser_asks(
    browser_anon: WebClient, db, areas
) -> None:
    user, _ = await make_user(db, role="township", area_code=TOWNSHIP)
    await db.commit()
    browser_anon.headers["Accept-Language"] = "en"
    r = await sign_in(browser_anon, user.username, "wrong")
    assert r.status_code == 401 and "用户名或密码错误" in r.text and "Wrong username" not in r.text

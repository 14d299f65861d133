"""管理: admins only; users created, disabled, re-roled and re-passworded through the users
service (If-Match version from the page), machine clients whose secret is shown once, areas."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import func, select

from app.core.security import verify_password
from app.models.areas import Area
from app.models.auth import LoginSession
from app.models.users import MachineClient, User
from app.models.web import WebSession
from tests.factories import make_user
from tests.web.conftest import WebClient, csrf_of, sign_in

COUNTY = "430122000000"
TS1 = "430122100000"
V1 = "430122100201"
OTHER_COUNTY_USER_AREA = "430181100000"


async def fresh(db, model, pk):  # type: ignore[no-untyped-def]
    await db.commit()  # a new transaction: see what the requests committed
    return await db.get(model, pk, populate_existing=True)


async def test_admin_pages_are_for_admins_only(web_as, db) -> None:
    target, _ = await make_user(db, role="village", area_code=V1)
    await db.commit()
    version = target.version
    for role, area in (("village", V1), ("township", TS1), ("county", COUNTY)):
        web = await web_as(role, area)
        home = await web.get("/web/")
        assert 'data-nav="admin"' not in home.text
        for url in ("/web/admin", "/web/admin/clients", "/web/admin/areas", f"/web/admin/users/{target.id}"):
            r = await web.get(url)
            assert r.status_code == 403, (role, url)
            assert "无权操作" in r.text
        # Forged POSTs, with the session's own CSRF token: 403, nothing done.
        posts = [
            (
                "/web/admin/users",
                {
                    "username": "forged1",
                    "display_name": "x",
                    "role": "admin",
                    "area_code": COUNTY,
                    "password": "long-enough-pw",
                },
            ),
            (f"/web/admin/users/{target.id}/disable", {"version": target.version}),
            (f"/web/admin/users/{target.id}/password", {"version": target.version, "password": "p" * 12}),
            ("/web/admin/clients", {"name": "forged", "role": "partner", "area_code": COUNTY}),
            ("/web/admin/areas", {"code": "430122100299", "name": "伪造村"}),
        ]
        for url, data in posts:
            r = await web.submit(url, data)
            assert r.status_code == 403, (role, url, r.text)
    assert (await db.execute(select(User).where(User.username == "forged1"))).first() is None
    assert (await db.execute(select(func.count()).select_from(MachineClient))).scalar_one() == 0
    assert await db.get(Area, "430122100299") is None
    got = await fresh(db, User, target.id)
    assert got.disabled is False and got.version == version


async def test_create_user_who_can_then_sign_in(web_as, browser_anon: WebClient, db) -> None:
    admin = await web_as("admin", COUNTY)
    r = await admin.get("/web/admin")
    assert r.status_code == 200 and "<h1>管理</h1>" in r.text
    assert f'data-id="{admin.user.id}"' in r.text
    r = await admin.submit(
        "/web/admin/users",
        {
            "username": "zhang.wei",
            "display_name": "张伟",
            "role": "township",
            "area_code": TS1,
            "password": "a-good-password-1",
        },
    )
    assert r.status_code == 303, r.text
    user = (await db.execute(select(User).where(User.username == "zhang.wei"))).scalar_one()
    assert r.headers["location"] == f"/web/admin/users/{user.id}"
    assert (str(user.role), user.area_code, user.display_name, user.disabled) == (
        "township",
        TS1,
        "张伟",
        False,
    )
    assert verify_password("a-good-password-1", user.password_hash)
    page = await admin.get(r.headers["location"])
    assert page.status_code == 200 and "张伟" in page.text and 'data-action="disable"' in page.text
    listed = await admin.get("/web/admin")
    assert f'data-id="{user.id}"' in listed.text

    # The new user signs in to the workbench with that password.
    r = await sign_in(browser_anon, "zhang.wei", "a-good-password-1")
    assert r.status_code == 303 and r.headers["location"] == "/web/"
    assert "张伟" in (await browser_anon.get("/web/")).text

    # Refused as the API refuses: a taken name 409, a village user at a township 422, a short
    # password 422, an area in another county 403; nothing more stored.
    bad = [
        ({"username": "ZHANG.WEI", "role": "village", "area_code": V1}, 409),
        ({"username": "li.na", "role": "village", "area_code": TS1}, 422),
        ({"username": "li.na", "role": "village", "area_code": V1, "password": "short"}, 422),
        ({"username": "li.na", "role": "township", "area_code": OTHER_COUNTY_USER_AREA}, 403),
    ]
    for fields, status in bad:
        data = {"display_name": "李娜", "password": "a-good-password-2", **fields}
        r = await admin.submit("/web/admin/users", data)
        assert r.status_code == status, (fields, r.text)
    count = await db.execute(select(func.count()).select_from(User).where(User.username == "li.na"))
    assert count.scalar_one() == 0


async def test_disable_ends_the_users_web_session_and_enable(web_as, db) -> None:
    admin = await web_as("admin", COUNTY)
    worker = await web_as("township", TS1)
    assert (await worker.get("/web/")).status_code == 200
    user = await fresh(db, User, worker.user.id)
    before = user.version
    page = await admin.get("/web/admin")
    row = re.search(rf'<tr data-id="{user.id}" data-version="(\d+)">', page.text)
    assert row is not None and int(row.group(1)) == user.version

    r = await admin.submit(
        f"/web/admin/users/{user.id}/disable", {"version": row.group(1), "next": "/web/admin"}
    )
    assert r.status_code == 303 and r.headers["location"] == "/web/admin"
    got = await fresh(db, User, user.id)
    assert got.disabled is True and got.version == before + 1
    logins = (
        (await db.execute(select(LoginSession).where(LoginSession.principal_id == user.id))).scalars().all()
    )
    assert logins and all(x.revoked_at is not None for x in logins)
    # Their next page is the sign-in form.
    r = await worker.get("/web/figures")
    assert r.status_code == 303 and r.headers["location"].startswith("/web/login")

    # The old version is stale: 412, nothing changed.
    r = await admin.submit(f"/web/admin/users/{user.id}/enable", {"version": before})
    assert r.status_code == 412
    assert (await fresh(db, User, user.id)).disabled is True
    r = await admin.submit(f"/web/admin/users/{user.id}/enable", {"version": got.version})
    assert r.status_code == 303
    assert (await fresh(db, User, user.id)).disabled is False
    # An admin cannot disable themselves (the service's 409).
    me = await fresh(db, User, admin.user.id)
    r = await admin.submit(f"/web/admin/users/{me.id}/disable", {"version": me.version})
    assert r.status_code == 409
    assert (await fresh(db, User, me.id)).disabled is False


async def test_reset_password_and_change_role_and_area(web_as, browser_anon: WebClient, db) -> None:
    admin = await web_as("admin", COUNTY)
    worker = await web_as("village", V1)
    user = await fresh(db, User, worker.user.id)
    before = user.version

    r = await admin.submit(
        f"/web/admin/users/{user.id}/password", {"version": before, "password": "new-password-123"}
    )
    assert r.status_code == 303
    got = await fresh(db, User, user.id)
    assert verify_password("new-password-123", got.password_hash)
    assert (await worker.get("/web/")).status_code == 303  # their session ended
    assert (await sign_in(browser_anon, user.username, worker.password)).status_code == 401
    assert (await sign_in(browser_anon, user.username, "new-password-123")).status_code == 303

    page = await admin.get(f"/web/admin/users/{user.id}")
    version = re.search(r'name="version" value="(\d+)"', page.text)
    assert version is not None and int(version.group(1)) == got.version == before + 1
    after_reset = got.version
    r = await admin.submit(
        f"/web/admin/users/{user.id}/placement",
        {"version": version.group(1), "role": "township", "area_code": TS1},
    )
    assert r.status_code == 303
    moved = await fresh(db, User, user.id)
    assert (str(moved.role), moved.area_code, moved.version) == ("township", TS1, after_reset + 1)
    # A role that does not fit the area: 422, unchanged.
    r = await admin.submit(
        f"/web/admin/users/{user.id}/placement",
        {"version": moved.version, "role": "village", "area_code": TS1},
    )
    assert r.status_code == 422
    assert str((await fresh(db, User, user.id)).role) == "township"
    # A user of another county is 404.
    other, _ = await make_user(db, role="township", area_code=OTHER_COUNTY_USER_AREA)
    await db.commit()
    assert (await admin.get(f"/web/admin/users/{other.id}")).status_code == 404
    r = await admin.submit(f"/web/admin/users/{other.id}/disable", {"version": other.version})
    assert r.status_code == 404
    assert (await fresh(db, User, other.id)).disabled is False


async def test_client_secret_is_shown_once(web_as, anon, db) -> None:
    admin = await web_as("admin", COUNTY)
    r = await admin.submit(
        "/web/admin/clients",
        {"name": "公安人口接口", "role": "partner", "agency": "police", "area_code": COUNTY},
    )
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    secret = re.search(r"<code data-secret>([^<]+)</code>", r.text)
    assert secret is not None
    client = (
        await db.execute(select(MachineClient).where(MachineClient.name == "公安人口接口"))
    ).scalar_one()
    assert secret.group(1) not in client.secret_hash
    assert verify_password(secret.group(1), client.secret_hash)
    # The secret works for the API's client-credentials grant.
    token = await anon.post(
        "/api/v1/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": secret.group(1),
        },
    )
    assert token.status_code == 200, token.text
    # Never shown again: not on the client's page, not in the list.
    again = await admin.get(f"/web/admin/clients/{client.id}")
    assert again.status_code == 200 and client.client_id in again.text
    assert secret.group(1) not in again.text and "data-secret" not in again.text
    listed = await admin.get("/web/admin/clients")
    assert f'data-id="{client.id}"' in listed.text and secret.group(1) not in listed.text
    assert (await admin.get(f"/web/admin/clients/{uuid.uuid4()}")).status_code == 404
    # A machine role only.
    r = await admin.submit("/web/admin/clients", {"name": "x", "role": "admin", "area_code": COUNTY})
    assert r.status_code == 422
    assert (await db.execute(select(func.count()).select_from(MachineClient))).scalar_one() == 1


async def test_areas_list_filter_and_add(web_as, db) -> None:
    admin = await web_as("admin", COUNTY)
    r = await admin.get("/web/admin/areas")
    assert r.status_code == 200 and f'data-id="{TS1}"' in r.text
    assert "430181" not in r.text  # another county's areas are not listed
    r = await admin.get("/web/admin/areas", params={"parent_code": TS1})
    rows = re.findall(r'<tr data-id="(\d{12})">', r.text)
    assert rows and all(code.startswith("430122100") and code != TS1 for code in rows)
    r = await admin.submit("/web/admin/areas", {"code": "430122100299", "name": "新村"})
    assert r.status_code == 303 and r.headers["location"] == f"/web/admin/areas?parent_code={TS1}"
    area = await fresh(db, Area, "430122100299")
    assert area is not None and area.name == "新村" and area.parent_code == TS1
    assert 'data-id="430122100299"' in (await admin.get(r.headers["location"])).text
    r = await admin.submit("/web/admin/areas", {"code": "430122100299", "name": "又一个"})
    assert r.status_code == 409
    r = await admin.submit("/web/admin/areas", {"code": "430181100299", "name": "外县村"})
    assert r.status_code == 403
    assert await fresh(db, Area, "430181100299") is None


async def test_csrf_is_required_and_nothing_changes(web_as, db) -> None:
    admin = await web_as("admin", COUNTY)
    worker = await web_as("township", TS1)
    user = await fresh(db, User, worker.user.id)
    before = (user.version, user.password_hash)
    attempts = [
        (
            "/web/admin/users",
            {
                "username": "nocsrf",
                "display_name": "x",
                "role": "county",
                "area_code": COUNTY,
                "password": "long-enough-pw",
            },
        ),
        (f"/web/admin/users/{user.id}/disable", {"version": user.version}),
        (f"/web/admin/users/{user.id}/password", {"version": user.version, "password": "p" * 12}),
        (
            f"/web/admin/users/{user.id}/placement",
            {"version": user.version, "role": "county", "area_code": COUNTY},
        ),
        ("/web/admin/clients", {"name": "nocsrf", "role": "partner", "area_code": COUNTY}),
        ("/web/admin/areas", {"code": "430122100298", "name": "无令牌村"}),
    ]
    for url, data in attempts:
        r = await admin.post(url, data=data)
        assert r.status_code == 403, url
        r = await admin.post(url, data={**data, "csrf_token": "wrong"})
        assert r.status_code == 403, url
    got = await fresh(db, User, user.id)
    assert (got.disabled, str(got.role), got.version, got.password_hash) == (False, "township", *before)
    assert (await db.execute(select(User).where(User.username == "nocsrf"))).first() is None
    assert (await db.execute(select(func.count()).select_from(MachineClient))).scalar_one() == 0
    assert await fresh(db, Area, "430122100298") is None
    sessions = await db.execute(select(func.count()).select_from(WebSession))
    assert sessions.scalar_one() == 2  # both still signed in
    assert (await worker.get("/web/")).status_code == 200
    assert csrf_of((await admin.get("/web/admin")).text) == admin.csrf

"""Admin endpoints: users, machine clients, areas and the audit log — who may call them, what
they store, how they scope and paginate."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select

from app.models.areas import Area
from app.models.audit import AuditEvent
from app.models.users import MachineClient, User
from tests.factories import make_client, make_user

pytestmark = pytest.mark.usefixtures("areas")

TOKEN = "/api/v1/auth/token"
COUNTY = "430122000000"
OTHER_COUNTY = "430181000000"
PERSON_ROLES = {
    "village": "430122100201",
    "township": "430122100000",
    "county": COUNTY,
    "admin": COUNTY,
}
MACHINE_ROLES = ("partner", "dashboard")
NON_ADMIN = ["village", "township", "county", "partner", "dashboard"]


def problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == code
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


async def fresh(db, model, ident):
    """The stored row as it is now (not the identity map's copy)."""
    db.expire_all()
    row = await db.get(model, ident)
    await db.commit()
    return row


async def count(db, stmt) -> int:
    n = (await db.execute(stmt)).scalar_one()
    await db.commit()
    return n


def user_body(**over) -> dict:
    body = {
        "username": "new." + uuid.uuid4().hex[:8],
        "password": "correct-horse-battery",
        "role": "village",
        "area_code": "430122100201",
        "display_name": "团头湖村专干 陈静",
    }
    body.update(over)
    return body


def walk_keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in walk_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in walk_keys(v)}
    return set()


MachineAs = Callable[[str], Awaitable[AsyncClient]]


@pytest.fixture
async def machine_as(app, db) -> AsyncIterator[MachineAs]:
    """``await machine_as("partner")`` → a client holding a client-credentials token."""
    clients: list[AsyncClient] = []

    async def _make(role: str, area_code: str = COUNTY) -> AsyncClient:
        row, secret = await make_client(db, role=role, area_code=area_code)
        await db.commit()
        c = AsyncClient(transport=ASGITransport(app=app), base_url="http://test")
        clients.append(c)
        r = await c.post(
            TOKEN,
            data={"grant_type": "client_credentials", "client_id": row.client_id, "client_secret": secret},
        )
        assert r.status_code == 200, r.text
        c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        c.machine = row  # type: ignore[attr-defined]
        return c

    yield _make
    for c in clients:
        await c.aclose()


@pytest.fixture
def caller_as(client_as, machine_as):
    async def _make(role: str) -> AsyncClient:
        if role in MACHINE_ROLES:
            return await machine_as(role)
        return await client_as(role, PERSON_ROLES[role])

    return _make


# --- who may call what ------------------------------------------------------------------------


ENDPOINTS = [
    "create_user",
    "list_users",
    "patch_user",
    "create_client",
    "list_clients",
    "create_area",
    "audit",
]


async def call(c: AsyncClient, endpoint: str, target_id: uuid.UUID):
    if endpoint == "create_user":
        return await c.post("/api/v1/users", json=user_body(username="made-by-test"))
    if endpoint == "list_users":
        return await c.get("/api/v1/users")
    if endpoint == "patch_user":
        return await c.patch(
            f"/api/v1/users/{target_id}", json={"display_name": "改过的名字"}, headers={"If-Match": '"1"'}
        )
    if endpoint == "create_client":
        return await c.post(
            "/api/v1/clients",
            json={"name": "县公安局", "role": "partner", "agency": "police", "area_code": COUNTY},
        )
    if endpoint == "list_clients":
        return await c.get("/api/v1/clients")
    if endpoint == "create_area":
        return await c.post("/api/v1/areas", json={"code": "430122100204", "name": "新村"})
    return await c.get("/api/v1/audit-events")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("role", NON_ADMIN)
async def test_non_admin_roles_are_forbidden(caller_as, db, role, endpoint):
    target, _ = await make_user(db, role="village", area_code="430122100201")
    await db.commit()
    c = await caller_as(role)
    problem(await call(c, endpoint, target.id), 403, "forbidden")
    # Nothing was written.
    assert await count(db, select(func.count()).select_from(User).where(User.username == "made-by-test")) == 0
    assert (await fresh(db, User, target.id)).display_name != "改过的名字"
    assert await count(db, select(func.count()).select_from(Area).where(Area.code == "430122100204")) == 0
    assert (
        await count(
            db, select(func.count()).select_from(MachineClient).where(MachineClient.name == "县公安局")
        )
        == 0
    )


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_admin_may_call_every_admin_endpoint(client_as, db, endpoint):
    target, _ = await make_user(db, role="village", area_code="430122100201")
    await db.commit()
    admin = await client_as("admin", COUNTY)
    r = await call(admin, endpoint, target.id)
    assert r.status_code == (201 if endpoint.startswith("create") else 200), r.text
    body = r.json()
    if endpoint == "create_user":
        assert (await fresh(db, User, uuid.UUID(body["id"]))).username == "made-by-test"
    elif endpoint == "patch_user":
        assert body["display_name"] == "改过的名字"
        assert (await fresh(db, User, target.id)).display_name == "改过的名字"
    elif endpoint == "create_client":
        assert (await fresh(db, MachineClient, uuid.UUID(body["id"]))).name == "县公安局"
    elif endpoint == "create_area":
        assert (await fresh(db, Area, "430122100204")).name == "新村"
    else:
        assert isinstance(body["items"], list)
        assert "next_cursor" in body


# --- users -------------------------------------------------------------------------------------


async def test_create_user_stores_hash_and_never_returns_it(client_as, db):
    admin = await client_as("admin", COUNTY)
    body = user_body(display_name="团头湖村专干 陈静")
    r = await admin.post("/api/v1/users", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert not walk_keys(out) & {"password", "password_hash"}
    assert body["password"] not in r.text
    assert "$argon2" not in r.text
    assert out["username"] == body["username"]
    assert out["role"] == "village"
    assert out["area_code"] == "430122100201"
    assert out["display_name"] == "团头湖村专干 陈静"
    assert out["disabled"] is False
    assert out["version"] == 1
    stored = await fresh(db, User, uuid.UUID(out["id"]))
    assert stored.password_hash.startswith("$argon2")
    assert body["password"] not in stored.password_hash
    assert stored.county_code == "430122"
    # The new user can log in with the password given.
    r = await admin.post(
        TOKEN, data={"grant_type": "password", "username": body["username"], "password": body["password"]}
    )
    assert r.status_code == 200
    # The list never shows a hash either.
    listed = await admin.get("/api/v1/users", params={"limit": 500})
    assert not walk_keys(listed.json()) & {"password", "password_hash"}
    assert "$argon2" not in listed.text


@pytest.mark.parametrize(
    ("role", "area_code"),
    [
        ("village", COUNTY),
        ("township", "430122100201"),
        ("county", "430122100000"),
        ("admin", "430122100000"),
    ],
)
async def test_create_user_role_must_match_area_level(client_as, db, role, area_code):
    admin = await client_as("admin", COUNTY)
    body = user_body(role=role, area_code=area_code)
    problem(await admin.post("/api/v1/users", json=body), 422, "role_area_mismatch")
    n = await count(db, select(func.count()).select_from(User).where(User.username == body["username"]))
    assert n == 0


async def test_create_user_duplicate_username(client_as, db):
    admin = await client_as("admin", COUNTY)
    body = user_body()
    assert (await admin.post("/api/v1/users", json=body)).status_code == 201
    again = user_body(username=body["username"], area_code="430122101201")
    problem(await admin.post("/api/v1/users", json=again), 409, "username_taken")
    rows = (await db.execute(select(User).where(User.username == body["username"]))).scalars().all()
    await db.commit()
    assert [u.area_code for u in rows] == ["430122100201"]


async def test_create_user_in_another_county_is_out_of_scope(client_as, db):
    admin = await client_as("admin", COUNTY)
    body = user_body(area_code="430181100201")
    problem(await admin.post("/api/v1/users", json=body), 403, "out_of_scope")
    n = await count(db, select(func.count()).select_from(User).where(User.county_code == "430181"))
    assert n == 0


async def test_create_user_unknown_area(client_as):
    admin = await client_as("admin", COUNTY)
    body = problem(
        await admin.post("/api/v1/users", json=user_body(area_code="430122100299")), 422, "validation_failed"
    )
    assert body["errors"][0]["field"] == "area_code"


async def test_create_user_short_password_lists_field_errors(client_as):
    admin = await client_as("admin", COUNTY)
    body = problem(
        await admin.post("/api/v1/users", json=user_body(password="short")), 422, "validation_failed"
    )
    assert isinstance(body["errors"], list)
    assert body["errors"]
    for e in body["errors"]:
        assert set(e) == {"field", "message"}
    assert "password" in [e["field"] for e in body["errors"]]
    assert "short" not in json.dumps(body["errors"])


@pytest.mark.parametrize("role", ["partner", "dashboard", "superuser"])
async def test_create_user_with_a_machine_or_unknown_role(client_as, db, role):
    admin = await client_as("admin", COUNTY)
    body = user_body(role=role, area_code=COUNTY)
    err = problem(await admin.post("/api/v1/users", json=body), 422, "validation_failed")
    assert "role" in [e["field"] for e in err["errors"]]
    n = await count(db, select(func.count()).select_from(User).where(User.username == body["username"]))
    assert n == 0


async def test_list_users_is_the_admins_county_and_pages_without_duplicates(client_as, db):
    admin = await client_as("admin", COUNTY)
    for i, area in enumerate(
        ["430122100201", "430122100202", "430122101201", "430122102203", "430122100201"]
    ):
        await make_user(db, role="village", area_code=area, username=f"cadre-{i}")
    await make_user(db, role="township", area_code="430122101000")
    outsider, _ = await make_user(db, role="village", area_code="430181100201")
    await db.commit()
    expected = {
        str(u) for u in (await db.execute(select(User.id).where(User.county_code == "430122"))).scalars()
    }
    await db.commit()
    assert len(expected) == 7

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = await admin.get("/api/v1/users", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [u["id"] for u in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert len(seen) == len(set(seen))
    assert set(seen) == expected
    assert str(outsider.id) not in seen
    assert pages == 4

    # The other county's admin sees only its own.
    other = await client_as("admin", OTHER_COUNTY)
    ids = {u["id"] for u in (await other.get("/api/v1/users")).json()["items"]}
    assert ids == {str(outsider.id), str(other.user.id)}


def _b64(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


async def test_list_users_limit_and_cursor_validation(client_as):
    admin = await client_as("admin", COUNTY)
    body = problem(await admin.get("/api/v1/users", params={"limit": 501}), 422, "validation_failed")
    assert body["errors"][0]["field"] == "limit"
    problem(await admin.get("/api/v1/users", params={"limit": 0}), 422, "validation_failed")
    for garbage in [
        "garbage!!",
        "not-a-cursor",
        _b64([1]),
        _b64({"a": 1}),
        _b64(["a", "not-a-uuid"]),
        _b64(["a", [1, 2]]),
        "%%%%",
        "x" * 513,
    ]:
        r = await admin.get("/api/v1/users", params={"cursor": garbage})
        assert r.status_code == 422, (garbage, r.text)
        assert r.json()["code"] in ("invalid_cursor", "validation_failed")


async def test_role_change_ends_the_users_logins(client_as, db):
    admin = await client_as("admin", COUNTY)
    cadre = await client_as("village", "430122100201")
    assert (await cadre.get("/api/v1/me")).status_code == 200
    r = await admin.patch(
        f"/api/v1/users/{cadre.user.id}",
        json={"role": "township", "area_code": "430122100000"},
        headers={"If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "township"
    assert r.json()["area_code"] == "430122100000"
    assert r.json()["version"] == 2
    problem(await cadre.get("/api/v1/me"), 401, "invalid_token")
    stored = await fresh(db, User, cadre.user.id)
    assert (stored.role, stored.area_code, stored.version) == ("township", "430122100000", 2)


async def test_role_change_must_fit_the_area(client_as, db):
    admin = await client_as("admin", COUNTY)
    cadre = await client_as("village", "430122100201")
    problem(
        await admin.patch(
            f"/api/v1/users/{cadre.user.id}", json={"role": "county"}, headers={"If-Match": '"1"'}
        ),
        422,
        "role_area_mismatch",
    )
    assert (await cadre.get("/api/v1/me")).status_code == 200
    assert (await fresh(db, User, cadre.user.id)).role == "village"


async def test_password_reset_ends_logins_and_new_password_works(client_as, anon, db):
    admin = await client_as("admin", COUNTY)
    cadre = await client_as("village", "430122100201")
    r = await admin.patch(
        f"/api/v1/users/{cadre.user.id}",
        json={"password": "a-brand-new-password"},
        headers={"If-Match": '"1"'},
    )
    assert r.status_code == 200
    assert "password" not in walk_keys(r.json())
    problem(await cadre.get("/api/v1/me"), 401, "invalid_token")
    r = await anon.post(
        TOKEN,
        data={"grant_type": "password", "username": cadre.user.username, "password": "a-brand-new-password"},
    )
    assert r.status_code == 200


async def test_admin_cannot_disable_or_re_role_self(client_as, db):
    admin = await client_as("admin", COUNTY)
    problem(
        await admin.patch(
            f"/api/v1/users/{admin.user.id}", json={"disabled": True}, headers={"If-Match": '"1"'}
        ),
        409,
        "self_change",
    )
    problem(
        await admin.patch(
            f"/api/v1/users/{admin.user.id}", json={"role": "county"}, headers={"If-Match": '"1"'}
        ),
        409,
        "self_change",
    )
    stored = await fresh(db, User, admin.user.id)
    assert (stored.disabled, stored.role, stored.version) == (False, "admin", 1)
    assert (await admin.get("/api/v1/me")).status_code == 200


async def test_patch_user_of_another_county_is_not_found(client_as, db):
    admin = await client_as("admin", COUNTY)
    outsider, _ = await make_user(db, role="village", area_code="430181100201")
    await db.commit()
    problem(
        await admin.patch(
            f"/api/v1/users/{outsider.id}", json={"disabled": True}, headers={"If-Match": '"1"'}
        ),
        404,
        "not_found",
    )
    problem(
        await admin.patch(
            f"/api/v1/users/{uuid.uuid4()}", json={"disabled": True}, headers={"If-Match": '"1"'}
        ),
        404,
        "not_found",
    )
    assert (await fresh(db, User, outsider.id)).disabled is False


async def test_patch_user_into_another_county_is_out_of_scope(client_as, db):
    admin = await client_as("admin", COUNTY)
    cadre = await client_as("village", "430122100201")
    problem(
        await admin.patch(
            f"/api/v1/users/{cadre.user.id}", json={"area_code": "430181100201"}, headers={"If-Match": '"1"'}
        ),
        403,
        "out_of_scope",
    )
    assert (await fresh(db, User, cadre.user.id)).area_code == "430122100201"


async def test_empty_patch_changes_nothing(client_as, db):
    admin = await client_as("admin", COUNTY)
    cadre = await client_as("village", "430122100201")
    r = await admin.patch(f"/api/v1/users/{cadre.user.id}", json={}, headers={"If-Match": '"1"'})
    assert r.status_code == 200
    assert r.json()["version"] == 1
    assert (await cadre.get("/api/v1/me")).status_code == 200
    assert (await fresh(db, User, cadre.user.id)).version == 1


# --- machine clients ---------------------------------------------------------------------------


async def test_client_secret_is_shown_once_and_works(client_as, anon, db):
    admin = await client_as("admin", COUNTY)
    r = await admin.post(
        "/api/v1/clients",
        json={"name": "县公安局户籍系统", "role": "partner", "agency": "police", "area_code": COUNTY},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["client_secret"]
    assert created["client_id"]
    assert len(secret) >= 32
    assert created["name"] == "县公安局户籍系统"
    assert "secret_hash" not in created
    stored = (
        await db.execute(select(MachineClient).where(MachineClient.client_id == created["client_id"]))
    ).scalar_one()
    await db.commit()
    assert stored.secret_hash.startswith("$argon2")
    assert secret not in stored.secret_hash

    listed = await admin.get("/api/v1/clients")
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [i["client_id"] for i in items] == [created["client_id"]]
    assert not walk_keys(listed.json()) & {"client_secret", "secret_hash", "secret"}
    assert secret not in listed.text
    assert "$argon2" not in listed.text

    r = await anon.post(
        TOKEN,
        data={"grant_type": "client_credentials", "client_id": created["client_id"], "client_secret": secret},
    )
    assert r.status_code == 200, r.text
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    areas = await anon.get("/api/v1/areas", headers=h)
    assert areas.status_code == 200
    assert {a["code"][:6] for a in areas.json()["items"]} == {"430122"}
    problem(await anon.get("/api/v1/users", headers=h), 403, "forbidden")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "x", "role": "village", "area_code": COUNTY}, 422, "validation_failed"),
        ({"name": "x", "role": "partner", "area_code": "430122100000"}, 422, "role_area_mismatch"),
        ({"name": "x", "role": "partner", "area_code": OTHER_COUNTY}, 403, "out_of_scope"),
        ({"name": "x", "role": "partner", "agency": "army", "area_code": COUNTY}, 422, "validation_failed"),
    ],
)
async def test_create_client_refusals(client_as, db, body, status, code):
    admin = await client_as("admin", COUNTY)
    problem(await admin.post("/api/v1/clients", json=body), status, code)
    assert await count(db, select(func.count()).select_from(MachineClient)) == 0


async def test_clients_are_listed_per_county(client_as, db):
    mine, _ = await make_client(db, area_code=COUNTY)
    theirs, _ = await make_client(db, area_code=OTHER_COUNTY)
    await db.commit()
    admin = await client_as("admin", COUNTY)
    ids = [c["client_id"] for c in (await admin.get("/api/v1/clients")).json()["items"]]
    assert ids == [mine.client_id]


# --- areas -------------------------------------------------------------------------------------


async def test_create_village_under_existing_township(client_as, db):
    admin = await client_as("admin", COUNTY)
    r = await admin.post("/api/v1/areas", json={"code": "430122100204", "name": "新建村"})
    assert r.status_code == 201, r.text
    assert r.json() == {
        "code": "430122100204",
        "name": "新建村",
        "level": "village",
        "parent_code": "430122100000",
    }
    stored = await fresh(db, Area, "430122100204")
    assert (stored.level, stored.parent_code, stored.name) == ("village", "430122100000", "新建村")
    assert (stored.county_code, stored.township_code, stored.village_code) == (
        "430122",
        "430122100",
        "430122100204",
    )
    # The township cadre now sees it.
    township = await client_as("township", "430122100000")
    codes = [a["code"] for a in (await township.get("/api/v1/areas")).json()["items"]]
    assert "430122100204" in codes


async def test_create_township(client_as, db):
    admin = await client_as("admin", COUNTY)
    r = await admin.post("/api/v1/areas", json={"code": "430122103000", "name": "新镇"})
    assert r.status_code == 201, r.text
    assert (r.json()["level"], r.json()["parent_code"]) == ("township", COUNTY)


async def test_create_village_without_township_is_parent_missing(client_as, db):
    admin = await client_as("admin", COUNTY)
    problem(
        await admin.post("/api/v1/areas", json={"code": "430122109201", "name": "孤村"}),
        422,
        "parent_missing",
    )
    assert await fresh(db, Area, "430122109201") is None


async def test_create_existing_area_conflicts(client_as, db):
    admin = await client_as("admin", COUNTY)
    problem(
        await admin.post("/api/v1/areas", json={"code": "430122100201", "name": "别名"}), 409, "area_exists"
    )
    assert (await fresh(db, Area, "430122100201")).name == "团头湖村"


@pytest.mark.parametrize("code", ["430181100202", "430100000000", "110101001001"])
async def test_create_area_outside_county_is_out_of_scope(client_as, db, code):
    admin = await client_as("admin", COUNTY)
    problem(await admin.post("/api/v1/areas", json={"code": code, "name": "外地"}), 403, "out_of_scope")
    assert await fresh(db, Area, code) is None


@pytest.mark.parametrize(
    "code",
    [
        "43012210020",  # 11 digits
        "4301221002011",  # 13 digits
        "43012210020a",  # a letter
        "４３０１２２１００２０５",  # full-width digits
        "",
        # Impossible structures: a village under township 000, a township-less village.
        "430122000201",
        "000000000000",
    ],
)
async def test_create_area_bad_code(client_as, db, code):
    admin = await client_as("admin", COUNTY)
    body = problem(
        await admin.post("/api/v1/areas", json={"code": code, "name": "坏码"}), 422, "validation_failed"
    )
    assert "code" in [e["field"] for e in body["errors"]]
    assert await count(db, select(func.count()).select_from(Area).where(Area.name == "坏码")) == 0


async def _codes(c: AsyncClient, **params) -> list[str]:
    r = await c.get("/api/v1/areas", params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return [a["code"] for a in r.json()["items"]]


async def test_areas_are_scoped_to_the_caller(client_as):
    village = await client_as("village", "430122100201")
    assert await _codes(village) == ["430122100201"]

    township = await client_as("township", "430122100000")
    assert await _codes(township) == ["430122100000", "430122100201", "430122100202", "430122100203"]

    county = await client_as("county", COUNTY)
    codes = await _codes(county)
    assert len(codes) == 13
    assert all(c.startswith("430122") for c in codes)
    assert codes == sorted(codes)
    assert codes[0] == COUNTY

    other = await client_as("county", OTHER_COUNTY)
    assert await _codes(other) == ["430181000000", "430181100000", "430181100201"]


async def test_areas_parent_code_filter(client_as):
    county = await client_as("county", COUNTY)
    assert await _codes(county, parent_code="430122101000") == [
        "430122101201",
        "430122101202",
        "430122101203",
    ]
    assert await _codes(county, parent_code=COUNTY) == ["430122100000", "430122101000", "430122102000"]
    # Another county's children stay invisible even when asked for by parent.
    assert await _codes(county, parent_code="430181100000") == []
    township = await client_as("township", "430122100000")
    assert await _codes(township, parent_code="430122101000") == []
    problem(await county.get("/api/v1/areas", params={"parent_code": "4301"}), 422, "validation_failed")


async def test_areas_page_by_code(client_as):
    county = await client_as("county", COUNTY)
    seen: list[str] = []
    cursor = None
    while True:
        r = await county.get("/api/v1/areas", params={"limit": 5} | ({"cursor": cursor} if cursor else {}))
        seen += [a["code"] for a in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(set(seen))
    assert len(seen) == 13


# --- audit -------------------------------------------------------------------------------------


async def _events(c: AsyncClient, **params) -> list[dict]:
    r = await c.get("/api/v1/audit-events", params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_user_creation_and_login_are_audited(client_as, anon, db):
    admin = await client_as("admin", COUNTY)
    body = user_body()
    r = await admin.post("/api/v1/users", json=body, headers={"X-Request-ID": "req-create-user-1"})
    assert r.status_code == 201
    new_id = r.json()["id"]

    events = await _events(admin, entity="user", entity_id=new_id)
    created = [e for e in events if e["action"] == "create"]
    assert len(created) == 1
    e = created[0]
    assert e["entity"] == "user"
    assert e["entity_id"] == new_id
    assert e["actor_id"] == str(admin.user.id)
    assert e["actor_role"] == "admin"
    assert e["request_id"] == "req-create-user-1"
    assert e["at"]

    r = await anon.post(
        TOKEN, data={"grant_type": "password", "username": body["username"], "password": body["password"]}
    )
    assert r.status_code == 200
    logins = [e for e in await _events(admin, entity="user", entity_id=new_id) if e["action"] == "login"]
    assert len(logins) == 1
    assert logins[0]["actor_id"] == new_id
    assert logins[0]["request_id"]

    # Filters.
    by_actor = await _events(admin, actor_id=str(admin.user.id))
    assert by_actor
    assert all(e["actor_id"] == str(admin.user.id) for e in by_actor)
    assert new_id in {e["entity_id"] for e in by_actor}
    by_entity = await _events(admin, entity="user")
    assert by_entity
    assert all(e["entity"] == "user" for e in by_entity)
    # The fixture's areas were written without a caller: filed under their county, no actor.
    area_events = await _events(admin, entity="area")
    assert len(area_events) == 13
    assert all(e["actor_id"] is None and e["action"] == "create" for e in area_events)
    by_id = await _events(admin, entity_id=new_id)
    assert {e["action"] for e in by_id} == {"create", "login"}
    # Newest first.
    ats = [e["at"] for e in await _events(admin)]
    assert ats == sorted(ats, reverse=True)
    assert await _events(admin, **{"from": "2100-01-01T00:00:00+00:00"}) == []
    assert len(await _events(admin, to="2100-12-31T00:00:00Z")) == len(await _events(admin))

    # Stored, as read back.
    stored = (await db.execute(select(AuditEvent).where(AuditEvent.entity_id == new_id))).scalars().all()
    await db.commit()
    assert {(s.action, s.county_code) for s in stored} == {("create", "430122"), ("login", "430122")}

    # Another county's admin sees none of it.
    other = await client_as("admin", OTHER_COUNTY)
    theirs = await _events(other)
    assert new_id not in {e["entity_id"] for e in theirs}
    assert str(admin.user.id) not in {e["actor_id"] for e in theirs}
    assert await _events(other, entity_id=new_id) == []


async def test_audit_events_are_read_only_through_the_api(app):
    paths = app.openapi()["paths"]
    audit_paths = {p: ops for p, ops in paths.items() if "audit" in p}
    assert audit_paths
    for ops in audit_paths.values():
        methods = {m for m in ops if m in {"get", "put", "post", "patch", "delete", "head", "options"}}
        assert methods == {"get"}
    # And the routes themselves, not only the document.
    for route in app.routes:
        if "audit" in getattr(route, "path", ""):
            assert getattr(route, "methods", set()) <= {"GET", "HEAD"}


async def test_audit_filters_are_validated(client_as):
    admin = await client_as("admin", COUNTY)
    problem(await admin.get("/api/v1/audit-events", params={"actor_id": "nope"}), 422, "validation_failed")
    problem(await admin.get("/api/v1/audit-events", params={"from": "yesterday"}), 422, "validation_failed")
    problem(await admin.get("/api/v1/audit-events", params={"cursor": "garbage"}), 422, "invalid_cursor")


async def test_concurrent_duplicate_username_is_one_created_one_conflict(client_as, db):
    import asyncio

    admin = await client_as("admin", COUNTY)
    body = user_body()
    rs = await asyncio.gather(*[admin.post("/api/v1/users", json=body) for _ in range(4)])
    assert sorted(r.status_code for r in rs) == [201, 409, 409, 409], [r.text for r in rs]
    for r in rs:
        if r.status_code == 409:
            problem(r, 409, "username_taken")
    n = await count(db, select(func.count()).select_from(User).where(User.username == body["username"]))
    assert n == 1


async def test_concurrent_duplicate_area_is_one_created_one_conflict(client_as, db):
    import asyncio

    admin = await client_as("admin", COUNTY)
    body = {"code": "430122100209", "name": "并发村"}
    rs = await asyncio.gather(*[admin.post("/api/v1/areas", json=body) for _ in range(4)])
    assert sorted(r.status_code for r in rs) == [201, 409, 409, 409], [r.text for r in rs]
    for r in rs:
        if r.status_code == 409:
            problem(r, 409, "area_exists")


async def test_patch_user_needs_if_match(client_as):
    admin = await client_as("admin", "430122000000")
    cadre = await client_as("village", "430122100201")
    url = f"/api/v1/users/{cadre.user.id}"
    problem(await admin.patch(url, json={"display_name": "新名字"}), 428, "precondition_required")
    r = await admin.patch(url, json={"display_name": "新名字"}, headers={"If-Match": '"1"'})
    assert r.status_code == 200
    assert r.json()["version"] == 2
    body = problem(
        await admin.patch(url, json={"display_name": "旧"}, headers={"If-Match": '"1"'}),
        412,
        "version_conflict",
    )
    assert body["current"]["display_name"] == "新名字"
    assert "password_hash" not in body["current"]

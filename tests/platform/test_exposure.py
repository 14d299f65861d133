"""Mass assignment (server-owned fields sent by clients are ignored) and exposure (which
fields each role can ever see: full ID numbers and phones only in the single-person view)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from app.core import clock
from app.models.households import Household, Person
from app.models.users import User
from app.models.visits import Visit
from tests.households.test_api import COUNTY, TS1, V1, V2, mk_household, mk_person

SERVER_OWNED = {
    "version": 99,
    "created_at": "2001-01-01T00:00:00+00:00",
    "updated_at": "2001-01-01T00:00:00+00:00",
    "county_code": "999999",
    "township_code": "999999999",
    "status": "approved",
    "approved_by": str(uuid.uuid4()),
    "merged_into_id": str(uuid.uuid4()),
    "id_number_hash": "0" * 64,
    "id_number_enc": "f1:AAAA",
    "password_hash": "$argon2id$forged",
    "visitor_id": str(uuid.uuid4()),
    "disabled": True,
}
SECRET_KEYS = {
    "password_hash",
    "secret_hash",
    "id_number_enc",
    "id_number_hash",
    "phone_enc",
    "payee_account_enc",
}


async def test_server_owned_fields_are_ignored_on_create_and_update(client_as, db):
    cadre = await client_as("village", V1)
    r = await cadre.post(
        "/api/v1/households",
        json={"village_code": V1, "address": "一组", "household_type": "rural", **SERVER_OWNED},
    )
    assert r.status_code == 201, r.text
    h = r.json()
    stored = (await db.execute(select(Household).where(Household.id == uuid.UUID(h["id"])))).scalar_one()
    assert (stored.version, stored.county_code, stored.township_code) == (1, "430122", "430122100")
    assert stored.created_at > datetime.now(UTC) - timedelta(minutes=5)
    await db.commit()
    body = {
        "household_id": h["id"],
        "name": "甲",
        "sex": "female",
        "birth_date": "1990-01-01",
        "relation_to_head": "户主",
        "marital_status": "married",
        "village_code": V2,
        **SERVER_OWNED,
    }
    r = await cadre.post("/api/v1/persons", json=body)
    assert r.status_code == 201, r.text
    p = r.json()
    assert (p["version"], p["village_code"], p["merged_into_id"], p["alive"]) == (1, V1, None, True)
    other = await mk_household(cadre)
    r = await cadre.patch(
        f"/api/v1/persons/{p['id']}",
        json={
            "household_id": other["id"],
            "village_code": V2,
            "death_date": "2020-01-01",
            **SERVER_OWNED,
            "name": "乙",
        },
        headers={"If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    row = (await db.execute(select(Person).where(Person.id == uuid.UUID(p["id"])))).scalar_one()
    assert (
        row.name,
        str(row.household_id),
        row.village_code,
        row.death_date,
        row.merged_into_id,
        row.version,
    ) == ("乙", h["id"], V1, None, None, 2)
    assert row.id_number_hash is None
    await db.commit()
    r = await cadre.post(
        "/api/v1/visits",
        json={
            "household_id": h["id"],
            "visited_at": datetime.now(UTC).isoformat(),
            "purpose": "other",
            **SERVER_OWNED,
        },
    )
    assert r.status_code == 201
    v = (await db.execute(select(Visit).where(Visit.id == uuid.UUID(r.json()["id"])))).scalar_one()
    assert (v.visitor_id, v.version, v.county_code) == (cadre.user.id, 1, "430122")
    await db.commit()


async def test_someone_elses_id_is_refused_not_overwritten(client_as):
    a = await client_as("village", V1)
    b = await client_as("village", V2)
    theirs = await mk_household(b, V2)
    r = await a.post(
        "/api/v1/households",
        json={"id": theirs["id"], "village_code": V1, "address": "抢占", "household_type": "rural"},
    )
    assert r.status_code == 409 and r.json()["code"] == "id_conflict"
    assert (await b.get(f"/api/v1/households/{theirs['id']}")).json()["address"] == theirs["address"]


async def test_user_creation_ignores_server_owned_fields(client_as, db):
    admin = await client_as("admin", COUNTY)
    r = await admin.post(
        "/api/v1/users",
        json={
            "username": "newcadre",
            "password": "long-enough-pw",
            "role": "village",
            "area_code": V1,
            "display_name": "新专干",
            **SERVER_OWNED,
            "county_code": "430181",
        },
    )
    assert r.status_code == 201, r.text
    u = (await db.execute(select(User).where(User.username == "newcadre"))).scalar_one()
    assert (u.disabled, u.county_code, u.version) == (False, "430122", 1)
    assert u.password_hash.startswith("$argon2") and u.password_hash != SERVER_OWNED["password_hash"]


def _walk(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{path}.{k}", k, v
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, path + "[]")


async def test_what_each_role_can_see(client_as):
    cadre = await client_as("village", V1)
    h = await mk_household(cadre)
    p = await mk_person(cadre, h["id"], born=date(1990, 1, 1), phone="13800138000")
    await cadre.post(
        "/api/v1/visits",
        json={
            "household_id": h["id"],
            "person_id": p["id"],
            "visited_at": datetime.now(UTC).isoformat(),
            "purpose": "other",
            "follow_up_on": clock.today().isoformat(),
        },
    )
    lists = [
        "/api/v1/households",
        f"/api/v1/households/{h['id']}",
        "/api/v1/persons",
        "/api/v1/visits",
        "/api/v1/tasks",
        "/api/v1/sync/pull",
        "/api/v1/data-quality",
        "/api/v1/checkup-appointments",
    ]
    for role, area in (("village", V1), ("township", TS1), ("county", COUNTY), ("admin", COUNTY)):
        c = cadre if role == "village" else await client_as(role, area)
        for url in lists:
            r = await c.get(url)
            assert r.status_code == 200, (role, url, r.text)
            keys = {k for _p, k, _v in _walk(r.json())}
            assert "id_number" not in keys and "phone" not in keys, (role, url)
            assert "13800138000" not in r.text, (role, url)
            assert not keys & SECRET_KEYS, (role, url)
        one = (await c.get(f"/api/v1/persons/{p['id']}")).json()
        assert len(one["id_number"]) == 18 and one["phone"] == "13800138000"
    admin = await client_as("admin", COUNTY)
    for url in ("/api/v1/users", "/api/v1/clients", "/api/v1/audit-events"):
        keys = {k for _p, k, _v in _walk((await admin.get(url)).json())}
        assert not keys & SECRET_KEYS and "password" not in keys and "client_secret" not in keys, url

"""Migrant records through HTTP: inflow and outflow, one open record per person, close reasons,
scope, movements across villages and counties, death, sync, figures."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from app.core import clock
from app.models.households import Person, PersonMove
from app.models.migrants import Migrant
from app.models.sync import Change
from app.models.visits import Task
from tests.conftest import IS_PG
from tests.factories import id_number
from tests.households.test_api import COUNTY, TS1, V1, V2, V_OTHER_TS, mk_household, mk_person, problem

OTHER_COUNTY_VILLAGE = "430181100201"  # 浏阳市 沙坪村: another county of the deployment
MIGRANT_FIELDS = {
    "id",
    "person_id",
    "direction",
    "status",
    "village_code",
    "moved_on",
    "origin_area_code",
    "destination",
    "address",
    "employer",
    "phone_masked",
    "closed_on",
    "close_reason",
    "transfer",
    "refuse_reason",
    "version",
    "created_at",
    "updated_at",
}


@pytest.fixture
async def cadre(client_as):
    return await client_as("village", V1)


def inflow_body(number: str, village: str = V1, **kw) -> dict:
    return {
        "direction": "inflow",
        "village_code": village,
        "moved_on": (clock.today() - timedelta(days=10)).isoformat(),
        "person": {"id_number": number, "name": "王桂兰", "marital_status": "married"},
        "origin_area_code": "440305000000",
        "address": "团头湖村5组出租屋",
        "employer": "望城电子厂",
        "phone": "13800138000",
        **kw,
    }


async def tasks_of(c, kind: str = "migrant_confirm") -> list[dict]:
    items = (await c.get("/api/v1/tasks", params={"status": "open", "kind": kind})).json()["items"]
    return items


# --- inflow and outflow -----------------------------------------------------------------------


async def test_inflow_registers_a_new_person_in_the_receiving_village(cadre, db):
    number = id_number(date(1995, 3, 8), "female", "440305")
    mid = str(uuid.uuid4())
    body = inflow_body(number, id=mid)
    r = await cadre.post("/api/v1/migrants", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert set(out) == MIGRANT_FIELDS
    assert out["id"] == mid
    assert (out["direction"], out["status"], out["village_code"]) == ("inflow", "open", V1)
    assert (out["employer"], out["phone_masked"], out["transfer"]) == ("望城电子厂", "138****8000", None)
    assert r.headers["etag"] == '"1"'
    person = (await cadre.get(f"/api/v1/persons/{out['person_id']}")).json()
    assert person["id_number"] == number
    assert (person["sex"], person["birth_date"], person["name"]) == ("female", "1995-03-08", "王桂兰")
    assert person["village_code"] == V1
    assert person["hukou_area_code"] == "440305000000"
    household = (await cadre.get(f"/api/v1/households/{person['household_id']}")).json()
    assert household["address"] == "团头湖村5组出租屋"
    assert household["head_person_id"] == person["id"]
    # a retry with the same id and content answers the record; other content is a conflict
    again = await cadre.post("/api/v1/migrants", json=body)
    assert again.status_code == 200
    assert again.json()["id"] == mid
    problem(await cadre.post("/api/v1/migrants", json={**body, "employer": "别家"}), 409, "id_conflict")
    rows = (await db.execute(select(Migrant))).scalars().all()
    assert len(rows) == 1
    assert rows[0].phone_enc and "13800138000" not in rows[0].phone_enc
    assert len((await db.execute(select(Person))).scalars().all()) == 1


async def test_inflow_and_outflow_of_registered_people(cadre, client_as):
    h = await mk_household(cadre)
    p = await mk_person(cadre, h["id"])
    out = await cadre.post(
        "/api/v1/migrants",
        json={
            "direction": "outflow",
            "person_id": p["id"],
            "village_code": V1,
            "moved_on": "2026-03-01",
            "destination": "广东省深圳市宝安区",
            "phone": "13912345678",
        },
    )
    assert out.status_code == 201, out.text
    assert (out.json()["destination"], out.json()["phone_masked"]) == ("广东省深圳市宝安区", "139****5678")
    inflow = {"direction": "inflow", "person_id": p["id"], "village_code": V1, "moved_on": "2026-03-02"}
    r = await cadre.post("/api/v1/migrants", json=inflow)
    assert r.status_code == 201, r.text
    assert r.json()["transfer"] is None  # a resident of the receiving village: no movement
    # an outflow is held by the home village
    ts = await client_as("township", TS1)
    h2 = await mk_household(ts, V2)
    p2 = await mk_person(ts, h2["id"], name="赵敏")
    out = problem(
        await ts.post(
            "/api/v1/migrants",
            json={
                "direction": "outflow",
                "person_id": p2["id"],
                "village_code": V1,
                "moved_on": "2026-03-01",
            },
        ),
        422,
        "validation_failed",
    )
    assert out["errors"][0]["field"] == "village_code"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"moved_on": (clock.today() + timedelta(days=3)).isoformat()}, "moved_on"),
        ({"destination": "深圳"}, "body"),
        ({"person_id": str(uuid.uuid4())}, "body"),
        ({"village_code": "43012210020"}, "village_code"),
        ({"origin_area_code": "4403"}, "origin_area_code"),
        ({"phone": "call me"}, "phone"),
    ],
)
async def test_inflow_validation(cadre, patch, field):
    body = {**inflow_body(id_number(date(1990, 1, 1), "male")), **patch}
    out = problem(await cadre.post("/api/v1/migrants", json=body), 422, "validation_failed")
    assert any(e["field"] == field or e["field"].startswith(field) for e in out["errors"]), out


async def test_bad_id_number_is_id_number_invalid(cadre):
    good = id_number(date(1990, 1, 1), "male")
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    body = inflow_body(bad)
    problem(await cadre.post("/api/v1/migrants", json=body), 422, "id_number_invalid")
    body = inflow_body(id_number(date(1990, 1, 1), "male"))
    body["person"]["sex"] = "female"
    problem(await cadre.post("/api/v1/migrants", json=body), 422, "id_number_mismatch")


async def test_new_person_needs_an_address_or_household(cadre):
    body = inflow_body(id_number(date(1990, 1, 1), "male"))
    body.pop("address")
    out = problem(await cadre.post("/api/v1/migrants", json=body), 422, "validation_failed")
    assert out["errors"][0]["field"] == "address"
    h = await mk_household(cadre)
    r = await cadre.post("/api/v1/migrants", json={**body, "household_id": h["id"]})
    assert r.status_code == 201, r.text
    person = (await cadre.get(f"/api/v1/persons/{r.json()['person_id']}")).json()
    assert person["household_id"] == h["id"]


async def test_one_open_inflow_and_one_open_outflow_per_person(cadre):
    r = await cadre.post("/api/v1/migrants", json=inflow_body(id_number(date(1992, 2, 2), "female")))
    first = r.json()
    again = inflow_body("", person_id=first["person_id"])
    again.pop("person")
    out = problem(await cadre.post("/api/v1/migrants", json=again), 409, "migrant_exists")
    assert out["migrant_id"] == first["id"]
    closed = await cadre.post(
        f"/api/v1/migrants/{first['id']}/close",
        json={"closed_on": clock.today().isoformat(), "reason": "returned"},
    )
    assert closed.status_code == 200
    second = await cadre.post("/api/v1/migrants", json=again)
    assert second.status_code == 201, second.text
    history = (await cadre.get("/api/v1/migrants", params={"direction": "inflow"})).json()["items"]
    assert {m["status"] for m in history} == {"open", "closed"}
    assert [
        m["id"] for m in (await cadre.get("/api/v1/migrants", params={"status": "closed"})).json()["items"]
    ] == [first["id"]]
    # outflows: one open at a time as well
    h = await mk_household(cadre)
    p = await mk_person(cadre, h["id"], name="陈强", sex="male")
    body = {"direction": "outflow", "person_id": p["id"], "village_code": V1, "moved_on": "2026-01-05"}
    assert (await cadre.post("/api/v1/migrants", json=body)).status_code == 201
    problem(await cadre.post("/api/v1/migrants", json=body), 409, "migrant_exists")


async def test_same_id_number_names_the_same_person(cadre, db):
    number = id_number(date(1993, 4, 4), "female")
    first = (await cadre.post("/api/v1/migrants", json=inflow_body(number))).json()
    out = problem(await cadre.post("/api/v1/migrants", json=inflow_body(number)), 409, "migrant_exists")
    assert out["migrant_id"] == first["id"]
    assert len((await db.execute(select(Person))).scalars().all()) == 1


@pytest.mark.parametrize("reason", ["returned", "moved_on", "settled", "deceased"])
async def test_close_reasons(cadre, reason):
    m = (await cadre.post("/api/v1/migrants", json=inflow_body(id_number(date(1991, 1, 1), "male")))).json()
    today = clock.today().isoformat()
    r = await cadre.post(f"/api/v1/migrants/{m['id']}/close", json={"closed_on": today, "reason": reason})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["status"], out["close_reason"], out["closed_on"], out["version"]) == (
        "closed",
        reason,
        today,
        2,
    )
    problem(
        await cadre.post(f"/api/v1/migrants/{m['id']}/close", json={"closed_on": today, "reason": reason}),
        409,
        "invalid_transition",
    )


async def test_close_validation(cadre):
    m = (await cadre.post("/api/v1/migrants", json=inflow_body(id_number(date(1991, 1, 1), "male")))).json()
    url = f"/api/v1/migrants/{m['id']}/close"
    problem(
        await cadre.post(url, json={"closed_on": "2026-01-01", "reason": "left"}), 422, "validation_failed"
    )
    early = (clock.today() - timedelta(days=30)).isoformat()
    problem(await cadre.post(url, json={"closed_on": early, "reason": "returned"}), 422, "validation_failed")
    late = (clock.today() + timedelta(days=5)).isoformat()
    problem(await cadre.post(url, json={"closed_on": late, "reason": "returned"}), 422, "validation_failed")
    assert (await cadre.get(f"/api/v1/migrants/{m['id']}")).json()["status"] == "open"


async def test_scope(client_as):
    c1 = await client_as("village", V1)
    c2 = await client_as("village", V2)
    m = (await c1.post("/api/v1/migrants", json=inflow_body(id_number(date(1990, 6, 1), "female")))).json()
    problem(await c2.get(f"/api/v1/migrants/{m['id']}"), 404, "not_found")
    problem(
        await c2.post(
            f"/api/v1/migrants/{m['id']}/close", json={"closed_on": "2026-01-01", "reason": "returned"}
        ),
        404,
        "not_found",
    )
    assert (await c2.get("/api/v1/migrants")).json()["items"] == []
    problem(
        await c2.post("/api/v1/migrants", json=inflow_body(id_number(date(1990, 6, 2), "female"))),
        403,
        "out_of_scope",
    )
    ts = await client_as("township", TS1)
    assert [x["id"] for x in (await ts.get("/api/v1/migrants")).json()["items"]] == [m["id"]]
    assert (await ts.get("/api/v1/migrants", params={"village_code": V2})).json()["items"] == []
    other_ts = await client_as("township", "430122101000")
    assert (await other_ts.get("/api/v1/migrants")).json()["items"] == []
    county = await client_as("county", COUNTY)
    assert (await county.get(f"/api/v1/migrants/{m['id']}")).status_code == 200
    other_county = await client_as("county", "430181000000")
    problem(await other_county.get(f"/api/v1/migrants/{m['id']}"), 404, "not_found")


# --- movements inside the deployment ----------------------------------------------------------


async def _pull_all(c, cursor: str | None = None) -> tuple[list[dict], str]:
    changes: list[dict] = []
    while True:
        r = await c.get("/api/v1/sync/pull", params={"limit": 500, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        changes += page["changes"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return changes, cursor


async def test_movement_between_two_villages(client_as, db):
    """The receiving village asks, her village releases (issue 14); tests/migrants/test_release.py
    has the attacker's side of it."""
    receiving = await client_as("village", V1)
    origin = await client_as("village", V_OTHER_TS)
    h = await mk_household(origin, V_OTHER_TS, address="格塘村三组1号")
    number = id_number(date(1996, 7, 7), "female")
    p = await mk_person(origin, h["id"], id_number=number, name="刘小红")
    follow_up = (clock.today() + timedelta(days=3)).isoformat()
    visit = await origin.post(
        "/api/v1/visits",
        json={
            "household_id": h["id"],
            "person_id": p["id"],
            "visited_at": "2026-01-10T09:00:00+08:00",
            "purpose": "health_education",
            "follow_up_on": follow_up,
        },
    )
    assert visit.status_code == 201, visit.text
    _, origin_cursor = await _pull_all(origin)

    r = await receiving.post("/api/v1/migrants", json=inflow_body(number, employer=None))
    assert r.status_code == 201, r.text
    inflow = r.json()
    assert (inflow["status"], inflow["transfer"], inflow["person_id"]) == ("pending_release", "pending", None)
    # the person's register entry has not moved; the origin got a task to release her
    problem(await receiving.get(f"/api/v1/persons/{p['id']}"), 404, "not_found")
    assert (await origin.get(f"/api/v1/persons/{p['id']}")).json()["village_code"] == V_OTHER_TS
    assert (await origin.get("/api/v1/migrants")).json()["items"] == []
    origin_tasks = await tasks_of(origin, "migrant_release")
    assert [(t["source_id"], t["person_id"]) for t in origin_tasks] == [(inflow["id"], p["id"])]
    assert await tasks_of(receiving, "migrant_release") == []

    # her village releases her: she joins a new household at the inflow's address
    r = await origin.post(f"/api/v1/migrants/{inflow['id']}/confirm", json={})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["transfer"]) == ("open", "confirmed")
    person = (await receiving.get(f"/api/v1/persons/{p['id']}")).json()
    assert (person["village_code"], person["current_village_code"]) == (V1, V1)
    household = (await receiving.get(f"/api/v1/households/{person['household_id']}")).json()
    assert household["address"] == "团头湖村5组出租屋"
    assert household["household_type"] == "rural"
    assert household["head_person_id"] == p["id"]
    problem(await origin.get(f"/api/v1/persons/{p['id']}"), 404, "not_found")
    old_household = (await origin.get(f"/api/v1/households/{h['id']}")).json()
    assert old_household["head_person_id"] is None
    assert old_household["members"] == []
    # the origin keeps an outflow closed as settled (history), linked to the inflow
    outflows = (await origin.get("/api/v1/migrants", params={"direction": "outflow"})).json()["items"]
    assert [(m["status"], m["close_reason"], m["transfer"]) for m in outflows] == [
        ("closed", "settled", "confirmed")
    ]
    assert V1 in outflows[0]["destination"]
    stored = await db.get(Migrant, uuid.UUID(inflow["id"]))
    await db.refresh(stored)
    assert str(stored.counterpart_id) == outflows[0]["id"]
    # her open follow-up task went with her; the release task closed
    follow = (await db.execute(select(Task).where(Task.kind == "follow_up"))).scalar_one()
    assert (follow.village_code, follow.status) == (V1, "open")
    assert await tasks_of(origin, "migrant_release") == []
    moves = (await db.execute(select(PersonMove))).scalars().all()
    assert [(m.from_household_id, m.to_household_id) for m in moves] == [
        (uuid.UUID(h["id"]), uuid.UUID(person["household_id"]))
    ]
    # the origin cadre's phone gets tombstones for the person and the task: the change log
    # holds them at the old village (on PostgreSQL, pull delivers them once every transaction
    # of the cluster older than them has ended, which other work on a shared server may delay)
    tombstones = (
        await db.execute(
            select(Change.entity, Change.entity_id).where(Change.village_code == V_OTHER_TS, Change.deleted)
        )
    ).all()
    assert {("person", uuid.UUID(p["id"])), ("task", follow.id)} <= set(tombstones)
    if not IS_PG:
        changes, _ = await _pull_all(origin, origin_cursor)
        gone = {(c["entity"], c["id"]) for c in changes if c["deleted"]}
        assert {("person", p["id"]), ("task", str(follow.id))} <= gone
    # decided once
    problem(
        await receiving.post(f"/api/v1/migrants/{inflow['id']}/confirm", json={}), 409, "invalid_transition"
    )


async def test_movement_across_two_counties(client_as, db):
    receiving = await client_as("village", V1)
    origin = await client_as("village", OTHER_COUNTY_VILLAGE)
    h = await mk_household(origin, OTHER_COUNTY_VILLAGE, address="沙坪村2组")
    number = id_number(date(1994, 9, 9), "female", "430181")
    p = await mk_person(origin, h["id"], id_number=number, name="周丽", phone="13700001111")
    # the household she joins is named with the request
    target = await mk_household(receiving, V1, address="团头湖村1组")
    r = await receiving.post(
        "/api/v1/migrants", json=inflow_body(number, origin_area_code=None, household_id=target["id"])
    )
    assert r.status_code == 201, r.text
    inflow = r.json()
    # nothing of the other county's record beyond the contract's fields
    assert set(inflow) == MIGRANT_FIELDS
    assert (inflow["origin_area_code"], inflow["person_id"], inflow["status"]) == (
        None,
        None,
        "pending_release",
    )
    assert "430181" not in r.text
    # the receiving county sees only its own record, and cannot release her
    county = await client_as("county", COUNTY)
    assert [m["id"] for m in (await county.get("/api/v1/migrants")).json()["items"]] == [inflow["id"]]
    problem(await county.post(f"/api/v1/migrants/{inflow['id']}/confirm"), 403, "forbidden")
    # her county does
    other_county = await client_as("county", "430181000000")
    assert (await other_county.get("/api/v1/migrants")).json()["items"] == []
    assert [t["source_id"] for t in await tasks_of(other_county, "migrant_release")] == [inflow["id"]]
    r = await other_county.post(f"/api/v1/migrants/{inflow['id']}/confirm")
    assert r.status_code == 200, r.text
    stored = await db.get(Person, uuid.UUID(p["id"]))
    await db.refresh(stored)
    assert (stored.county_code, stored.village_code, stored.household_id) == (
        "430122",
        V1,
        uuid.UUID(target["id"]),
    )
    problem(await origin.get(f"/api/v1/persons/{p['id']}"), 404, "not_found")
    outflows = (await origin.get("/api/v1/migrants")).json()["items"]
    assert [(m["direction"], m["status"], m["close_reason"]) for m in outflows] == [
        ("outflow", "closed", "settled")
    ]


async def test_the_household_she_joins_must_be_in_the_receiving_village(client_as):
    receiving = await client_as("township", TS1)
    origin = await client_as("village", V_OTHER_TS)
    h = await mk_household(origin, V_OTHER_TS)
    number = id_number(date(1990, 1, 2), "male")
    await mk_person(origin, h["id"], id_number=number, sex="male", born=date(1990, 1, 2), name="张伟")
    wrong = await mk_household(receiving, V2)
    out = problem(
        await receiving.post("/api/v1/migrants", json=inflow_body(number, household_id=wrong["id"])),
        422,
        "validation_failed",
    )
    assert out["errors"][0]["field"] == "household_id"
    assert (await receiving.get("/api/v1/migrants")).json()["items"] == []


async def test_a_migrant_moving_on_closes_her_earlier_inflow(client_as, db):
    first = await client_as("village", V1)
    second = await client_as("village", V_OTHER_TS)
    number = id_number(date(1997, 5, 5), "female", "440305")
    a = (await first.post("/api/v1/migrants", json=inflow_body(number))).json()
    b = await second.post(
        "/api/v1/migrants", json=inflow_body(number, village=V_OTHER_TS, address="格塘村出租屋")
    )
    assert b.status_code == 201, b.text
    assert (b.json()["status"], b.json()["transfer"]) == ("pending_release", "pending")
    # nothing changes at the first village until it releases her
    assert (await first.get(f"/api/v1/migrants/{a['id']}")).json()["status"] == "open"
    problem(await second.post(f"/api/v1/migrants/{b.json()['id']}/confirm"), 403, "forbidden")
    r = await first.post(f"/api/v1/migrants/{b.json()['id']}/confirm")
    assert r.status_code == 200, r.text
    old = (await first.get(f"/api/v1/migrants/{a['id']}")).json()
    assert (old["status"], old["close_reason"]) == ("closed", "moved_on")
    open_inflows = (
        (await db.execute(select(Migrant).where(Migrant.status == "open", Migrant.direction == "inflow")))
        .scalars()
        .all()
    )
    assert [m.village_code for m in open_inflows] == [V_OTHER_TS]
    assert (await second.get(f"/api/v1/persons/{a['person_id']}")).json()["village_code"] == V_OTHER_TS


async def test_death_closes_open_records(cadre):
    m = (await cadre.post("/api/v1/migrants", json=inflow_body(id_number(date(1950, 1, 1), "male")))).json()
    d = await cadre.post(
        "/api/v1/deaths", json={"person_id": m["person_id"], "death_date": clock.today().isoformat()}
    )
    assert d.status_code == 201, d.text
    out = (await cadre.get(f"/api/v1/migrants/{m['id']}")).json()
    assert (out["status"], out["close_reason"]) == ("closed", "deceased")
    problem(
        await cadre.post(
            "/api/v1/migrants", json={**inflow_body("x"), "person": None, "person_id": m["person_id"]}
        ),
        409,
        "person_deceased",
    )


async def test_machine_roles_cannot_use_migrant_endpoints(client_as, db):
    from tests.factories import make_client

    c = await client_as("village", V1)
    m = (await c.post("/api/v1/migrants", json=inflow_body(id_number(date(1990, 1, 1), "male")))).json()
    for role in ("partner", "dashboard"):
        client, secret = await make_client(db, role=role, agency="police" if role == "partner" else None)
        await db.commit()
        r = await c.post(
            "/api/v1/auth/token",
            data={"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": secret},
        )
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        problem(await c.get("/api/v1/migrants", headers=headers), 403, "forbidden")
        problem(await c.get(f"/api/v1/migrants/{m['id']}", headers=headers), 403, "forbidden")
        problem(await c.post("/api/v1/migrants", json=inflow_body("x"), headers=headers), 403, "forbidden")


# --- sync and figures -------------------------------------------------------------------------


async def test_sync_push_creates_and_pull_delivers_migrants(cadre):
    h = await mk_household(cadre)
    p = await mk_person(cadre, h["id"])
    mid = str(uuid.uuid4())
    op = {
        "op_id": "op-m-1",
        "entity": "migrant",
        "id": mid,
        "base_version": None,
        "data": {"direction": "outflow", "person_id": p["id"], "village_code": V1, "moved_on": "2026-02-01"},
    }
    r = await cadre.post("/api/v1/sync/push", json={"device_id": "phone-1", "ops": [op]})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["status"] == "applied", r.text
    again = await cadre.post("/api/v1/sync/push", json={"device_id": "phone-1", "ops": [op]})
    assert again.json()["results"][0]["status"] == "duplicate"
    changes, _ = await _pull_all(cadre)
    migrants = [c for c in changes if c["entity"] == "migrant"]
    assert [(c["id"], c["data"]["direction"]) for c in migrants] == [(mid, "outflow")]


async def test_figures(client_as, db):
    from app.authz.actor import Actor
    from app.models.users import Role
    from app.services import migrants as svc

    c1 = await client_as("village", V1)
    c3 = await client_as("village", V_OTHER_TS)
    today = clock.today()
    woman = id_number(date(today.year - 30, 1, 1), "female", "440305")
    old_woman = id_number(date(today.year - 60, 1, 1), "female", "440305")
    man = id_number(date(today.year - 30, 1, 1), "male", "440305")
    await c1.post("/api/v1/migrants", json=inflow_body(woman))
    await c1.post("/api/v1/migrants", json=inflow_body(old_woman))
    m = (
        await c3.post("/api/v1/migrants", json=inflow_body(man, village=V_OTHER_TS, address="格塘村"))
    ).json()
    await c3.post(
        f"/api/v1/migrants/{m['id']}/close", json={"closed_on": today.isoformat(), "reason": "returned"}
    )
    h = await mk_household(c1)
    p = await mk_person(c1, h["id"], born=date(today.year - 25, 3, 3))
    await c1.post(
        "/api/v1/migrants",
        json={"direction": "outflow", "person_id": p["id"], "village_code": V1, "moved_on": "2020-01-01"},
    )
    dashboard = Actor(
        id=uuid.uuid4(), kind="client", role=Role.dashboard, area_code=COUNTY, session_id=uuid.uuid4()
    )
    start = today - timedelta(days=30)
    total = await svc.figures(db, dashboard, area_code=COUNTY, from_=start, to=today)
    assert len(total) == 1
    f = total[0]
    assert (f.area_code, f.open_inflow, f.open_inflow_women_15_49) == (COUNTY, 2, 1)
    assert (f.new_inflow, f.new_inflow_women_15_49) == (3, 1)
    assert (f.open_outflow, f.open_outflow_women_15_49, f.new_outflow) == (1, 1, 0)
    by_township = {
        x.area_code: x
        for x in await svc.figures(db, dashboard, area_code=COUNTY, from_=start, to=today, breakdown=True)
    }
    assert set(by_township) == {TS1, "430122101000"}
    assert (by_township["430122101000"].open_inflow, by_township["430122101000"].new_inflow) == (0, 1)
    village = await svc.figures(db, dashboard, area_code=V1, from_=start, to=today)
    assert village[0].open_inflow == 2
    with pytest.raises(Exception, match="area"):
        await svc.figures(db, dashboard, area_code="430181000000", from_=start, to=today)

"""Issue 14, item 1: nobody takes over a person through an inflow.

The attacker is a village cadre who knows an ID number registered elsewhere: in a village of her
own township, of another township, of another county. She posts an inflow with it, looks for the
person's id or fields in every answer (the POST, GET, lists, the ``person_id`` filter, her task
inbox, her phone's push answers and pulls), confirms or refuses the move herself, and replays
the request with a guessed ``person_id``. Only the person's current place — its village cadre,
its township, its county — may release or refuse her; a third place learns nothing at all."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from app.core import clock
from app.models.households import Person, PersonMove
from app.models.migrants import Migrant
from app.models.visits import Task
from app.services.migrants import local_today
from tests.factories import id_number
from tests.households.test_api import V1, mk_household, mk_person, problem

RECEIVING = V1  # 团头湖村 of 乔口镇 (430122100), county 430122
# the person's place: (village, its township, its county)
PLACES = {
    "same_township": ("430122100202", "430122100000", "430122000000"),
    "other_township": ("430122101201", "430122101000", "430122000000"),
    "other_county": ("430181100201", "430181100000", "430181000000"),
}
# a place holding neither the request nor her, for every case
THIRD = {"village": "430122102201", "township": "430122102000", "county": "430124000000"}
ATTACKER_ADDRESS = "团头湖村5组出租屋"


@pytest.fixture
async def third_county(db, areas):  # noqa: ARG001 (after the shared areas)
    from app.services.areas import build_area

    area = build_area("430124000000", "宁乡市")
    area.parent_code = None
    db.add(area)
    await db.commit()


@dataclass
class Victim:
    id: str
    number: str
    name: str
    phone: str
    household_id: str
    village: str
    follow_up_task: uuid.UUID


async def victim_in(
    c: AsyncClient, village: str, db, *, name: str = "刘小红", born: date = date(1994, 9, 9)
) -> Victim:
    """A woman registered in ``village`` by its own cadre, with a follow-up task."""
    h = await mk_household(c, village, address="原籍村二组8号")
    number = id_number(born, "female", village[:6])
    p = await mk_person(c, h["id"], id_number=number, name=name, phone="13700001111")
    visit = await c.post(
        "/api/v1/visits",
        json={
            "household_id": h["id"],
            "person_id": p["id"],
            "visited_at": "2026-01-10T09:00:00+08:00",
            "purpose": "health_education",
            "follow_up_on": (clock.today() + timedelta(days=3)).isoformat(),
        },
    )
    assert visit.status_code == 201, visit.text
    task_id = (await db.execute(select(Task.id).where(Task.person_id == uuid.UUID(p["id"])))).scalar_one()
    await db.rollback()  # end this read: the app writes next
    return Victim(p["id"], number, name, "13700001111", h["id"], village, task_id)


def request_body(number: str, **kw) -> dict:
    return {
        "direction": "inflow",
        "village_code": RECEIVING,
        "moved_on": (clock.today() - timedelta(days=5)).isoformat(),
        "person": {"id_number": number, "name": "王桂兰", "marital_status": "single"},
        "address": ATTACKER_ADDRESS,
        **kw,
    }


def assert_hides(payload: object, v: Victim) -> None:
    """Nothing of her record in what the requester reads."""
    text = json.dumps(payload, ensure_ascii=False)
    for secret in (v.id, v.household_id, v.name, v.phone, v.village, str(v.follow_up_task)):
        assert secret not in text, secret


async def pull_snapshot(c: AsyncClient) -> list[dict]:
    changes: list[dict] = []
    cursor = None
    while True:
        r = await c.get("/api/v1/sync/pull", params={"limit": 500, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        changes += page["changes"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return changes


async def fresh(db, model, ident):
    """The row as committed now (the test session's earlier snapshot ended first)."""
    await db.rollback()
    row = await db.get(model, uuid.UUID(str(ident)))
    await db.refresh(row)
    return row


async def stored_person(db, v: Victim) -> Person:
    return await fresh(db, Person, v.id)


async def assert_untouched(db, v: Victim) -> None:
    person = await stored_person(db, v)
    assert (person.village_code, str(person.household_id)) == (v.village, v.household_id)
    assert (await db.execute(select(PersonMove))).scalars().all() == []
    task = await fresh(db, Task, v.follow_up_task)
    assert (task.village_code, task.status) == (v.village, "open")


async def assert_attacker_learns_nothing(attacker: AsyncClient, request: dict, v: Victim) -> None:
    """Every read the requester has, while the request waits (or after a refusal)."""
    one = await attacker.get(f"/api/v1/migrants/{request['id']}")
    assert one.status_code == 200, one.text
    assert one.json()["person_id"] is None
    assert_hides(one.json(), v)
    listed = (await attacker.get("/api/v1/migrants")).json()["items"]
    assert [m["id"] for m in listed] == [request["id"]]
    assert listed[0]["person_id"] is None
    assert_hides(listed, v)
    # a guessed person id finds nothing
    guessed = await attacker.get("/api/v1/migrants", params={"person_id": v.id})
    assert guessed.status_code == 200
    assert guessed.json()["items"] == []
    problem(await attacker.get(f"/api/v1/persons/{v.id}"), 404, "not_found")
    tasks = (await attacker.get("/api/v1/tasks")).json()["items"]
    assert all(t["person_id"] is None for t in tasks)
    assert_hides(tasks, v)
    changes = await pull_snapshot(attacker)
    migrants = [c for c in changes if c["entity"] == "migrant"]
    assert [(c["id"], c["data"]["person_id"]) for c in migrants] == [(request["id"], None)]
    assert_hides(changes, v)


async def third_parties_get_nothing(client_as, request: dict) -> None:
    """A village, township and county holding neither the request nor her: 404, the same answer
    as for an id that does not exist."""
    for role, area in THIRD.items():
        c = await client_as(role, area)
        for method, path, body in (
            ("GET", f"/api/v1/migrants/{request['id']}", None),
            ("POST", f"/api/v1/migrants/{request['id']}/confirm", {}),
            ("POST", f"/api/v1/migrants/{request['id']}/refuse", {"reason": "不认识"}),
        ):
            r = await c.request(method, path, json=body)
            nothing = await c.request(method, path.replace(request["id"], str(uuid.uuid4())), json=body)
            out, none = problem(r, 404, "not_found"), problem(nothing, 404, "not_found")
            assert {k: v for k, v in out.items() if k != "request_id"} == {
                k: v for k, v in none.items() if k != "request_id"
            }
        assert (await c.get("/api/v1/migrants")).json()["items"] == []


async def receiving_side_is_forbidden(client_as, attacker: AsyncClient, request: dict, origin: tuple) -> None:
    """The requester, and above her every level that holds the request but not her place."""
    callers = [attacker]
    township, county = RECEIVING[:9] + "000", RECEIVING[:6] + "000000"
    if origin[1] != township:
        callers.append(await client_as("township", township))
    if origin[2] != county:
        callers.append(await client_as("county", county))
    for c in callers:
        problem(await c.post(f"/api/v1/migrants/{request['id']}/confirm", json={}), 403, "forbidden")
        problem(
            await c.post(f"/api/v1/migrants/{request['id']}/refuse", json={"reason": "自己拒绝"}),
            403,
            "forbidden",
        )


# --- the takeover sequence --------------------------------------------------------------------


@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("releaser_role", ["village", "township", "county"])
async def test_takeover_waits_for_her_place(client_as, db, third_county, place, releaser_role):  # noqa: ARG001
    origin = PLACES[place]
    origin_cadre = await client_as("village", origin[0])
    v = await victim_in(origin_cadre, origin[0], db)
    attacker = await client_as("village", RECEIVING)

    r = await attacker.post("/api/v1/migrants", json=request_body(v.number))
    assert r.status_code == 201, r.text
    request = r.json()
    assert (request["status"], request["transfer"], request["person_id"]) == (
        "pending_release",
        "pending",
        None,
    )
    assert_hides(request, v)
    await assert_attacker_learns_nothing(attacker, request, v)
    await receiving_side_is_forbidden(client_as, attacker, request, origin)
    await third_parties_get_nothing(client_as, request)
    await assert_untouched(db, v)
    stored = await fresh(db, Migrant, request["id"])
    assert (stored.status, str(stored.person_id)) == ("pending_release", v.id)

    # her place: the release task in its inbox points at the request, which it may read
    releaser = (
        origin_cadre
        if releaser_role == "village"
        else await client_as(releaser_role, origin[1 if releaser_role == "township" else 2])
    )
    inbox = (await releaser.get("/api/v1/tasks", params={"kind": "migrant_release", "status": "open"})).json()
    assert [(t["source_id"], t["person_id"], t["village_code"]) for t in inbox["items"]] == [
        (request["id"], v.id, v.village)
    ]
    assert v.name in inbox["items"][0]["title"] and "王桂兰" in inbox["items"][0]["title"]
    seen = await releaser.get(f"/api/v1/migrants/{request['id']}")
    assert seen.status_code == 200
    assert (seen.json()["address"], seen.json()["status"]) == (ATTACKER_ADDRESS, "pending_release")

    r = await releaser.post(f"/api/v1/migrants/{request['id']}/confirm", json={})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["transfer"], r.json()["person_id"]) == ("open", "confirmed", v.id)

    # now she is the receiving village's: the requester sees her, her place no longer does
    mine = (await attacker.get(f"/api/v1/migrants/{request['id']}")).json()
    assert (mine["status"], mine["person_id"]) == ("open", v.id)
    person = (await attacker.get(f"/api/v1/persons/{v.id}")).json()
    assert (person["village_code"], person["current_village_code"]) == (RECEIVING, RECEIVING)
    household = (await attacker.get(f"/api/v1/households/{person['household_id']}")).json()
    assert household["address"] == ATTACKER_ADDRESS
    problem(await origin_cadre.get(f"/api/v1/persons/{v.id}"), 404, "not_found")
    stored_p = await stored_person(db, v)
    assert (stored_p.county_code, stored_p.village_code) == (RECEIVING[:6], RECEIVING)
    moves = (await db.execute(select(PersonMove))).scalars().all()
    assert [(str(m.from_household_id), str(m.to_household_id)) for m in moves] == [
        (v.household_id, person["household_id"])
    ]
    # her open task went with her; the release task closed; her place keeps the history
    follow = await fresh(db, Task, v.follow_up_task)
    assert (follow.village_code, follow.status) == (RECEIVING, "open")
    release = (await db.execute(select(Task).where(Task.kind == "migrant_release"))).scalar_one()
    assert release.status == "cancelled"
    assert (await origin_cadre.get("/api/v1/tasks", params={"status": "open"})).json()["items"] == []
    history = (await origin_cadre.get("/api/v1/migrants")).json()["items"]
    assert [(m["direction"], m["status"], m["close_reason"], m["transfer"]) for m in history] == [
        ("outflow", "closed", "settled", "confirmed")
    ]
    # decided once
    problem(
        await attacker.post(f"/api/v1/migrants/{request['id']}/confirm", json={}), 409, "invalid_transition"
    )


@pytest.mark.parametrize("place", list(PLACES))
async def test_her_place_refuses(client_as, db, third_county, place):  # noqa: ARG001
    origin = PLACES[place]
    origin_cadre = await client_as("village", origin[0])
    v = await victim_in(origin_cadre, origin[0], db)
    attacker = await client_as("village", RECEIVING)
    request = (await attacker.post("/api/v1/migrants", json=request_body(v.number))).json()
    problem(
        await origin_cadre.post(f"/api/v1/migrants/{request['id']}/refuse", json={"reason": " "}),
        422,
        "validation_failed",
    )

    r = await origin_cadre.post(f"/api/v1/migrants/{request['id']}/refuse", json={"reason": "本人未迁出"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["status"], out["transfer"], out["refuse_reason"], out["person_id"]) == (
        "refused",
        "refused",
        "本人未迁出",
        None,
    )
    assert out["closed_on"] == local_today().isoformat()  # China's day
    await assert_untouched(db, v)
    # the requester is told, and still learns nothing of her
    await assert_attacker_learns_nothing(attacker, {**request, "status": "refused"}, v)
    told = (await attacker.get("/api/v1/tasks", params={"kind": "migrant_refused", "status": "open"})).json()
    assert [(t["source_id"], t["person_id"]) for t in told["items"]] == [(request["id"], None)]
    assert "本人未迁出" in told["items"][0]["title"]
    assert (
        await origin_cadre.get("/api/v1/tasks", params={"kind": "migrant_release", "status": "open"})
    ).json()["items"] == []
    assert (await attacker.get("/api/v1/migrants", params={"status": "refused"})).json()["items"][0][
        "id"
    ] == request["id"]
    # terminal: neither side can act on it any more
    problem(await origin_cadre.post(f"/api/v1/migrants/{request['id']}/confirm", json={}), 404, "not_found")
    problem(
        await attacker.post(f"/api/v1/migrants/{request['id']}/confirm", json={}), 409, "invalid_transition"
    )
    problem(
        await attacker.post(
            f"/api/v1/migrants/{request['id']}/close",
            json={"closed_on": clock.today().isoformat(), "reason": "returned"},
        ),
        409,
        "invalid_transition",
    )
    # the origin still has her, unchanged, and no outflow was ever recorded
    assert (await origin_cadre.get(f"/api/v1/persons/{v.id}")).json()["household_id"] == v.household_id
    assert (await origin_cadre.get("/api/v1/migrants")).json()["items"] == []


# --- the same through other doors ------------------------------------------------------------


async def test_sync_push_and_pull_carry_nothing_of_her(client_as, db):
    origin_cadre = await client_as("village", PLACES["other_township"][0])
    v = await victim_in(origin_cadre, PLACES["other_township"][0], db)
    attacker = await client_as("village", RECEIVING)
    mid = str(uuid.uuid4())
    op = {
        "op_id": "take-1",
        "entity": "migrant",
        "id": mid,
        "base_version": None,
        "data": request_body(v.number),
    }
    r = await attacker.post("/api/v1/sync/push", json={"device_id": "phone-x", "ops": [op]})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["status"] == "applied"
    assert_hides(r.json(), v)
    again = await attacker.post("/api/v1/sync/push", json={"device_id": "phone-x", "ops": [op]})
    assert again.json()["results"][0]["status"] == "duplicate"
    assert_hides(again.json(), v)
    receipts = await attacker.post(
        "/api/v1/sync/receipts", json={"device_id": "phone-x", "op_ids": ["take-1"]}
    )
    assert_hides(receipts.json(), v)
    await assert_attacker_learns_nothing(attacker, {"id": mid}, v)
    await assert_untouched(db, v)
    # a push cannot confirm it either: there is no such op, and the HTTP confirm is forbidden
    problem(await attacker.post(f"/api/v1/migrants/{mid}/confirm"), 403, "forbidden")
    assert (await fresh(db, Migrant, mid)).status == "pending_release"


async def test_a_replay_cannot_confirm_a_guessed_person_id(client_as, db):
    origin_cadre = await client_as("village", PLACES["same_township"][0])
    v = await victim_in(origin_cadre, PLACES["same_township"][0], db)
    attacker = await client_as("village", RECEIVING)
    body = request_body(v.number, id=str(uuid.uuid4()))
    assert (await attacker.post("/api/v1/migrants", json=body)).status_code == 201
    assert (await attacker.post("/api/v1/migrants", json=body)).status_code == 200  # a plain retry
    guess = {**body, "person": None, "person_id": v.id}
    problem(await attacker.post("/api/v1/migrants", json=guess), 409, "id_conflict")
    wrong = {**body, "person": None, "person_id": str(uuid.uuid4())}
    problem(await attacker.post("/api/v1/migrants", json=wrong), 409, "id_conflict")
    # a second request for the same number from the same village: hers already, nothing new
    out = problem(await attacker.post("/api/v1/migrants", json=request_body(v.number)), 409, "migrant_exists")
    assert out["migrant_id"] == body["id"]
    assert_hides(out, v)


async def test_a_deceased_person_elsewhere_is_not_revealed(client_as, db):
    origin_cadre = await client_as("village", PLACES["other_county"][0])
    v = await victim_in(origin_cadre, PLACES["other_county"][0], db)
    d = await origin_cadre.post(
        "/api/v1/deaths", json={"person_id": v.id, "death_date": clock.today().isoformat()}
    )
    assert d.status_code == 201, d.text
    attacker = await client_as("village", RECEIVING)
    r = await attacker.post("/api/v1/migrants", json=request_body(v.number))
    assert r.status_code == 201, r.text  # the same answer as for any person elsewhere
    assert (r.json()["status"], r.json()["person_id"]) == ("pending_release", None)
    # her place cannot release a deceased person, and refuses
    mid = r.json()["id"]
    problem(await origin_cadre.post(f"/api/v1/migrants/{mid}/confirm"), 409, "person_deceased")
    assert (
        await origin_cadre.post(f"/api/v1/migrants/{mid}/refuse", json={"reason": "无此人"})
    ).status_code == 200


async def test_a_death_refuses_waiting_requests(client_as, db):
    origin_cadre = await client_as("village", PLACES["other_township"][0])
    v = await victim_in(origin_cadre, PLACES["other_township"][0], db)
    attacker = await client_as("village", RECEIVING)
    mid = (await attacker.post("/api/v1/migrants", json=request_body(v.number))).json()["id"]
    d = await origin_cadre.post(
        "/api/v1/deaths", json={"person_id": v.id, "death_date": clock.today().isoformat()}
    )
    assert d.status_code == 201, d.text
    out = (await attacker.get(f"/api/v1/migrants/{mid}")).json()
    assert (out["status"], out["person_id"]) == ("refused", None)
    assert "死亡" not in (out["refuse_reason"] or "")
    told = (await attacker.get("/api/v1/tasks", params={"kind": "migrant_refused"})).json()["items"]
    assert [t["source_id"] for t in told] == [mid]


async def test_inline_person_requires_marital_status(client_as):
    attacker = await client_as("village", RECEIVING)
    body = request_body(id_number(date(1990, 1, 1), "male"))
    del body["person"]["marital_status"]
    out = problem(await attacker.post("/api/v1/migrants", json=body), 422, "validation_failed")
    assert [e["field"] for e in out["errors"]] == ["person.marital_status"]


async def test_where_she_goes_is_named_at_request_time(client_as, db):
    origin_cadre = await client_as("village", PLACES["other_township"][0])
    v = await victim_in(origin_cadre, PLACES["other_township"][0], db)
    township = await client_as("township", RECEIVING[:9] + "000")
    # a household of another village than the receiving one, or none and no address: refused now
    elsewhere = await mk_household(township, "430122100203")
    out = problem(
        await township.post("/api/v1/migrants", json=request_body(v.number, household_id=elsewhere["id"])),
        422,
        "validation_failed",
    )
    assert out["errors"][0]["field"] == "household_id"
    no_address = request_body(v.number)
    del no_address["address"]
    problem(await township.post("/api/v1/migrants", json=no_address), 422, "validation_failed")
    # a household of her own place is not in the requester's scope
    problem(
        await township.post("/api/v1/migrants", json=request_body(v.number, household_id=v.household_id)),
        404,
        "not_found",
    )
    target = await mk_household(township, RECEIVING, address="团头湖村1组")
    r = await township.post("/api/v1/migrants", json=request_body(v.number, household_id=target["id"]))
    assert r.status_code == 201, r.text
    assert (await origin_cadre.post(f"/api/v1/migrants/{r.json()['id']}/confirm")).status_code == 200
    person = await stored_person(db, v)
    assert (person.village_code, str(person.household_id)) == (RECEIVING, target["id"])


@pytest.mark.parametrize("children_stay", [False, True])
async def test_her_children_under_16_move_with_her(client_as, db, children_stay):
    village = PLACES["other_township"][0]
    origin_cadre = await client_as("village", village)
    v = await victim_in(origin_cadre, village, db, born=date(1985, 2, 2))
    today = clock.today()
    young = await mk_person(
        origin_cadre,
        v.household_id,
        born=date(today.year - 6, 3, 3),
        name="小明",
        sex="male",
        relation_to_head="子",
        marital_status="single",
        mother_id=v.id,
    )
    grown = await mk_person(
        origin_cadre,
        v.household_id,
        born=date(today.year - 17, 1, 1),
        name="大明",
        sex="male",
        relation_to_head="子",
        marital_status="single",
        mother_id=v.id,
    )
    attacker = await client_as("village", RECEIVING)
    mid = (await attacker.post("/api/v1/migrants", json=request_body(v.number))).json()["id"]
    r = await origin_cadre.post(f"/api/v1/migrants/{mid}/confirm", json={"children_stay": children_stay})
    assert r.status_code == 200, r.text
    her_household = (await stored_person(db, v)).household_id
    for child, moves in ((young, not children_stay), (grown, False)):
        row = await fresh(db, Person, child["id"])
        if moves:
            assert (row.village_code, row.household_id) == (RECEIVING, her_household)
        else:
            assert (row.village_code, str(row.household_id)) == (village, v.household_id)
    visible = (await attacker.get("/api/v1/persons", params={"household_id": str(her_household)})).json()[
        "items"
    ]
    assert len(visible) == (1 if children_stay else 2)


async def test_a_confirmed_move_refuses_the_other_requests_for_her(client_as, db):
    origin_cadre = await client_as("village", PLACES["same_township"][0])
    v = await victim_in(origin_cadre, PLACES["same_township"][0], db)
    first = await client_as("village", RECEIVING)
    second_village = PLACES["other_county"][0]
    second = await client_as("village", second_village)
    a = (await first.post("/api/v1/migrants", json=request_body(v.number))).json()
    b = (
        await second.post("/api/v1/migrants", json=request_body(v.number, village_code=second_village))
    ).json()
    assert b["status"] == "pending_release"
    assert (await origin_cadre.post(f"/api/v1/migrants/{a['id']}/confirm")).status_code == 200
    other = (await second.get(f"/api/v1/migrants/{b['id']}")).json()
    assert (other["status"], other["person_id"]) == ("refused", None)
    assert_hides(other, v)
    # the old place can no longer act on it; the new place could not either (it is decided)
    problem(await origin_cadre.post(f"/api/v1/migrants/{b['id']}/confirm"), 404, "not_found")
    problem(await first.post(f"/api/v1/migrants/{b['id']}/confirm"), 404, "not_found")
    await db.rollback()
    assert (
        await db.execute(select(Task).where(Task.kind == "migrant_release", Task.status == "open"))
    ).all() == []


async def test_a_request_of_a_pre_issue_14_movement_is_released_through_its_outflow(client_as, db):
    """Movements requested before the fix have an origin outflow (``counterpart_id``) and the
    origin's ``migrant_confirm`` task points at it: the migration makes the inflow
    ``pending_release`` and confirm accepts the outflow's id."""
    from app.models.common import place_columns

    village = PLACES["other_township"][0]
    origin_cadre = await client_as("village", village)
    v = await victim_in(origin_cadre, village, db)
    inflow = Migrant(
        person_id=uuid.UUID(v.id),
        direction="inflow",
        status="pending_release",
        transfer="pending",
        moved_on=clock.today(),
        address=ATTACKER_ADDRESS,
        **place_columns(RECEIVING),
    )
    outflow = Migrant(
        person_id=uuid.UUID(v.id),
        direction="outflow",
        status="open",
        transfer="pending",
        moved_on=clock.today(),
        counterpart_id=inflow.id,
        **place_columns(village),
    )
    inflow.counterpart_id = outflow.id
    inflow_id, outflow_id = inflow.id, outflow.id
    db.add_all([inflow, outflow])
    await db.commit()
    attacker = await client_as("village", RECEIVING)
    problem(await attacker.post(f"/api/v1/migrants/{outflow_id}/confirm"), 404, "not_found")
    r = await origin_cadre.post(f"/api/v1/migrants/{outflow_id}/confirm")
    assert r.status_code == 200, r.text
    assert (r.json()["id"], r.json()["status"]) == (str(inflow_id), "open")
    closed = (await origin_cadre.get(f"/api/v1/migrants/{outflow_id}")).json()
    assert (closed["status"], closed["close_reason"], closed["transfer"]) == (
        "closed",
        "settled",
        "confirmed",
    )
    assert (await stored_person(db, v)).village_code == RECEIVING


async def test_a_request_is_no_movement_in_the_figures(client_as, db):
    from app.authz.actor import Actor
    from app.models.users import Role
    from app.services import migrants as svc

    origin_cadre = await client_as("village", PLACES["other_township"][0])
    v = await victim_in(origin_cadre, PLACES["other_township"][0], db)
    attacker = await client_as("village", RECEIVING)
    mid = (await attacker.post("/api/v1/migrants", json=request_body(v.number))).json()["id"]
    dashboard = Actor(
        id=uuid.uuid4(), kind="client", role=Role.dashboard, area_code="430122000000", session_id=uuid.uuid4()
    )
    today = local_today()

    async def inflows() -> tuple[int, int]:
        await db.rollback()
        f = (
            await svc.figures(db, dashboard, area_code=RECEIVING, from_=today - timedelta(days=30), to=today)
        )[0]
        return f.open_inflow, f.new_inflow

    assert await inflows() == (0, 0)
    assert (await origin_cadre.post(f"/api/v1/migrants/{mid}/confirm")).status_code == 200
    assert await inflows() == (1, 1)

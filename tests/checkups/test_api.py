"""Checkup rounds through HTTP: eligibility, joining and leaving, results, overdue, figures."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from app.core import clock
from app.models.checkups import CheckupAppointment, CheckupRound
from app.models.common import place_columns
from app.models.migrants import Migrant
from app.services.checkups import years_before
from tests.households.test_api import COUNTY, TS1, V1, V2, V_OTHER_TS, mk_household, mk_person, problem

TODAY = clock.today()
OPENS = TODAY
CLOSES = TODAY + timedelta(days=60)


def round_body(area: str = TS1, **kw) -> dict:
    return {
        "area_code": area,
        "name": "2026年第一季度三查",
        "opens_on": OPENS.isoformat(),
        "closes_on": CLOSES.isoformat(),
        "items": ["iud", "pregnancy", "gynecological"],
        **kw,
    }


async def past_round(township, db, opens_on: date, closes_on: date, **kw) -> dict:
    """A round whose window lies (partly) in the past. No round may close before today (422),
    so it is opened through the API over today's window and its stored window moved after."""
    r = await township.post("/api/v1/checkup-rounds", json=round_body(**kw))
    assert r.status_code == 201, r.text
    rid = uuid.UUID(r.json()["id"])
    await db.execute(
        update(CheckupRound).where(CheckupRound.id == rid).values(opens_on=opens_on, closes_on=closes_on)
    )
    await db.commit()
    return {**r.json(), "opens_on": opens_on.isoformat(), "closes_on": closes_on.isoformat()}


async def woman(c, hid: str, born: date, **kw) -> dict:
    kw.setdefault("relation_to_head", "配偶")
    return await mk_person(c, hid, sex="female", born=born, with_id=kw.pop("with_id", False), **kw)


async def appointments(c, **params) -> list[dict]:
    r = await c.get("/api/v1/checkup-appointments", params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return r.json()["items"]


@pytest.fixture
async def cadre(client_as):
    return await client_as("village", V1)


@pytest.fixture
async def township(client_as):
    return await client_as("township", TS1)


async def test_eligibility_edges(cadre, township, client_as, db):
    h = await mk_household(cadre)
    fifteen = await woman(cadre, h["id"], years_before(OPENS, 15))
    fourteen = await woman(cadre, h["id"], years_before(OPENS, 15) + timedelta(days=1))
    fortynine = await woman(cadre, h["id"], years_before(OPENS, 50) + timedelta(days=1))
    fifty = await woman(cadre, h["id"], years_before(OPENS, 50))
    single = await woman(cadre, h["id"], date(1995, 1, 1), marital_status="single")
    dead = await woman(cadre, h["id"], date(1990, 1, 1))
    await cadre.post(
        "/api/v1/deaths",
        json={"person_id": dead["id"], "death_date": (TODAY - timedelta(days=10)).isoformat()},
    )
    man = await mk_person(
        cadre, h["id"], sex="male", born=date(1990, 1, 1), with_id=False, relation_to_head="户主"
    )
    leaver = await woman(cadre, h["id"], date(1992, 2, 2))  # open outflow: lives elsewhere
    db.add(
        Migrant(
            person_id=uuid.UUID(leaver["id"]),
            direction="outflow",
            moved_on=TODAY - timedelta(days=30),
            destination="广东省东莞市",
            **place_columns(V1),
        )
    )
    # An inflow woman registered in another township who lives in V2 now.
    other = await client_as("village", V_OTHER_TS)
    oh = await mk_household(other, V_OTHER_TS)
    arrival = await woman(other, oh["id"], date(1993, 3, 3))
    db.add(
        Migrant(
            person_id=uuid.UUID(arrival["id"]),
            direction="inflow",
            moved_on=TODAY - timedelta(days=40),
            origin_area_code="430122101201",
            **place_columns(V2),
        )
    )
    await db.commit()
    r = await township.post("/api/v1/checkup-rounds", json=round_body())
    assert r.status_code == 201, r.text
    assert r.json()["appointments_created"] == 3
    rid = r.json()["id"]
    due = {a["person_id"]: a for a in await appointments(township, round_id=rid)}
    assert set(due) == {fifteen["id"], fortynine["id"], arrival["id"]}
    assert due[arrival["id"]]["village_code"] == V2
    assert all(a["status"] == "scheduled" for a in due.values())
    not_due = {fourteen["id"], fifty["id"], single["id"], dead["id"], man["id"], leaver["id"]}
    assert not_due.isdisjoint(due)
    # Each appointment is a task in the inbox of its village, due on the closing day.
    tasks = (await cadre.get("/api/v1/tasks", params={"kind": "checkup_due"})).json()["items"]
    assert {t["person_id"] for t in tasks} == {fifteen["id"], fortynine["id"]}
    assert all(t["due_on"] == CLOSES.isoformat() and not t["overdue"] for t in tasks)


async def test_exemption_is_carried_into_later_rounds(cadre, township, db):
    h = await mk_household(cadre)
    p = await woman(cadre, h["id"], date(1990, 6, 6))
    r1 = await past_round(
        township, db, TODAY - timedelta(days=300), TODAY - timedelta(days=200), name="去年三查"
    )
    appt = (await appointments(cadre, round_id=r1["id"]))[0]
    until = (TODAY + timedelta(days=120)).isoformat()
    r = await cadre.post(
        f"/api/v1/checkup-appointments/{appt['id']}/exempt", json={"reason": "sterilised", "until": until}
    )
    assert r.status_code == 200 and r.json()["status"] == "exempted"
    r2 = (await township.post("/api/v1/checkup-rounds", json=round_body())).json()
    carried = (await appointments(cadre, round_id=r2["id"]))[0]
    assert carried["person_id"] == p["id"] and carried["status"] == "exempted"
    assert carried["exempt_until"] == until and carried["exempt_reason"] == "sterilised"
    third = round_body(
        name="明年三查",
        opens_on=(TODAY + timedelta(days=200)).isoformat(),
        closes_on=(TODAY + timedelta(days=260)).isoformat(),
    )
    r3 = (await township.post("/api/v1/checkup-rounds", json=third)).json()
    assert (await appointments(cadre, round_id=r3["id"]))[0]["status"] == "scheduled"


async def test_join_and_leave_while_open(cadre, township, client_as):
    h = await mk_household(cadre)
    bride = await woman(cadre, h["id"], date(1998, 8, 8), marital_status="single")
    stays = await woman(cadre, h["id"], date(1985, 5, 5))
    dies = await woman(cadre, h["id"], date(1986, 6, 6))
    mover = await woman(cadre, h["id"], date(1987, 7, 7))
    nearby = await woman(cadre, h["id"], date(1988, 8, 8))
    rid = (await township.post("/api/v1/checkup-rounds", json=round_body())).json()["id"]
    assert len(await appointments(township, round_id=rid)) == 4
    # She marries: she joins.
    r = await cadre.patch(
        f"/api/v1/persons/{bride['id']}", json={"marital_status": "married"}, headers={"If-Match": '"1"'}
    )
    assert r.status_code == 200
    # She dies: she leaves.
    await cadre.post("/api/v1/deaths", json={"person_id": dies["id"], "death_date": TODAY.isoformat()})
    # She moves to another township: she leaves; within the township: her appointment follows her.
    county = await client_as("county", COUNTY)
    far = await mk_household(county, V_OTHER_TS)
    near = await mk_household(county, V2)
    assert (
        await county.post(f"/api/v1/persons/{mover['id']}/move", json={"household_id": far["id"]})
    ).status_code == 200
    assert (
        await county.post(f"/api/v1/persons/{nearby['id']}/move", json={"household_id": near["id"]})
    ).status_code == 200
    by_person = {a["person_id"]: a for a in await appointments(county, round_id=rid)}
    assert by_person[bride["id"]]["status"] == "scheduled"
    assert by_person[stays["id"]]["status"] == "scheduled"
    assert (by_person[dies["id"]]["status"], by_person[dies["id"]]["cancel_reason"]) == (
        "cancelled",
        "deceased",
    )
    assert (by_person[mover["id"]]["status"], by_person[mover["id"]]["cancel_reason"]) == (
        "cancelled",
        "moved_out",
    )
    assert by_person[nearby["id"]]["status"] == "scheduled" and by_person[nearby["id"]]["village_code"] == V2
    figures = (await township.get(f"/api/v1/checkup-rounds/{rid}")).json()
    assert figures["due"] == 3
    # The cadre's inbox follows: the bride's task is there, the dead woman's is gone.
    mine = {
        t["person_id"]
        for t in (await cadre.get("/api/v1/tasks", params={"kind": "checkup_due", "status": "open"})).json()[
            "items"
        ]
    }
    assert mine == {bride["id"], stays["id"]}


async def test_results_and_their_validation(cadre, township, db):
    h = await mk_household(cadre)
    a_p = await woman(cadre, h["id"], date(1990, 1, 1))
    await woman(cadre, h["id"], date(1991, 1, 1))
    await woman(cadre, h["id"], date(1992, 1, 1))
    rid = (await township.post("/api/v1/checkup-rounds", json=round_body(items=["iud", "pregnancy"]))).json()[
        "id"
    ]
    appts = await appointments(cadre, round_id=rid)
    a, b, c = sorted(appts, key=lambda x: x["person_id"] != a_p["id"])
    url = f"/api/v1/checkup-appointments/{a['id']}"
    good = {
        "checked_on": TODAY.isoformat(),
        "place": "station",
        "consent": True,
        "items": {"iud": "in_place", "pregnancy": "positive"},
    }
    problem(
        await cadre.post(url + "/result", json={**good, "items": {"gynecological": "normal"}}),
        422,
        "item_not_in_round",
    )
    problem(await cadre.post(url + "/result", json={**good, "consent": False}), 422, "consent_required")
    problem(await cadre.post(url + "/result", json={**good, "place": "home"}), 422, "validation_failed")
    rid_result = str(uuid.uuid4())
    r = await cadre.post(url + "/result", json={**good, "id": rid_result})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "done" and r.json()["items"] == {"iud": "in_place", "pregnancy": "positive"}
    again = await cadre.post(url + "/result", json={**good, "id": rid_result})
    assert again.status_code == 200 and again.json()["version"] == r.json()["version"]
    problem(
        await cadre.post(url + "/result", json={**good, "id": str(uuid.uuid4())}), 409, "invalid_transition"
    )
    # positive pregnancy → a prenatal-care task
    tasks = (await cadre.get("/api/v1/tasks", params={"status": "open"})).json()["items"]
    assert any(t["kind"] == "prenatal_care" and t["person_id"] == a_p["id"] for t in tasks)
    assert not any(t["kind"] == "checkup_due" and t["person_id"] == a_p["id"] for t in tasks)
    # correction needs If-Match; it is audited like every write
    problem(await cadre.patch(url + "/result", json={"note": "复核"}), 428, "precondition_required")
    v = r.json()["version"]
    fixed = await cadre.patch(
        url + "/result",
        json={"items": {"iud": "absent", "pregnancy": "negative"}},
        headers={"If-Match": f'"{v}"'},
    )
    assert (
        fixed.status_code == 200
        and fixed.json()["items"]["iud"] == "absent"
        and fixed.json()["version"] == v + 1
    )
    problem(
        await cadre.patch(url + "/result", json={"note": "x"}, headers={"If-Match": f'"{v}"'}),
        412,
        "version_conflict",
    )
    # decline and exempt
    r = await cadre.post(f"/api/v1/checkup-appointments/{b['id']}/decline", json={"reason": "本人拒绝"})
    assert r.json()["status"] == "declined" and r.json()["decline_reason"] == "本人拒绝"
    # she changed her mind while the round is open (test_decline_then_result covers the rest)
    r = await cadre.post(f"/api/v1/checkup-appointments/{b['id']}/result", json=good)
    assert r.status_code == 200 and r.json()["status"] == "done" and r.json()["decline_reason"] == "本人拒绝"
    problem(
        await cadre.post(f"/api/v1/checkup-appointments/{c['id']}/exempt", json={"reason": "busy"}),
        422,
        "validation_failed",
    )
    r = await cadre.post(f"/api/v1/checkup-appointments/{c['id']}/exempt", json={"reason": "pregnant"})
    assert r.json()["status"] == "exempted"
    figures = (await township.get(f"/api/v1/checkup-rounds/{rid}")).json()
    assert {k: figures[k] for k in ("due", "done", "declined", "exempted", "overdue", "rate")} == {
        "due": 3,
        "done": 2,
        "declined": 0,
        "exempted": 1,
        "overdue": 0,
        "rate": 100.0,
    }


async def test_result_on_cancelled_appointment_and_abnormal_referral(cadre, township):
    h = await mk_household(cadre)
    p = await woman(cadre, h["id"], date(1990, 1, 1))
    q = await woman(cadre, h["id"], date(1991, 1, 1))
    rid = (await township.post("/api/v1/checkup-rounds", json=round_body())).json()["id"]
    by_person = {a["person_id"]: a for a in await appointments(cadre, round_id=rid)}
    await cadre.patch(
        f"/api/v1/persons/{p['id']}", json={"marital_status": "divorced"}, headers={"If-Match": '"1"'}
    )
    body = {
        "checked_on": TODAY.isoformat(),
        "place": "mobile_clinic",
        "consent": True,
        "items": {"gynecological": "abnormal"},
    }
    problem(
        await cadre.post(f"/api/v1/checkup-appointments/{by_person[p['id']]['id']}/result", json=body),
        409,
        "invalid_transition",
    )
    r = await cadre.post(f"/api/v1/checkup-appointments/{by_person[q['id']]['id']}/result", json=body)
    assert r.status_code == 200
    kinds = {
        t["kind"]
        for t in (await cadre.get("/api/v1/tasks", params={"status": "open"})).json()["items"]
        if t["person_id"] == q["id"]
    }
    assert kinds == {"referral"}


async def test_overdue_after_close(cadre, township, db):
    h = await mk_household(cadre)
    await woman(cadre, h["id"], date(1990, 1, 1))
    done = await woman(cadre, h["id"], date(1991, 1, 1))
    rid = (await past_round(township, db, TODAY - timedelta(days=90), TODAY - timedelta(days=1)))["id"]
    by_person = {a["person_id"]: a for a in await appointments(cadre, round_id=rid)}
    await cadre.post(
        f"/api/v1/checkup-appointments/{by_person[done['id']]['id']}/result",
        json={
            "checked_on": (TODAY - timedelta(days=5)).isoformat(),
            "place": "station",
            "consent": True,
            "items": {"iud": "in_place"},
        },
    )
    over = await appointments(cadre, round_id=rid, status="overdue")
    assert len(over) == 1 and over[0]["status"] == "overdue"
    assert await appointments(cadre, round_id=rid, status="scheduled") == []
    tasks = (
        await township.get(
            "/api/v1/tasks", params={"status": "open", "overdue": "true", "kind": "checkup_due"}
        )
    ).json()["items"]
    assert [t["person_id"] for t in tasks] == [over[0]["person_id"]]
    figures = (await township.get(f"/api/v1/checkup-rounds/{rid}")).json()
    assert (figures["due"], figures["done"], figures["overdue"], figures["rate"]) == (2, 1, 1, 50.0)


async def test_figures_and_breakdown_hand_counted(client_as, township):
    county = await client_as("county", COUNTY)
    c1 = await client_as("village", V1)
    c2 = await client_as("village", V2)
    c3 = await client_as("village", "430122100203")
    # V1: 4 due, 3 done → 75.0; V2: 2 due, 1 exempted, 0 done → 0.0; 430122100203: none
    h1 = await mk_household(c1)
    h2 = await mk_household(c2, V2)
    for i in range(4):
        await woman(c1, h1["id"], date(1985 + i, 1, 1))
    for i in range(2):
        await woman(c2, h2["id"], date(1990 + i, 1, 1))
    rid = (await county.post("/api/v1/checkup-rounds", json=round_body(area=COUNTY))).json()["id"]
    for a in (await appointments(c1, round_id=rid))[:3]:
        await c1.post(
            f"/api/v1/checkup-appointments/{a['id']}/result",
            json={
                "checked_on": TODAY.isoformat(),
                "place": "station",
                "consent": True,
                "items": {"iud": "in_place"},
            },
        )
    await c2.post(
        f"/api/v1/checkup-appointments/{(await appointments(c2, round_id=rid))[0]['id']}/exempt",
        json={"reason": "postpartum"},
    )
    ts = (await township.get(f"/api/v1/checkup-rounds/{rid}")).json()
    assert (ts["due"], ts["done"], ts["exempted"], ts["rate"]) == (6, 3, 1, 60.0)
    mine = (await c1.get(f"/api/v1/checkup-rounds/{rid}")).json()
    assert (mine["due"], mine["done"], mine["rate"]) == (4, 3, 75.0)
    assert (await c3.get(f"/api/v1/checkup-rounds/{rid}")).json()["due"] == 0
    rows = (await township.get(f"/api/v1/checkup-rounds/{rid}/breakdown")).json()
    assert [(r["area_code"], r["due"], r["done"], r["rate"]) for r in rows] == [
        (V2, 2, 0, 0.0),
        (V1, 4, 3, 75.0),
    ]
    assert rows[0]["name"] == "柏叶村"
    county_rows = (await county.get(f"/api/v1/checkup-rounds/{rid}/breakdown")).json()
    assert [(r["area_code"], r["due"], r["rate"]) for r in county_rows] == [(TS1, 6, 60.0)]


async def test_scope_and_roles(cadre, township, client_as):
    h = await mk_household(cadre)
    await woman(cadre, h["id"], date(1990, 1, 1))
    other = await client_as("village", V2)
    oh = await mk_household(other, V2)
    await woman(other, oh["id"], date(1990, 1, 1))
    problem(await cadre.post("/api/v1/checkup-rounds", json=round_body(area=V1)), 403, "forbidden")
    problem(
        await township.post("/api/v1/checkup-rounds", json=round_body(area="430122101000")),
        403,
        "out_of_scope",
    )
    problem(await township.post("/api/v1/checkup-rounds", json=round_body(area=COUNTY)), 403, "out_of_scope")
    rid = (await township.post("/api/v1/checkup-rounds", json=round_body())).json()["id"]
    mine = await appointments(cadre, round_id=rid)
    assert len(mine) == 1 and mine[0]["village_code"] == V1
    theirs = (await appointments(other, round_id=rid))[0]
    problem(await cadre.get(f"/api/v1/checkup-appointments/{theirs['id']}"), 404, "not_found")
    problem(
        await cadre.post(f"/api/v1/checkup-appointments/{theirs['id']}/decline", json={"reason": "x"}),
        404,
        "not_found",
    )
    other_ts = await client_as("township", "430122101000")
    problem(await other_ts.get(f"/api/v1/checkup-rounds/{rid}"), 404, "not_found")
    assert (await other_ts.get("/api/v1/checkup-rounds")).json()["items"] == []
    assert [r["id"] for r in (await cadre.get("/api/v1/checkup-rounds")).json()["items"]] == [rid]


async def test_overlapping_round_refused(township):
    assert (await township.post("/api/v1/checkup-rounds", json=round_body())).status_code == 201
    problem(
        await township.post("/api/v1/checkup-rounds", json=round_body(name="重复")), 409, "round_overlaps"
    )
    later = round_body(
        opens_on=(CLOSES + timedelta(days=1)).isoformat(), closes_on=(CLOSES + timedelta(days=30)).isoformat()
    )
    assert (await township.post("/api/v1/checkup-rounds", json=later)).status_code == 201
    # a subset of the items overlaps too (tests/checkups/test_dead_ends.py has every case)
    problem(
        await township.post("/api/v1/checkup-rounds", json=round_body(items=["iud"])), 409, "round_overlaps"
    )
    problem(
        await township.post(
            "/api/v1/checkup-rounds", json=round_body(closes_on=(OPENS - timedelta(days=1)).isoformat())
        ),
        422,
        "validation_failed",
    )
    problem(
        await township.post("/api/v1/checkup-rounds", json=round_body(items=[])), 422, "validation_failed"
    )


async def test_results_through_sync_and_pull(cadre, township, db):
    h = await mk_household(cadre)
    await woman(cadre, h["id"], date(1990, 1, 1))
    rid = (await township.post("/api/v1/checkup-rounds", json=round_body())).json()["id"]
    appt = (await appointments(cadre, round_id=rid))[0]
    result_id = str(uuid.uuid4())
    op = {
        "op_id": str(uuid.uuid4()),
        "entity": "checkup_result",
        "id": result_id,
        "base_version": None,
        "data": {
            "appointment_id": appt["id"],
            "checked_on": TODAY.isoformat(),
            "place": "elsewhere_certificate",
            "consent": True,
            "items": {"pregnancy": "negative"},
        },
    }
    r = await cadre.post("/api/v1/sync/push", json={"device_id": "p1", "ops": [op]})
    assert r.json()["results"][0]["status"] == "applied", r.text
    again = await cadre.post("/api/v1/sync/push", json={"device_id": "p1", "ops": [op]})
    assert again.json()["results"][0]["status"] == "duplicate"
    stored = (
        await db.execute(select(CheckupAppointment).where(CheckupAppointment.id == uuid.UUID(appt["id"])))
    ).scalar_one()
    assert stored.status == "done" and str(stored.result_id) == result_id
    await db.commit()
    pulled = (await cadre.get("/api/v1/sync/pull", params={"limit": 500})).json()["changes"]
    mine = [c for c in pulled if c["entity"] == "checkup_appointment"]
    assert len(mine) == 1 and mine[0]["data"]["status"] == "done"


async def test_merging_two_records_with_appointments_in_one_round_keeps_one(cadre, township):
    """(Issue 15: no longer refused.) One stays, the other is cancelled ``merged``; both are the
    survivor's (tests/households/test_merge.py has the cases)."""
    h = await mk_household(cadre)
    a = await woman(cadre, h["id"], date(1990, 1, 1), name="陈静")
    b = await woman(cadre, h["id"], date(1990, 1, 1), name="陈静")
    rid = (await township.post("/api/v1/checkup-rounds", json=round_body())).json()["id"]
    assert len(await appointments(township, round_id=rid)) == 2
    r = await township.post(f"/api/v1/persons/{b['id']}/merge", json={"into_id": a["id"]})
    assert r.status_code == 200, r.text
    assert (await township.get(f"/api/v1/persons/{b['id']}")).json()["merged_into_id"] == a["id"]
    after = await appointments(township, round_id=rid)
    assert {x["person_id"] for x in after} == {a["id"]}
    assert sorted((x["status"], x["cancel_reason"]) for x in after) == [
        ("cancelled", "merged"),
        ("scheduled", None),
    ]


async def test_appointments_are_the_checkup_due_inbox_items(cadre, township, client_as, db):
    """No task rows for due checkups: each appointment is its item (same id), open while
    scheduled, done with the result, cancelled when declined; completing one is refused; the
    items page together with real tasks; other villages do not see them; pull carries the
    appointments and no checkup-due task."""
    from app.models.visits import Task, TaskKind
    from tests.visits.test_api import visit_body

    other = await client_as("village", V2)
    cadre_id = str(cadre.user.id)
    h = await mk_household(cadre)
    women = [await woman(cadre, h["id"], date(1980 + i, 3, 3)) for i in range(3)]
    rid = (await township.post("/api/v1/checkup-rounds", json=round_body())).json()["id"]
    appts = {a["person_id"]: a for a in await appointments(cadre, round_id=rid)}
    stored = (await db.execute(select(Task).where(Task.kind == TaskKind.checkup_due.value))).scalars().all()
    assert stored == []
    await db.rollback()
    # a real task that falls due before the closing day pages first
    follow = (clock.today() + timedelta(days=3)).isoformat()
    assert (
        await cadre.post("/api/v1/visits", json=visit_body(h["id"], follow_up_on=follow))
    ).status_code == 201
    seen, cursor = [], None
    while True:
        params = {"status": "open", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await cadre.get("/api/v1/tasks", params=params)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [t["kind"] for t in seen] == ["follow_up"] + ["checkup_due"] * 3
    items = {t["person_id"]: t for t in seen[1:]}
    for w in women:
        item, appt = items[w["id"]], appts[w["id"]]
        assert item["id"] == item["source_id"] == appt["id"]
        assert item["source_entity"] == "checkup_appointment" and item["household_id"] == h["id"]
        assert item["due_on"] == CLOSES.isoformat() and item["status"] == "open" and not item["overdue"]
        assert item["village_code"] == V1
        assert item["title"] == f"三查到期：{w['name']}（{round_body()['name']}）"
    done, declined, _ = (appts[w["id"]]["id"] for w in women)
    body = {
        "checked_on": TODAY.isoformat(),
        "place": "station",
        "consent": True,
        "items": {"iud": "in_place"},
    }
    assert (await cadre.post(f"/api/v1/checkup-appointments/{done}/result", json=body)).status_code == 200
    r = await cadre.post(f"/api/v1/checkup-appointments/{declined}/decline", json={"reason": "外出"})
    assert r.status_code == 200
    every = {
        t["id"]: t for t in (await cadre.get("/api/v1/tasks", params={"kind": "checkup_due"})).json()["items"]
    }
    assert every[done]["status"] == "done" and every[done]["completed_by"] == cadre_id
    assert every[declined]["status"] == "cancelled"
    still_open = (await cadre.get("/api/v1/tasks", params={"status": "open", "kind": "checkup_due"})).json()
    assert [t["person_id"] for t in still_open["items"]] == [women[2]["id"]]
    problem(
        await cadre.post(f"/api/v1/tasks/{appts[women[2]['id']]['id']}/complete"),
        409,
        "record_checkup_instead",
    )
    # another village's cadre sees none of them, and cannot probe them through complete
    assert (await other.get("/api/v1/tasks", params={"kind": "checkup_due"})).json()["items"] == []
    problem(await other.post(f"/api/v1/tasks/{appts[women[2]['id']]['id']}/complete"), 404, "not_found")
    # the township sees its villages' items
    town = (await township.get("/api/v1/tasks", params={"kind": "checkup_due", "limit": 100})).json()["items"]
    assert {t["id"] for t in town} >= set(every)
    # the phone gets the appointments, and no checkup-due task
    pulled = (await cadre.get("/api/v1/sync/pull", params={"limit": 500})).json()["changes"]
    assert {c["id"] for c in pulled if c["entity"] == "checkup_appointment"} == {
        a["id"] for a in appts.values()
    }
    assert not any(c["entity"] == "task" and (c["data"] or {}).get("kind") == "checkup_due" for c in pulled)


async def test_a_result_id_used_on_another_appointment_is_id_conflict(cadre, township, db):
    """A client id names one result: reusing it on another woman's appointment is 409
    ``id_conflict`` like every other client id (it was a unique-index 500), and nothing of the
    second result is stored."""
    h = await mk_household(cadre)
    first = await woman(cadre, h["id"], date(1990, 6, 6))
    second = await woman(cadre, h["id"], date(1991, 7, 7))
    r = await township.post("/api/v1/checkup-rounds", json=round_body())
    assert r.status_code == 201, r.text
    appts = {a["person_id"]: a for a in await appointments(cadre, round_id=r.json()["id"])}
    result_id = str(uuid.uuid4())
    body = {
        "id": result_id,
        "checked_on": TODAY.isoformat(),
        "place": "station",
        "consent": True,
        "items": {"iud": "in_place", "pregnancy": "negative", "gynecological": "normal"},
    }
    done = await cadre.post(f"/api/v1/checkup-appointments/{appts[first['id']]['id']}/result", json=body)
    assert done.status_code == 200, done.text
    again = await cadre.post(f"/api/v1/checkup-appointments/{appts[second['id']]['id']}/result", json=body)
    problem(again, 409, "id_conflict")
    stored = {
        a.person_id: a
        for a in (await db.execute(select(CheckupAppointment))).scalars()
        if str(a.person_id) in (first["id"], second["id"])
    }
    assert stored[uuid.UUID(first["id"])].result_id == uuid.UUID(result_id)
    assert stored[uuid.UUID(second["id"])].status == "scheduled"
    assert stored[uuid.UUID(second["id"])].result_id is None
    assert stored[uuid.UUID(second["id"])].version == appts[second["id"]]["version"]

"""Issue 15, api.md v1.1 "Checkups": a decline that is not a dead end, appointments with a day and
a place (reschedule) or cancelled with a reason, rounds that overlap by area, window and item (and
never make a woman due twice for an item), no round closing before today, the inbox order."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from app.models.checkups import CheckupAppointment, CheckupRound
from tests.checkups.test_api import CLOSES, OPENS, TODAY, appointments, past_round, round_body, woman
from tests.households.test_api import COUNTY, TS1, V1, V2, V_OTHER_TS, mk_household, problem

TS2 = V_OTHER_TS[:9] + "000"


@pytest.fixture
async def cadre(client_as):
    return await client_as("village", V1)


@pytest.fixture
async def township(client_as):
    return await client_as("township", TS1)


def result_body(**kw) -> dict:
    return {
        "checked_on": TODAY.isoformat(),
        "place": "station",
        "consent": True,
        "items": {"iud": "in_place"},
        **kw,
    }


async def open_round(c, **kw) -> str:
    r = await c.post("/api/v1/checkup-rounds", json=round_body(**kw))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def stored(db, appointment_id: str) -> SimpleNamespace:
    """The stored row's columns (read, then the read transaction ended)."""
    row = (
        await db.execute(
            select(CheckupAppointment)
            .where(CheckupAppointment.id == uuid.UUID(appointment_id))
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    values = SimpleNamespace(**row.model_dump())
    await db.rollback()
    return values


async def close_round(db, rid: str, *, opens_on: date | None = None, closes_on: date | None = None) -> None:
    """Move a round's window into the past (nothing may be created so)."""
    await db.execute(
        update(CheckupRound)
        .where(CheckupRound.id == uuid.UUID(rid))
        .values(
            opens_on=opens_on or TODAY - timedelta(days=60), closes_on=closes_on or TODAY - timedelta(days=1)
        )
    )
    await db.commit()


async def figures(c, rid: str) -> dict:
    body = (await c.get(f"/api/v1/checkup-rounds/{rid}")).json()
    return {k: body[k] for k in ("due", "done", "declined", "exempted", "overdue", "rate")}


# --- a decline takes a later result while the round is open ----------------------------------------


async def test_decline_then_result_while_the_round_is_open(cadre, township, db):
    h = await mk_household(cadre)
    p = await woman(cadre, h["id"], date(1990, 3, 3))
    rid = await open_round(township)
    [a] = await appointments(cadre, round_id=rid)
    url = f"/api/v1/checkup-appointments/{a['id']}"
    r = await cadre.post(url + "/decline", json={"reason": "外出务工，暂不参加"})
    assert r.status_code == 200 and r.json()["status"] == "declined"
    assert (await figures(township, rid))["declined"] == 1

    # she changed her mind
    r = await cadre.post(url + "/result", json=result_body())
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["status"], done["decline_reason"], done["place"], done["version"]) == (
        "done",
        "外出务工，暂不参加",
        "station",
        3,
    )
    got = await cadre.get(url)
    assert got.headers["ETag"] == '"3"'
    history = got.json()["history"]
    assert [(e["action"], e["from_status"], e["to_status"]) for e in history] == [
        ("declined", "scheduled", "declined"),
        ("done", "declined", "done"),
    ]
    assert history[0]["reason"] == "外出务工，暂不参加"
    assert {e["by"] for e in history} == {str(cadre.user.id)}
    assert await figures(township, rid) == {
        "due": 1,
        "done": 1,
        "declined": 0,
        "exempted": 0,
        "overdue": 0,
        "rate": 100.0,
    }
    row = await stored(db, a["id"])
    assert row.status == "done" and row.decline_reason == "外出务工，暂不参加" and row.result_id is not None
    assert [e["action"] for e in json.loads(row.history or "[]")] == ["declined", "done"]
    # her inbox item is done, not cancelled
    items = (await cadre.get("/api/v1/tasks", params={"kind": "checkup_due"})).json()["items"]
    assert [(t["person_id"], t["status"]) for t in items] == [(p["id"], "done")]


async def test_a_declined_appointment_refuses_a_result_once_the_round_closed(cadre, township, db):
    h = await mk_household(cadre)
    declined = await woman(cadre, h["id"], date(1990, 3, 3))
    late = await woman(cadre, h["id"], date(1991, 4, 4))
    rid = await open_round(township)
    by_person = {a["person_id"]: a for a in await appointments(cadre, round_id=rid)}
    d_url = f"/api/v1/checkup-appointments/{by_person[declined['id']]['id']}"
    assert (await cadre.post(d_url + "/decline", json={"reason": "本人拒绝"})).status_code == 200
    await close_round(db, rid)
    body = problem(
        await cadre.post(
            d_url + "/result", json=result_body(checked_on=(TODAY - timedelta(days=1)).isoformat())
        ),
        409,
        "round_closed",
    )
    assert "拒检" in body["detail"]  # Chinese by default
    row = await stored(db, by_person[declined["id"]]["id"])
    assert (row.status, row.version, row.result_id) == ("declined", 2, None)
    # an overdue (never declined) woman who comes late still takes her result
    r = await cadre.post(
        f"/api/v1/checkup-appointments/{by_person[late['id']]['id']}/result",
        json=result_body(checked_on=(TODAY - timedelta(days=1)).isoformat()),
    )
    assert r.status_code == 200 and r.json()["status"] == "done"


# --- reschedule --------------------------------------------------------------------------------------


async def test_reschedule_scope_window_and_versions(cadre, township, client_as, db):
    h = await mk_household(cadre)
    p = await woman(cadre, h["id"], date(1990, 3, 3))
    q = await woman(cadre, h["id"], date(1991, 3, 3))
    rnd = await past_round(township, db, TODAY - timedelta(days=10), TODAY + timedelta(days=30))
    by_person = {a["person_id"]: a for a in await appointments(cadre, round_id=rnd["id"])}
    a = by_person[p["id"]]
    assert (a["scheduled_on"], a["place"]) == (None, None)  # any day of the window
    url = f"/api/v1/checkup-appointments/{a['id']}/reschedule"
    day = TODAY + timedelta(days=3)

    # another village's cadre: the appointment does not exist for her
    neighbour = await client_as("village", V2)
    problem(await neighbour.post(url, json={"scheduled_on": day.isoformat()}), 404, "not_found")

    r = await cadre.post(url, json={"scheduled_on": day.isoformat(), "place": "团头湖村卫生室"})
    assert r.status_code == 200, r.text
    assert (r.json()["scheduled_on"], r.json()["place"], r.json()["version"]) == (
        day.isoformat(),
        "团头湖村卫生室",
        2,
    )
    assert r.headers["ETag"] == '"2"'
    # the township moves the day; the place (omitted) stays
    later = TODAY + timedelta(days=5)
    r = await township.post(url, json={"scheduled_on": later.isoformat()}, headers={"If-Match": '"2"'})
    assert r.status_code == 200 and (r.json()["scheduled_on"], r.json()["place"]) == (
        later.isoformat(),
        "团头湖村卫生室",
    )
    problem(
        await cadre.post(url, json={"scheduled_on": day.isoformat()}, headers={"If-Match": '"2"'}),
        412,
        "version_conflict",
    )
    # outside the window, or before today (inside the window)
    for bad in (TODAY + timedelta(days=31), TODAY - timedelta(days=11), TODAY - timedelta(days=1)):
        body = problem(
            await cadre.post(url, json={"scheduled_on": bad.isoformat()}), 422, "validation_failed"
        )
        assert body["errors"][0]["field"] == "scheduled_on"
    problem(
        await cadre.post(url, json={"place": "卫生院"}), 422, "validation_failed"
    )  # scheduled_on required
    got = (await cadre.get(f"/api/v1/checkup-appointments/{a['id']}")).json()
    assert (got["scheduled_on"], got["place"], got["version"]) == (later.isoformat(), "团头湖村卫生室", 3)
    assert [(e["action"], e.get("scheduled_on"), e.get("place")) for e in got["history"]] == [
        ("rescheduled", day.isoformat(), "团头湖村卫生室"),
        ("rescheduled", later.isoformat(), "团头湖村卫生室"),
    ]
    # back to "any day", place cleared
    r = await cadre.post(url, json={"scheduled_on": None, "place": None})
    assert r.status_code == 200 and (r.json()["scheduled_on"], r.json()["place"]) == (None, None)
    row = await stored(db, a["id"])
    assert (row.scheduled_on, row.scheduled_place, row.version) == (None, None, 4)

    # only a scheduled appointment: a done one is 409
    done_id = by_person[q["id"]]["id"]
    assert (
        await cadre.post(f"/api/v1/checkup-appointments/{done_id}/result", json=result_body())
    ).status_code == 200
    problem(
        await cadre.post(
            f"/api/v1/checkup-appointments/{done_id}/reschedule", json={"scheduled_on": day.isoformat()}
        ),
        409,
        "invalid_transition",
    )

    # the phone pulls the new day
    r = await cadre.post(url, json={"scheduled_on": day.isoformat(), "place": "乡服务站"})
    assert r.status_code == 200
    pulled = (await cadre.get("/api/v1/sync/pull", params={"limit": 500})).json()["changes"]
    mine = [c for c in pulled if c["entity"] == "checkup_appointment" and c["id"] == a["id"]]
    assert mine[-1]["version"] == 5
    assert (mine[-1]["data"]["scheduled_on"], mine[-1]["data"]["place"]) == (day.isoformat(), "乡服务站")


# --- cancel ------------------------------------------------------------------------------------------


async def test_cancel_roles_figures_and_inbox(cadre, township, client_as, db):
    h = await mk_household(cadre)
    h2 = await mk_household(cadre)
    done = await woman(cadre, h["id"], date(1990, 3, 3))
    waiting = await woman(cadre, h["id"], date(1991, 3, 3))
    gone = await woman(cadre, h["id"], date(1992, 3, 3))
    rid = await open_round(township)
    by_person = {a["person_id"]: a for a in await appointments(cadre, round_id=rid)}
    url = f"/api/v1/checkup-appointments/{by_person[gone['id']]['id']}/cancel"
    reason = {"reason": "重复登记"}

    problem(await cadre.post(url, json=reason), 403, "forbidden")
    body = problem(await township.post(url, json={"reason": "重" * 33}), 422, "validation_failed")
    assert body["errors"][0]["field"] == "reason"
    problem(await (await client_as("township", TS2)).post(url, json=reason), 404, "not_found")
    r = await township.post(url, json=reason)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["cancel_reason"]) == ("cancelled", "重复登记")
    assert [(e["action"], e["from_status"], e["by"]) for e in r.json()["history"]] == [
        ("cancelled", "scheduled", str(township.user.id))
    ]
    problem(await township.post(url, json=reason), 409, "invalid_transition")  # already cancelled
    done_url = f"/api/v1/checkup-appointments/{by_person[done['id']]['id']}"
    assert (await cadre.post(done_url + "/result", json=result_body())).status_code == 200
    problem(await township.post(done_url + "/cancel", json=reason), 409, "invalid_transition")

    # a register event does not bring a cancelled appointment back (only the register's own leave)
    r = await cadre.post(f"/api/v1/persons/{gone['id']}/move", json={"household_id": h2["id"]})
    assert r.status_code == 200, r.text
    row = await stored(db, by_person[gone["id"]]["id"])
    assert (row.status, row.cancel_reason) == ("cancelled", "重复登记")

    assert await figures(township, rid) == {
        "due": 2,
        "done": 1,
        "declined": 0,
        "exempted": 0,
        "overdue": 0,
        "rate": 50.0,
    }
    open_items = (await cadre.get("/api/v1/tasks", params={"status": "open", "kind": "checkup_due"})).json()[
        "items"
    ]
    assert [t["person_id"] for t in open_items] == [waiting["id"]]
    # once closed, only the woman still waiting is overdue; the cancelled one is in no figure
    await close_round(db, rid)
    assert await figures(township, rid) == {
        "due": 2,
        "done": 1,
        "declined": 0,
        "exempted": 0,
        "overdue": 1,
        "rate": 50.0,
    }
    assert [a["person_id"] for a in await appointments(cadre, round_id=rid, status="overdue")] == [
        waiting["id"]
    ]
    assert [a["person_id"] for a in await appointments(cadre, round_id=rid, status="cancelled")] == [
        gone["id"]
    ]
    overdue = (await township.get("/api/v1/tasks", params={"overdue": "true", "kind": "checkup_due"})).json()[
        "items"
    ]
    assert [t["person_id"] for t in overdue] == [waiting["id"]]


# --- rounds that make sense ----------------------------------------------------------------------


async def test_rounds_overlap_by_area_window_and_item(township, client_as):
    county = await client_as("county", COUNTY)
    assert await open_round(township, items=["iud", "pregnancy"])

    async def overlaps(c, **kw) -> None:
        problem(await c.post("/api/v1/checkup-rounds", json=round_body(**kw)), 409, "round_overlaps")

    await overlaps(township, name="同区同项")  # equal area, equal items
    await overlaps(township, items=["iud"])  # a subset of the items
    await overlaps(township, items=["pregnancy", "gynecological"])  # one shared item
    await overlaps(county, area=COUNTY, items=["pregnancy"])  # a county round over the township's
    await overlaps(township, area=V1, items=["iud"])  # a village round inside it
    # sharing only the last day is an overlap; starting the day after is not
    await overlaps(township, opens_on=CLOSES.isoformat(), closes_on=(CLOSES + timedelta(days=30)).isoformat())
    assert await open_round(
        township,
        items=["iud"],
        opens_on=(CLOSES + timedelta(days=1)).isoformat(),
        closes_on=(CLOSES + timedelta(days=30)).isoformat(),
    )
    # disjoint items in the same area and window are allowed, and then overlap themselves
    assert await open_round(township, items=["gynecological"])
    await overlaps(county, area=COUNTY, items=["gynecological"])
    # another township's round is not inside this one
    other = await client_as("township", TS2)
    assert await open_round(other, area=TS2, items=["iud", "pregnancy", "gynecological"])


async def test_a_county_round_refused_over_a_later_village_round(township, client_as):
    county = await client_as("county", COUNTY)
    assert await open_round(township, area=V2, items=["gynecological"])
    problem(
        await county.post(
            "/api/v1/checkup-rounds", json=round_body(area=COUNTY, items=["iud", "gynecological"])
        ),
        409,
        "round_overlaps",
    )
    assert await open_round(county, area=COUNTY, items=["iud", "pregnancy"])
    # a township round under the county's, sharing an item
    problem(
        await township.post("/api/v1/checkup-rounds", json=round_body(items=["pregnancy"])),
        409,
        "round_overlaps",
    )


async def test_a_round_cannot_close_before_today(township, db):
    body = problem(
        await township.post(
            "/api/v1/checkup-rounds",
            json=round_body(
                opens_on=(TODAY - timedelta(days=30)).isoformat(),
                closes_on=(TODAY - timedelta(days=1)).isoformat(),
            ),
        ),
        422,
        "validation_failed",
    )
    assert body["errors"][0]["field"] == "closes_on"
    assert (await db.execute(select(CheckupRound))).scalars().all() == []
    await db.rollback()
    assert await open_round(
        township, opens_on=(TODAY - timedelta(days=30)).isoformat(), closes_on=TODAY.isoformat()
    )


async def test_no_woman_is_due_twice_for_an_item(cadre, township, client_as, db):
    """The reported bug: two overlapping rounds gave women two appointments and made a checked
    woman overdue. Rounds of disjoint areas may overlap; a woman who moves between them after her
    check is not due again, neither when she moves (register hook) nor when a round opens later."""
    county = await client_as("county", COUNTY)
    there = await mk_household(await client_as("village", V_OTHER_TS), V_OTHER_TS)
    h = await mk_household(cadre)
    checked = await woman(cadre, h["id"], date(1990, 3, 3))
    checked_late = await woman(cadre, h["id"], date(1991, 3, 3))
    waiting = await woman(cadre, h["id"], date(1992, 3, 3))
    rid = await open_round(township, items=["iud", "pregnancy"])
    by_person = {a["person_id"]: a for a in await appointments(cadre, round_id=rid)}
    for p in (checked, checked_late):
        r = await cadre.post(
            f"/api/v1/checkup-appointments/{by_person[p['id']]['id']}/result", json=result_body()
        )
        assert r.status_code == 200
    other_rid = await open_round(county, area=TS2, items=["iud"])  # disjoint area: allowed
    # two women move to the other township while both rounds are open
    for p in (checked, waiting):
        r = await county.post(f"/api/v1/persons/{p['id']}/move", json={"household_id": there["id"]})
        assert r.status_code == 200, r.text
    theirs = {a["person_id"]: a for a in await appointments(county, round_id=other_rid)}
    assert set(theirs) == {waiting["id"]}  # the checked woman did not join; the waiting one did
    mine = {a["person_id"]: a["status"] for a in await appointments(county, round_id=rid)}
    assert mine == {checked["id"]: "done", checked_late["id"]: "done", waiting["id"]: "cancelled"}
    # a woman checked here who moves, and then a round opens there (set-based creation)
    r = await county.post(f"/api/v1/persons/{checked_late['id']}/move", json={"household_id": there["id"]})
    assert r.status_code == 200
    later_rid = await open_round(county, area=TS2, items=["pregnancy", "gynecological"], name="妇科")
    # she was checked for pregnancy here; the waiting woman is due (her other round is iud only)
    assert {a["person_id"] for a in await appointments(county, round_id=later_rid)} == {waiting["id"]}
    gyn_only = await open_round(county, area="430122102000", items=["gynecological"], name="其他乡")
    assert gyn_only  # unrelated area, nothing to check here but that it opens
    # no woman holds two appointments of overlapping rounds that share an item
    live = select(CheckupAppointment.person_id, CheckupAppointment.round_id).where(
        CheckupAppointment.status != "cancelled"
    )
    rows = [tuple(r) for r in (await db.execute(live)).all()]
    rounds = dict((await db.execute(select(CheckupRound.id, CheckupRound.items))).tuples().all())
    await db.rollback()
    seen: dict[tuple[uuid.UUID, str], list[uuid.UUID]] = {}
    for person_id, round_id in rows:
        for item in rounds[round_id].split(","):
            seen.setdefault((person_id, item), []).append(round_id)
    assert all(len(v) == 1 for v in seen.values()), seen
    # and the checked women are overdue nowhere once everything closed
    for r_id in (rid, other_rid, later_rid):
        await close_round(db, r_id)
    overdue = await appointments(county, status="overdue")
    assert {a["person_id"] for a in overdue} <= {waiting["id"]}


# --- the inbox order ---------------------------------------------------------------------------------


async def test_inbox_sorts_checkup_items_by_scheduled_day_then_due_day(cadre, township, db):
    h = await mk_household(cadre)
    women = [await woman(cadre, h["id"], date(1990 + i, 3, 3)) for i in range(3)]
    soon_round = await open_round(township, items=["iud"], closes_on=(OPENS + timedelta(days=20)).isoformat())
    late_round = await open_round(
        township, items=["pregnancy"], closes_on=(OPENS + timedelta(days=40)).isoformat()
    )
    soon = {a["person_id"]: a for a in await appointments(cadre, round_id=soon_round)}
    late = {a["person_id"]: a for a in await appointments(cadre, round_id=late_round)}
    # a follow-up task due in 10 days
    r = await cadre.post(
        "/api/v1/visits",
        json={
            "household_id": h["id"],
            "visited_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "purpose": "health_education",
            "follow_up_on": (TODAY + timedelta(days=10)).isoformat(),
            "follow_up_note": "复访",
        },
    )
    assert r.status_code == 201, r.text
    # woman 2 is expected in 3 days (late round), woman 1 in 30 days (late round)
    for p, days in ((women[2], 3), (women[1], 30)):
        r = await cadre.post(
            f"/api/v1/checkup-appointments/{late[p['id']]['id']}/reschedule",
            json={"scheduled_on": (TODAY + timedelta(days=days)).isoformat()},
        )
        assert r.status_code == 200
    expected = [
        ("checkup_due", women[2]["id"], (TODAY + timedelta(days=3)).isoformat()),  # scheduled in 3 days
        ("follow_up", None, None),  # due in 10 days
        *sorted(
            [("checkup_due", soon[p["id"]]["id"], None) for p in women], key=lambda t: t[1]
        ),  # closing in 20 days, by id
        ("checkup_due", women[1]["id"], (TODAY + timedelta(days=30)).isoformat()),  # scheduled in 30 days
        ("checkup_due", late[women[0]["id"]]["id"], None),  # closing in 40 days
    ]

    def key(t: dict) -> tuple:
        if t["kind"] == "checkup_due" and t["scheduled_on"]:
            return ("checkup_due", t["person_id"], t["scheduled_on"])
        if t["kind"] == "checkup_due":
            return ("checkup_due", t["id"], None)
        return (t["kind"], None, None)

    items = (await cadre.get("/api/v1/tasks", params={"status": "open", "limit": 500})).json()["items"]
    assert [key(t) for t in items] == expected
    # the same order page by page (the cursor carries the day, the due day and the id)
    paged, cursor = [], None
    while True:
        params = {"status": "open", "limit": 2, **({"cursor": cursor} if cursor else {})}
        body = (await cadre.get("/api/v1/tasks", params=params)).json()
        paged += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert [t["id"] for t in paged] == [t["id"] for t in items]

"""Issue 15, item 6 (contract v1.1 "People in lists"): every list item that concerns a person
carries ``person`` {id, name, id_number_masked, village_code, village_name} and ``household``
{id, address}, read for the whole page at once (the statements of a request are counted), and
never a person the reader may not see: another village's people, a person a pending release
hides, a matched person outside the reader's scope, a record that left the scope."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date, timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core import clock
from app.models.claims import Programme, RuleVersion
from app.services import claim_rules as rules
from tests.checkups.test_api import round_body
from tests.factories import id_number
from tests.households.test_api import COUNTY, TS1, V1, V2, V_OTHER_TS, mk_household, mk_person
from tests.migrants.test_api import inflow_body
from tests.migrants.test_partner import note, partner_as, send  # noqa: F401 (fixture)
from tests.sync.test_api import op, push
from tests.visits.test_api import visit_body

NAMES = {V1: "团头湖村", V2: "柏叶村", V_OTHER_TS: "格塘村"}
ADDRESS = "团头湖村3组12号"


def summary(p: dict) -> dict:
    """The summary a list must carry for the person ``p`` (as POST /persons answered)."""
    return {
        "id": p["id"],
        "name": p["name"],
        "id_number_masked": p["id_number_masked"],
        "village_code": p["village_code"],
        "village_name": NAMES[p["village_code"]],
    }


def home(h: dict) -> dict:
    return {"id": h["id"], "address": h["address"]}


async def items(c, path: str, **params) -> list[dict]:
    paged = path != "/api/v1/data-quality"  # faults come as one list (at most 1000 per kind)
    r = await c.get(path, params={"limit": 500, **params} if paged else params)
    assert r.status_code == 200, r.text
    body = r.json()
    return body if isinstance(body, list) else body["items"]


def hides(payload: object, *secrets: str) -> None:
    text = json.dumps(payload, ensure_ascii=False)
    for secret in secrets:
        assert secret not in text, secret


Count = Callable[..., Awaitable[tuple[int, object]]]


@pytest.fixture
def statements(engine: AsyncEngine) -> Count:
    """``n, response = await statements(client.get, path, params=…)``: the SQL statements the
    database ran for one request."""

    @asynccontextmanager
    async def counting() -> AsyncIterator[list[str]]:
        seen: list[str] = []

        def on(conn, cursor, statement, params, context, executemany) -> None:  # noqa: ARG001
            seen.append(statement)

        event.listen(engine.sync_engine, "before_cursor_execute", on)
        try:
            yield seen
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", on)

    async def run(call, *args, **kw):  # type: ignore[no-untyped-def]
        async with counting() as seen:
            r = await call(*args, **kw)
        assert r.status_code == 200, r.text
        return len(seen), r

    return run


@pytest.fixture
async def programmes(db, areas):  # noqa: ARG001 (after the tables are emptied)
    for p in rules.PROGRAMMES:
        db.add(Programme(**p))
    await db.flush()
    for v in rules.NATIONAL_DEFAULTS:
        db.add(RuleVersion(**v))
    await db.commit()


@pytest.fixture
async def cadre(client_as):
    return await client_as("village", V1)


@pytest.fixture
async def cadre2(client_as):
    return await client_as("village", V2)


@pytest.fixture
async def township(client_as):
    return await client_as("township", TS1)


async def woman(c, hid: str, born: date = date(1988, 4, 4), **kw) -> dict:
    kw.setdefault("relation_to_head", "配偶")
    return await mk_person(c, hid, sex="female", born=born, **kw)


# --- each list carries the right people ----------------------------------------------------------


async def test_appointments_and_tasks_name_the_woman_and_her_household(cadre, cadre2, township):
    h = await mk_household(cadre, address=ADDRESS)
    w = await woman(cadre, h["id"], name="李秀英")
    h2 = await mk_household(cadre2, V2, address="柏叶村2组3号")
    w2 = await woman(cadre2, h2["id"], name="赵春花")
    assert (await township.post("/api/v1/checkup-rounds", json=round_body())).status_code == 201
    # a follow-up task about her, and one about the household only
    follow = (clock.today() + timedelta(days=3)).isoformat()
    for body in (
        visit_body(h["id"], person_id=w["id"], follow_up_on=follow),
        visit_body(h["id"], follow_up_on=follow),
    ):
        assert (await cadre.post("/api/v1/visits", json=body)).status_code == 201

    appts = await items(cadre, "/api/v1/checkup-appointments")
    assert [(a["person_id"], a["person"], a["household"]) for a in appts] == [(w["id"], summary(w), home(h))]
    assert summary(w)["id_number_masked"] and "*" in summary(w)["id_number_masked"]
    tasks = await items(cadre, "/api/v1/tasks")
    by_kind = {(t["kind"], t["person_id"]): t for t in tasks}
    assert set(by_kind) == {("checkup_due", w["id"]), ("follow_up", w["id"]), ("follow_up", None)}
    for key in (("checkup_due", w["id"]), ("follow_up", w["id"])):
        assert (by_kind[key]["person"], by_kind[key]["household"]) == (summary(w), home(h))
    assert by_kind[("checkup_due", w["id"])]["household_id"] == h["id"]
    assert (by_kind[("follow_up", None)]["person"], by_kind[("follow_up", None)]["household"]) == (
        None,
        home(h),
    )
    # another village's people never appear; the township sees both villages' women by name
    hides(appts + tasks, w2["id"], w2["name"], h2["id"], h2["address"])
    hides(await items(cadre2, "/api/v1/checkup-appointments"), w["name"], h["address"])
    town = await items(township, "/api/v1/checkup-appointments")
    assert {a["person"]["name"]: a["household"]["address"] for a in town} == {
        "李秀英": ADDRESS,
        "赵春花": "柏叶村2组3号",
    }
    assert {a["person"]["village_name"] for a in town} == {"团头湖村", "柏叶村"}


async def test_a_woman_living_elsewhere_is_named_on_her_new_villages_list(cadre, cadre2, township, db):
    """Her register entry stays in V1, she lives in V2: V2's cadre checks her, so V2's list
    names her (village of her register entry: V1)."""
    h = await mk_household(cadre, address=ADDRESS)
    w = await woman(cadre, h["id"], name="陈美玲", current_village_code=V2)
    assert (await township.post("/api/v1/checkup-rounds", json=round_body())).status_code == 201
    listed = await items(cadre2, "/api/v1/checkup-appointments")
    assert [(a["village_code"], a["person"], a["household"]) for a in listed] == [(V2, summary(w), home(h))]
    assert listed[0]["person"]["village_code"] == V1


async def test_claims_name_their_beneficiary(client_as, programmes, cadre, cadre2):  # noqa: ARG001
    h = await mk_household(cadre, address=ADDRESS)
    mother = await mk_person(cadre, h["id"], born=date(1960, 3, 1), sex="female", name="王桂兰")
    await mk_person(
        cadre,
        h["id"],
        born=date(1988, 5, 5),
        sex="male",
        name="刘强",
        relation_to_head="子",
        mother_id=mother["id"],
    )
    body = {
        "programme": "rural_reward",
        "person_id": mother["id"],
        "year": 2024,
        "facts": {"hukou_rural": True, "births_within_policy_1973_2001": True},
        "payee": {"name": "王桂兰", "bank": "湖南农村信用社", "account": "6217001234567890123"},
    }
    r = await cadre.post("/api/v1/claims", json=body)
    assert r.status_code == 201, r.text
    assert "person" not in r.json()  # the single record's answer is unchanged
    claims = await items(cadre, "/api/v1/claims")
    assert [(c["id"], c["person"], c["household"]) for c in claims] == [
        (r.json()["id"], summary(mother), home(h))
    ]
    county = await client_as("county", COUNTY)
    assert [c["person"]["name"] for c in await items(county, "/api/v1/claims")] == ["王桂兰"]
    assert await items(cadre2, "/api/v1/claims") == []


async def test_migrants_name_the_person_unless_the_record_hides_her(cadre, client_as):
    # an inflow registers a new person here: the list names her and her new household
    number = id_number(date(1992, 6, 6), "female", "440305")
    m = await cadre.post("/api/v1/migrants", json=inflow_body(number))
    assert m.status_code == 201, m.text
    # a woman registered in a village of another township; an inflow names her ID number
    elsewhere = await client_as("village", V_OTHER_TS)
    hv = await mk_household(elsewhere, V_OTHER_TS, address="格塘村7组1号")
    victim_number = id_number(date(1990, 1, 2), "female", "430122")
    victim = await woman(elsewhere, hv["id"], name="周小燕", id_number=victim_number)
    body = inflow_body(victim_number, moved_on=(clock.today() - timedelta(days=5)).isoformat())
    body["person"]["name"] = "化名"
    waiting = await cadre.post("/api/v1/migrants", json=body)
    assert waiting.status_code == 201, waiting.text
    assert waiting.json()["status"] == "pending_release"

    listed = {x["id"]: x for x in await items(cadre, "/api/v1/migrants")}
    assert set(listed) == {m.json()["id"], waiting.json()["id"]}
    mine = listed[m.json()["id"]]
    person = (await cadre.get(f"/api/v1/persons/{mine['person_id']}")).json()
    assert mine["person"] == summary(person) and mine["person"]["name"] == "王桂兰"
    assert mine["household"] == {"id": person["household_id"], "address": "团头湖村5组出租屋"}
    hidden = listed[waiting.json()["id"]]
    assert (hidden["person_id"], hidden["person"], hidden["household"]) == (None, None, None)
    hides(list(listed.values()), victim["id"], victim["name"], hv["id"], hv["address"], V_OTHER_TS)
    # the township holding the request but not her learns nothing either
    town = await items(await client_as("township", TS1), "/api/v1/migrants")
    hides(town, victim["id"], victim["name"], hv["id"], hv["address"])


async def test_notifications_name_a_matched_person_only_inside_the_readers_scope(
    cadre,
    cadre2,
    township,
    partner_as,  # noqa: F811
):
    police = await partner_as()
    h2 = await mk_household(cadre2, V2, address="柏叶村2组3号")
    number = id_number(date(1991, 8, 8), "female")
    w2 = await woman(cadre2, h2["id"], name="孙丽", id_number=number)
    # the police report her residence in V1 (a village of the same township)
    r = await send(police, note(number, area=V1, name="孙丽"))
    assert r.status_code == 202, r.text
    mine = await items(cadre, "/api/v1/migrant-notifications")
    assert [(n["person_id"], n["person"], n["household"]) for n in mine] == [(None, None, None)]
    hides(mine, w2["id"], h2["id"], h2["address"])
    town = await items(township, "/api/v1/migrant-notifications")
    assert [(n["person_id"], n["person"], n["household"]) for n in town] == [
        (w2["id"], summary(w2), home(h2))
    ]
    one = (await township.get(f"/api/v1/migrant-notifications/{town[0]['id']}")).json()
    assert one["person"] == summary(w2)


async def test_a_conflict_shows_the_servers_values_beside_the_phones(cadre, client_as):
    other = await client_as("village", V1)
    h = await mk_household(cadre, address=ADDRESS)
    w = await woman(cadre, h["id"], name="李秀英", phone="13912345678")
    url = f"/api/v1/persons/{w['id']}"
    r = await other.patch(url, json={"name": "李秀瑛", "phone": "13800001111"}, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    res = await push(cadre, [op("person", {"name": "李秀云", "phone": "13722223333"}, rid=w["id"], base=1)])
    assert res[0]["status"] == "conflict"
    ts = await client_as("township", TS1)
    conflicts = await items(ts, "/api/v1/sync/conflicts")
    assert len(conflicts) == 1
    c = conflicts[0]
    assert c["client_values"] == {"name": "李秀云", "phone_masked": "137****3333"}
    assert c["server_values"] == {"name": "李秀瑛", "phone_masked": "138****1111"}
    assert c["person"] == {**summary(w), "name": "李秀瑛"}
    assert c["household"] == home(h)
    hides(c, "13722223333", "13800001111")
    # once the record has left the township's scope, the conflict names nobody
    hv = await mk_household(await client_as("county", COUNTY), V_OTHER_TS, address="格塘村7组1号")
    county = await client_as("county", COUNTY)
    moved = await county.post(f"{url}/move", json={"household_id": hv["id"]})
    assert moved.status_code == 200, moved.text
    gone = (await items(ts, "/api/v1/sync/conflicts"))[0]
    assert (gone["server_values"], gone["person"], gone["household"]) == (None, None, None)
    assert gone["client_values"] == c["client_values"]
    seen = (await items(county, "/api/v1/sync/conflicts"))[0]
    assert seen["person"]["village_code"] == V_OTHER_TS
    assert seen["household"] == home(hv)


async def test_data_quality_faults_name_their_record(cadre, cadre2):
    h = await mk_household(cadre, address=ADDRESS)  # no head: a household fault
    young = clock.today() - timedelta(days=365 * 18)
    w = await woman(cadre, h["id"], born=young, name="小芳")  # married under 20: a person fault
    h2 = await mk_household(cadre2, V2, address="柏叶村2组3号")
    faults = await items(cadre, "/api/v1/data-quality")
    got = {(f["kind"], f["id"]): (f["person"], f["household"]) for f in faults}
    assert got[("married_under_20", w["id"])] == (summary(w), home(h))
    assert got[("household_without_head", h["id"])] == (None, home(h))
    hides(faults, h2["id"], h2["address"])


# --- one or two statements, whatever the page size ------------------------------------------------


async def test_a_page_of_many_reads_its_people_at_once(cadre, township, statements):
    """60 women with an appointment each, a follow-up task each, and 60 conflicts: the people
    of a page of 60 cost exactly what those of a page of 1 cost — one statement — where a
    query per item would add 59. Bounds, over an empty page of the same list (auth and the
    page's own query): tasks +1 (the people), appointments +2 (closing days, people)."""
    h = await mk_household(cadre, address=ADDRESS)
    women = [await woman(cadre, h["id"], born=date(1980, 1, 1) + timedelta(days=97 * i)) for i in range(60)]
    assert (await township.post("/api/v1/checkup-rounds", json=round_body())).status_code == 201
    follow = (clock.today() + timedelta(days=3)).isoformat()
    for w in women:
        visit = visit_body(h["id"], person_id=w["id"], follow_up_on=follow)
        assert (await cadre.post("/api/v1/visits", json=visit)).status_code == 201

    async def cost(path: str, **params) -> tuple[int, list[dict]]:
        n, r = await statements(cadre.get, path, params=params)
        body = r.json()  # type: ignore[attr-defined]
        return n, body if isinstance(body, list) else body["items"]

    for path, kind, empty, extra in (
        ("/api/v1/tasks", {"kind": "follow_up"}, {"kind": "referral"}, 1),
        ("/api/v1/tasks", {}, {"status": "done"}, 1),
        ("/api/v1/checkup-appointments", {}, {"status": "done"}, 2),
    ):
        none, page0 = await cost(path, **empty, limit=500)
        one, page1 = await cost(path, **kind, limit=1)
        many, page = await cost(path, **kind, limit=500)
        assert page0 == [] and len(page1) == 1 and len(page) >= 60
        assert {p["person"]["id"] for p in page} >= {w["id"] for w in women}
        assert all(p["household"] == home(h) for p in page)
        assert many == one, (path, kind, one, many)
        assert many <= none + extra, (path, kind, none, many)


async def test_conflicts_and_faults_read_their_people_at_once(cadre, client_as, statements):
    other = await client_as("village", V1)
    h = await mk_household(cadre, address=ADDRESS)
    women = [await woman(cadre, h["id"], born=date(1980, 1, 1) + timedelta(days=97 * i)) for i in range(30)]
    ops = []
    for w in women:
        url = f"/api/v1/persons/{w['id']}"
        r = await other.patch(url, json={"name": "改名" + w["id"][:4]}, headers={"If-Match": '"1"'})
        assert r.status_code == 200, r.text
        ops.append(op("person", {"name": "手机" + w["id"][:4]}, rid=w["id"], base=1))
    assert {x["status"] for x in await push(cadre, ops)} == {"conflict"}
    ts = await client_as("township", TS1)
    _none, r = await statements(ts.get, "/api/v1/sync/conflicts", params={"status": "resolved"})
    one, r1 = await statements(ts.get, "/api/v1/sync/conflicts", params={"limit": 1})
    many, r30 = await statements(ts.get, "/api/v1/sync/conflicts", params={"limit": 500})
    listed = r30.json()["items"]  # type: ignore[attr-defined]
    assert len(listed) == 30 and len(r1.json()["items"]) == 1  # type: ignore[attr-defined]
    assert all(c["server_values"]["name"].startswith("改名") for c in listed)
    assert {c["person"]["id"] for c in listed} == {w["id"] for w in women}
    # the current records (one query for the page) and their people (one)
    assert many == one <= _none + 2, (_none, one, many)
    # data quality: one statement per kind, then one for the people of every fault
    n_one, _ = await statements(cadre.get, "/api/v1/data-quality", params={"kind": "household_without_head"})
    young = clock.today() - timedelta(days=365 * 18)
    hh = [await mk_household(cadre, address=f"村{i}号") for i in range(20)]
    for x in hh[:10]:
        await woman(cadre, x["id"], born=young)
    n_many, r = await statements(cadre.get, "/api/v1/data-quality", params={"kind": "household_without_head"})
    assert len(r.json()) == 21 and n_many == n_one  # type: ignore[attr-defined]
    everything, r = await statements(cadre.get, "/api/v1/data-quality")
    faults = r.json()  # type: ignore[attr-defined]
    assert sum(f["kind"] == "married_under_20" for f in faults) == 10
    assert all(f["household"] is not None for f in faults)
    assert everything <= n_one + 6  # six more kinds, and still one statement for the people


async def test_claims_migrants_and_notifications_read_their_people_at_once(
    cadre,
    programmes,  # noqa: ARG001
    partner_as,  # noqa: F811
    statements,
):
    police = await partner_as()
    facts = {"hukou_rural": True, "births_within_policy_1973_2001": True}
    for i in range(6):
        h = await mk_household(cadre, address=f"团头湖村{i}组1号")
        mother = await mk_person(cadre, h["id"], born=date(1958 + i, 3, 1), sex="female", name=f"母{i}")
        body = {"programme": "rural_reward", "person_id": mother["id"], "year": 2024, "facts": facts}
        assert (await cadre.post("/api/v1/claims", json=body)).status_code == 201
        number = id_number(date(1990 + i, 6, 6), "female", "440305")
        assert (await cadre.post("/api/v1/migrants", json=inflow_body(number))).status_code == 201
        resident = id_number(date(1980 + i, 2, 2), "female")
        await woman(cadre, h["id"], id_number=resident)
        assert (await send(police, note(resident, area=V1))).status_code == 202
    for path, empty, extra in (
        ("/api/v1/claims", {"year": 2020}, 2),  # the page's rule versions, its people
        ("/api/v1/migrants", {"direction": "outflow"}, 1),
        ("/api/v1/migrant-notifications", {"kind": "business_licensed"}, 1),
    ):
        none, r0 = await statements(cadre.get, path, params=empty)
        one, r1 = await statements(cadre.get, path, params={"limit": 1})
        many, r6 = await statements(cadre.get, path, params={"limit": 500})
        page = r6.json()["items"]  # type: ignore[attr-defined]
        assert r0.json()["items"] == [] and len(r1.json()["items"]) == 1 and len(page) == 6  # type: ignore[attr-defined]
        assert all(x["person"] is not None and x["household"] is not None for x in page), path
        assert many == one <= none + extra, (path, none, one, many)

"""Offline sync through HTTP: push, pull, receipts, conflicts — never lose, never double."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.core import clock
from app.models.households import Household, Person
from app.models.sync import SyncConflict
from app.models.visits import Visit
from tests.conftest import IS_PG
from tests.factories import id_number
from tests.households.test_api import TS1, V1, V2, mk_household, mk_person, problem

PUSH = "/api/v1/sync/push"
PULL = "/api/v1/sync/pull"


@pytest.fixture
async def cadre(client_as):
    return await client_as("village", V1)


def op(
    entity: str, data: dict, *, rid: str | None = None, base: int | None = None, op_id: str | None = None
) -> dict:
    return {
        "op_id": op_id or str(uuid.uuid4()),
        "entity": entity,
        "id": rid or str(uuid.uuid4()),
        "base_version": base,
        "data": data,
    }


def household_op(village: str = V1, **kw) -> dict:
    return op("household", {"village_code": village, "address": "柏叶村1组", "household_type": "rural"}, **kw)


def person_op(hid: str, **kw) -> dict:
    data = {
        "household_id": hid,
        "name": "吴梅",
        "id_number": id_number(date(1990, 3, 3), "female"),
        "relation_to_head": "户主",
        "marital_status": "married",
    }
    data.update(kw.pop("data", {}))
    return op("person", data, **kw)


def visit_op(hid: str, **kw) -> dict:
    return op(
        "visit",
        {
            "household_id": hid,
            "visited_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "purpose": "health_education",
        },
        **kw,
    )


async def push(c, ops: list[dict], device: str = "phone-1") -> list[dict]:
    r = await c.post(PUSH, json={"device_id": device, "ops": ops})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["op_id"] for x in results] == [o["op_id"] for o in ops]
    return results


async def pull_all(c, cursor: str | None = None, limit: int = 200) -> tuple[list[dict], str]:
    changes: list[dict] = []
    while True:
        params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        r = await c.get(PULL, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        changes += body["changes"]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return changes, cursor


async def count(db, model) -> int:
    n = (await db.execute(select(func.count()).select_from(model))).scalar_one()
    await db.commit()
    return n


async def test_dependent_ops_apply_in_order_and_resend_is_duplicate(cadre, db):
    h = household_op()
    p = person_op(h["id"])
    v = op(
        "visit",
        {
            "household_id": h["id"],
            "person_id": p["id"],
            "visited_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "purpose": "checkup_reminder",
        },
    )
    batch = [h, p, v]
    first = await push(cadre, batch)
    assert [x["status"] for x in first] == ["applied"] * 3
    assert all(x["version"] == 1 and "error" not in x for x in first)
    again = await push(cadre, batch)
    assert [x["status"] for x in again] == ["duplicate"] * 3
    assert [x["id"] for x in again] == [x["id"] for x in first]
    assert (await count(db, Household), await count(db, Person), await count(db, Visit)) == (1, 1, 1)


async def test_half_applied_batch_resent_after_dropped_connection(cadre, db):
    hs = [household_op() for _ in range(6)]
    await push(cadre, hs[:3])  # the server applied these, the phone never saw the answer
    results = await push(cadre, hs)
    assert [x["status"] for x in results] == ["duplicate"] * 3 + ["applied"] * 3
    assert await count(db, Household) == 6


async def test_rejected_op_among_good_ones_is_alone(cadre, db):
    h = household_op()
    bad = person_op(h["id"], data={"id_number": "430122199002301234"})
    good = household_op()
    outside = household_op(village=V2)
    results = await push(cadre, [h, bad, good, outside])
    assert [x["status"] for x in results] == ["applied", "rejected", "applied", "rejected"]
    assert results[1]["error"]["code"] == "id_number_invalid"
    assert results[1]["error"]["status"] == 422
    assert results[3]["error"]["code"] == "out_of_scope"
    assert await count(db, Household) == 2
    assert await count(db, Person) == 0
    # The rejected op answers the same when re-sent.
    again = await push(cadre, [bad])
    assert again[0]["status"] == "rejected"
    assert again[0]["error"]["code"] == "id_number_invalid"


async def test_run_of_new_visits_answers_each_op_as_if_alone(cadre, client_as, db):
    """Consecutive new visits are checked together and written by one flush: refused ones are
    rejected with their own error and write nothing, the rest land with their tasks, change rows
    and audit rows; the same visit id twice in the run is a replay, not a second visit."""
    from app.models.audit import AuditEvent
    from app.models.sync import Change
    from app.models.visits import Task

    hid = (await push(cadre, [household_op()]))[0]["id"]
    other = await client_as("village", V2)
    far_hid = (await push(other, [household_op(village=V2)], device="phone-2"))[0]["id"]
    follow = visit_op(hid)
    follow["data"]["follow_up_on"] = (clock.today() + timedelta(days=3)).isoformat()
    plain = visit_op(hid)
    outside = visit_op(far_hid)
    future = visit_op(hid)
    future["data"]["visited_at"] = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    unknown = visit_op(str(uuid.uuid4()))
    invalid = visit_op(hid)
    invalid["data"]["purpose"] = "gossip"
    again = {**plain, "op_id": str(uuid.uuid4())}  # same visit, another op id: a replay
    clash = op("visit", {**plain["data"], "notes": "other"}, rid=plain["id"])  # same id, other content
    ops = [follow, plain, outside, future, unknown, invalid, again, clash]
    results = await push(cadre, ops)
    assert [x["status"] for x in results] == [
        "applied",
        "applied",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "applied",
        "rejected",
    ]
    assert [x["error"]["code"] for x in results[2:6] + results[7:]] == [
        "not_found",
        "validation_failed",
        "not_found",
        "validation_failed",
        "id_conflict",
    ]
    assert results[3]["error"]["errors"][0]["field"] == "visited_at"
    assert results[6]["id"] == plain["id"]
    visits = (await db.execute(select(Visit.id).order_by(Visit.id))).scalars().all()
    await db.commit()
    assert sorted(map(str, visits)) == sorted([follow["id"], plain["id"]])
    tasks = (await db.execute(select(Task).where(Task.source_entity == "visit"))).scalars().all()
    await db.commit()
    assert [str(t.source_id) for t in tasks] == [follow["id"]]
    logged = (
        await db.execute(
            select(Change.entity, func.count())
            .where(Change.entity.in_(["visit", "task"]))
            .group_by(Change.entity)
        )
    ).all()
    audited = (
        await db.execute(select(func.count()).select_from(AuditEvent).where(AuditEvent.entity == "visit"))
    ).scalar_one()
    await db.commit()
    assert dict(logged) == {"visit": 2, "task": 1}
    assert audited == 2
    # Re-sent: the stored answers, nothing written twice.
    replay = await push(cadre, ops)
    assert [x["status"] for x in replay] == ["duplicate", "duplicate"] + ["rejected"] * 4 + [
        "duplicate",
        "rejected",
    ]
    assert await count(db, Visit) == 2


async def test_concurrent_pushes_of_the_same_new_visit_store_it_once(cadre, db):
    """Two phones send the same visit (same id) at the same moment, each with its own visits:
    whichever flush loses the race is re-applied op by op — one row, no error for the rest."""
    import asyncio

    hid = (await push(cadre, [household_op()]))[0]["id"]
    shared = visit_op(hid)
    a = [visit_op(hid), {**shared, "op_id": str(uuid.uuid4())}, visit_op(hid)]
    b = [visit_op(hid), {**shared, "op_id": str(uuid.uuid4())}, visit_op(hid)]
    ra, rb = await asyncio.gather(push(cadre, a, device="phone-a"), push(cadre, b, device="phone-b"))
    assert [x["status"] for x in ra][::2] == ["applied", "applied"]
    assert [x["status"] for x in rb][::2] == ["applied", "applied"]
    assert {ra[1]["status"], rb[1]["status"]} <= {"applied", "rejected"}
    assert "applied" in (ra[1]["status"], rb[1]["status"])
    assert await count(db, Visit) == 5


async def test_501_ops_refused_with_clear_error(cadre, db):
    ops = [household_op() for _ in range(501)]
    r = await cadre.post(PUSH, json={"device_id": "phone-1", "ops": ops})
    body = problem(r, 422, "too_many_ops")
    assert "500" in body["detail"]
    assert await count(db, Household) == 0


async def test_oversized_body_refused(cadre):
    huge = "x" * (9 * 1024 * 1024)
    r = await cadre.post(
        PUSH,
        content=b'{"device_id":"p","ops":[],"pad":"' + huge.encode() + b'"}',
        headers={"content-type": "application/json"},
    )
    problem(r, 413, "payload_too_large")


async def test_stale_update_on_untouched_fields_is_merged(cadre, client_as):
    other = await client_as("village", V1)
    h = await mk_household(cadre)
    p = await mk_person(cadre, h["id"])
    # The server moves on: another cadre changes the phone (version 2).
    r = await other.patch(
        f"/api/v1/persons/{p['id']}", json={"phone": "13700001111"}, headers={"If-Match": '"1"'}
    )
    assert r.status_code == 200
    # The offline phone edited the marital status based on version 1.
    res = await push(cadre, [op("person", {"marital_status": "widowed"}, rid=p["id"], base=1)])
    assert res[0]["status"] == "applied"
    assert res[0]["version"] == 3
    got = (await cadre.get(f"/api/v1/persons/{p['id']}")).json()
    assert got["marital_status"] == "widowed"
    assert got["phone"] == "13700001111"
    assert got["version"] == 3


async def test_true_overlap_is_a_conflict_resolved_by_township(cadre, client_as, db):
    other = await client_as("village", V1)
    h = await mk_household(cadre)
    url = f"/api/v1/households/{h['id']}"
    assert (
        await other.patch(url, json={"address": "团头湖村5组1号"}, headers={"If-Match": '"1"'})
    ).status_code == 200
    res = await push(cadre, [op("household", {"address": "团头湖村5组2号"}, rid=h["id"], base=1)])
    assert res[0]["status"] == "conflict"
    assert res[0]["current"]["address"] == "团头湖村5组1号"
    assert res[0]["version"] == 2
    assert res[0]["fields"] == ["address"]
    assert (await cadre.get(url)).json()["address"] == "团头湖村5组1号"  # nothing written
    # Same value on both sides is not a conflict.
    res = await push(cadre, [op("household", {"address": "团头湖村5组1号"}, rid=h["id"], base=1)])
    assert res[0]["status"] == "applied"
    ts = await client_as("township", TS1)
    conflicts = (await ts.get("/api/v1/sync/conflicts")).json()["items"]
    assert len(conflicts) == 1
    c = conflicts[0]
    assert c["client_values"] == {"address": "团头湖村5组2号"}
    assert c["fields"] == ["address"]
    assert c["actor_id"] == str(cadre.user.id)
    problem(
        await cadre.post(f"/api/v1/sync/conflicts/{c['id']}/resolve", json={"values": {}}), 403, "forbidden"
    )
    other_ts = await client_as("township", "430122101000")
    problem(
        await other_ts.post(f"/api/v1/sync/conflicts/{c['id']}/resolve", json={"values": {}}),
        404,
        "not_found",
    )
    r = await ts.post(
        f"/api/v1/sync/conflicts/{c['id']}/resolve", json={"values": {"address": "团头湖村5组2号"}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["conflict"]["status"] == "resolved"
    assert r.json()["record"]["address"] == "团头湖村5组2号"
    assert (await cadre.get(url)).json()["address"] == "团头湖村5组2号"
    assert (await ts.get("/api/v1/sync/conflicts")).json()["items"] == []
    problem(
        await ts.post(f"/api/v1/sync/conflicts/{c['id']}/resolve", json={"values": {}}),
        409,
        "invalid_transition",
    )
    stored = (await db.execute(select(SyncConflict))).scalars().one()
    assert stored.status == "resolved"
    assert stored.resolved_by == ts.user.id


async def test_current_base_version_update_and_invalid_base(cadre):
    h = await mk_household(cadre)
    res = await push(
        cadre,
        [
            op("household", {"household_type": "urban"}, rid=h["id"], base=1),
            op("household", {"address": "x"}, rid=h["id"], base=9),
        ],
    )
    assert res[0]["status"] == "applied"
    assert res[0]["version"] == 2
    assert res[1]["status"] == "rejected"
    assert res[1]["error"]["code"] == "invalid_base_version"


async def test_receipts_after_a_lost_response(cadre, client_as):
    ops = [household_op() for _ in range(3)]
    await push(cadre, ops[:2], device="tablet-7")
    r = await cadre.post(
        "/api/v1/sync/receipts", json={"device_id": "tablet-7", "op_ids": [o["op_id"] for o in ops]}
    )
    assert r.status_code == 200
    rec = r.json()["receipts"]
    assert [x["held"] for x in rec] == [True, True, False]
    assert rec[0]["status"] == "applied"
    assert rec[0]["id"] == ops[0]["id"]
    assert rec[0]["version"] == 1
    assert rec[2] == {"op_id": ops[2]["op_id"], "held": False}
    # Another user cannot read this device's receipts.
    other = await client_as("village", V1)
    r = await other.post("/api/v1/sync/receipts", json={"device_id": "tablet-7", "op_ids": [ops[0]["op_id"]]})
    assert r.json()["receipts"] == [{"op_id": ops[0]["op_id"], "held": False}]


async def test_pull_after_push_returns_exactly_the_new_records(cadre):
    before, cursor = await pull_all(cadre)
    assert before == []
    h = household_op()
    p = person_op(h["id"])
    await push(cadre, [h, p])
    changes, cursor2 = await pull_all(cadre, cursor)
    assert {(c["entity"], c["id"]) for c in changes} == {("household", h["id"]), ("person", p["id"])}
    person = next(c for c in changes if c["entity"] == "person")
    assert person["data"]["id_number_masked"]
    assert "id_number" not in person["data"]
    assert person["deleted"] is False
    assert person["version"] == 1
    again, _ = await pull_all(cadre, cursor2)
    assert again == []


async def test_first_pull_pages_through_everything(cadre):
    hs = [household_op() for _ in range(7)]
    await push(cadre, hs)
    seen, cursor = [], None
    pages = 0
    while True:
        r = (await cadre.get(PULL, params={"limit": 3} | ({"cursor": cursor} if cursor else {}))).json()
        seen += [c["id"] for c in r["changes"]]
        cursor = r["next_cursor"]
        pages += 1
        if not r["has_more"]:
            break
    assert sorted(set(seen)) == sorted(o["id"] for o in hs)
    assert pages >= 3


async def test_pull_pagination_with_concurrent_writers(cadre, client_as):
    writer = await client_as("village", V1)
    _, cursor = await pull_all(cadre)
    created = []
    for round_ in range(4):
        batch = [household_op() for _ in range(3)]
        await push(writer, batch, device=f"w-{round_}")
        created += [o["id"] for o in batch]
        r = (await cadre.get(PULL, params={"cursor": cursor, "limit": 2})).json()
        cursor = r["next_cursor"]
        created_seen = r["changes"]
        if round_ == 0:
            first = created_seen
    rest, _ = await pull_all(cadre, cursor, limit=2)
    # everything delivered across pages, nothing lost
    all_ids = {c["id"] for c in first} | {c["id"] for c in rest}
    # pages in between were consumed too; pull again from scratch to compare
    full, _ = await pull_all(cadre)
    assert {c["id"] for c in full} == set(created)
    assert all_ids <= set(created)


async def test_no_change_lost_between_pages_under_writes(cadre, client_as):
    writer = await client_as("village", V1)
    _, cursor = await pull_all(cadre)
    created: list[str] = []
    got: list[str] = []
    for round_ in range(5):
        batch = [household_op() for _ in range(2)]
        await push(writer, batch, device=f"w-{round_}")
        created += [o["id"] for o in batch]
        r = (await cadre.get(PULL, params={"cursor": cursor, "limit": 1})).json()
        got += [c["id"] for c in r["changes"]]
        cursor = r["next_cursor"]
    rest, _ = await pull_all(cadre, cursor, limit=1)
    got += [c["id"] for c in rest]
    assert sorted(got) == sorted(created)


async def test_move_out_of_scope_gives_a_tombstone(cadre, client_as):
    ts = await client_as("township", TS1)
    other = await client_as("village", V2)
    h1 = await mk_household(cadre)
    p = await mk_person(cadre, h1["id"])
    _, cursor = await pull_all(cadre)
    _, other_cursor = await pull_all(other)
    h2 = await mk_household(other, V2)
    r = await ts.post(f"/api/v1/persons/{p['id']}/move", json={"household_id": h2["id"]})
    assert r.status_code == 200
    changes, _ = await pull_all(cadre, cursor)
    mine = [c for c in changes if c["id"] == p["id"]]
    assert mine
    assert mine[-1]["deleted"] is True
    assert mine[-1]["data"] is None
    theirs, _ = await pull_all(other, other_cursor)
    moved = [c for c in theirs if c["id"] == p["id"]]
    assert moved
    assert moved[-1]["deleted"] is False
    assert moved[-1]["data"]["village_code"] == V2


async def test_pull_scope_excludes_other_villages(cadre, client_as):
    other = await client_as("village", V2)
    await push(other, [household_op(village=V2)], device="other")
    mine = [household_op()]
    await push(cadre, mine)
    changes, _ = await pull_all(cadre)
    assert {c["id"] for c in changes} == {mine[0]["id"]}
    ts = await client_as("township", TS1)
    assert len((await pull_all(ts))[0]) == 2


async def test_pull_includes_tasks_and_visits(cadre):
    h = household_op()
    v = op(
        "visit",
        {
            "household_id": h["id"],
            "visited_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "purpose": "elder_care",
            "follow_up_on": (clock.today() + timedelta(days=5)).isoformat(),
        },
    )
    await push(cadre, [h, v])
    changes, _ = await pull_all(cadre)
    kinds = sorted(c["entity"] for c in changes)
    assert kinds == ["household", "task", "visit"]


async def test_bad_cursor_and_machine_refused(cadre):
    problem(await cadre.get(PULL, params={"cursor": "xyz"}), 422, "invalid_cursor")


@pytest.mark.skipif(not IS_PG, reason="out-of-order commits need concurrent writers (PostgreSQL)")
async def test_out_of_order_commits_never_skip_a_change(cadre, inspect_engine):
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.models.common import place_columns

    _, cursor = await pull_all(cadre)
    early = AsyncSession(inspect_engine, expire_on_commit=False)
    held = Household(address="先开始后提交", household_type="rural", **place_columns(V1))
    early.add(held)
    await early.flush()  # takes its change sequence number now, commits later
    late = household_op()
    assert (await push(cadre, [late]))[0]["status"] == "applied"  # commits first
    mid, mid_cursor = await pull_all(cadre, cursor)
    assert str(held.id) not in {c["id"] for c in mid}
    await early.commit()
    await early.close()
    rest, _ = await pull_all(cadre, mid_cursor)
    delivered = {c["id"] for c in mid} | {c["id"] for c in rest}
    assert {str(held.id), late["id"]} <= delivered

"""Visits and the task inbox through HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from app.core import clock
from app.models.visits import Task
from tests.households.test_api import COUNTY, TS1, V1, V2, mk_household, mk_person, problem


@pytest.fixture
async def cadre(client_as):
    return await client_as("village", V1)


def visit_body(household_id: str, **kw) -> dict:
    return {
        "household_id": household_id,
        "visited_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        "purpose": "postnatal",
        "notes": "产后第7天访视，母婴情况良好",
        **kw,
    }


async def test_visit_with_follow_up_creates_a_task(cadre, db):
    h = await mk_household(cadre)
    p = await mk_person(cadre, h["id"])
    vid = str(uuid.uuid4())
    due = (clock.today() + timedelta(days=7)).isoformat()
    body = visit_body(
        h["id"],
        id=vid,
        person_id=p["id"],
        location={"lat": 28.35, "lon": 112.82, "accuracy_m": 15},
        follow_up_on=due,
        follow_up_note="复访：检查伤口",
    )
    r = await cadre.post("/api/v1/visits", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["location"] == {"lat": 28.35, "lon": 112.82, "accuracy_m": 15.0}
    assert out["visitor_id"] == str(cadre.user.id)
    assert out["village_code"] == V1
    again = await cadre.post("/api/v1/visits", json=body)
    assert again.status_code == 200
    assert again.json()["id"] == vid
    problem(await cadre.post("/api/v1/visits", json={**body, "notes": "不同"}), 409, "id_conflict")
    tasks = (await cadre.get("/api/v1/tasks", params={"status": "open"})).json()["items"]
    assert len(tasks) == 1
    t = tasks[0]
    assert t["kind"] == "follow_up"
    assert t["due_on"] == due
    assert t["source_id"] == vid
    assert t["title"] == "复访：检查伤口"
    assert t["overdue"] is False
    r = await cadre.post(f"/api/v1/tasks/{t['id']}/complete", json={"note": "已复访"})
    assert r.status_code == 200
    assert r.json()["status"] == "done"
    assert r.json()["completed_by"] == str(cadre.user.id)
    problem(await cadre.post(f"/api/v1/tasks/{t['id']}/complete", json={}), 409, "invalid_transition")
    assert (await cadre.get("/api/v1/tasks", params={"status": "open"})).json()["items"] == []
    rows = (await db.execute(select(Task))).scalars().all()
    assert len(rows) == 1
    assert rows[0].status == "done"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"location": {"lat": 91, "lon": 0}}, "location.lat"),
        ({"location": {"lat": 0, "lon": -181}}, "location.lon"),
        ({"visited_at": "2026-01-01T10:00:00"}, "visited_at"),
        ({"purpose": "gossip"}, "purpose"),
    ],
)
async def test_visit_validation(cadre, patch, field):
    h = await mk_household(cadre)
    out = problem(
        await cadre.post("/api/v1/visits", json={**visit_body(h["id"]), **patch}), 422, "validation_failed"
    )
    assert any(e["field"] == field for e in out["errors"]), out


async def test_visit_in_the_future_refused_small_skew_allowed(cadre):
    h = await mk_household(cadre)
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    problem(
        await cadre.post("/api/v1/visits", json=visit_body(h["id"], visited_at=future)),
        422,
        "validation_failed",
    )
    skew = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    assert (await cadre.post("/api/v1/visits", json=visit_body(h["id"], visited_at=skew))).status_code == 201


async def test_visit_to_deceased_person_refused(cadre):
    h = await mk_household(cadre)
    p = await mk_person(cadre, h["id"], born=date(1935, 1, 1))
    await cadre.post("/api/v1/deaths", json={"person_id": p["id"], "death_date": "2025-01-01"})
    problem(
        await cadre.post("/api/v1/visits", json=visit_body(h["id"], person_id=p["id"], purpose="elder_care")),
        409,
        "person_deceased",
    )


async def test_visit_scope(client_as):
    c1 = await client_as("village", V1)
    c2 = await client_as("village", V2)
    h1 = await mk_household(c1)
    h2 = await mk_household(c2, V2)
    problem(await c1.post("/api/v1/visits", json=visit_body(h2["id"])), 404, "not_found")
    v = (
        await c1.post(
            "/api/v1/visits",
            json=visit_body(h1["id"], follow_up_on=(clock.today() + timedelta(days=1)).isoformat()),
        )
    ).json()
    problem(await c2.get(f"/api/v1/visits/{v['id']}"), 404, "not_found")
    assert (await c2.get("/api/v1/visits")).json()["items"] == []
    assert (await c2.get("/api/v1/tasks")).json()["items"] == []
    ts = await client_as("township", TS1)
    assert [x["id"] for x in (await ts.get("/api/v1/visits")).json()["items"]] == [v["id"]]
    other_ts = await client_as("township", "430122101000")
    assert (await other_ts.get("/api/v1/visits")).json()["items"] == []
    county = await client_as("county", COUNTY)
    assert (await county.get(f"/api/v1/visits/{v['id']}")).status_code == 200
    task = (await ts.get("/api/v1/tasks")).json()["items"][0]
    problem(await c2.post(f"/api/v1/tasks/{task['id']}/complete"), 404, "not_found")


async def test_visit_filters_and_order(cadre):
    h = await mk_household(cadre)
    now = datetime.now(UTC)
    ids = []
    for i, purpose in enumerate(["postnatal", "elder_care", "postnatal"]):
        r = await cadre.post(
            "/api/v1/visits",
            json=visit_body(h["id"], purpose=purpose, visited_at=(now - timedelta(days=10 - i)).isoformat()),
        )
        ids.append(r.json()["id"])
    got = [v["id"] for v in (await cadre.get("/api/v1/visits")).json()["items"]]
    assert got == list(reversed(ids))
    got = [
        v["id"] for v in (await cadre.get("/api/v1/visits", params={"purpose": "postnatal"})).json()["items"]
    ]
    assert got == [ids[2], ids[0]]
    frm = (now - timedelta(days=9, hours=12)).isoformat()
    got = [v["id"] for v in (await cadre.get("/api/v1/visits", params={"from": frm})).json()["items"]]
    assert got == [ids[2], ids[1]]


async def test_township_sees_overdue_tasks_of_its_villages(client_as, db):
    c1 = await client_as("village", V1)
    c2 = await client_as("village", V2)
    for c, v in ((c1, V1), (c2, V2)):
        h = await mk_household(c, v)
        await c.post(
            "/api/v1/visits",
            json=visit_body(
                h["id"],
                visited_at=(datetime.now(UTC) - timedelta(days=20)).isoformat(),
                follow_up_on=(clock.today() - timedelta(days=3)).isoformat(),
            ),
        )
        await c.post(
            "/api/v1/visits",
            json=visit_body(h["id"], follow_up_on=(clock.today() + timedelta(days=3)).isoformat()),
        )
    ts = await client_as("township", TS1)
    over = (await ts.get("/api/v1/tasks", params={"status": "open", "overdue": "true"})).json()["items"]
    assert len(over) == 2
    assert all(t["overdue"] for t in over)
    assert {t["village_code"] for t in over} == {V1, V2}
    allt = (await ts.get("/api/v1/tasks", params={"status": "open"})).json()["items"]
    dues = [t["due_on"] for t in allt]
    assert dues == sorted(dues)
    assert len(allt) == 4
    mine = (await c1.get("/api/v1/tasks", params={"status": "open"})).json()["items"]
    assert {t["village_code"] for t in mine} == {V1}


async def test_pages_keyed_by_a_timestamp_follow_their_cursor(cadre, client_as):
    """The second page of a list sorted by a timestamp (visits, the audit trail) follows the
    cursor of the first; every record comes exactly once."""
    h = await mk_household(cadre)
    now = datetime.now(UTC)
    for i in range(5):
        r = await cadre.post(
            "/api/v1/visits", json=visit_body(h["id"], visited_at=(now - timedelta(hours=5 - i)).isoformat())
        )
        assert r.status_code == 201, r.text
    township = await client_as("township", TS1)
    admin = await client_as("admin", COUNTY)
    for c, path, params in (
        (cadre, "/api/v1/visits", {}),
        (township, "/api/v1/visits", {"from": (now - timedelta(days=1)).isoformat()}),
        (admin, "/api/v1/audit-events", {"entity": "visit"}),
    ):
        seen: list[str] = []
        cursor = None
        while True:
            r = await c.get(path, params={**params, "limit": 2} | ({"cursor": cursor} if cursor else {}))
            assert r.status_code == 200, (path, r.text)
            seen += [x["id"] for x in r.json()["items"]]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 5, path

"""A movement request is no movement in the county figures (issue 14 meets issue 8).

An inflow naming a person registered in another village waits for her place's release
(``pending_release``); her place may refuse it (``refused``, terminal, with ``closed_on``). Until
it is confirmed it counts in no figure of ``/api/v1/indicators`` — entries, exits, open, new,
inflow women 15–49 — of the receiving village or its township: neither in the maintained tallies
nor in the inflow-women rows nor in the live edge counts. Confirmed, it counts from its
``moved_on``, exactly as the live reference counts it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select

from app.authz.actor import Actor
from app.models.indicators import IndicatorInflowWoman
from app.models.migrants import Migrant
from app.models.users import Role
from app.services import indicators as svc
from app.services.migrants import local_today
from tests.indicators import live_reference as ref
from tests.migrants.test_release import PLACES, RECEIVING, request_body, victim_in

ORIGIN = PLACES["other_township"][0]  # 430122101201
TOWNSHIP = RECEIVING[:9] + "000"
COUNTY = RECEIVING[:6] + "000000"
TODAY = local_today()
PERIOD = {"from": (TODAY - timedelta(days=40)).isoformat(), "to": TODAY.isoformat()}
PERIOD_DAYS = (TODAY - timedelta(days=40), TODAY)


async def figures(reader: AsyncClient, area: str) -> dict[str, Any]:
    r = await reader.get("/api/v1/indicators", params={"area_code": area, "breakdown": "true", **PERIOD})
    assert r.status_code == 200, r.text
    body = r.json()
    s = await reader.get(
        "/api/v1/indicators/series", params={"area_code": area, "metric": "inflow_new", **PERIOD}
    )
    assert s.status_code == 200, s.text
    body["inflow_new_series"] = s.json()["points"]
    return body


async def reference(db, area: str) -> dict[str, Any]:
    """The area's figures counted from the source tables (the code before the tallies)."""
    await db.rollback()  # read what is committed now
    aq = svc.area_query(
        Actor(id=uuid.uuid4(), kind="user", role=Role.county, area_code=COUNTY, session_id=uuid.uuid4()), area
    )
    total = svc.Counts()
    for c in (await ref.compute(db, aq, *PERIOD_DAYS)).values():
        total.add(c)
    return svc.render(total, *PERIOD_DAYS)


async def assert_as_reference(db, reader: AsyncClient) -> dict[str, dict[str, Any]]:
    out = {}
    for area in (RECEIVING, TOWNSHIP):
        got = await figures(reader, area)
        want = await reference(db, area)
        assert {k: got[k] for k in want} == want, area
        out[area] = got
    return out


async def inflow_women(db) -> list[tuple[str, str]]:
    await db.rollback()
    rows = (await db.execute(select(IndicatorInflowWoman))).scalars().all()
    return [(str(r.migrant_id), r.village_code) for r in rows]


async def status_of(db, ident: str) -> str:
    await db.rollback()
    return (await db.get(Migrant, uuid.UUID(ident))).status


async def test_a_waiting_or_refused_request_counts_nowhere_until_confirmed(client_as, db):
    origin_cadre = await client_as("village", ORIGIN)
    v = await victim_in(origin_cadre, ORIGIN, db)  # a woman of 32
    receiving = await client_as("village", RECEIVING)
    reader = await client_as("county", COUNTY)
    before = await assert_as_reference(db, reader)
    assert before[RECEIVING]["migrants"]["inflow_new"] == 0

    # a request waiting for her release: no figure of the village or its township moves
    first = (await receiving.post("/api/v1/migrants", json=request_body(v.number))).json()
    assert await status_of(db, first["id"]) == "pending_release"
    assert await assert_as_reference(db, reader) == before
    assert await inflow_women(db) == []

    # refused (closed the day of refusal): still nothing, neither an entry nor an exit
    r = await origin_cadre.post(f"/api/v1/migrants/{first['id']}/refuse", json={"reason": "本人未迁出"})
    assert r.status_code == 200, r.text
    assert await status_of(db, first["id"]) == "refused"
    assert await assert_as_reference(db, reader) == before
    assert await inflow_women(db) == []

    # filed again and confirmed: one entry from its moved_on, one inflow woman 15-49
    second = (await receiving.post("/api/v1/migrants", json=request_body(v.number))).json()
    assert second["status"] == "pending_release"
    assert await assert_as_reference(db, reader) == before
    r = await origin_cadre.post(f"/api/v1/migrants/{second['id']}/confirm", json={})
    assert r.status_code == 200, r.text
    assert await status_of(db, second["id"]) == "open"
    after = await assert_as_reference(db, reader)
    for area in (RECEIVING, TOWNSHIP):
        assert after[area]["migrants"] == {
            **before[area]["migrants"],
            "inflow_open": before[area]["migrants"]["inflow_open"] + 1,
            "inflow_new": before[area]["migrants"]["inflow_new"] + 1,
            "inflow_women_15_49": before[area]["migrants"]["inflow_women_15_49"] + 1,
        }, area
        assert sum(p["value"] for p in after[area]["inflow_new_series"]) == 1
        assert after[area]["population"] == before[area]["population"] + 1  # she moved in
    assert await inflow_women(db) == [(second["id"], RECEIVING)]

"""Dismissing data-quality faults (contract v1.1, "Merge without dead ends"): a dismissed fault
stays away until the fields it rests on change; who may dismiss, in which scope."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from app.core import clock
from app.models.households import DataQualityDismissal
from tests.factories import id_number
from tests.households.test_api import TS1, V1, V2, V_OTHER_TS, mk_household, mk_person, problem

BORN = date(1979, 9, 9)


@pytest.fixture
async def cast(client_as):
    class Cast:
        pass

    c = Cast()
    c.v1 = await client_as("village", V1)
    c.v2 = await client_as("village", V2)
    c.ts = await client_as("township", TS1)
    c.county = await client_as("county", "430122000000")
    c.other_ts = await client_as("township", V_OTHER_TS[:9] + "000")
    c.other_county = await client_as("county", "430181000000")
    return c


async def faults(c, **params) -> list[dict]:
    r = await c.get("/api/v1/data-quality", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def keys(items: list[dict]) -> set[tuple[str, str]]:
    return {(f["kind"], f["id"]) for f in items}


async def dismiss(c, kind: str, entity: str, ident: str, reason: str = "不是同一人", **kw):
    return await c.post(
        "/api/v1/data-quality/dismiss",
        json={"kind": kind, "entity": entity, "id": ident, "reason": reason, **kw},
    )


async def figure_matches_list(c, area: str = TS1) -> int:
    """The figures' ``data_quality_open`` counts each record once per kind with an open,
    undismissed fault: exactly the distinct (kind, id) of the list."""
    today = clock.today()
    r = await c.get(
        "/api/v1/indicators",
        params={"area_code": area, "from": date(today.year, 1, 1).isoformat(), "to": today.isoformat()},
    )
    assert r.status_code == 200, r.text
    n = r.json()["data_quality_open"]
    assert n == len(keys(await faults(c, area_code=area)))
    return n


async def look_alikes(c) -> tuple[dict, dict]:
    """Two women of one name and birth date in two villages, neither with an ID number."""
    h1 = await mk_household(c.v1)
    h2 = await mk_household(c.v2, V2)
    a = await mk_person(c.v1, h1["id"], born=BORN, name="刘芳", with_id=False)
    b = await mk_person(c.v2, h2["id"], born=BORN, name="刘芳", with_id=False)
    return a, b


async def test_dismissed_duplicate_pair_stays_away_until_its_fields_change(cast, db):
    a, b = await look_alikes(cast)
    dup = {("likely_duplicate", a["id"]), ("likely_duplicate", b["id"])}
    assert keys(await faults(cast.ts, kind="likely_duplicate")) == dup

    before = await figure_matches_list(cast.ts)
    r = await dismiss(cast.ts, "likely_duplicate", "person", a["id"])
    assert r.status_code == 201, r.text
    assert await figure_matches_list(cast.ts) == before - 2
    rows = r.json()
    assert [(d["id"], d["other_id"]) for d in rows] == [(a["id"], b["id"]), (b["id"], a["id"])]
    assert all(d["reason"] == "不是同一人" and d["dismissed_by"] == str(cast.ts.user.id) for d in rows)
    # The pair is quiet on both sides, for the township, the county and the villages.
    for c in (cast.ts, cast.county, cast.v1, cast.v2):
        assert keys(await faults(c, kind="likely_duplicate")) == set()
    shown = await faults(cast.ts, kind="likely_duplicate", include_dismissed="true")
    assert keys(shown) == dup
    for f in shown:
        assert f["dismissed"]["reason"] == "不是同一人"
        assert f["dismissed"]["by"] == str(cast.ts.user.id)
        assert f["dismissed"]["at"]
    assert all(f.get("dismissed") is None for f in await faults(cast.ts))  # nothing else dismissed
    stored = (await db.execute(select(DataQualityDismissal))).scalars().all()
    assert {(str(d.entity_id), d.village_code) for d in stored} == {(a["id"], V1), (b["id"], V2)}
    assert all("刘芳" not in d.fingerprint and len(d.fingerprint) == 64 for d in stored)

    # A third look-alike is a new pair: raised (with both of its partners), the old pair stays quiet.
    h3 = await mk_household(cast.v1)
    c3 = await mk_person(cast.v1, h3["id"], born=BORN, name="刘芳", with_id=False)
    now = await faults(cast.ts, kind="likely_duplicate")
    assert keys(now) == dup | {("likely_duplicate", c3["id"])}
    assert sorted(f["id"] for f in now if f["id"] != c3["id"]) == sorted([a["id"], b["id"]])
    r = await dismiss(cast.ts, "likely_duplicate", "person", c3["id"], other_id=a["id"])
    assert r.status_code == 201, r.text
    assert {(d["id"], d["other_id"]) for d in r.json()} == {(c3["id"], a["id"]), (a["id"], c3["id"])}
    left = await faults(cast.ts, kind="likely_duplicate")
    assert {f["id"] for f in left} == {b["id"], c3["id"]}  # the pair b–c3 is still open
    await figure_matches_list(cast.ts)

    # A field the fault rests on changes (a gets her ID number): the pair a–b is raised again.
    r = await cast.v1.patch(
        f"/api/v1/persons/{a['id']}",
        json={"id_number": id_number(BORN, "female")},
        headers={"If-Match": f'"{a["version"]}"'},
    )
    assert r.status_code == 200, r.text
    again = await faults(cast.ts, kind="likely_duplicate")
    assert a["id"] in {f["id"] for f in again}
    assert all(f.get("dismissed") is None for f in again)
    await figure_matches_list(cast.ts)
    await figure_matches_list(cast.county, "430122000000")


async def test_dismissed_household_fault_returns_when_its_members_change(cast):
    h = await mk_household(cast.v1)
    assert ("household_without_head", h["id"]) in keys(await faults(cast.ts))
    r = await dismiss(cast.ts, "household_without_head", "household", h["id"], reason="户主外出，暂缺")
    assert r.status_code == 201, r.text
    assert r.json()[0]["other_id"] is None
    assert ("household_without_head", h["id"]) not in keys(await faults(cast.ts))
    assert ("household_without_head", h["id"]) not in keys(await faults(cast.v1))
    await figure_matches_list(cast.ts)
    await figure_matches_list(cast.v1, V1)
    listed = await faults(cast.ts, include_dismissed="true", kind="household_without_head")
    assert [(f["id"], f["dismissed"]["reason"]) for f in listed] == [(h["id"], "户主外出，暂缺")]
    # A member joins (not as head): the fault rests on the members, it is raised again.
    await mk_person(cast.v1, h["id"], relation_to_head="子", born=date(2001, 1, 1), sex="male")
    assert ("household_without_head", h["id"]) in keys(await faults(cast.ts))
    # Dismissed again, on the new state, with a new reason: the latest dismissal holds.
    r = await dismiss(cast.county, "household_without_head", "household", h["id"], reason="已核实")
    assert r.status_code == 201, r.text
    listed = await faults(cast.county, include_dismissed="true", kind="household_without_head")
    assert [(f["id"], f["dismissed"]["reason"]) for f in listed] == [(h["id"], "已核实")]
    assert listed[0]["dismissed"]["by"] == str(cast.county.user.id)


async def test_who_may_dismiss_and_where(cast, db):
    a, _b = await look_alikes(cast)
    h = await mk_household(cast.v1)
    # A village cadre may list faults but not dismiss them.
    problem(await dismiss(cast.v1, "likely_duplicate", "person", a["id"]), 403, "forbidden")
    # Out of scope: another township, another county → the record does not exist for them.
    problem(await dismiss(cast.other_ts, "likely_duplicate", "person", a["id"]), 404, "not_found")
    problem(
        await dismiss(cast.other_county, "household_without_head", "household", h["id"]), 404, "not_found"
    )
    # In scope but no such open fault, or the wrong entity for the kind.
    problem(await dismiss(cast.ts, "over_110_alive", "person", a["id"]), 404, "not_found")
    problem(await dismiss(cast.ts, "likely_duplicate", "household", h["id"]), 422, "validation_failed")
    problem(
        await dismiss(cast.ts, "likely_duplicate", "person", a["id"], reason=""), 422, "validation_failed"
    )
    problem(await dismiss(cast.ts, "no_such_kind", "person", a["id"]), 422, "validation_failed")
    problem(
        await dismiss(cast.ts, "household_without_head", "household", h["id"], other_id=a["id"]),
        422,
        "validation_failed",
    )
    assert (await db.execute(select(DataQualityDismissal))).scalars().all() == []
    assert len(await faults(cast.ts, kind="likely_duplicate")) == 2

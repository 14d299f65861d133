"""County figures against a small county counted by hand."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date

import pytest
from sqlalchemy import update

from app.core import clock
from app.core.db import make_sessionmaker
from app.models.checkups import CheckupRound
from app.models.common import place_columns
from app.models.households import Household
from app.models.migrants import Migrant
from tests.conftest import IS_PG
from tests.factories import make_client
from tests.households.test_api import COUNTY, TS1, V1, V2, V_OTHER_TS, mk_household, mk_person, problem

YEAR = {"from": "2025-01-01", "to": "2025-12-31"}
DEC = {"from": "2025-12-01", "to": "2025-12-31"}
V_ELSEWHERE = "430181100201"  # another county


@pytest.fixture
async def county_fixture(client_as, db):
    """Counted by hand (see each line); returns the county user's client."""
    c1 = await client_as("village", V1)
    c2 = await client_as("village", V2)
    c3 = await client_as("village", V_OTHER_TS)
    county = await client_as("county", COUNTY)
    a = await mk_household(c1)
    m = await mk_person(c1, a["id"], born=date(1990, 1, 1), name="母亲")  # head, married woman
    f = await mk_person(c1, a["id"], sex="male", born=date(1988, 1, 1), name="父亲", relation_to_head="配偶")
    g = await mk_person(
        c1, a["id"], born=date(1940, 5, 5), name="祖母", relation_to_head="母亲", marital_status="widowed"
    )
    assert (
        await c1.post("/api/v1/deaths", json={"person_id": g["id"], "death_date": "2025-01-01"})
    ).status_code == 201
    b1 = await c1.post(
        "/api/v1/births",
        json={
            "mother_id": m["id"],
            "father_id": f["id"],
            "child": {"sex": "male", "birth_date": "2025-03-15", "name": "大宝"},
        },
    )
    b2 = await c1.post(
        "/api/v1/births",
        json={
            "mother_id": m["id"],
            "father_id": f["id"],
            "child": {"sex": "female", "birth_date": "2025-12-31", "name": "二宝"},
        },
    )
    assert (b1.json()["birth_order"], b2.json()["birth_order"]) == (1, 2)
    b = await mk_household(c2, V2)
    w = await mk_person(c2, b["id"], born=date(1985, 2, 2), name="王芳")
    x = await mk_person(
        c2,
        b["id"],
        sex="male",
        born=date(1950, 1, 1),
        name="王老",
        relation_to_head="父亲",
        marital_status="widowed",
    )
    assert (
        await c2.post("/api/v1/deaths", json={"person_id": x["id"], "death_date": "2024-12-31"})
    ).status_code == 201
    assert (
        await c2.post(
            "/api/v1/births",
            json={"mother_id": w["id"], "child": {"sex": "female", "birth_date": "2025-06-01"}},
        )
    ).status_code == 201
    await mk_household(c2, V2, address="空户")  # no head, no living member: 2 data-quality faults
    c = await mk_household(c3, V_OTHER_TS)
    y = await mk_person(c3, c["id"], born=date(1995, 7, 7), name="杨梅")
    db.add(
        Migrant(
            person_id=uuid.UUID(y["id"]),
            direction="inflow",
            moved_on=date(2025, 5, 5),
            origin_area_code="440300000000",
            **place_columns(V_OTHER_TS),
        )
    )
    db.add(
        Migrant(
            person_id=uuid.UUID(f["id"]),
            direction="outflow",
            status="closed",
            moved_on=date(2025, 2, 2),
            closed_on=date(2025, 8, 8),
            close_reason="returned",
            destination="深圳",
            **place_columns(V1),
        )
    )
    await db.commit()
    for when in ("2025-07-07T08:00:00+00:00", "2025-12-01T08:00:00+00:00"):
        assert (
            await c1.post(
                "/api/v1/visits", json={"household_id": a["id"], "visited_at": when, "purpose": "postnatal"}
            )
        ).status_code == 201
    assert (
        await c2.post(
            "/api/v1/visits",
            json={
                "household_id": b["id"],
                "visited_at": "2024-12-31T10:00:00+00:00",
                "purpose": "elder_care",
            },
        )
    ).status_code == 201
    ts = await client_as("township", TS1)
    # No round may close before today: opened over today's window, then moved back to spring 2025.
    today = clock.today()
    rnd = await ts.post(
        "/api/v1/checkup-rounds",
        json={
            "area_code": TS1,
            "name": "2025春季三查",
            "opens_on": today.isoformat(),
            "closes_on": today.isoformat(),
            "items": ["iud"],
        },
    )
    assert rnd.json()["appointments_created"] == 2  # 母亲 and 王芳 (married, 15-49, in the township)
    await db.execute(
        update(CheckupRound)
        .where(CheckupRound.id == uuid.UUID(rnd.json()["id"]))
        .values(opens_on=date(2025, 3, 1), closes_on=date(2025, 4, 30))
    )
    await db.commit()
    appts = (await ts.get("/api/v1/checkup-appointments", params={"round_id": rnd.json()["id"]})).json()[
        "items"
    ]
    mine = next(p for p in appts if p["person_id"] == m["id"])
    r = await c1.post(
        f"/api/v1/checkup-appointments/{mine['id']}/result",
        json={"checked_on": "2025-03-10", "place": "station", "consent": True, "items": {"iud": "in_place"}},
    )
    assert r.status_code == 200
    return county


EXPECTED_YEAR = {
    "population": 7,  # 母亲 父亲 大宝 二宝(born on the last day) 王芳 her baby 杨梅
    "households": 4,
    "married_women_15_49": 3,  # 母亲 王芳 杨梅
    "births": {"total": 3, "first": 2, "second": 1, "third_plus": 0, "boys": 1, "girls": 2},
    "sex_ratio_at_birth": None,  # 3 births: below the 20 the ratio needs
    "deaths": 1,  # 祖母 on the first day; 王老 died the day before the period
    "natural_growth_rate_per_mille": 333.3,  # (3-1) / ((5+7)/2) * 1000
    "migrants": {
        "inflow_open": 1,
        "outflow_open": 0,
        "inflow_new": 1,
        "outflow_new": 1,
        "inflow_women_15_49": 1,
    },
    "checkups": {"due": 2, "done": 1, "rate": 50.0},
    "claims": {},
    "visits": 2,
    "data_quality_open": 2,
}


def figures(body: dict) -> dict:
    return {k: body[k] for k in EXPECTED_YEAR}


async def test_year_figures_hand_counted(county_fixture):
    r = await county_fixture.get("/api/v1/indicators", params={"area_code": COUNTY, **YEAR})
    assert r.status_code == 200, r.text
    body = r.json()
    assert figures(body) == EXPECTED_YEAR
    assert body["area_code"] == COUNTY and body["from"] == "2025-01-01" and "children" not in body


async def test_month_figures_and_period_edges(county_fixture):
    body = (await county_fixture.get("/api/v1/indicators", params={"area_code": COUNTY, **DEC})).json()
    assert body["births"] == {"total": 1, "first": 0, "second": 1, "third_plus": 0, "boys": 0, "girls": 1}
    assert body["deaths"] == 0 and body["visits"] == 1 and body["population"] == 7
    # (1 - 0) / ((6 + 7) / 2) * 1000, annualised over 31 days
    assert body["natural_growth_rate_per_mille"] == round(1 / 6.5 * 1000 * 365.25 / 31, 1)
    jan = (
        await county_fixture.get(
            "/api/v1/indicators", params={"area_code": COUNTY, "from": "2025-01-01", "to": "2025-01-01"}
        )
    ).json()
    assert jan["deaths"] == 1 and jan["births"]["total"] == 0


async def test_breakdown_sums_to_the_county(county_fixture):
    body = (
        await county_fixture.get(
            "/api/v1/indicators", params={"area_code": COUNTY, "breakdown": "true", **YEAR}
        )
    ).json()
    kids = {c["area_code"]: c for c in body["children"]}
    assert set(kids) == {"430122100000", "430122101000", "430122102000"}
    assert kids["430122100000"]["population"] == 6 and kids["430122101000"]["population"] == 1
    assert kids["430122102000"]["population"] == 0 and kids["430122102000"]["checkups"]["rate"] is None
    for key in ("population", "households", "married_women_15_49", "deaths", "visits", "data_quality_open"):
        assert sum(k[key] for k in kids.values()) == body[key], key
    for key in body["births"]:
        assert sum(k["births"][key] for k in kids.values()) == body["births"][key]
    ts = (
        await county_fixture.get("/api/v1/indicators", params={"area_code": TS1, "breakdown": "true", **YEAR})
    ).json()
    villages = {c["area_code"]: c["population"] for c in ts["children"]}
    assert villages == {V1: 4, V2: 2, "430122100203": 0}


async def test_series_with_zero_months(county_fixture):
    r = await county_fixture.get(
        "/api/v1/indicators/series",
        params={"area_code": COUNTY, "metric": "births", "granularity": "month", **YEAR},
    )
    assert r.status_code == 200
    points = r.json()["points"]
    assert [p["month"] for p in points] == [f"2025-{m:02d}" for m in range(1, 13)]
    assert {p["month"]: p["value"] for p in points if p["value"]} == {
        "2025-03": 1,
        "2025-06": 1,
        "2025-12": 1,
    }
    visits = (
        await county_fixture.get(
            "/api/v1/indicators/series", params={"area_code": COUNTY, "metric": "visits", **YEAR}
        )
    ).json()["points"]
    assert sum(p["value"] for p in visits) == 2
    problem(
        await county_fixture.get("/api/v1/indicators/series", params={"metric": "gossip", **YEAR}),
        422,
        "invalid_metric",
    )


async def test_csv_with_bom_and_chinese_headers(county_fixture):
    r = await county_fixture.get(
        "/api/v1/indicators.csv", params={"area_code": COUNTY, "breakdown": "true", "lang": "zh", **YEAR}
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["区划代码", "名称", "总人口"]
    assert rows[1][0] == COUNTY and rows[1][2] == "7"
    assert len(rows) == 1 + 1 + 3
    en = await county_fixture.get(
        "/api/v1/indicators.csv", params={"area_code": COUNTY, **YEAR}, headers={"Accept-Language": "en"}
    )
    assert en.content.decode("utf-8-sig").splitlines()[0].startswith("area_code,name,population")
    # Chinese by default, the same as ``lang=zh``
    zh = await county_fixture.get("/api/v1/indicators.csv", params={"area_code": COUNTY, **YEAR})
    assert zh.content.decode("utf-8-sig").splitlines()[0].startswith("区划代码,名称,总人口")


async def test_etag_and_304(county_fixture, client_as):
    params = {"area_code": COUNTY, **YEAR}
    r = await county_fixture.get("/api/v1/indicators", params=params)
    tag = r.headers["etag"]
    assert r.headers["cache-control"] == "private, max-age=60"
    again = await county_fixture.get("/api/v1/indicators", params=params, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    # A write changes the figures' validator at once.
    c1 = await client_as("village", V1)
    await mk_household(c1)
    fresh = await county_fixture.get("/api/v1/indicators", params=params, headers={"If-None-Match": tag})
    assert fresh.status_code == 200 and fresh.json()["households"] == 5


async def test_dashboard_reads_figures_and_nothing_else(county_fixture, anon, db):
    client, secret = await make_client(db, role="dashboard", area_code="430122100000")
    await db.commit()
    tok = (
        await anon.post(
            "/api/v1/auth/token",
            data={"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": secret},
        )
    ).json()["access_token"]
    h = {"Authorization": f"Bearer {tok}"}
    r = await anon.get("/api/v1/indicators", params=YEAR, headers=h)
    assert r.status_code == 200 and r.json()["area_code"] == TS1 and r.json()["population"] == 6
    problem(
        await anon.get("/api/v1/indicators", params={"area_code": COUNTY, **YEAR}, headers=h),
        404,
        "not_found",
    )
    for url in (
        "/api/v1/persons",
        "/api/v1/households",
        "/api/v1/visits",
        "/api/v1/data-quality",
        "/api/v1/checkup-appointments",
        "/api/v1/tasks",
    ):
        problem(await anon.get(url, headers=h), 403, "forbidden")
    assert "id_number" not in r.text and "name" not in str(r.json().get("children", ""))


async def test_township_cannot_read_another_township(client_as, areas):
    ts = await client_as("township", TS1)
    problem(
        await ts.get("/api/v1/indicators", params={"area_code": "430122101000", **YEAR}), 404, "not_found"
    )
    problem(
        await ts.get(
            "/api/v1/indicators", params={"area_code": TS1, "from": "2025-02-01", "to": "2025-01-01"}
        ),
        422,
        "invalid_period",
    )
    assert (await ts.get("/api/v1/indicators", params={"area_code": V1, **YEAR})).status_code == 200


async def test_months_and_days_are_china_time(client_as):
    c1 = await client_as("village", V1)
    county = await client_as("county", COUNTY)
    h = await mk_household(c1)
    # 2025-06-30 17:00 UTC is 2025-07-01 01:00 in China: a July visit, and a 1 July visit.
    await c1.post(
        "/api/v1/visits",
        json={"household_id": h["id"], "visited_at": "2025-06-30T17:00:00+00:00", "purpose": "other"},
    )
    points = (
        await county.get(
            "/api/v1/indicators/series", params={"metric": "visits", "from": "2025-06-01", "to": "2025-07-31"}
        )
    ).json()["points"]
    assert points == [{"month": "2025-06", "value": 0}, {"month": "2025-07", "value": 1}]
    july_first = (
        await county.get("/api/v1/indicators", params={"from": "2025-07-01", "to": "2025-07-01"})
    ).json()
    june_last = (
        await county.get("/api/v1/indicators", params={"from": "2025-06-30", "to": "2025-06-30"})
    ).json()
    assert (july_first["visits"], june_last["visits"]) == (1, 0)


async def test_etag_belongs_to_the_county(county_fixture, client_as):
    """Writes in another county leave this county's validator alone."""
    params = {"area_code": COUNTY, **YEAR}
    tag = (await county_fixture.get("/api/v1/indicators", params=params)).headers["etag"]
    elsewhere = await client_as("village", V_ELSEWHERE)
    await mk_household(elsewhere, V_ELSEWHERE)
    again = await county_fixture.get("/api/v1/indicators", params=params, headers={"If-None-Match": tag})
    assert again.status_code == 304


@pytest.mark.skipif(not IS_PG, reason="concurrent writers: PostgreSQL (SQLite serializes them)")
async def test_a_write_committed_late_still_changes_the_etag(client_as, engine):
    """A transaction that wrote before another but commits after it: its write must still
    invalidate the figures read in between (a validator from the latest audit timestamp would
    keep answering 304 with stale figures)."""
    county = await client_as("county", COUNTY)
    cadre = await client_as("village", V1)
    params = {"area_code": COUNTY, **YEAR}
    async with make_sessionmaker(engine)() as late:
        late.add(Household(address="晚提交", household_type="rural", **place_columns(V1)))
        await late.flush()  # stamped (audit event) now, committed below
        await mk_household(cadre)  # a later write, committed first
        first = await county.get("/api/v1/indicators", params=params)
        assert first.json()["households"] == 1
        await late.commit()
    r = await county.get(
        "/api/v1/indicators", params=params, headers={"If-None-Match": first.headers["etag"]}
    )
    assert r.status_code == 200 and r.json()["households"] == 2

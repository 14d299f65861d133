"""One clock (issue 15, item 1): business dates are China's, whatever the host's time zone.

Every date-sensitive case runs with the host in UTC and in Los Angeles (far from China), and the
service's clock frozen at 00:30 and at 23:30 China time on 8 December 2026: at 00:30 a host in UTC
or Los Angeles is still on 7 December (the reported bug: a checkup result dated China's today was
refused as "in the future"), at 23:30 a host in UTC is on the 8th too but Los Angeles is not.
A case that read the host's date, UTC's date or a fixed "+8 hours" fails in at least one cell.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.core import clock
from app.models.checkups import CheckupAppointment
from app.models.visits import Visit
from app.services import indicator_upkeep
from tests.claims.test_api import Staff, elder, mk_claim, programmes, step, to_status
from tests.households.test_api import COUNTY, TS1, V1, mk_household, mk_person, problem

__all__ = ["programmes"]  # a fixture of the claims tests, used here

CST = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 12, 8)
MOMENTS = {
    "00:30": datetime(2026, 12, 8, 0, 30, tzinfo=CST),
    "23:30": datetime(2026, 12, 8, 23, 30, tzinfo=CST),
}
HOSTS = ("UTC", "America/Los_Angeles")


@pytest.fixture(params=HOSTS)
def host_tz(request: pytest.FixtureRequest) -> Iterator[str]:
    """The host's time zone (``TZ`` + ``time.tzset()``), restored afterwards."""
    yield from _host(request.param)


def _host(name: str) -> Iterator[str]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield name
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.fixture(params=sorted(MOMENTS))
def frozen(request: pytest.FixtureRequest, host_tz: str) -> Iterator[datetime]:
    """The clock frozen at 00:30 or 23:30 China time on 8 December 2026 (on a host in UTC or
    Los Angeles)."""
    with clock.freeze(MOMENTS[request.param]) as at:
        yield at


@pytest.fixture
async def staff(client_as, programmes) -> Staff:  # type: ignore[no-untyped-def]  # noqa: ARG001
    s = Staff()
    s.village = await client_as("village", V1)
    s.township = await client_as("township", TS1)
    s.county = await client_as("county", COUNTY)
    s.treasurer = await client_as("county", COUNTY)
    return s


# --- the clock itself -----------------------------------------------------------------------------


def test_business_today_is_china_whatever_the_host(frozen: datetime, host_tz: str) -> None:
    assert clock.today() == DAY
    assert clock.now() == frozen and clock.now().utcoffset() == timedelta(0)
    assert clock.local_date(frozen) == DAY
    assert clock.local_month(frozen) == 202612
    assert clock.start_of_day(DAY) == datetime(2026, 12, 7, 16, 0, tzinfo=ZoneInfo("UTC"))
    # the host's own idea of the date is not China's at 00:30 (UTC and Los Angeles: the 7th)
    if frozen.hour == 0:
        assert datetime.fromtimestamp(frozen.timestamp()).date() == date(2026, 12, 7)
    assert indicator_upkeep.local_month(datetime(2026, 11, 30, 16, 30, tzinfo=ZoneInfo("UTC"))) == 202612
    assert indicator_upkeep.local_month(datetime(2026, 11, 30, 15, 59)) == 202611  # naive = UTC


def test_freeze_needs_an_instant_and_ends() -> None:
    with pytest.raises(ValueError, match="aware"), clock.freeze(datetime(2026, 12, 8, 0, 30)):
        pass
    with clock.freeze(MOMENTS["00:30"]):
        assert clock.today() == DAY
    assert clock.now() != MOMENTS["00:30"]


def test_a_zone_with_daylight_saving_is_refused_on_sqlite() -> None:
    from app.core.config import Settings

    with pytest.raises(ValueError, match="time zone"):
        Settings(database_url="sqlite+aiosqlite:///x.db", timezone="Europe/Berlin")
    with pytest.raises(ValueError, match="not a time zone"):
        Settings(timezone="Mars/Olympus")
    assert (
        Settings(database_url="postgresql+asyncpg://x/y", timezone="Europe/Berlin").timezone
        == "Europe/Berlin"
    )
    assert Settings().timezone == "Asia/Shanghai"


# --- checkups ----------------------------------------------------------------------------------


async def _round(township, **kw) -> str:  # type: ignore[no-untyped-def]
    body = {
        "area_code": TS1,
        "name": "2026年第四季度三查",
        "opens_on": (DAY - timedelta(days=30)).isoformat(),
        "closes_on": (DAY + timedelta(days=30)).isoformat(),
        "items": ["iud", "pregnancy"],
        **kw,
    }
    r = await township.post("/api/v1/checkup-rounds", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_checkup_result_of_china_today_is_accepted(frozen, client_as, db) -> None:  # type: ignore[no-untyped-def]
    cadre = await client_as("village", V1)
    township = await client_as("township", TS1)
    h = await mk_household(cadre)
    await mk_person(cadre, h["id"], born=date(1990, 5, 17), relation_to_head="户主")
    rid = await _round(township)
    (appt,) = (await cadre.get("/api/v1/checkup-appointments", params={"round_id": rid})).json()["items"]
    url = f"/api/v1/checkup-appointments/{appt['id']}/result"
    body = {"place": "station", "consent": True, "items": {"iud": "in_place", "pregnancy": "negative"}}
    tomorrow = (DAY + timedelta(days=1)).isoformat()
    problem(await cadre.post(url, json={**body, "checked_on": tomorrow}), 422, "validation_failed")
    r = await cadre.post(url, json={**body, "checked_on": DAY.isoformat()})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["checked_on"]) == ("done", "2026-12-08")
    stored = (
        await db.execute(select(CheckupAppointment).where(CheckupAppointment.id == uuid.UUID(appt["id"])))
    ).scalar_one()
    await db.refresh(stored)
    assert stored.checked_on == DAY


async def test_a_round_is_overdue_from_the_day_after_it_closes(frozen, client_as) -> None:  # type: ignore[no-untyped-def]
    """A round closing on China's today is still open; on China's next day it is overdue."""
    cadre = await client_as("village", V1)
    township = await client_as("township", TS1)
    h = await mk_household(cadre)
    await mk_person(cadre, h["id"], born=date(1990, 5, 17), relation_to_head="户主")
    rid = await _round(township, closes_on=DAY.isoformat())
    got = (await township.get(f"/api/v1/checkup-rounds/{rid}")).json()
    assert (got["due"], got["overdue"]) == (1, 0), got
    assert [
        a["status"]
        for a in (await cadre.get("/api/v1/checkup-appointments", params={"round_id": rid})).json()["items"]
    ] == ["scheduled"]
    next_morning = datetime(2026, 12, 9, 0, 30, tzinfo=CST)
    with clock.freeze(next_morning):
        got = (await township.get(f"/api/v1/checkup-rounds/{rid}")).json()
        assert got["overdue"] == 1, got
        statuses = (await cadre.get("/api/v1/checkup-appointments", params={"round_id": rid})).json()["items"]
        assert [a["status"] for a in statuses] == ["overdue"]


# --- visits, figures and their buckets ---------------------------------------------------------


async def _visit(cadre, hid: str, at: str) -> dict:  # type: ignore[no-untyped-def]
    r = await cadre.post(
        "/api/v1/visits",
        json={"household_id": hid, "visited_at": at, "purpose": "postnatal", "notes": "走访"},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _figures(c, **params) -> dict:  # type: ignore[no-untyped-def]
    r = await c.get("/api/v1/indicators", params={"area_code": COUNTY, **params})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _series(c, metric: str, start: str, end: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    r = await c.get(
        "/api/v1/indicators/series", params={"area_code": COUNTY, "metric": metric, "from": start, "to": end}
    )
    assert r.status_code == 200, r.text
    return {p["month"]: p["value"] for p in r.json()["points"]}


async def test_a_visit_at_0030_is_that_days_and_months(frozen, client_as, db) -> None:  # type: ignore[no-untyped-def]
    cadre = await client_as("village", V1)
    county = await client_as("county", COUNTY)
    h = await mk_household(cadre)
    # 00:30 on 8 December and on 1 December, China time (the 7th and 30 November in UTC)
    v8 = await _visit(cadre, h["id"], "2026-12-08T00:30:00+08:00")
    await _visit(cadre, h["id"], "2026-12-01T00:30:00+08:00")
    problem(
        await cadre.post(
            "/api/v1/visits",
            json={
                "household_id": h["id"],
                "visited_at": (frozen + timedelta(hours=2)).isoformat(),
                "purpose": "postnatal",
            },
        ),
        422,
        "validation_failed",
    )
    assert (await _figures(county, **{"from": "2026-12-08", "to": "2026-12-08"}))["visits"] == 1
    assert (await _figures(county, **{"from": "2026-12-07", "to": "2026-12-07"}))["visits"] == 0
    assert (await _figures(county, **{"from": "2026-11-30", "to": "2026-11-30"}))["visits"] == 0
    assert (await _figures(county, **{"from": "2026-12-01", "to": "2026-12-31"}))["visits"] == 2
    assert (await _figures(county, **{"from": "2026-11-01", "to": "2026-11-30"}))["visits"] == 0
    # the default period ends on China's today and starts on 1 January of China's year
    default = await _figures(county)
    assert (default["from"], default["to"], default["visits"]) == ("2026-01-01", "2026-12-08", 2)
    # months: December's (the tally) and the live count agree
    assert await _series(county, "visits", "2026-11-01", "2026-12-31") == {"2026-11": 0, "2026-12": 2}
    assert await _series(county, "visits", "2026-11-15", "2026-12-08") == {"2026-11": 0, "2026-12": 2}
    # a bare day in a list filter is China's day
    listed = (await cadre.get("/api/v1/visits", params={"from": "2026-12-08"})).json()["items"]
    assert [v["id"] for v in listed] == [v8["id"]]
    listed = (await cadre.get("/api/v1/visits", params={"to": "2026-12-08"})).json()["items"]
    assert v8["id"] not in [v["id"] for v in listed] and len(listed) == 1
    # the tallies the figures read put it in December (bucket 202612), as a rebuild does
    async with db.bind.connect() as conn:  # type: ignore[union-attr]
        months = sorted(
            (await conn.execute(select(Visit.visited_at))).scalars().all(), key=lambda t: t.timestamp()
        )
    assert [indicator_upkeep.local_month(t) for t in months] == [202612, 202612]


async def test_same_answer_and_etag_whatever_the_host(client_as) -> None:  # type: ignore[no-untyped-def]
    """The figures, the series and their ETags do not change with the host's time zone."""
    cadre = await client_as("village", V1)
    county = await client_as("county", COUNTY)
    h = await mk_household(cadre)
    with clock.freeze(MOMENTS["00:30"]):
        await _visit(cadre, h["id"], "2026-12-08T00:30:00+08:00")
        await _visit(cadre, h["id"], "2026-11-30T23:59:00+08:00")
    for moment in MOMENTS.values():
        seen = set()
        for host in HOSTS:
            for _ in _host(host):
                with clock.freeze(moment):
                    r1 = await county.get("/api/v1/indicators", params={"area_code": COUNTY})
                    r2 = await county.get(
                        "/api/v1/indicators/series", params={"area_code": COUNTY, "metric": "visits"}
                    )
                    r3 = await county.get(
                        "/api/v1/indicators", params={"from": "2026-12-08", "to": "2026-12-08"}
                    )
                    assert r1.status_code == r2.status_code == r3.status_code == 200
                    assert r3.json()["visits"] == 1
                    assert {p["month"]: p["value"] for p in r2.json()["points"]}["2026-12"] == 1
                    seen.add((r1.text, r1.headers["etag"], r2.text, r2.headers["etag"], r3.headers["etag"]))
        assert len(seen) == 1, f"the host's time zone changed an answer at {moment}"


# --- claims ------------------------------------------------------------------------------------


async def test_claims_post_and_pay_on_china_days(frozen, staff, db) -> None:  # type: ignore[no-untyped-def]
    mother = await elder(staff.village)
    claim = await mk_claim(staff.village, mother, year=2026)
    posted = await to_status(staff, db, claim["id"], "posted")
    assert (posted["posted_on"], posted["notice_until"]) == ("2026-12-08", "2026-12-14")
    pay = {"paid_on": "2026-12-08", "amount": posted["approved_amount"], "reference": "BANK-1"}
    problem(
        await staff.treasurer.post(f"/api/v1/claims/{claim['id']}/pay", json=pay),
        409,
        "notice_period_running",
    )
    # the notice period is over on China's 15 December, at 00:30 as at 23:30
    with clock.freeze(frozen + timedelta(days=7)):
        problem(
            await staff.treasurer.post(
                f"/api/v1/claims/{claim['id']}/pay", json={**pay, "paid_on": "2026-12-16"}
            ),
            422,
            "validation_failed",
        )
        paid = await step(staff.treasurer, claim["id"], "pay", {**pay, "paid_on": "2026-12-15"})
        assert paid["status"] == "paid"
        figures = await _figures(staff.county, **{"from": "2026-12-15", "to": "2026-12-15"})
        assert figures["claims"]["rural_reward"]["total"] == 1


# --- migrants ----------------------------------------------------------------------------------


async def test_migrant_dates_are_china_days(frozen, client_as) -> None:  # type: ignore[no-untyped-def]
    cadre = await client_as("village", V1)
    h = await mk_household(cadre)
    p = await mk_person(cadre, h["id"])
    body = {"direction": "outflow", "person_id": p["id"], "village_code": V1, "destination": "广东省深圳市"}
    tomorrow = (DAY + timedelta(days=1)).isoformat()
    problem(
        await cadre.post("/api/v1/migrants", json={**body, "moved_on": tomorrow}), 422, "validation_failed"
    )
    r = await cadre.post("/api/v1/migrants", json={**body, "moved_on": DAY.isoformat()})
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    url = f"/api/v1/migrants/{mid}/close"
    problem(
        await cadre.post(url, json={"closed_on": tomorrow, "reason": "returned"}), 422, "validation_failed"
    )
    r = await cadre.post(url, json={"closed_on": DAY.isoformat(), "reason": "returned"})
    assert r.status_code == 200, r.text
    assert r.json()["closed_on"] == "2026-12-08"
    figures = await _figures(cadre, area_code=V1, **{"from": "2026-12-08", "to": "2026-12-08"})
    assert figures["migrants"]["outflow_new"] == 1


# --- data quality and the register -------------------------------------------------------------


async def test_ages_are_counted_on_china_days(frozen, client_as) -> None:  # type: ignore[no-untyped-def]
    """A married woman born on 8 December 2006 is 20 on China's 8 December: no fault; one born
    a day later is; a birth on China's today is no future date."""
    cadre = await client_as("village", V1)
    h = await mk_household(cadre)
    twenty = await mk_person(cadre, h["id"], born=date(2006, 12, 8), name="满二十", relation_to_head="户主")
    young = await mk_person(cadre, h["id"], born=date(2006, 12, 9), name="未满二十", relation_to_head="配偶")
    baby = await mk_person(
        cadre, h["id"], born=DAY, name="新生儿", relation_to_head="子", marital_status="single", with_id=False
    )
    r = await cadre.get("/api/v1/data-quality", params={"area_code": V1})
    assert r.status_code == 200, r.text
    under20 = {f["id"] for f in r.json() if f["kind"] == "married_under_20"}
    assert under20 == {young["id"]}, r.json()
    assert twenty["id"] not in under20 and baby["birth_date"] == "2026-12-08"
    out = await cadre.post(
        "/api/v1/persons",
        json={
            "household_id": h["id"],
            "name": "未来",
            "relation_to_head": "子",
            "marital_status": "single",
            "sex": "male",
            "birth_date": (DAY + timedelta(days=1)).isoformat(),
        },
    )
    problem(out, 422, "validation_failed")
    counts = (await _figures(cadre, area_code=V1))["data_quality_open"]
    assert counts >= 1

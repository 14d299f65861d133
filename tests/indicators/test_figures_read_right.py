"""Figures that read right (issue 15, item 8): claims per programme (paid and in payment), the
sex ratio at birth only on enough births, and the series ``checkup_rate`` and ``beneficiaries``."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest

from app.core import clock
from app.services import indicators as svc
from tests.claims.test_api import Staff, elder, mk_claim, programmes, step, to_status
from tests.households.test_api import COUNTY, TS1, V1, V2, mk_household, mk_person

__all__ = ["programmes"]  # a fixture of the claims tests, used here


@pytest.fixture
async def staff(client_as, programmes) -> Staff:  # type: ignore[no-untyped-def]  # noqa: ARG001
    s = Staff()
    s.village = await client_as("village", V1)
    s.township = await client_as("township", TS1)
    s.county = await client_as("county", COUNTY)
    s.treasurer = await client_as("county", COUNTY)
    return s


async def _figures(c, **params) -> dict:  # type: ignore[no-untyped-def]
    r = await c.get("/api/v1/indicators", params={"area_code": COUNTY, **params})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _series(c, metric: str, start: str, end: str, area: str = COUNTY) -> dict:  # type: ignore[no-untyped-def]
    r = await c.get(
        "/api/v1/indicators/series", params={"area_code": area, "metric": metric, "from": start, "to": end}
    )
    assert r.status_code == 200, r.text
    return {p["month"]: p["value"] for p in r.json()["points"]}


# --- claims ------------------------------------------------------------------------------------


async def test_posted_and_paid_claims_count(staff, db) -> None:  # type: ignore[no-untyped-def]
    """The reported ``{}``: a posted claim has no payment yet. It now counts as in payment
    (approved amount), a paid one as a beneficiary; drafts and submitted claims count nowhere."""
    year = clock.today().year
    period = {"from": f"{year}-01-01", "to": f"{year}-12-31"}
    a = await mk_claim(staff.village, await elder(staff.village, name="王桂兰"), year=year)
    b = await mk_claim(staff.village, await elder(staff.village, name="李秀英"), year=year)
    c = await mk_claim(staff.village, await elder(staff.village, name="张玉梅"), year=year)
    await step(staff.village, c["id"], "submit")  # submitted: no figure
    assert (await _figures(staff.county, **period))["claims"] == {}

    posted = await to_status(staff, db, a["id"], "posted")
    await to_status(staff, db, b["id"], "approved")
    assert posted["approved_amount"] == "960.00"
    got = (await _figures(staff.county, **period))["claims"]
    assert got == {
        "rural_reward": {
            "new": 0,
            "continuing": 0,
            "exited": 0,
            "total": 0,
            "amount": "0.00",
            "in_payment": 2,
            "in_payment_amount": "1920.00",
        }
    }
    # the same in the village's own figures and in the county's breakdown per township
    village = await _figures(staff.village, area_code=V1, **period)
    assert village["claims"]["rural_reward"]["in_payment"] == 2
    county = await _figures(staff.county, breakdown="true", **period)
    by_township = {ch["area_code"]: ch["claims"] for ch in county["children"]}
    assert by_township[TS1]["rural_reward"]["in_payment"] == 2
    assert all(not v for code, v in by_township.items() if code != TS1)
    # a claim year the period does not touch is not in payment in it
    last_year = {"from": f"{year - 1}-01-01", "to": f"{year - 1}-12-31"}
    assert (await _figures(staff.county, **last_year))["claims"] == {}

    paid = await to_status(staff, db, a["id"], "paid")
    assert paid["status"] == "paid"
    got = (await _figures(staff.county, **period))["claims"]["rural_reward"]
    assert (got["total"], got["new"], got["amount"]) == (1, 1, "960.00")
    assert (got["in_payment"], got["in_payment_amount"]) == (1, "960.00")  # b is still approved
    # the default period (1 January to China's today) sees the payment made today
    default = (await _figures(staff.county))["claims"]["rural_reward"]
    assert (default["total"], default["amount"]) == (1, "960.00")
    # the CSV carries the same columns
    r = await staff.county.get(
        "/api/v1/indicators.csv", params={"area_code": COUNTY, **period}, headers={"Accept-Language": "en"}
    )
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0]["claims.rural_reward.total"] == "1"
    assert rows[0]["claims.rural_reward.in_payment"] == "1"
    assert rows[0]["claims.rural_reward.in_payment_amount"] == "960.00"
    # beneficiaries per month: the month of the payment
    month = clock.today().strftime("%Y-%m")
    series = await _series(staff.county, "beneficiaries", f"{year}-01-01", clock.today().isoformat())
    assert series[month] == 1 and sum(series.values()) == 1


# --- sex ratio at birth ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("boys", "girls", "ratio"),
    [
        (0, 0, None),
        (3, 1, None),
        (10, 9, None),
        (10, 10, 100.0),
        (11, 9, 122.2),
        (20, 0, None),
        (12, 8, 150.0),
    ],
)
def test_sex_ratio_rule(boys: int, girls: int, ratio: float | None) -> None:
    assert svc.MIN_BIRTHS_FOR_SEX_RATIO == 20
    assert svc.sex_ratio(boys, girls) == ratio


async def test_sex_ratio_needs_twenty_births(client_as) -> None:  # type: ignore[no-untyped-def]
    c = await client_as("village", V1)
    county = await client_as("county", COUNTY)
    h = await mk_household(c)
    father = await mk_person(
        c, h["id"], sex="male", born=date(1985, 1, 1), name="父亲", relation_to_head="户主"
    )
    first = date(2025, 5, 1)
    for i in range(20):
        mother = await mk_person(
            c, h["id"], born=date(1990, 1, 1) + timedelta(days=i), name=f"母亲{i}", relation_to_head="其他"
        )
        born = first + timedelta(days=i) if i < 19 else date(2025, 6, 10)
        r = await c.post(
            "/api/v1/births",
            json={
                "mother_id": mother["id"],
                "father_id": father["id"],
                "child": {"sex": "male" if i % 2 == 0 else "female", "birth_date": born.isoformat()},
            },
        )
        assert r.status_code == 201, r.text
    may = await _figures(county, **{"from": "2025-05-01", "to": "2025-05-31"})
    assert (may["births"]["total"], may["sex_ratio_at_birth"]) == (19, None)
    both = await _figures(county, **{"from": "2025-05-01", "to": "2025-06-30"})
    assert (both["births"]["boys"], both["births"]["girls"]) == (10, 10)
    assert both["sex_ratio_at_birth"] == 100.0
    doc = (await county.get("/openapi.json")).json()
    assert "20 births" in doc["paths"]["/api/v1/indicators"]["get"]["description"]


# --- series: checkup rate ----------------------------------------------------------------------


async def test_checkup_rate_series(client_as) -> None:  # type: ignore[no-untyped-def]
    c1 = await client_as("village", V1)
    c2 = await client_as("village", V2)
    ts = await client_as("township", TS1)
    county = await client_as("county", COUNTY)
    today = clock.today()
    for c, v in ((c1, V1), (c2, V2)):
        h = await mk_household(c, v)
        await mk_person(c, h["id"], born=date(1990, 1, 1))
    rnd = await ts.post(
        "/api/v1/checkup-rounds",
        json={
            "area_code": TS1,
            "name": "三查",
            "opens_on": today.isoformat(),
            "closes_on": (today + timedelta(days=20)).isoformat(),
            "items": ["iud"],
        },
    )
    assert rnd.status_code == 201, rnd.text
    appts = (await ts.get("/api/v1/checkup-appointments", params={"round_id": rnd.json()["id"]})).json()[
        "items"
    ]
    assert len(appts) == 2
    mine = next(a for a in appts if a["village_code"] == V1)
    r = await c1.post(
        f"/api/v1/checkup-appointments/{mine['id']}/result",
        json={
            "checked_on": today.isoformat(),
            "place": "station",
            "consent": True,
            "items": {"iud": "in_place"},
        },
    )
    assert r.status_code == 200, r.text
    month = today.strftime("%Y-%m")
    start = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    end = today + timedelta(days=40)
    series = await _series(county, "checkup_rate", start.isoformat(), end.isoformat())
    assert series[start.strftime("%Y-%m")] is None  # the month before: nothing due
    assert series[month] == 50.0
    figures = await _figures(county, **{"from": today.replace(day=1).isoformat(), "to": today.isoformat()})
    assert figures["checkups"]["rate"] == 50.0  # the same definition as the figures
    assert (await _series(county, "checkup_rate", today.isoformat(), today.isoformat(), area=V1))[
        month
    ] == 100.0
    r = await county.get("/api/v1/indicators/series", params={"metric": "nonsense"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_metric"

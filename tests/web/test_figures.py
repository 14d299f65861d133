"""统计: the page shows the API's figures for the same area and period, its charts carry the
API's monthly series as JSON, its CSV is the API's CSV, and an area outside the caller's is 404."""

from __future__ import annotations

import html
import json
import re
from datetime import date, timedelta

import pytest

from app.core import clock
from tests.households.test_api import COUNTY, TS1, V1, V2, V_OTHER_TS, mk_household, mk_person
from tests.web.conftest import WebClient

CARD_RE = re.compile(r'<div class="card" id="fig-([a-z_0-9]+)" data-key="[^"]+" data-value="([^"]*)"')
ROW_RE = re.compile(r'<tr data-id="(\d{12})">(.*?)</tr>', re.S)
CELL_RE = re.compile(r'<td data-key="([a-z_0-9]+)">([^<]*)</td>')
JSON_RE = re.compile(r'<script type="application/json" id="([a-z-]+)">(.*?)</script>', re.S)


def cards_of(text: str) -> dict[str, str]:
    return {k: html.unescape(v) for k, v in CARD_RE.findall(text)}


def as_text(value: object) -> str:
    return "" if value is None else str(value)


@pytest.fixture
async def county_data(client_as):
    """Two villages of one township and one of another: persons, births, a death."""
    today = clock.today()
    c1 = await client_as("village", V1)
    c2 = await client_as("village", V2)
    c3 = await client_as("village", V_OTHER_TS)
    for c, village in ((c1, V1), (c2, V2), (c3, V_OTHER_TS)):
        h = await mk_household(c, village)
        mother = await mk_person(c, h["id"], born=date(1992, 3, 3), name="母亲")
        grandpa = await mk_person(
            c,
            h["id"],
            sex="male",
            born=date(1940, 1, 1),
            name="祖父",
            relation_to_head="父亲",
            marital_status="widowed",
        )
        r = await c.post(
            "/api/v1/births",
            json={"mother_id": mother["id"], "child": {"sex": "male", "birth_date": today.isoformat()}},
        )
        assert r.status_code == 201, r.text
        if village == V1:
            r = await c.post(
                "/api/v1/deaths", json={"person_id": grandpa["id"], "death_date": today.isoformat()}
            )
            assert r.status_code == 201, r.text
    return today


async def test_figures_equal_the_api(web_as, client_as, county_data) -> None:
    today = county_data
    start = date(today.year, 1, 1)
    web = await web_as("county", COUNTY)
    api = await client_as("county", COUNTY)
    params = {"from": start.isoformat(), "to": today.isoformat()}

    for area in (COUNTY, TS1):
        r = await web.get("/web/figures", params={**params, "area_code": area})
        assert r.status_code == 200, r.text
        assert "<h1>统计</h1>" in r.text
        assert "/web/static/vendor/echarts/echarts.common.min.js" in r.text
        want = (
            await api.get("/api/v1/indicators", params={**params, "area_code": area, "breakdown": "true"})
        ).json()
        cards = cards_of(r.text)
        assert cards["population"] == str(want["population"]) and want["population"] > 0
        assert cards["households"] == str(want["households"])
        assert cards["married_women_15_49"] == str(want["married_women_15_49"])
        assert cards["births"] == str(want["births"]["total"])
        assert cards["deaths"] == str(want["deaths"])
        assert cards["sex_ratio_at_birth"] == as_text(want["sex_ratio_at_birth"])
        assert cards["natural_growth_rate_per_mille"] == as_text(want["natural_growth_rate_per_mille"])
        assert cards["inflow_open"] == str(want["migrants"]["inflow_open"])
        assert cards["outflow_open"] == str(want["migrants"]["outflow_open"])
        assert cards["checkup_rate"] == as_text(want["checkups"]["rate"])
        assert cards["visits"] == str(want["visits"])
        assert cards["data_quality_open"] == str(want["data_quality_open"])
        # The breakdown: one row per child area, the API's numbers.
        rows = {code: dict(CELL_RE.findall(body)) for code, body in ROW_RE.findall(r.text)}
        assert list(rows) == [c["area_code"] for c in want["children"]]
        for child in want["children"]:
            got = rows[child["area_code"]]
            assert got["population"] == str(child["population"])
            assert got["births"] == str(child["births"]["total"])
            assert got["deaths"] == str(child["deaths"])
    # Counted by hand for the township: 2 villages × (mother, grandfather, child), one death.
    want = (await api.get("/api/v1/indicators", params={**params, "area_code": TS1})).json()
    assert (want["births"]["total"], want["deaths"]) == (2, 1)


async def test_charts_carry_the_api_series_as_json(web_as, client_as, county_data) -> None:
    today = county_data
    web = await web_as("township", TS1)
    api = await client_as("township", TS1)
    start = today.replace(day=1) - timedelta(days=60)
    params = {"from": start.isoformat(), "to": today.isoformat()}
    r = await web.get("/web/figures", params=params)
    assert r.status_code == 200, r.text
    charts = {cid: json.loads(body) for cid, body in JSON_RE.findall(r.text)}
    assert set(charts) == {"chart-vital", "chart-migration", "chart-work", "chart-money"}
    for cid in charts:
        assert f'data-chart="{cid}"' in r.text  # the element app.js draws into
        assert f'id="{cid}-table"' in r.text  # the same numbers as a table
    births = (await api.get("/api/v1/indicators/series", params={**params, "metric": "births"})).json()
    deaths = (await api.get("/api/v1/indicators/series", params={**params, "metric": "deaths"})).json()
    vital = charts["chart-vital"]
    assert vital["xAxis"]["data"] == [p["month"] for p in births["points"]]
    assert len(vital["xAxis"]["data"]) == 3
    assert vital["series"][0]["data"] == [p["value"] for p in births["points"]]
    assert vital["series"][1]["data"] == [p["value"] for p in deaths["points"]]
    assert vital["series"][0]["data"][-1] == 2
    money = (
        await api.get("/api/v1/indicators/series", params={**params, "metric": "claims_paid_amount"})
    ).json()
    assert charts["chart-money"]["series"][0]["data"] == [float(p["value"]) for p in money["points"]]
    # No inline executable script on the page (the CSP forbids them).
    assert re.findall(r"<script(?![^>]*(?:src=|type=\"application/json\"))", r.text) == []


async def test_csv_download_is_the_api_csv(web_as, client_as, county_data) -> None:
    today = county_data
    web = await web_as("county", COUNTY)
    api = await client_as("county", COUNTY)
    for area in (COUNTY, TS1):
        params = {"area_code": area, "from": f"{today.year}-01-01", "to": today.isoformat()}
        page = await web.get("/web/figures", params=params)
        link = re.search(r'href="(/web/figures\.csv\?[^"]+)" data-action="download-csv"', page.text)
        assert link is not None
        got = await web.get(html.unescape(link.group(1)))
        want = await api.get("/api/v1/indicators.csv", params={**params, "breakdown": "true"})
        assert got.status_code == want.status_code == 200
        assert got.content == want.content
        assert got.headers["content-disposition"] == want.headers["content-disposition"]
        assert got.headers["content-type"].startswith("text/csv")
        assert got.content.decode("utf-8-sig").splitlines()[0].startswith("区划代码,名称,总人口")


async def test_scope_another_township_is_404(web_as, county_data) -> None:
    web: WebClient = await web_as("township", TS1)
    r = await web.get("/web/figures")
    assert r.status_code == 200 and TS1 in r.text
    # Its own villages are listed and can be chosen; the other township's are not.
    assert f'data-id="{V1}"' in r.text and V_OTHER_TS not in r.text
    assert (await web.get("/web/figures", params={"area_code": V1})).status_code == 200
    for area in ("430122101000", V_OTHER_TS, COUNTY, "430181100000"):
        r = await web.get("/web/figures", params={"area_code": area})
        assert r.status_code == 404, area
        assert "找不到" in r.text
        assert (await web.get("/web/figures.csv", params={"area_code": area})).status_code == 404
    # A village user sees only its village.
    village = await web_as("village", V1)
    r = await village.get("/web/figures")
    assert r.status_code == 200 and 'id="breakdown"' not in r.text
    assert (await village.get("/web/figures", params={"area_code": V2})).status_code == 404


async def test_period_picker(web_as, county_data) -> None:
    today = county_data
    web = await web_as("county", COUNTY)
    r = await web.get("/web/figures", params={"from": today.isoformat(), "to": today.isoformat()})
    assert r.status_code == 200
    assert f'name="from" value="{today.isoformat()}"' in r.text
    assert cards_of(r.text)["births"] == "3"
    earlier = today - timedelta(days=400)
    r = await web.get("/web/figures", params={"from": earlier.isoformat(), "to": earlier.isoformat()})
    assert cards_of(r.text)["births"] == "0"
    r = await web.get("/web/figures", params={"from": today.isoformat(), "to": earlier.isoformat()})
    assert r.status_code == 422 and "填写有误" in r.text
    r = await web.get("/web/figures", params={"from": "not-a-day"})
    assert r.status_code == 422

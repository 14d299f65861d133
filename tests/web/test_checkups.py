"""三查 pages: rounds with the API's figures, the overdue list (masked phones), opening a round;
scope, role and CSRF."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

from sqlalchemy import func, select

from app.models.checkups import CheckupAppointment, CheckupRound
from app.services.masking import mask_phone
from tests.checkups.test_api import CLOSES, OPENS, TODAY, past_round, round_body, woman
from tests.households.test_api import TS1, V1, V2, mk_household
from tests.web.conftest import WebClient

OTHER_TS = "430122101000"
PHONE = "13812345678"
KEYS = ("due", "done", "declined", "exempted", "overdue", "rate")


def row_of(html: str, ident: str) -> str:
    found = re.search(rf'<tr data-id="{ident}"[^>]*>(.*?)</tr>', html, re.S)
    assert found, f"no row {ident}"
    return found.group(1)


def figures_in(row: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for key in KEYS:
        cell = re.search(rf'data-k="{key}">(.*?)</td>', row, re.S)
        assert cell, key
        text = re.sub(r"<[^>]+>", "", cell.group(1)).strip()
        if key == "rate":
            out[key] = None if text == "—" else float(text.rstrip("%"))
        else:
            out[key] = int(text)
    return out


def api_figures(body: dict) -> dict[str, object]:
    return {k: body[k] for k in KEYS}


async def arrange_round(client_as, db, *, past: bool = False) -> tuple[dict, dict, dict]:
    """Three women (two in V1, one with a phone; one in V2) and a round of TS1; one checked."""
    cadre = await client_as("village", V1)
    cadre2 = await client_as("village", V2)
    township = await client_as("township", TS1)
    h1 = await mk_household(cadre)
    h2 = await mk_household(cadre2, V2)
    chased = await woman(cadre, h1["id"], date(1990, 1, 1), name="王桂兰", phone=PHONE)
    checked = await woman(cadre, h1["id"], date(1991, 1, 1), name="刘芳")
    await woman(cadre2, h2["id"], date(1992, 1, 1), name="陈静")
    if past:
        rnd = await past_round(township, db, TODAY - timedelta(days=90), TODAY - timedelta(days=1))
    else:
        r = await township.post("/api/v1/checkup-rounds", json=round_body())
        assert r.status_code == 201, r.text
        rnd = r.json()
    appts = (
        await township.get("/api/v1/checkup-appointments", params={"round_id": rnd["id"], "limit": 500})
    ).json()["items"]
    by_person = {a["person_id"]: a for a in appts}
    r = await cadre.post(
        f"/api/v1/checkup-appointments/{by_person[checked['id']]['id']}/result",
        json={
            "checked_on": (TODAY - timedelta(days=5) if past else TODAY).isoformat(),
            "place": "station",
            "consent": True,
            "items": {"iud": "in_place"},
        },
    )
    assert r.status_code in (200, 201), r.text
    return rnd, chased, by_person


async def test_rounds_and_progress_are_the_apis_figures(web_as, client_as, db) -> None:
    rnd, _, _ = await arrange_round(client_as, db)
    township_api = await client_as("township", TS1)
    web = await web_as("township", TS1)

    r = await web.get("/web/checkups")
    assert r.status_code == 200, r.text
    assert "<h1>三查</h1>" in r.text and 'data-nav="checkups"' in r.text
    api = (await township_api.get(f"/api/v1/checkup-rounds/{rnd['id']}")).json()
    row = row_of(r.text, rnd["id"])
    assert rnd["name"] in row and "进行中" in row
    assert f"{OPENS.isoformat()} 至 {CLOSES.isoformat()}" in row
    assert (
        figures_in(row)
        == api_figures(api)
        == {
            "due": 3,
            "done": 1,
            "declined": 0,
            "exempted": 0,
            "overdue": 0,
            "rate": 33.3,
        }
    )

    detail = await web.get(f"/web/checkups/rounds/{rnd['id']}")
    assert detail.status_code == 200 and "<h1>三查</h1>" in detail.text and "各村进度" in detail.text
    assert figures_in(row_of(detail.text, rnd["id"])) == api_figures(api)
    breakdown = (await township_api.get(f"/api/v1/checkup-rounds/{rnd['id']}/breakdown")).json()
    assert {b["area_code"] for b in breakdown} == {V1, V2}
    for b in breakdown:
        assert figures_in(row_of(detail.text, b["area_code"])) == api_figures(b)

    # A village user: her village's figures only, as the API answers her; no open-round form.
    village_api = await client_as("village", V2)
    village = await web_as("village", V2)
    page = await village.get("/web/checkups")
    mine = (await village_api.get(f"/api/v1/checkup-rounds/{rnd['id']}")).json()
    assert figures_in(row_of(page.text, rnd["id"])) == api_figures(mine)
    assert mine["due"] == 1
    assert 'data-action="open-round"' not in page.text and 'action="/web/checkups/rounds"' not in page.text
    vdetail = await village.get(f"/web/checkups/rounds/{rnd['id']}")
    assert vdetail.status_code == 200
    assert V1 not in re.findall(r'data-area="(\d+)"', vdetail.text)

    # County: the same round's total.
    county_api = await client_as("county", "430122000000")
    county = await web_as("county", "430122000000")
    cpage = await county.get(f"/web/checkups/rounds/{rnd['id']}")
    capi = (await county_api.get(f"/api/v1/checkup-rounds/{rnd['id']}")).json()
    assert figures_in(row_of(cpage.text, rnd["id"])) == api_figures(capi)


async def test_another_townships_round_is_not_there(web_as, client_as, db) -> None:
    rnd, _, _ = await arrange_round(client_as, db, past=True)
    other = await web_as("township", OTHER_TS)
    page = await other.get("/web/checkups")
    assert page.status_code == 200 and rnd["id"] not in page.text
    assert (await other.get(f"/web/checkups/rounds/{rnd['id']}")).status_code == 404
    assert (await other.get("/web/checkups/overdue", params={"round_id": rnd["id"]})).status_code == 404
    over = await other.get("/web/checkups/overdue")
    assert over.status_code == 200 and "王桂兰" not in over.text and 'data-total="0"' in over.text
    home = await other.get("/web/")
    assert 'id="card-overdue-checkups"' in home.text and re.search(
        r'id="card-overdue-checkups" data-count="0"', home.text
    )
    assert (await other.get(f"/web/checkups/rounds/{uuid.uuid4()}")).status_code == 404


async def test_overdue_list_masks_phones_and_matches_the_card(web_as, client_as, db) -> None:
    rnd, chased, by_person = await arrange_round(client_as, db, past=True)
    web = await web_as("township", TS1)
    r = await web.get("/web/checkups/overdue")
    assert r.status_code == 200, r.text
    appt = by_person[chased["id"]]
    row = row_of(r.text, appt["id"])
    assert "王桂兰" in row and mask_phone(PHONE) in row and "团头湖村" in row
    assert PHONE not in r.text
    assert rnd["name"] in row
    rows = re.findall(r'<tr data-id="([0-9a-f-]{36})"', r.text)
    assert len(rows) == 2  # 王桂兰 in V1 and 陈静 in V2; 刘芳 was checked
    assert 'data-total="2"' in r.text

    home = await web.get("/web/")
    card = re.search(r'href="([^"]+)" id="card-overdue-checkups" data-count="(\d+)"', home.text)
    assert card and card.group(1) == "/web/checkups/overdue" and int(card.group(2)) == len(rows)

    # The API's overdue list is the same women.
    api = await client_as("township", TS1)
    listed = (await api.get("/api/v1/checkup-appointments", params={"status": "overdue"})).json()["items"]
    assert {a["id"] for a in listed} == set(rows)

    # Per round and village.
    per_village = await web.get("/web/checkups/overdue", params={"round_id": rnd["id"], "village_code": V2})
    assert re.findall(r'<tr data-id="([0-9a-f-]{36})"', per_village.text) == [
        a["id"] for a in listed if a["village_code"] == V2
    ]
    detail = await web.get(f"/web/checkups/rounds/{rnd['id']}")
    assert f"/web/checkups/overdue?round_id={rnd['id']}&amp;village_code={V1}" in detail.text
    assert "已结束" in detail.text
    closed = (await api.get(f"/api/v1/checkup-rounds/{rnd['id']}")).json()
    assert figures_in(row_of(detail.text, rnd["id"])) == api_figures(closed)
    assert (closed["due"], closed["done"], closed["overdue"], closed["rate"]) == (3, 1, 2, 33.3)

    # A village user: her village only.
    village = await web_as("village", V2)
    vr = await village.get("/web/checkups/overdue")
    assert "陈静" in vr.text and "王桂兰" not in vr.text and 'data-total="1"' in vr.text


async def test_overdue_list_pages_by_fifty(web_as, client_as, db) -> None:
    cadre = await client_as("village", V1)
    township = await client_as("township", TS1)
    h = await mk_household(cadre)
    for i in range(52):
        await woman(cadre, h["id"], date(1985, 1, 1) + timedelta(days=i), name=f"张{i}")
    await past_round(township, db, TODAY - timedelta(days=90), TODAY - timedelta(days=1))
    web = await web_as("township", TS1)
    first = await web.get("/web/checkups/overdue")
    ids = re.findall(r'<tr data-id="([0-9a-f-]{36})"', first.text)
    assert len(ids) == 50 and 'data-total="52"' in first.text
    nxt = re.search(r'<a href="(/web/checkups/overdue\?cursor=[^"]+)">下一页', first.text)
    assert nxt
    second = await web.get(nxt.group(1).replace("&amp;", "&"))
    more = re.findall(r'<tr data-id="([0-9a-f-]{36})"', second.text)
    assert len(more) == 2 and not set(more) & set(ids)
    assert "下一页" not in second.text


async def test_open_a_round(web_as, client_as, db) -> None:
    cadre = await client_as("village", V1)
    h = await mk_household(cadre)
    await woman(cadre, h["id"], date(1990, 1, 1))
    web = await web_as("township", TS1)
    page = await web.get("/web/checkups")
    assert 'data-action="open-round"' in page.text and f'value="{V1}"' in page.text
    form = {
        "area_code": TS1,
        "name": "2026年冬季三查",
        "opens_on": OPENS.isoformat(),
        "closes_on": CLOSES.isoformat(),
        "items": ["iud", "pregnancy"],
    }
    r = await web.submit("/web/checkups/rounds", form)
    assert r.status_code == 303, r.text
    stored = (await db.execute(select(CheckupRound))).scalars().one()
    assert r.headers["location"] == f"/web/checkups/rounds/{stored.id}"
    assert (stored.name, stored.area_code, stored.items) == ("2026年冬季三查", TS1, "iud,pregnancy")
    assert stored.created_by == web.user.id
    count = select(func.count()).select_from(CheckupAppointment)
    assert (await db.execute(count)).scalar_one() == 1
    shown = await web.get(r.headers["location"])
    assert shown.status_code == 200 and "2026年冬季三查" in shown.text and "查环、查孕" in shown.text

    # The same window again overlaps (409): the form comes back with the reason, nothing stored.
    again = await web.submit("/web/checkups/rounds", form)
    assert again.status_code == 409 and "未能开启轮次" in again.text and "2026年冬季三查" in again.text
    # Invalid fields (window backwards, no item): 422 with the form filled in.
    bad = await web.submit(
        "/web/checkups/rounds",
        {
            **form,
            "name": "倒过来",
            "opens_on": CLOSES.isoformat(),
            "closes_on": OPENS.isoformat(),
            "items": [],
        },
    )
    assert bad.status_code == 422 and "未能开启轮次" in bad.text and 'value="倒过来"' in bad.text
    assert "检查项目: 至少应有 1 项" in bad.text
    # An area outside the township: 403.
    outside = await web.submit("/web/checkups/rounds", {**form, "area_code": OTHER_TS, "name": "越界"})
    assert outside.status_code == 403
    assert (await db.execute(select(func.count()).select_from(CheckupRound))).scalar_one() == 1


async def test_village_users_and_forged_posts_cannot_open_rounds(web_as, db) -> None:
    form = {
        "area_code": V1,
        "name": "伪造",
        "opens_on": OPENS.isoformat(),
        "closes_on": CLOSES.isoformat(),
        "items": ["iud"],
    }
    village: WebClient = await web_as("village", V1)
    r = await village.submit("/web/checkups/rounds", form)
    assert r.status_code == 403 and "无权操作" in r.text
    township = await web_as("township", TS1)
    no_token = await township.post("/web/checkups/rounds", data={**form, "area_code": TS1})
    assert no_token.status_code == 403
    hx = await township.post("/web/checkups/rounds", data=form, headers={"HX-Request": "true"})
    assert hx.status_code == 403 and hx.headers["HX-Retarget"] == "#flash"
    assert (await db.execute(select(func.count()).select_from(CheckupRound))).scalar_one() == 0

"""流动人口 page: partner notifications to accept or dismiss and moves waiting for release to
confirm or refuse, through the same services as the API; scope, roles and CSRF."""

from __future__ import annotations

import re
from datetime import date

from app.models.households import Person
from app.models.migrants import Migrant, PartnerNotification
from tests.factories import id_number
from tests.households.test_api import COUNTY, TS1, V1, V2, V_OTHER_TS
from tests.migrants.test_partner import note, partner_as, police, send  # noqa: F401  (fixtures)
from tests.migrants.test_release import RECEIVING, fresh, request_body, victim_in
from tests.web.conftest import WebClient

ORIGIN_VILLAGE = V_OTHER_TS  # her place: 430122101201, township 430122101
ORIGIN_TS = V_OTHER_TS[:9] + "000"
THIRD_TS = "430122102000"


def row_ids(html: str) -> set[str]:
    return set(re.findall(r'<tr data-id="([0-9a-f-]{36})"', html))


def tab_count(html: str, tab: str) -> int:
    found = re.search(rf'data-tab="{tab}">[^<]*<span class="count" data-count="(\d+)"', html)
    assert found, tab
    return int(found.group(1))


def card_count(html: str, key: str) -> int:
    found = re.search(rf'id="card-{key}" data-count="(\d+)"', html)
    assert found, key
    return int(found.group(1))


async def notified(police, born: date, area: str = V1, **kw) -> str:  # noqa: F811
    """A notification about an ID number nobody registered: waits for a decision."""
    r = await send(police, note(id_number(born, "female"), area=area, **kw))
    assert r.status_code == 202, r.text  # type: ignore[attr-defined]
    return str(r.json()["id"])  # type: ignore[attr-defined]


async def stored_notification(db, nid: str) -> PartnerNotification:
    return await fresh(db, PartnerNotification, nid)


# --- partner notifications ----------------------------------------------------------------------


async def test_notifications_listed_in_scope_with_counts_and_cards(police, web_as) -> None:  # noqa: F811
    mine = await notified(police, date(1995, 3, 3), name="王桂兰")
    elsewhere = await notified(police, date(1996, 4, 4), area=V_OTHER_TS, name="赵春花")
    ts: WebClient = await web_as("township", TS1)

    r = await ts.get("/web/migrants")
    assert r.status_code == 200, r.text
    assert "<h1>流动人口</h1>" in r.text
    assert row_ids(r.text) == {mine}
    assert "王桂兰" in r.text and "赵春花" not in r.text
    assert "公安" in r.text and "居住登记" in r.text
    assert re.search(r"\d\*+\w", r.text)  # the masked ID number
    assert id_number(date(1995, 3, 3), "female") not in r.text
    assert tab_count(r.text, "notifications") == 1
    assert 'data-action="accept"' in r.text and 'data-action="dismiss"' in r.text
    home = await ts.get("/web/")
    assert card_count(home.text, "notifications") == 1 and card_count(home.text, "releases") == 0

    # village cadres: their village only
    v1: WebClient = await web_as("village", V1)
    assert row_ids((await v1.get("/web/migrants")).text) == {mine}
    v2: WebClient = await web_as("village", V2)
    r = await v2.get("/web/migrants")
    assert row_ids(r.text) == set() and tab_count(r.text, "notifications") == 0
    # another township's notification cannot be decided from here: 404
    r = await ts.submit(f"/web/migrants/notifications/{elsewhere}/accept")
    assert r.status_code == 404
    r = await ts.submit(f"/web/migrants/notifications/{elsewhere}/dismiss", {"reason": "不在本地"})
    assert r.status_code == 404


async def test_accept_and_dismiss_are_stored_and_leave_the_list(police, web_as, db) -> None:  # noqa: F811
    first = await notified(police, date(1995, 3, 3))
    second = await notified(police, date(1997, 7, 7))
    ts: WebClient = await web_as("township", TS1)
    ts_id = ts.user.id

    page = await ts.get("/web/migrants")
    assert 'name="marital_status" required' in page.text  # a new person: the form asks
    r = await ts.submit(f"/web/migrants/notifications/{first}/accept", {"marital_status": "bogus"})
    assert r.status_code == 422
    r = await ts.submit(f"/web/migrants/notifications/{first}/accept", {"marital_status": "married"})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/web/migrants?tab=notifications&done=accepted"
    n = await stored_notification(db, first)
    assert (n.status, n.decided_by) == ("applied", ts_id)
    migrant_id, person_id = n.migrant_id, n.person_id
    assert person_id is not None
    migrant = await fresh(db, Migrant, migrant_id)
    assert (migrant.village_code, migrant.status, migrant.person_id) == (V1, "open", person_id)
    assert (await fresh(db, Person, person_id)).marital_status == "married"

    r = await ts.submit(f"/web/migrants/notifications/{second}/dismiss", {"reason": "查无此人"})
    assert r.status_code == 303, r.text
    n = await stored_notification(db, second)
    assert (n.status, n.dismiss_reason, n.decided_by) == ("dismissed", "查无此人", ts_id)

    after = await ts.get("/web/migrants?tab=notifications&done=dismissed")
    assert "通报已忽略" in after.text
    assert row_ids(after.text) == set() and tab_count(after.text, "notifications") == 0
    # decided once: again is 409
    assert (await ts.submit(f"/web/migrants/notifications/{second}/accept")).status_code == 409


async def test_county_reads_but_may_not_decide_and_csrf_is_checked(police, web_as, db) -> None:  # noqa: F811
    nid = await notified(police, date(1995, 3, 3))
    county: WebClient = await web_as("county", COUNTY)
    r = await county.get("/web/migrants")
    assert row_ids(r.text) == {nid}
    assert 'data-action="accept"' not in r.text and 'data-action="dismiss"' not in r.text
    assert (await county.submit(f"/web/migrants/notifications/{nid}/accept")).status_code == 403
    r = await county.submit(f"/web/migrants/notifications/{nid}/dismiss", {"reason": "x"})
    assert r.status_code == 403

    ts: WebClient = await web_as("township", TS1)
    assert (await ts.post(f"/web/migrants/notifications/{nid}/accept")).status_code == 403
    r = await ts.post(
        f"/web/migrants/notifications/{nid}/dismiss", data={"reason": "x", "csrf_token": "forged"}
    )
    assert r.status_code == 403
    n = await stored_notification(db, nid)
    assert n.status == "pending_confirmation" and n.decided_by is None


# --- releases -------------------------------------------------------------------------------------


async def requested(client_as, db, born: date, name: str) -> tuple[object, dict]:
    """A woman registered in ORIGIN_VILLAGE, and RECEIVING's request to take her in."""
    origin_cadre = await client_as("village", ORIGIN_VILLAGE)
    v = await victim_in(origin_cadre, ORIGIN_VILLAGE, db, name=name, born=born)
    receiving = await client_as("village", RECEIVING)
    r = await receiving.post("/api/v1/migrants", json=request_body(v.number))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending_release"
    return v, r.json()


async def test_releases_confirm_and_refuse_are_stored(client_as, web_as, db) -> None:
    v1, req1 = await requested(client_as, db, date(1994, 9, 9), "刘小红")
    v2, req2 = await requested(client_as, db, date(1992, 2, 2), "陈小燕")
    her_ts: WebClient = await web_as("township", ORIGIN_TS)

    r = await her_ts.get("/web/migrants", params={"tab": "releases"})
    assert r.status_code == 200, r.text
    assert row_ids(r.text) == {req1["id"], req2["id"]}
    assert "刘小红" in r.text and "陈小燕" in r.text
    assert v1.number not in r.text  # type: ignore[attr-defined]
    assert tab_count(r.text, "releases") == 2
    home = await her_ts.get("/web/")
    assert card_count(home.text, "releases") == 2

    r = await her_ts.submit(f"/web/migrants/releases/{req1['id']}/confirm")
    assert r.status_code == 303, r.text
    stored = await fresh(db, Migrant, req1["id"])
    assert (stored.status, stored.transfer) == ("open", "confirmed")
    person = await fresh(db, Person, v1.id)  # type: ignore[attr-defined]
    assert person.village_code == RECEIVING

    r = await her_ts.submit(f"/web/migrants/releases/{req2['id']}/refuse", {"reason": "本人未迁出"})
    assert r.status_code == 303, r.text
    stored = await fresh(db, Migrant, req2["id"])
    assert (stored.status, stored.refuse_reason) == ("refused", "本人未迁出")
    person = await fresh(db, Person, v2.id)  # type: ignore[attr-defined]
    assert person.village_code == ORIGIN_VILLAGE

    after = await her_ts.get("/web/migrants?tab=releases&done=refused")
    assert "已拒绝迁出" in after.text
    assert row_ids(after.text) == set() and tab_count(after.text, "releases") == 0


async def test_only_her_place_sees_and_decides_a_release(client_as, web_as, db) -> None:
    v, req = await requested(client_as, db, date(1994, 9, 9), "刘小红")
    # the receiving side holds the request, not her: nothing to confirm, a forged confirm is 403
    receiving_ts: WebClient = await web_as("township", TS1)
    r = await receiving_ts.get("/web/migrants", params={"tab": "releases"})
    assert row_ids(r.text) == set() and tab_count(r.text, "releases") == 0
    assert (await receiving_ts.submit(f"/web/migrants/releases/{req['id']}/confirm")).status_code == 403
    # a third township: not listed, 404
    third: WebClient = await web_as("township", THIRD_TS)
    assert row_ids((await third.get("/web/migrants?tab=releases")).text) == set()
    assert (await third.submit(f"/web/migrants/releases/{req['id']}/confirm")).status_code == 404
    r = await third.submit(f"/web/migrants/releases/{req['id']}/refuse", {"reason": "x"})
    assert r.status_code == 404
    # her village cadre may decide (the API lets her); without the CSRF token nothing happens
    cadre: WebClient = await web_as("village", ORIGIN_VILLAGE)
    r = await cadre.get("/web/migrants?tab=releases")
    assert row_ids(r.text) == {req["id"]} and 'data-action="confirm"' in r.text
    assert (await cadre.post(f"/web/migrants/releases/{req['id']}/confirm")).status_code == 403
    r = await cadre.post(f"/web/migrants/releases/{req['id']}/refuse", data={"reason": "x"})
    assert r.status_code == 403
    stored = await fresh(db, Migrant, req["id"])
    assert stored.status == "pending_release"
    r = await cadre.submit(f"/web/migrants/releases/{req['id']}/confirm", {"children_stay": "true"})
    assert r.status_code == 303, r.text
    stored = await fresh(db, Migrant, req["id"])
    assert stored.status == "open"
    assert (await fresh(db, Person, v.id)).village_code == RECEIVING  # type: ignore[attr-defined]


async def test_a_forged_cursor_is_refused(web_as) -> None:
    ts: WebClient = await web_as("township", TS1)
    r = await ts.get("/web/migrants", params={"tab": "releases", "cursor": "bogus"})
    assert r.status_code == 422
    r = await ts.get("/web/migrants", params={"tab": "elsewhere"})
    assert r.status_code == 422

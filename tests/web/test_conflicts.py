"""同步冲突 pages: the phone's and the server's values side by side, resolve through the service;
scope, role and CSRF."""

from __future__ import annotations

import re
import uuid
from datetime import date

from sqlalchemy import select

from app.models.households import Household
from app.models.sync import SyncConflict
from app.models.users import User
from app.services.masking import mask_phone
from tests.households.test_api import TS1, V1, mk_household, mk_person
from tests.sync.test_api import op, push

OTHER_TS = "430122101000"
SERVER_ADDRESS = "团头湖村5组1号"
PHONE_ADDRESS = "团头湖村5组2号"


async def household_conflict(client_as) -> tuple[dict, dict]:
    """A household whose address another cadre changed while a phone changed it offline."""
    cadre = await client_as("village", V1)
    other = await client_as("village", V1)
    h = await mk_household(cadre)
    r = await other.patch(
        f"/api/v1/households/{h['id']}", json={"address": SERVER_ADDRESS}, headers={"If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    res = await push(cadre, [op("household", {"address": PHONE_ADDRESS}, rid=h["id"], base=1)])
    assert res[0]["status"] == "conflict"
    township = await client_as("township", TS1)
    items = (await township.get("/api/v1/sync/conflicts")).json()["items"]
    found = [c for c in items if c["entity_id"] == h["id"]]
    assert len(found) == 1
    return h, found[0]


async def stored(db, conflict_id: str) -> SyncConflict:
    row = await db.get(SyncConflict, uuid.UUID(conflict_id), populate_existing=True)
    assert row is not None
    return row


def ids_on(html: str) -> list[str]:
    return re.findall(r'<tr data-id="([0-9a-f-]{36})"', html)


async def test_side_by_side_and_resolve_with_the_phones_value(web_as, client_as, db) -> None:
    h, c = await household_conflict(client_as)
    web = await web_as("township", TS1)
    r = await web.get("/web/conflicts")
    assert r.status_code == 200, r.text
    assert "<h1>同步冲突</h1>" in r.text and 'data-total="1"' in r.text
    assert ids_on(r.text) == [c["id"]]
    field = re.search(r'<tr data-field="address" class="(\w+)">(.*?)</tr>', r.text, re.S)
    assert field and field.group(1) == "differs"
    assert re.search(rf'class="phone-value">{PHONE_ADDRESS}<', field.group(2))
    assert re.search(rf'class="server-value">{SERVER_ADDRESS}<', field.group(2))
    assert 'data-action="resolve"' in r.text and 'name="take" value="address"' in r.text
    assert "户" in r.text and "团头湖村" in r.text  # entity and village named
    author = await db.get(User, uuid.UUID(c["actor_id"]))
    assert author is not None and f"提交人 {author.display_name}" in r.text

    home = await web.get("/web/")
    card = re.search(r'href="/web/conflicts" id="card-sync-conflicts" data-count="(\d+)"', home.text)
    assert card and int(card.group(1)) == 1

    detail = await web.get(f"/web/conflicts/{c['id']}")
    assert detail.status_code == 200 and PHONE_ADDRESS in detail.text and SERVER_ADDRESS in detail.text

    r = await web.submit(f"/web/conflicts/{c['id']}/resolve", {"take": "address"})
    assert r.status_code == 303 and r.headers["location"] == "/web/conflicts"
    row = await stored(db, c["id"])
    assert row.status == "resolved" and row.resolved_by == web.user.id
    household = await db.get(Household, uuid.UUID(h["id"]), populate_existing=True)
    assert household is not None and household.address == PHONE_ADDRESS
    after = await web.get("/web/conflicts")
    assert (
        ids_on(after.text) == [] and 'data-total="0"' in after.text and "没有待处理的同步冲突" in after.text
    )
    home = await web.get("/web/")
    assert re.search(r'id="card-sync-conflicts" data-count="0"', home.text)
    # The resolved one still opens (with who resolved it) but cannot be resolved again (409).
    done = await web.get(f"/web/conflicts/{c['id']}")
    assert done.status_code == 200 and "已处理" in done.text and 'data-action="resolve"' not in done.text
    again = await web.submit(f"/web/conflicts/{c['id']}/resolve", {})
    assert again.status_code == 409


async def test_resolve_keeping_the_servers_value(web_as, client_as, db) -> None:
    h, c = await household_conflict(client_as)
    web = await web_as("county", "430122000000")  # the county resolves too
    assert ids_on((await web.get("/web/conflicts")).text) == [c["id"]]
    r = await web.submit(f"/web/conflicts/{c['id']}/resolve", {})
    assert r.status_code == 303
    assert (await stored(db, c["id"])).status == "resolved"
    household = await db.get(Household, uuid.UUID(h["id"]), populate_existing=True)
    assert household is not None and household.address == SERVER_ADDRESS


async def test_masked_values_are_shown_masked_and_cannot_be_taken(web_as, client_as, db) -> None:
    cadre = await client_as("village", V1)
    other = await client_as("village", V1)
    h = await mk_household(cadre)
    p = await mk_person(cadre, h["id"], born=date(1990, 5, 17))
    r = await other.patch(
        f"/api/v1/persons/{p['id']}", json={"phone": "13700001111"}, headers={"If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    res = await push(cadre, [op("person", {"phone": "13922223333"}, rid=p["id"], base=1)])
    assert res[0]["status"] == "conflict"
    web = await web_as("township", TS1)
    page = await web.get("/web/conflicts")
    (cid,) = ids_on(page.text)
    assert mask_phone("13922223333") in page.text and mask_phone("13700001111") in page.text
    assert "13922223333" not in page.text and "13700001111" not in page.text
    assert "李秀英" in page.text and p["id_number_masked"] in page.text  # the person, masked
    assert 'name="take" value="phone_masked"' not in page.text
    forged = await web.submit(f"/web/conflicts/{cid}/resolve", {"take": "phone_masked"})
    assert forged.status_code == 422
    assert (await stored(db, cid)).status == "open"


async def test_scope_role_and_csrf(web_as, client_as, db) -> None:
    h, c = await household_conflict(client_as)
    url = f"/web/conflicts/{c['id']}/resolve"

    # Another township: not listed, its URL and its POST are 404.
    other = await web_as("township", OTHER_TS)
    page = await other.get("/web/conflicts")
    assert page.status_code == 200 and c["id"] not in page.text and 'data-total="0"' in page.text
    assert (await other.get(f"/web/conflicts/{c['id']}")).status_code == 404
    assert (await other.submit(url, {"take": "address"})).status_code == 404
    assert (await other.get(f"/web/conflicts/{uuid.uuid4()}")).status_code == 404

    # A village user sees her village's conflict but no resolve button; a forged POST is 403.
    village = await web_as("village", V1)
    vpage = await village.get("/web/conflicts")
    assert ids_on(vpage.text) == [c["id"]] and 'data-action="resolve"' not in vpage.text
    assert 'name="take"' not in vpage.text
    forged = await village.submit(url, {"take": "address"})
    assert forged.status_code == 403 and "无权操作" in forged.text

    # Without the CSRF token: 403, as a form and as htmx.
    township = await web_as("township", TS1)
    assert (await township.post(url, data={"take": "address"})).status_code == 403
    hx = await township.post(url, data={"take": "address"}, headers={"HX-Request": "true"})
    assert hx.status_code == 403 and hx.headers["HX-Retarget"] == "#flash"
    # A field the phone did not send: 422.
    assert (await township.submit(url, {"take": "household_type"})).status_code == 422

    row = await stored(db, c["id"])
    assert row.status == "open" and row.resolved_by is None
    household = (await db.execute(select(Household).where(Household.id == uuid.UUID(h["id"])))).scalar_one()
    assert household.address == SERVER_ADDRESS
    assert ids_on((await township.get("/web/conflicts")).text) == [c["id"]]

"""数据质量 page: the worklist by kind in the caller's scope, the merge preview and the merge
(same service as ``POST /persons/{id}/merge``), dismissing with a reason; roles and CSRF."""

from __future__ import annotations

import re
import uuid
from datetime import date

import pytest
from sqlalchemy import select

from app.models.households import DataQualityDismissal, Person, PersonMerge
from app.models.visits import Visit
from tests.factories import id_number
from tests.households.test_api import COUNTY, TS1, V1, V2, V_OTHER_TS, mk_household, mk_person
from tests.web.conftest import WebClient

OTHER_TS = V_OTHER_TS[:9] + "000"
BORN = date(1988, 8, 8)
OTHER_BORN = date(1985, 5, 5)


@pytest.fixture
async def cast(client_as):
    class Cast:
        pass

    c = Cast()
    c.v1 = await client_as("village", V1)
    c.v2 = await client_as("village", V2)
    c.other = await client_as("village", V_OTHER_TS)
    return c


async def twins(
    v_keep, v_dup, keep_village: str, dup_village: str, name: str = "周玉梅", born: date = BORN
) -> tuple[dict, dict]:
    """One woman twice: ``keep`` with her ID number (``keep["number"]``), ``dup`` without
    (registered again)."""
    h1 = await mk_household(v_keep, keep_village)
    h2 = await mk_household(v_dup, dup_village)
    keep = await mk_person(v_keep, h1["id"], born=born, name=name, relation_to_head="配偶")
    keep["number"] = id_number(born, "female")
    dup = await mk_person(v_dup, h2["id"], born=born, name=name, with_id=False, relation_to_head="配偶")
    return keep, dup


def row_ids(html: str) -> set[str]:
    return set(re.findall(r'<tr data-id="([0-9a-f-]{36})"', html))


def tab_count(html: str, kind: str) -> int:
    found = re.search(rf'data-kind="{kind}">[^<]*<span class="count" data-count="(\d+)"', html)
    assert found, kind
    return int(found.group(1))


async def fresh_person(db, ident: str) -> Person:
    await db.rollback()
    person = await db.get(Person, uuid.UUID(ident))
    assert person is not None
    await db.refresh(person)
    return person


async def test_worklist_by_kind_in_scope_with_the_home_card(cast, web_as) -> None:
    keep, dup = await twins(cast.v1, cast.v2, V1, V2)
    o_keep, o_dup = await twins(
        cast.other, cast.other, V_OTHER_TS, V_OTHER_TS, name="李秀英", born=OTHER_BORN
    )
    ts: WebClient = await web_as("township", TS1)

    r = await ts.get("/web/data-quality", params={"kind": "likely_duplicate"})
    assert r.status_code == 200, r.text
    assert "<h1>数据质量</h1>" in r.text
    assert row_ids(r.text) == {keep["id"], dup["id"]}
    assert tab_count(r.text, "likely_duplicate") == 2
    assert "周玉梅" in r.text and "李秀英" not in r.text
    # masked ID numbers only
    assert keep["id_number_masked"] in r.text and keep["number"] not in r.text
    # each row offers the merge keeping the record with the ID number, and the dismissal
    assert f"keep={keep['id']}&amp;drop={dup['id']}" in r.text
    assert r.text.count('data-action="dismiss"') == 2

    # the card counts what the list holds (every kind)
    total = int(re.search(r'id="fault-total">(\d+)<', r.text).group(1))  # type: ignore[union-attr]
    home = await ts.get("/web/")
    card = re.search(r'id="card-quality" data-count="(\d+)"', home.text)
    assert card and int(card.group(1)) == total >= 2

    # another township's records: not listed, and their preview is 404
    other = await ts.get(
        "/web/data-quality/merge-preview", params={"keep": o_keep["id"], "drop": o_dup["id"]}
    )
    assert other.status_code == 404
    mixed = await ts.get("/web/data-quality/merge-preview", params={"keep": o_keep["id"], "drop": dup["id"]})
    assert mixed.status_code == 404

    county: WebClient = await web_as("county", COUNTY)
    r = await county.get("/web/data-quality", params={"kind": "likely_duplicate"})
    assert row_ids(r.text) == {keep["id"], dup["id"], o_keep["id"], o_dup["id"]}


async def test_merge_preview_then_merge_moves_the_references(cast, web_as, db) -> None:
    keep, dup = await twins(cast.v1, cast.v2, V1, V2)
    visit = await cast.v2.post(
        "/api/v1/visits",
        json={
            "household_id": dup["household_id"],
            "person_id": dup["id"],
            "visited_at": "2026-01-10T09:00:00+08:00",
            "purpose": "health_education",
        },
    )
    assert visit.status_code == 201, visit.text
    ts: WebClient = await web_as("township", TS1)
    ts_id = ts.user.id

    r = await ts.get("/web/data-quality/merge-preview", params={"keep": keep["id"], "drop": dup["id"]})
    assert r.status_code == 200, r.text
    assert '<section class="panel merge-keep" data-id="' + keep["id"] in r.text
    assert '<section class="panel merge-drop" data-id="' + dup["id"] in r.text
    assert re.search(r'data-ref="随访记录"><td>随访记录</td><td class="num">1<', r.text)
    assert re.search(r'id="moved-total">1<', r.text)
    assert keep["number"] not in r.text and keep["id_number_masked"] in r.text
    versions = dict(re.findall(r'name="(keep_version|drop_version)" value="(\d+)"', r.text))

    # a stale preview merges nothing (412)
    stale = await ts.submit(
        "/web/data-quality/merge",
        {"keep": keep["id"], "drop": dup["id"], "keep_version": 99, "drop_version": versions["drop_version"]},
    )
    assert stale.status_code == 412
    assert (await fresh_person(db, dup["id"])).merged_into_id is None

    r = await ts.submit("/web/data-quality/merge", {"keep": keep["id"], "drop": dup["id"], **versions})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/web/data-quality?kind=likely_duplicate&done=merged"
    stored = await fresh_person(db, dup["id"])
    assert stored.merged_into_id == uuid.UUID(keep["id"])
    moved = (await db.execute(select(Visit).where(Visit.id == uuid.UUID(visit.json()["id"])))).scalar_one()
    assert moved.person_id == uuid.UUID(keep["id"])
    merge = (await db.execute(select(PersonMerge))).scalar_one()
    assert (merge.merged_id, merge.into_id, merge.actor_id) == (
        uuid.UUID(dup["id"]),
        uuid.UUID(keep["id"]),
        ts_id,
    )
    after = await ts.get(r.headers["location"])
    assert "已合并" in after.text and row_ids(after.text) == set()
    assert tab_count(after.text, "likely_duplicate") == 0


async def test_a_cross_township_merge_is_refused_and_changes_nothing(cast, web_as, db) -> None:
    keep, dup = await twins(cast.v1, cast.v2, V1, V2)
    o_keep, o_dup = await twins(
        cast.other, cast.other, V_OTHER_TS, V_OTHER_TS, name="李秀英", born=OTHER_BORN
    )
    ts: WebClient = await web_as("township", TS1)
    attempts = [
        (o_keep, o_dup),  # both of another township
        (keep, o_dup),  # swallow another township's record into mine
        (o_keep, dup),  # hand mine to another township's record
    ]
    for k, d in attempts:
        r = await ts.submit(
            "/web/data-quality/merge",
            {"keep": k["id"], "drop": d["id"], "keep_version": 1, "drop_version": 1},
        )
        assert r.status_code == 404, r.text
        assert "找不到" in r.text
    for p in (keep, dup, o_keep, o_dup):
        assert (await fresh_person(db, p["id"])).merged_into_id is None
    assert (await db.execute(select(PersonMerge))).scalars().all() == []


async def test_dismiss_with_a_reason_is_stored_and_leaves_the_list(cast, web_as, db) -> None:
    keep, dup = await twins(cast.v1, cast.v2, V1, V2)
    ts: WebClient = await web_as("township", TS1)
    ts_id = ts.user.id
    r = await ts.submit(
        "/web/data-quality/dismiss",
        {
            "kind": "likely_duplicate",
            "entity": "person",
            "id": dup["id"],
            "other_id": keep["id"],
            "reason": "  ",
        },
    )
    assert r.status_code == 422  # a reason is required
    r = await ts.submit(
        "/web/data-quality/dismiss",
        {
            "kind": "likely_duplicate",
            "entity": "person",
            "id": dup["id"],
            "other_id": keep["id"],
            "reason": "同名同生日，不是同一人",
        },
    )
    assert r.status_code == 303, r.text
    await db.rollback()
    rows = (await db.execute(select(DataQualityDismissal))).scalars().all()
    assert {(str(d.entity_id), d.reason, d.dismissed_by) for d in rows} == {
        (dup["id"], "同名同生日，不是同一人", ts_id),
        (keep["id"], "同名同生日，不是同一人", ts_id),
    }
    after = await ts.get(r.headers["location"])
    assert "已忽略" in after.text
    assert row_ids(after.text) == set() and tab_count(after.text, "likely_duplicate") == 0


async def test_village_cadres_have_no_such_page_and_forged_posts_are_403(cast, web_as, db) -> None:
    keep, dup = await twins(cast.v1, cast.v1, V1, V1)
    village: WebClient = await web_as("village", V1)
    home = await village.get("/web/")
    assert 'data-nav="quality"' not in home.text and 'id="card-quality"' not in home.text
    assert (await village.get("/web/data-quality")).status_code == 403
    preview = await village.get(
        "/web/data-quality/merge-preview", params={"keep": keep["id"], "drop": dup["id"]}
    )
    assert preview.status_code == 403
    r = await village.submit(
        "/web/data-quality/merge",
        {"keep": keep["id"], "drop": dup["id"], "keep_version": 1, "drop_version": 1},
    )
    assert r.status_code == 403
    r = await village.submit(
        "/web/data-quality/dismiss",
        {"kind": "likely_duplicate", "entity": "person", "id": dup["id"], "reason": "不是同一人"},
    )
    assert r.status_code == 403
    assert (await fresh_person(db, dup["id"])).merged_into_id is None
    assert (await db.execute(select(DataQualityDismissal))).scalars().all() == []


async def test_posts_without_the_csrf_token_are_403_and_change_nothing(cast, web_as, db) -> None:
    keep, dup = await twins(cast.v1, cast.v2, V1, V2)
    ts: WebClient = await web_as("township", TS1)
    preview = await ts.get("/web/data-quality/merge-preview", params={"keep": keep["id"], "drop": dup["id"]})
    versions = dict(re.findall(r'name="(keep_version|drop_version)" value="(\d+)"', preview.text))
    r = await ts.post("/web/data-quality/merge", data={"keep": keep["id"], "drop": dup["id"], **versions})
    assert r.status_code == 403
    r = await ts.post(
        "/web/data-quality/dismiss",
        data={"kind": "likely_duplicate", "entity": "person", "id": dup["id"], "reason": "x"},
        headers={"X-CSRF-Token": "forged"},
    )
    assert r.status_code == 403
    assert (await fresh_person(db, dup["id"])).merged_into_id is None
    assert (await db.execute(select(DataQualityDismissal))).scalars().all() == []


async def test_household_faults_are_listed_and_dismissed_by_household(cast, web_as, db) -> None:
    empty = await mk_household(cast.v1, V1, address="团头湖村9组1号")  # no member, no head
    ts: WebClient = await web_as("township", TS1)
    r = await ts.get("/web/data-quality", params={"kind": "household_without_head"})
    assert r.status_code == 200, r.text
    assert row_ids(r.text) == {empty["id"]}
    assert "团头湖村9组1号" in r.text and 'data-action="merge"' not in r.text
    r = await ts.submit(
        "/web/data-quality/dismiss",
        {"kind": "household_without_head", "entity": "household", "id": empty["id"], "reason": "待迁入"},
    )
    assert r.status_code == 303, r.text
    await db.rollback()
    stored = (await db.execute(select(DataQualityDismissal))).scalar_one()
    assert (str(stored.entity_id), stored.entity, stored.reason) == (empty["id"], "household", "待迁入")
    after = await ts.get(r.headers["location"])
    assert row_ids(after.text) == set() and tab_count(after.text, "household_without_head") == 0
    # the other kind of the same household stays open
    assert tab_count(after.text, "household_no_living_member") == 1


async def test_dismiss_from_the_row_with_htmx_replaces_only_the_row(cast, web_as, db) -> None:
    keep, dup = await twins(cast.v1, cast.v2, V1, V2)
    ts: WebClient = await web_as("township", TS1)
    form = {"kind": "likely_duplicate", "entity": "person", "id": dup["id"], "other_id": keep["id"]}
    r = await ts.post("/web/data-quality/dismiss", data={**form, "reason": "不是同一人"}, headers=ts.hx)
    assert r.status_code == 200, r.text
    assert f'data-dismissed="{dup["id"]}"' in r.text and "已忽略：不是同一人" in r.text
    assert "<html" not in r.text  # a row, not a page
    await db.rollback()
    assert len((await db.execute(select(DataQualityDismissal))).scalars().all()) == 2
    # Without the CSRF header the same htmx request is refused, into the page's message box.
    r = await ts.post(
        "/web/data-quality/dismiss", data={**form, "reason": "再来"}, headers={"HX-Request": "true"}
    )
    assert r.status_code == 403 and r.headers["HX-Retarget"] == "#flash"

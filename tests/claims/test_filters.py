"""Claims found by the beneficiary: ``q`` (name contains) and ``id_number`` (exact, through the
blind index, audited), combined with the other filters and paged; and renewals that name the
year they draft for (``for_year``)."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import select

from app.models.audit import AuditEvent
from tests.claims import test_api as claims_api
from tests.claims.test_api import V2, elder, mk_claim, to_status
from tests.factories import id_number
from tests.households.test_api import problem

programmes = claims_api.programmes  # the claims tests' autouse fixture: the shipped programmes
staff = claims_api.staff


async def ids(c, query: str) -> list[str]:
    r = await c.get(f"/api/v1/claims?{query}")
    assert r.status_code == 200, r.text
    return [item["id"] for item in r.json()["items"]]


async def test_claims_by_beneficiary_name(staff):
    wang = await elder(staff.village, name="王桂兰")
    wang2 = await elder(staff.village, name="王秀英")
    li = await elder(staff.village, name="李秀英")
    odd = await elder(staff.village, name="张_兰")
    far = await elder(staff.village2, village=V2, name="王小红")  # the next village
    c_wang = await mk_claim(staff.village, wang)
    c_wang2 = await mk_claim(staff.village, wang2)
    c_li = await mk_claim(staff.village, li)
    c_odd = await mk_claim(staff.village, odd)
    c_far = await mk_claim(staff.village2, far)
    c_wang_2025 = await mk_claim(staff.village, wang, year=2025)

    v = staff.village
    # newest first, as the list always is
    assert await ids(v, "q=王") == [c_wang_2025["id"], c_wang2["id"], c_wang["id"]]
    assert await ids(v, "q=秀英") == [c_li["id"], c_wang2["id"]]
    assert await ids(v, "q=王桂兰&year=2024") == [c_wang["id"]]
    assert await ids(v, "q=王&year=2025") == [c_wang_2025["id"]]
    assert await ids(v, "q=赵") == []
    # LIKE wildcards are text: "_" matches only a name holding "_"
    assert await ids(v, "q=_") == [c_odd["id"]]
    assert await ids(v, "q=%25") == []
    # the township sees both villages' Wangs; the village never the next village's
    assert await ids(staff.township, "q=王") == [c_wang_2025["id"], c_far["id"], c_wang2["id"], c_wang["id"]]
    assert c_far["id"] not in await ids(v, "q=王小红")
    # an applicant's name is not the beneficiary's
    assert await ids(v, "q=子0") == []
    problem(await v.get("/api/v1/claims?q="), 422, "validation_failed")


async def test_claims_by_name_with_paging(staff):
    made = []
    for i in range(5):
        person = await elder(staff.village, name=f"王{i}")
        made.append((await mk_claim(staff.village, person))["id"])
    await mk_claim(staff.village, await elder(staff.village, name="李某"))
    whole = await ids(staff.village, "q=王")
    assert sorted(whole) == sorted(made)
    paged: list[str] = []
    cursor = None
    for _ in range(5):
        r = await staff.village.get("/api/v1/claims?q=王&limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert r.status_code == 200, r.text
        paged += [item["id"] for item in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert paged == whole


async def test_claims_by_id_number_exact_and_audited(staff, db):
    wang = await elder(staff.village, name="王桂兰")
    li = await elder(staff.village, name="李秀英")
    c_wang = await mk_claim(staff.village, wang)
    await mk_claim(staff.village, li)
    number = (await staff.village.get(f"/api/v1/persons/{wang['id']}")).json()["id_number"]

    assert await ids(staff.village, f"id_number={number}") == [c_wang["id"]]
    assert await ids(staff.county, f"id_number={number}&programme=rural_reward") == [c_wang["id"]]
    assert await ids(staff.village, f"id_number={number}&q=李") == []  # filters combine
    # exact only: another valid number finds nothing; a part of one is not a number (422)
    unused = id_number(date(1964, 3, 1), "female")
    assert await ids(staff.village, f"id_number={unused}") == []
    body = problem(
        await staff.village.get(f"/api/v1/claims?id_number={number[:10]}"), 422, "id_number_invalid"
    )
    assert body["errors"][0]["field"] == "id_number"
    bad_check = number[:17] + "Y"  # no check character is Y
    problem(await staff.village.get(f"/api/v1/claims?id_number={bad_check}"), 422, "id_number_invalid")
    lookups = (
        (
            await db.execute(
                select(AuditEvent).where(AuditEvent.action == "lookup", AuditEvent.entity == "claim")
            )
        )
        .scalars()
        .all()
    )
    assert len(lookups) == 4  # each lookup that ran, nothing of the number in the log
    assert all(number not in (e.detail or "") for e in lookups)
    assert {e.actor_id for e in lookups} == {staff.village.user.id, staff.county.user.id}


async def test_renewals_say_which_year_they_draft_for(staff, db):
    wang = await elder(staff.village, name="王桂兰")
    claim = await mk_claim(staff.village, wang, year=2024)
    await to_status(staff, db, claim["id"], "paid")
    r = await staff.county.post("/api/v1/claims/renewals", json={"programme": "rural_reward", "year": 2024})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["year"] == 2024  # the request's year: whose paid claims were renewed
    assert out["for_year"] == 2025  # the drafts' year, the year after
    assert [(d["person_id"], d["year"]) for d in out["drafted"]] == [(wang["id"], 2025)]
    stored = (await staff.county.get(f"/api/v1/claims/{out['drafted'][0]['id']}")).json()
    assert (stored["year"], stored["status"]) == (2025, "draft")
    assert uuid.UUID(stored["renewed_from_id"]) == uuid.UUID(claim["id"])


async def test_the_document_says_the_year_after(app):
    spec = app.openapi()
    schemas = spec["components"]["schemas"]
    assert "year after" in schemas["RenewalRequest"]["properties"]["year"]["description"]
    result = schemas["RenewalResult"]
    assert "for_year" in result["required"]
    assert "year after" in result["properties"]["for_year"]["description"]
    op = spec["paths"]["/api/v1/claims/renewals"]["post"]
    assert "year after" in op["description"]
    params = {p["name"] for p in spec["paths"]["/api/v1/claims"]["get"]["parameters"]}
    assert {"q", "id_number"} <= params

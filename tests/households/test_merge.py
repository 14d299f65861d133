"""Merging two records of one woman without dead ends (contract v1.1, "Merge without dead ends"):
appointments of one round, clashing claims, refusals that write nothing, scope."""

from __future__ import annotations

import json
import uuid
from datetime import date

import pytest
from sqlalchemy import func, select, update

from app.core import clock
from app.models.audit import AuditEvent
from app.models.checkups import CheckupAppointment
from app.models.claims import Claim, ClaimHistory
from app.models.households import Person, PersonMerge
from tests.checkups.test_api import appointments, round_body
from tests.claims.test_api import RURAL_FACTS, payee, programmes  # noqa: F401  (autouse fixture)
from tests.households.test_api import COUNTY, TS1, V1, V2, V_OTHER_TS, mk_household, mk_person, problem

TODAY = clock.today()
BORN = date(1988, 8, 8)
ELDER_BORN = date(1962, 3, 1)


@pytest.fixture
async def cast(client_as):
    """Two village cadres of one township, the township and a township elsewhere."""

    class Cast:
        pass

    c = Cast()
    c.v1 = await client_as("village", V1)
    c.v2 = await client_as("village", V2)
    c.ts = await client_as("township", TS1)
    c.other_ts = await client_as("township", V_OTHER_TS[:9] + "000")
    return c


async def twins(c, *, born: date = BORN, name: str = "周玉梅", dup_first: bool = False) -> tuple[dict, dict]:
    """The same married woman twice: ``keep`` in V1 with her ID number, ``dup`` in V2 without
    (she married into V2 and was registered again). ``dup_first`` registers the duplicate first."""
    h1 = await mk_household(c.v1)
    h2 = await mk_household(c.v2, V2)

    async def make_keep() -> dict:
        return await mk_person(c.v1, h1["id"], born=born, name=name, relation_to_head="配偶")

    async def make_dup() -> dict:
        return await mk_person(c.v2, h2["id"], born=born, name=name, with_id=False, relation_to_head="配偶")

    if dup_first:
        dup = await make_dup()
        return await make_keep(), dup
    keep = await make_keep()
    return keep, await make_dup()


async def merge(c, dup: dict, keep: dict):
    return await c.post(f"/api/v1/persons/{dup['id']}/merge", json={"into_id": keep["id"]})


def result_body() -> dict:
    return {
        "checked_on": TODAY.isoformat(),
        "place": "station",
        "consent": True,
        "items": {"iud": "in_place", "pregnancy": "negative", "gynecological": "normal"},
    }


async def pull_all(c) -> dict[str, dict]:
    """Everything the caller's phone would receive from scratch: the latest change per id."""
    out: dict[str, dict] = {}
    cursor = None
    for _ in range(50):
        r = await c.get("/api/v1/sync/pull", params={"limit": 500, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        for ch in body["changes"]:
            out[ch["id"]] = ch
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    return out


async def county_figures(c) -> dict:
    """The township's figures for this year, with the fault count checked against the list."""
    r = await c.get(
        "/api/v1/indicators",
        params={"area_code": TS1, "from": date(TODAY.year, 1, 1).isoformat(), "to": TODAY.isoformat()},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data_quality_open"] == len((await c.get("/api/v1/data-quality")).json())
    return body


async def stored_appointments(db, *person_ids: str) -> list[CheckupAppointment]:
    ids = [uuid.UUID(p) for p in person_ids]
    stmt = (
        select(CheckupAppointment)
        .where(CheckupAppointment.person_id.in_(ids))
        .execution_options(populate_existing=True)
    )
    return list((await db.execute(stmt)).scalars())


# --- appointments of one round --------------------------------------------------------------------


async def test_merge_keeps_the_appointment_with_a_result_and_cancels_the_other(cast, db):
    keep, dup = await twins(cast)
    rnd = await cast.ts.post("/api/v1/checkup-rounds", json=round_body())
    assert rnd.status_code == 201, rnd.text
    assert rnd.json()["appointments_created"] == 2
    rid = rnd.json()["id"]
    by_person = {a["person_id"]: a for a in await appointments(cast.ts, round_id=rid)}
    keep_appt, dup_appt = by_person[keep["id"]], by_person[dup["id"]]
    # The duplicate's cadre checked her (the survivor's record has only a scheduled appointment).
    r = await cast.v2.post(f"/api/v1/checkup-appointments/{dup_appt['id']}/result", json=result_body())
    assert r.status_code == 200, r.text
    before = (await cast.ts.get(f"/api/v1/checkup-rounds/{rid}")).json()
    assert (before["due"], before["done"]) == (2, 1)
    figures = await county_figures(cast.ts)
    assert (figures["population"], figures["married_women_15_49"]) == (2, 2)
    assert (figures["checkups"]["due"], figures["checkups"]["done"]) == (2, 1)

    r = await merge(cast.ts, dup, keep)
    assert r.status_code == 200, r.text
    merge_row = (await db.execute(select(PersonMerge))).scalar_one()
    refs = json.loads(merge_row.moved_refs)
    assert {
        "table": "checkup_appointment",
        "column": "status",
        "id": keep_appt["id"],
        "settled": "merged",
    } in refs

    after = {a["id"]: a for a in await appointments(cast.ts, round_id=rid)}
    assert after[dup_appt["id"]]["person_id"] == keep["id"]
    assert after[dup_appt["id"]]["status"] == "done"
    assert after[dup_appt["id"]]["items"] == result_body()["items"]
    assert after[keep_appt["id"]]["person_id"] == keep["id"]
    assert after[keep_appt["id"]]["status"] == "cancelled"
    assert after[keep_appt["id"]]["cancel_reason"] == "merged"
    # The figures count her once, checked.
    figures = (await cast.ts.get(f"/api/v1/checkup-rounds/{rid}")).json()
    assert (figures["due"], figures["done"], figures["rate"]) == (1, 1, 100.0)
    figures = await county_figures(cast.ts)
    assert (figures["population"], figures["married_women_15_49"]) == (1, 1)
    assert figures["checkups"] == {"due": 1, "done": 1, "rate": 100.0}
    # Nothing stays on the tombstone; the survivor holds one live appointment.
    stored = await stored_appointments(db, keep["id"], dup["id"])
    assert {str(a.person_id) for a in stored} == {keep["id"]}
    assert sorted(a.status for a in stored) == ["cancelled", "done"]
    # Both changes reach the phones (latest version, the cancelled one included) and the audit log.
    pulled = await pull_all(cast.ts)
    assert pulled[keep_appt["id"]]["data"]["status"] == "cancelled"
    assert pulled[keep_appt["id"]]["version"] == keep_appt["version"] + 1
    assert pulled[dup_appt["id"]]["data"]["person_id"] == keep["id"]
    assert dup["id"] not in pulled or pulled[dup["id"]]["deleted"]  # a tombstone leaves the phones
    audited = (
        await db.execute(
            select(AuditEvent.entity_id).where(
                AuditEvent.entity == "checkup_appointment", AuditEvent.actor_id == cast.ts.user.id
            )
        )
    ).scalars()
    assert {keep_appt["id"], dup_appt["id"]} <= set(audited)
    # A later change of the survivor does not bring the cancelled appointment back.
    r = await cast.ts.patch(
        f"/api/v1/persons/{keep['id']}",
        json={"name": "周玉梅"},
        headers={"If-Match": f'"{keep["version"] + 1}"'},
    )
    assert r.status_code in (200, 412), r.text
    current = (await cast.ts.get(f"/api/v1/persons/{keep['id']}")).json()
    r = await cast.ts.patch(
        f"/api/v1/persons/{keep['id']}",
        json={"relation_to_head": "户主"},
        headers={"If-Match": f'"{current["version"]}"'},
    )
    assert r.status_code == 200, r.text
    again = {a["id"]: a["status"] for a in await appointments(cast.ts, round_id=rid)}
    assert again == {keep_appt["id"]: "cancelled", dup_appt["id"]: "done"}


@pytest.mark.parametrize("dup_first", [False, True])
async def test_merge_without_results_keeps_the_earlier_appointment(cast, db, dup_first):
    """Neither has a result: the earlier-made appointment stays. The woman registered second
    joins the open round later (the register event adds her), so hers is the later one."""
    rnd = await cast.ts.post("/api/v1/checkup-rounds", json=round_body())
    rid = rnd.json()["id"]
    keep, dup = await twins(cast, dup_first=dup_first)
    by_person = {a["person_id"]: a for a in await appointments(cast.ts, round_id=rid)}
    first, second = (dup, keep) if dup_first else (keep, dup)
    stored = {str(a.person_id): a for a in await stored_appointments(db, keep["id"], dup["id"])}
    assert stored[first["id"]].created_at < stored[second["id"]].created_at

    r = await merge(cast.ts, dup, keep)
    assert r.status_code == 200, r.text
    after = {a["id"]: a for a in await appointments(cast.ts, round_id=rid)}
    kept, cancelled = by_person[first["id"]]["id"], by_person[second["id"]]["id"]
    assert after[kept]["status"] == "scheduled"
    assert after[kept]["person_id"] == keep["id"]
    assert (after[cancelled]["status"], after[cancelled]["cancel_reason"]) == ("cancelled", "merged")
    assert after[cancelled]["person_id"] == keep["id"]
    # The kept appointment is the survivor's "checkup due" item, at the survivor's village.
    assert after[kept]["village_code"] == V1
    figures = (await cast.ts.get(f"/api/v1/checkup-rounds/{rid}")).json()
    assert (figures["due"], figures["done"]) == (1, 0)


# --- claims ---------------------------------------------------------------------------------------


async def elder_twins(c) -> tuple[dict, dict]:
    """A rural elder with a son, registered twice (the duplicate without ID number)."""
    keep, dup = await twins(c, born=ELDER_BORN, name="王桂兰")
    son = await mk_person(
        c.v1,
        keep["household_id"],
        born=date(1988, 5, 5),
        sex="male",
        name="子",
        relation_to_head="子",
        marital_status="married",
        mother_id=keep["id"],
    )
    assert son["mother_id"] == keep["id"]
    return keep, dup


async def mk_claim(c, person: dict, year: int = 2024) -> dict:
    body = {
        "programme": "rural_reward",
        "person_id": person["id"],
        "year": year,
        "facts": RURAL_FACTS,
        "payee": payee(person["name"]),
    }
    r = await c.post("/api/v1/claims", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_merge_withdraws_a_clashing_draft_claim(cast, db):
    keep, dup = await elder_twins(cast)
    kept = await mk_claim(cast.v1, keep)
    r = await cast.v1.post(f"/api/v1/claims/{kept['id']}/submit")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "submitted"
    draft = await mk_claim(cast.v2, dup)
    other_year = await mk_claim(cast.v2, dup, year=2025)  # no clash: it simply moves

    r = await merge(cast.ts, dup, keep)
    assert r.status_code == 200, r.text
    withdrawn = (await cast.ts.get(f"/api/v1/claims/{draft['id']}")).json()
    assert withdrawn["status"] == "withdrawn"
    assert withdrawn["person_id"] == keep["id"]
    assert withdrawn["version"] == draft["version"] + 1
    last = withdrawn["history"][-1]
    assert (last["action"], last["from_status"], last["to_status"], last["comment"]) == (
        "withdraw",
        "draft",
        "withdrawn",
        "merged",
    )
    assert last["actor_id"] == str(cast.ts.user.id)
    assert [h["action"] for h in withdrawn["history"]] == ["create", "withdraw"]
    still = (await cast.ts.get(f"/api/v1/claims/{kept['id']}")).json()
    assert (still["status"], still["version"]) == ("submitted", kept["version"] + 1)
    moved = (await cast.ts.get(f"/api/v1/claims/{other_year['id']}")).json()
    assert (moved["status"], moved["person_id"]) == ("draft", keep["id"])
    # Withdrawn is final, and the survivor holds one live claim for 2024.
    problem(await cast.v2.post(f"/api/v1/claims/{draft['id']}/submit"), 409, "invalid_transition")
    live = (
        await db.execute(
            select(func.count())
            .select_from(Claim)
            .where(Claim.person_id == uuid.UUID(keep["id"]), Claim.year == 2024, Claim.status != "withdrawn")
        )
    ).scalar_one()
    assert live == 1
    problem(
        await cast.v1.post(
            "/api/v1/claims",
            json={"programme": "rural_reward", "person_id": keep["id"], "year": 2024, "facts": RURAL_FACTS},
        ),
        409,
        "claim_exists",
    )
    audited = (
        await db.execute(
            select(AuditEvent.entity_id).where(
                AuditEvent.entity == "claim", AuditEvent.actor_id == cast.ts.user.id
            )
        )
    ).scalars()
    assert draft["id"] in set(audited)


async def test_merge_of_two_drafts_keeps_the_earlier(cast):
    keep, dup = await elder_twins(cast)
    earlier = await mk_claim(cast.v2, dup)  # the duplicate's draft came first
    later = await mk_claim(cast.v1, keep)
    r = await merge(cast.ts, dup, keep)
    assert r.status_code == 200, r.text
    a = (await cast.ts.get(f"/api/v1/claims/{earlier['id']}")).json()
    b = (await cast.ts.get(f"/api/v1/claims/{later['id']}")).json()
    assert (a["status"], a["person_id"]) == ("draft", keep["id"])
    assert (b["status"], b["person_id"]) == ("withdrawn", keep["id"])


async def test_two_claims_past_draft_refuse_the_merge_and_write_nothing(cast, db):
    keep, dup = await elder_twins(cast)
    rid = (await cast.ts.post("/api/v1/checkup-rounds", json=round_body())).json()["id"]
    assert rid  # (the elders are past 49: no appointments; the claims decide)
    mine = await mk_claim(cast.v1, keep)
    theirs = await mk_claim(cast.v2, dup)
    assert (await cast.v1.post(f"/api/v1/claims/{mine['id']}/submit")).status_code == 200
    # The duplicate's claim was submitted too and returned by the township (still past draft).
    await db.execute(update(Claim).where(Claim.id == uuid.UUID(theirs["id"])).values(status="returned"))
    await db.commit()
    persons_before = {
        str(p.id): p.version
        for p in (
            await db.execute(
                select(Person)
                .where(Person.id.in_([uuid.UUID(keep["id"]), uuid.UUID(dup["id"])]))
                .execution_options(populate_existing=True)
            )
        ).scalars()
    }
    history_before = (await db.execute(select(func.count()).select_from(ClaimHistory))).scalar_one()

    body = problem(await merge(cast.ts, dup, keep), 409, "merge_conflict")
    assert "rural_reward" in body["detail"]

    assert (await db.execute(select(func.count()).select_from(PersonMerge))).scalar_one() == 0
    persons_after = {
        str(p.id): (p.version, p.merged_into_id)
        for p in (
            await db.execute(
                select(Person)
                .where(Person.id.in_([uuid.UUID(keep["id"]), uuid.UUID(dup["id"])]))
                .execution_options(populate_existing=True)
            )
        ).scalars()
    }
    assert persons_after == {k: (v, None) for k, v in persons_before.items()}
    claims = {
        str(c.id): (c.status, str(c.person_id))
        for c in (await db.execute(select(Claim).execution_options(populate_existing=True))).scalars()
    }
    assert claims == {mine["id"]: ("submitted", keep["id"]), theirs["id"]: ("returned", dup["id"])}
    assert (await db.execute(select(func.count()).select_from(ClaimHistory))).scalar_one() == history_before
    events_after = (
        await db.execute(
            select(AuditEvent.entity, AuditEvent.action).where(AuditEvent.actor_id == cast.ts.user.id)
        )
    ).all()
    assert all(
        e.entity not in ("person", "person_merge", "claim", "checkup_appointment") for e in events_after
    )


async def test_refused_merge_rolls_back_the_settled_appointments(cast, db):
    """A merge refused by the claims leaves the appointments as they were (one transaction)."""
    keep, dup = await twins(cast)
    rid = (await cast.ts.post("/api/v1/checkup-rounds", json=round_body())).json()["id"]
    before = {
        a["id"]: (a["status"], a["person_id"], a["version"])
        for a in await appointments(cast.ts, round_id=rid)
    }
    assert len(before) == 2
    # Both records hold a claim past draft of one programme and year (arranged directly).
    for person in (keep, dup):
        claim = Claim(
            programme="rural_reward",
            person_id=uuid.UUID(person["id"]),
            year=2024,
            status="submitted",
            eligible=True,
            amount_fen=96000,
            rule_version_id=(await _any_rule_version(db)),
            county_code=person["village_code"][:6],
            township_code=person["village_code"][:9],
            village_code=person["village_code"],
        )
        db.add(claim)
    await db.commit()
    problem(await merge(cast.ts, dup, keep), 409, "merge_conflict")
    after = {
        a["id"]: (a["status"], a["person_id"], a["version"])
        for a in await appointments(cast.ts, round_id=rid)
    }
    assert after == before


async def _any_rule_version(db) -> uuid.UUID:
    from app.models.claims import RuleVersion

    return (
        (await db.execute(select(RuleVersion.id).where(RuleVersion.programme_code == "rural_reward")))
        .scalars()
        .first()
    )


# --- scope: nobody merges across what they may see ---------------------------------------------------


async def test_merges_across_scope_are_refused_and_write_nothing(cast, client_as, db):
    keep, dup = await twins(cast)
    far_cadre = await client_as("village", V_OTHER_TS)
    fh = await mk_household(far_cadre, V_OTHER_TS)
    far = await mk_person(
        far_cadre, fh["id"], born=BORN, name="周玉梅", with_id=False, relation_to_head="配偶"
    )
    county = await client_as("county", COUNTY)
    r = await county.post("/api/v1/checkup-rounds", json=round_body(area_code=COUNTY))
    assert r.status_code == 201, r.text
    assert r.json()["appointments_created"] == 3

    async def snapshot() -> dict:
        people = {
            str(p.id): (p.version, p.merged_into_id)
            for p in (await db.execute(select(Person).execution_options(populate_existing=True))).scalars()
        }
        appts = {
            str(a.id): (a.status, str(a.person_id), a.version)
            for a in (
                await db.execute(select(CheckupAppointment).execution_options(populate_existing=True))
            ).scalars()
        }
        merges = (await db.execute(select(func.count()).select_from(PersonMerge))).scalar_one()
        return {"people": people, "appts": appts, "merges": merges}

    before = await snapshot()
    # A village cadre may not merge at all, not even within her own village (403, whatever the ids).
    problem(await merge(cast.v1, dup, keep), 403, "forbidden")
    problem(await merge(cast.v1, far, keep), 403, "forbidden")
    problem(await merge(cast.v1, keep, far), 403, "forbidden")
    # A township merging a record of another township into one of its own, and the reverse: the
    # other record does not exist for it.
    problem(await merge(cast.ts, far, keep), 404, "not_found")
    problem(await merge(cast.ts, keep, far), 404, "not_found")
    problem(await merge(cast.other_ts, dup, far), 404, "not_found")
    problem(await merge(cast.other_ts, far, dup), 404, "not_found")
    assert await snapshot() == before

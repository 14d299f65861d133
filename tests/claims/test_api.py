"""Benefit claims through HTTP: programmes and rule versions, checks, the workflow with its roles,
scope and separation of duties, payees, posting, payment, renewals, the bank file, the inbox."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from app.core import clock
from app.core.db import today
from app.models.audit import AuditEvent
from app.models.claims import Claim, ClaimHistory, Payment, Programme, RuleVersion
from app.models.users import User
from app.services import claim_rules as rules
from tests.households.test_api import mk_household, mk_person, problem

V1 = "430122100201"
V2 = "430122100202"
V_OTHER_TS = "430122101201"
TS1 = "430122100000"
TS2 = "430122101000"
COUNTY = "430122000000"
OTHER_COUNTY = "430181000000"

RURAL_FACTS = {"hukou_rural": True, "births_within_policy_1973_2001": True}
ACCOUNT = "6217001234567890123"


def payee(name: str, account: str = ACCOUNT) -> dict:
    return {"name": name, "bank": "湖南农村信用社", "account": account}


@pytest.fixture(autouse=True)
async def programmes(clean_db, db):  # noqa: ARG001  (after the tables are emptied)
    """The shipped programmes and national rule versions, as the migration seeds them."""
    for p in rules.PROGRAMMES:
        db.add(Programme(**p))
    await db.flush()
    for v in rules.NATIONAL_DEFAULTS:
        db.add(RuleVersion(**v))
    await db.commit()


class Staff:
    village: object
    village2: object
    township: object
    township2: object
    county: object
    treasurer: object  # a second county user: whoever approved a claim does not pay it
    admin: object


@pytest.fixture
async def staff(client_as) -> Staff:
    s = Staff()
    s.village = await client_as("village", V1)
    s.village2 = await client_as("village", V2)
    s.township = await client_as("township", TS1)
    s.township2 = await client_as("township", TS1)
    s.county = await client_as("county", COUNTY)
    s.treasurer = await client_as("county", COUNTY)
    s.admin = await client_as("admin", COUNTY)
    return s


async def elder(
    c, *, village: str = V1, born: date = date(1964, 3, 1), children=(("male", None),), name="王桂兰"
):
    """A rural mother and her children (sex, death date)."""
    h = await mk_household(c, village)
    mother = await mk_person(c, h["id"], born=born, sex="female", name=name)
    for i, (sex, died) in enumerate(children):
        kid = await mk_person(
            c,
            h["id"],
            born=date(1988 + 2 * i, 5, 5),
            sex=sex,
            name=f"子{i}",
            relation_to_head="子",
            marital_status="married",
            mother_id=mother["id"],
        )
        if died:
            r = await c.post("/api/v1/deaths", json={"person_id": kid["id"], "death_date": died})
            assert r.status_code == 201, r.text
    return mother


async def mk_claim(
    c, person: dict, *, programme="rural_reward", year=2024, facts=None, status=201, **kw
) -> dict:
    body = {
        "programme": programme,
        "person_id": person["id"],
        "year": year,
        "facts": RURAL_FACTS if facts is None else facts,
        **kw,
    }
    body.setdefault("payee", payee(person["name"]))
    r = await c.post("/api/v1/claims", json=body)
    assert r.status_code == status, r.text
    return r.json()


async def step(c, claim_id: str, action: str, body: dict | None = None, status: int = 200) -> dict:
    r = await c.post(f"/api/v1/claims/{claim_id}/{action}", json=body)
    assert r.status_code == status, r.text
    return r.json()


async def end_posting(db, claim_id: str) -> None:
    """Time passes: the posting period ended yesterday."""
    await db.execute(
        update(Claim).where(Claim.id == uuid.UUID(claim_id)).values(notice_until=today() - timedelta(days=1))
    )
    await db.commit()


async def to_status(s: Staff, db, claim_id: str, target: str) -> dict:
    """Walk a draft along the happy path up to ``target``."""
    path = [
        ("submitted", s.village, "submit", None),
        ("reviewed", s.township, "review", {"decision": "approve", "comment": "核实无误"}),
        ("approved", s.county, "approve", {"decision": "approve", "comment": "同意"}),
        ("posted", s.county, "publish", {"notice_days": 7}),
    ]
    out: dict = (await s.county.get(f"/api/v1/claims/{claim_id}")).json()
    order = ["draft", "submitted", "reviewed", "approved", "posted"]
    for status, c, action, body in path:
        if order.index(status) <= order.index(out["status"]):
            continue
        out = await step(c, claim_id, action, body)
        if status == target:
            return out
    assert target == "paid"
    await end_posting(db, claim_id)
    return await step(
        s.treasurer,
        claim_id,
        "pay",
        {"paid_on": today().isoformat(), "amount": out["approved_amount"], "reference": "BANK-0001"},
    )


# --- programmes and rules ---------------------------------------------------------------------


async def test_programmes_show_their_versions(staff):
    r = await staff.village.get("/api/v1/programmes")
    assert r.status_code == 200, r.text
    by_code = {p["code"]: p for p in r.json()}
    assert set(by_code) == {
        "rural_reward",
        "special_assistance",
        "childcare_subsidy",
        "only_child_parent_reward",
    }
    rural = by_code["rural_reward"]
    assert rural["name"] == "农村部分计划生育家庭奖励扶助"
    assert [(v["effective_from"], v["params"]["amount"]) for v in rural["versions"]] == [
        ("2004-01-01", "600.00"),
        ("2009-01-01", "720.00"),
        ("2012-01-01", "960.00"),
    ]
    assert [v["params"]["death_monthly"] for v in by_code["special_assistance"]["versions"]] == [
        "450.00",
        "590.00",
    ]
    assert by_code["childcare_subsidy"]["versions"][0]["params"]["monthly"] == "300.00"
    assert by_code["only_child_parent_reward"]["versions"] == []


async def test_only_admins_add_versions_and_approved_claims_keep_theirs(staff, db):
    mother = await elder(staff.village)
    approved = await mk_claim(staff.village, mother)
    await to_status(staff, db, approved["id"], "approved")
    body = {"effective_from": "2024-01-01", "params": {"amount": "1200.00"}, "note": "省级标准"}
    for c in (staff.village, staff.township, staff.county):
        problem(await c.post("/api/v1/programmes/rural_reward/rules", json=body), 403, "forbidden")
    r = await staff.admin.post("/api/v1/programmes/rural_reward/rules", json=body)
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["params"]["amount"] == "1200.00"
    assert new["params"]["min_age"] == 60  # carried over from the version in force before
    problem(
        await staff.admin.post("/api/v1/programmes/rural_reward/rules", json=body), 409, "rule_version_exists"
    )
    problem(
        await staff.admin.post(
            "/api/v1/programmes/rural_reward/rules",
            json={"effective_from": "2025-01-01", "params": {"amount": "1.005"}},
        ),
        422,
        "validation_failed",
    )
    problem(await staff.admin.post("/api/v1/programmes/nope/rules", json=body), 422, "validation_failed")
    # the approved claim keeps its stamped version and amount
    got = (await staff.county.get(f"/api/v1/claims/{approved['id']}")).json()
    assert got["rule_version"]["effective_from"] == "2012-01-01"
    assert (got["amount"], got["approved_amount"]) == ("960.00", "960.00")
    # a new evaluation uses the new version
    other = await elder(staff.village, name="赵春花")
    check = await staff.village.post(
        "/api/v1/claims/check",
        json={"programme": "rural_reward", "person_id": other["id"], "year": 2024, "facts": RURAL_FACTS},
    )
    assert check.json()["amount"] == "1200.00"
    assert check.json()["rule_version"]["id"] == new["id"]
    versions = [
        v["effective_from"]
        for p in (await staff.village.get("/api/v1/programmes")).json()
        if p["code"] == "rural_reward"
        for v in p["versions"]
    ]
    assert versions[-1] == "2024-01-01"


async def test_only_child_reward_needs_a_provincial_version(staff):
    h = await mk_household(staff.village)
    father = await mk_person(staff.village, h["id"], born=date(1975, 1, 1), sex="male", name="刘建国")
    await mk_person(
        staff.village,
        h["id"],
        born=date(2005, 1, 1),
        sex="female",
        name="刘小",
        father_id=father["id"],
        relation_to_head="女",
        marital_status="single",
    )
    body = {
        "programme": "only_child_parent_reward",
        "person_id": father["id"],
        "year": 2025,
        "facts": {"only_child_certificate": True},
    }
    problem(await staff.village.post("/api/v1/claims/check", json=body), 409, "no_rule_version")
    problem(await staff.village.post("/api/v1/claims", json=body), 409, "no_rule_version")
    r = await staff.admin.post(
        "/api/v1/programmes/only_child_parent_reward/rules",
        json={"effective_from": "2020-01-01", "params": {"amount": "1000.00"}},
    )
    assert r.status_code == 201, r.text
    out = (await staff.village.post("/api/v1/claims/check", json=body)).json()
    assert (out["eligible"], out["amount"]) == (True, "1000.00")


# --- check and create -------------------------------------------------------------------------


async def test_check_explains_and_writes_nothing(staff, db):
    mother = await elder(staff.village, children=(("male", None), ("female", None)))
    r = await staff.village.post(
        "/api/v1/claims/check",
        json={"programme": "rural_reward", "person_id": mother["id"], "year": 2024, "facts": RURAL_FACTS},
        headers={"Accept-Language": "en"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["eligible"] is False
    assert out["amount"] == "0.00"
    assert out["rule_version"]["effective_from"] == "2012-01-01"
    reasons = {x["rule"]: x for x in out["reasons"]}
    assert reasons["children"] == {
        "rule": "children",
        "passed": False,
        "detail": "2 living children (1 sons, 1 daughters)",
    }
    assert reasons["min_age"]["passed"] is True
    assert (await db.execute(select(Claim))).scalars().all() == []


async def test_check_reads_deaths_from_the_register(staff):
    mother = await elder(staff.village, born=date(1972, 2, 2), children=(("female", "2019-04-04"),))
    r = await staff.village.post(
        "/api/v1/claims/check",
        json={"programme": "special_assistance", "person_id": mother["id"], "year": 2022, "facts": {}},
    )
    out = r.json()
    assert (out["eligible"], out["amount"], out["category"]) == (True, "6240.00", "death")
    assert len(out["months"]) == 12


async def test_create_is_idempotent_and_one_claim_per_person_programme_year(staff, db):
    mother = await elder(staff.village)
    cid = str(uuid.uuid4())
    first = await mk_claim(staff.village, mother, id=cid)
    assert first["status"] == "draft"
    assert (first["eligible"], first["amount"]) == (True, "960.00")
    assert first["payee"] == {
        "name": "王桂兰",
        "bank": "湖南农村信用社",
        "account_masked": "***************0123",
    }
    again = await staff.village.post(
        "/api/v1/claims",
        json={
            "id": cid,
            "programme": "rural_reward",
            "person_id": mother["id"],
            "year": 2024,
            "facts": RURAL_FACTS,
            "payee": payee("王桂兰"),
        },
    )
    assert again.status_code == 200
    assert again.json() == first
    changed = await staff.village.post(
        "/api/v1/claims",
        json={
            "id": cid,
            "programme": "rural_reward",
            "person_id": mother["id"],
            "year": 2024,
            "facts": {**RURAL_FACTS, "hukou_rural": False},
            "payee": payee("王桂兰"),
        },
    )
    problem(changed, 409, "id_conflict")
    out = problem(
        await staff.village.post(
            "/api/v1/claims",
            json={"programme": "rural_reward", "person_id": mother["id"], "year": 2024, "facts": RURAL_FACTS},
        ),
        409,
        "claim_exists",
    )
    assert out["claim_id"] == cid
    await mk_claim(staff.village, mother, year=2025)  # another year is another claim
    stored = (await db.execute(select(Claim))).scalars().all()
    assert len(stored) == 2
    assert ACCOUNT not in (stored[0].payee_account_enc or "")
    assert stored[0].village_code == V1
    history = (
        (await db.execute(select(ClaimHistory).where(ClaimHistory.claim_id == uuid.UUID(cid))))
        .scalars()
        .all()
    )
    assert [(h.action, h.from_status, h.to_status) for h in history] == [("create", None, "draft")]


async def test_duplicate_claims_under_concurrency(staff, db):
    mother = await elder(staff.village)
    body = {"programme": "rural_reward", "person_id": mother["id"], "year": 2024, "facts": RURAL_FACTS}
    rs = await asyncio.gather(
        *[staff.village.post("/api/v1/claims", json={**body, "id": str(uuid.uuid4())}) for _ in range(6)]
    )
    codes = sorted(r.status_code for r in rs)
    assert codes == [201, 409, 409, 409, 409, 409], [r.text for r in rs]
    assert {r.json()["code"] for r in rs if r.status_code == 409} == {"claim_exists"}
    assert len((await db.execute(select(Claim))).scalars().all()) == 1


async def test_deceased_or_unknown_people_get_no_claims(staff):
    mother = await elder(staff.village)
    assert (
        await staff.village.post(
            "/api/v1/deaths", json={"person_id": mother["id"], "death_date": "2024-01-02"}
        )
    ).status_code == 201
    problem(
        await staff.village.post(
            "/api/v1/claims",
            json={"programme": "rural_reward", "person_id": mother["id"], "year": 2024, "facts": RURAL_FACTS},
        ),
        409,
        "person_deceased",
    )
    problem(
        await staff.village.post(
            "/api/v1/claims",
            json={"programme": "rural_reward", "person_id": str(uuid.uuid4()), "year": 2024, "facts": {}},
        ),
        404,
        "not_found",
    )


# --- the workflow -----------------------------------------------------------------------------


async def test_happy_path_with_history_inbox_and_payment(staff, db):
    mother = await elder(staff.village)
    claim = await mk_claim(staff.village, mother)
    cid = claim["id"]

    sub = await step(staff.village, cid, "submit", {"comment": "材料齐全"})
    assert sub["status"] == "submitted"
    assert sub["submitted_by"] == str(staff.village.user.id)
    inbox = (await staff.township.get("/api/v1/tasks", params={"status": "open"})).json()["items"]
    assert [(t["kind"], t["source_id"]) for t in inbox] == [("claim_review", cid)]
    assert (await staff.village.get("/api/v1/tasks", params={"status": "open"})).json()["items"] == []

    rev = await step(staff.township, cid, "review", {"decision": "approve", "comment": "已入户核实"})
    assert (rev["status"], rev["reviewed_by"]) == ("reviewed", str(staff.township.user.id))
    assert (await staff.township.get("/api/v1/tasks", params={"status": "open"})).json()["items"] == []

    app_ = await step(staff.county, cid, "approve", {"decision": "approve", "comment": "同意"})
    assert (app_["status"], app_["approved_amount"]) == ("approved", "960.00")

    pub = await step(staff.county, cid, "publish", {"notice_days": 5})
    assert pub["status"] == "posted"
    assert pub["posted_on"] == today().isoformat()
    assert pub["notice_until"] == (today() + timedelta(days=4)).isoformat()

    pay = {"paid_on": today().isoformat(), "amount": "960.00", "reference": "BANK-7"}
    problem(await staff.treasurer.post(f"/api/v1/claims/{cid}/pay", json=pay), 409, "notice_period_running")
    await end_posting(db, cid)
    problem(
        await staff.treasurer.post(f"/api/v1/claims/{cid}/pay", json={**pay, "amount": "1000.00"}),
        422,
        "amount_mismatch",
    )
    problem(
        await staff.treasurer.post(
            f"/api/v1/claims/{cid}/pay", json={**pay, "paid_on": (today() - timedelta(days=1)).isoformat()}
        ),
        422,
        "validation_failed",
    )
    paid = await step(staff.treasurer, cid, "pay", pay)
    assert paid["status"] == "paid"
    assert paid["payment"]["amount"] == "960.00"
    assert paid["payment"]["payee"] == {
        "name": "王桂兰",
        "bank": "湖南农村信用社",
        "account_masked": "***************0123",
    }

    detail = (await staff.village.get(f"/api/v1/claims/{cid}")).json()
    steps = [(h["action"], h["from_status"], h["to_status"], h["actor_id"]) for h in detail["history"]]
    assert steps == [
        ("create", None, "draft", str(staff.village.user.id)),
        ("submit", "draft", "submitted", str(staff.village.user.id)),
        ("review", "submitted", "reviewed", str(staff.township.user.id)),
        ("approve", "reviewed", "approved", str(staff.county.user.id)),
        ("publish", "approved", "posted", str(staff.county.user.id)),
        ("pay", "posted", "paid", str(staff.treasurer.user.id)),
    ]
    assert detail["history"][1]["comment"] == "材料齐全"
    assert detail["history"][2]["comment"] == "已入户核实"
    stored = (await db.execute(select(Payment))).scalar_one()
    assert (stored.amount_fen, stored.reference, stored.village_code) == (96000, "BANK-7", V1)
    assert ACCOUNT not in stored.payee_account_enc


async def test_publish_defaults_to_the_setting(staff, db, settings):
    mother = await elder(staff.village)
    claim = await mk_claim(staff.village, mother)
    await to_status(staff, db, claim["id"], "approved")
    out = await step(staff.county, claim["id"], "publish")
    days = settings.claim_notice_days
    assert out["notice_until"] == (today() + timedelta(days=days - 1)).isoformat()


async def test_objection_during_posting_goes_back_to_review(staff, db):
    mother = await elder(staff.village)
    claim = await mk_claim(staff.village, mother)
    await to_status(staff, db, claim["id"], "posted")
    problem(
        await staff.county.post(f"/api/v1/claims/{claim['id']}/object", json={}), 422, "validation_failed"
    )
    out = await step(staff.county, claim["id"], "object", {"comment": "群众反映其有两个儿子"})
    assert (out["status"], out["posted_on"], out["approved_amount"]) == ("reviewed", None, None)
    assert out["history"][-1]["comment"] == "群众反映其有两个儿子"
    # the county decides again, and a new posting starts
    await step(staff.admin, claim["id"], "approve", {"decision": "approve", "comment": "复核属实"})
    again = await step(staff.county, claim["id"], "publish", {"notice_days": 3})
    assert again["status"] == "posted"


ALL_ACTIONS = {
    "submit": None,
    "review": {"decision": "approve", "comment": "ok"},
    "approve": {"decision": "approve", "comment": "ok"},
    "publish": {"notice_days": 3},
    "object": {"comment": "异议"},
    "pay": {"paid_on": "2026-01-01", "amount": "960.00", "reference": "R"},
}
ALLOWED = {
    "draft": {"submit"},
    "submitted": {"review"},
    "reviewed": {"approve"},
    "approved": {"publish"},
    "posted": {"object", "pay"},
    "paid": set(),
}


@pytest.mark.parametrize("status", list(ALLOWED))
async def test_illegal_transitions_are_409(staff, db, status):
    mother = await elder(staff.village)
    claim = await mk_claim(staff.village, mother)
    if status != "draft":
        await to_status(staff, db, claim["id"], status)
    actor_for = {
        "submit": staff.village,
        "review": staff.township2,
        "approve": staff.admin,
        "publish": staff.county,
        "object": staff.county,
        "pay": staff.county,
    }
    for action, body in ALL_ACTIONS.items():
        if action in ALLOWED[status]:
            continue
        out = problem(
            await actor_for[action].post(f"/api/v1/claims/{claim['id']}/{action}", json=body),
            409,
            "invalid_transition",
        )
        assert out["status"] == 409
        assert out["claim_status"] == status
    got = (await staff.county.get(f"/api/v1/claims/{claim['id']}")).json()
    assert got["status"] == status


async def test_rejected_is_final(staff):
    mother = await elder(staff.village)
    claim = await mk_claim(staff.village, mother)
    await step(staff.village, claim["id"], "submit")
    problem(
        await staff.township.post(f"/api/v1/claims/{claim['id']}/review", json={"decision": "reject"}),
        422,
        "validation_failed",
    )
    out = await step(staff.township, claim["id"], "review", {"decision": "reject", "comment": "非农业户口"})
    assert out["status"] == "rejected"
    for action in ("submit", "review", "approve"):
        c = {"submit": staff.village, "review": staff.township2, "approve": staff.county}[action]
        problem(
            await c.post(f"/api/v1/claims/{claim['id']}/{action}", json=ALL_ACTIONS[action]),
            409,
            "invalid_transition",
        )


async def test_wrong_roles_are_403(staff, db):
    mother = await elder(staff.village)
    claim = await mk_claim(staff.village, mother)
    cid = claim["id"]
    for c in (staff.township, staff.county, staff.admin):
        problem(await c.post(f"/api/v1/claims/{cid}/submit"), 403, "forbidden")
    await step(staff.village, cid, "submit")
    for c in (staff.village, staff.county, staff.admin):
        problem(await c.post(f"/api/v1/claims/{cid}/review", json=ALL_ACTIONS["review"]), 403, "forbidden")
    await step(staff.township, cid, "review", ALL_ACTIONS["review"])
    for c in (staff.village, staff.township):
        problem(await c.post(f"/api/v1/claims/{cid}/approve", json=ALL_ACTIONS["approve"]), 403, "forbidden")
    await step(staff.county, cid, "approve", ALL_ACTIONS["approve"])
    for action in ("publish",):
        for c in (staff.village, staff.township):
            problem(
                await c.post(f"/api/v1/claims/{cid}/{action}", json=ALL_ACTIONS[action]), 403, "forbidden"
            )
    await step(staff.county, cid, "publish", ALL_ACTIONS["publish"])
    for action in ("object", "pay"):
        for c in (staff.village, staff.township):
            problem(
                await c.post(f"/api/v1/claims/{cid}/{action}", json=ALL_ACTIONS[action]), 403, "forbidden"
            )
    for c in (staff.village, staff.township):
        problem(
            await c.post("/api/v1/claims/renewals", json={"programme": "rural_reward", "year": 2024}),
            403,
            "forbidden",
        )
        problem(await c.get("/api/v1/claims/payments.csv"), 403, "forbidden")


async def test_separation_of_duties(staff, db, client_as):
    from tests.factories import make_user

    # a cadre who submitted and then moved to the township office may not review it
    user, password = await make_user(db, role="village", area_code=V1)
    await db.commit()
    cadre = await client_as("village", V1)  # any logged-in client; re-log as ``user`` below
    r = await cadre.post(
        "/api/v1/auth/token", data={"grant_type": "password", "username": user.username, "password": password}
    )
    cadre.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    mother = await elder(cadre)
    claim = await mk_claim(cadre, mother)
    cid = claim["id"]
    await step(cadre, cid, "submit")
    await db.execute(update(User).where(User.id == user.id).values(role="township", area_code=TS1))
    await db.commit()
    problem(
        await cadre.post(f"/api/v1/claims/{cid}/review", json=ALL_ACTIONS["review"]),
        403,
        "separation_of_duties",
    )
    # the reviewer may not approve either, even with county powers later
    await step(staff.township, cid, "review", ALL_ACTIONS["review"])
    await db.execute(
        update(User).where(User.id == staff.township.user.id).values(role="county", area_code=COUNTY)
    )
    await db.commit()
    problem(
        await staff.township.post(f"/api/v1/claims/{cid}/approve", json=ALL_ACTIONS["approve"]),
        403,
        "separation_of_duties",
    )
    await step(staff.county, cid, "approve", ALL_ACTIONS["approve"])
    # whoever changes the payee takes the submitter's place: another person reviews
    await step(staff.township2, cid, "change_payee", {"payee": payee("王桂兰", "6228480000000000001")})
    problem(
        await staff.township2.post(f"/api/v1/claims/{cid}/review", json=ALL_ACTIONS["review"]),
        403,
        "separation_of_duties",
    )
    tsx = await client_as("township", TS1)
    assert (await step(tsx, cid, "review", ALL_ACTIONS["review"]))["status"] == "reviewed"


async def test_the_approver_does_not_pay(staff, db):
    """Whoever approved the amount cannot also pay it out: 403 ``separation_of_duties``,
    nothing written; another county user pays. An objection clears the approver: after the new
    approval, the new approver is the one who may not pay."""
    mother = await elder(staff.village)
    claim = await mk_claim(staff.village, mother)
    cid = claim["id"]
    await to_status(staff, db, cid, "posted")  # approved and posted by staff.county
    await end_posting(db, cid)
    before = (await staff.county.get(f"/api/v1/claims/{cid}")).json()
    assert before["approved_by"] == str(staff.county.user.id)
    pay = {"paid_on": today().isoformat(), "amount": "960.00", "reference": "BANK-9"}
    problem(await staff.county.post(f"/api/v1/claims/{cid}/pay", json=pay), 403, "separation_of_duties")
    after = (await staff.county.get(f"/api/v1/claims/{cid}")).json()
    assert after == before
    assert (after["status"], after["payment"], after["version"]) == ("posted", None, before["version"])
    assert (await db.execute(select(Payment))).scalars().all() == []
    stored = (await db.execute(select(Claim).where(Claim.id == uuid.UUID(cid)))).scalar_one()
    assert (stored.status, stored.approved_by) == ("posted", staff.county.user.id)
    await db.commit()  # end the read (expires nothing: the users stay loaded)
    paid = await step(staff.treasurer, cid, "pay", pay)
    assert (paid["status"], paid["payment"]["recorded_by"]) == ("paid", str(staff.treasurer.user.id))

    # an objection sends it back; the admin approves again and so may not pay; the county may
    other = await elder(staff.village, name="赵春花")
    second = (await mk_claim(staff.village, other))["id"]
    await to_status(staff, db, second, "posted")
    await step(staff.county, second, "object", {"comment": "群众反映情况不实"})
    await step(staff.admin, second, "approve", {"decision": "approve", "comment": "复核属实"})
    out = await step(staff.county, second, "publish", {"notice_days": 3})
    assert out["approved_by"] == str(staff.admin.user.id)
    await end_posting(db, second)
    problem(await staff.admin.post(f"/api/v1/claims/{second}/pay", json=pay), 403, "separation_of_duties")
    assert (await step(staff.county, second, "pay", pay))["status"] == "paid"
    payments = (await db.execute(select(Payment.claim_id, Payment.recorded_by))).all()
    assert sorted(payments) == sorted(
        [(uuid.UUID(cid), staff.treasurer.user.id), (uuid.UUID(second), staff.county.user.id)]
    )


async def test_scope_on_every_step(staff, db, client_as):
    mother = await elder(staff.village)
    claim = await mk_claim(staff.village, mother)
    cid = claim["id"]
    other_village = staff.village2
    other_ts = await client_as("township", TS2)
    other_county = await client_as("county", OTHER_COUNTY)
    other_admin = await client_as("admin", OTHER_COUNTY)
    for c in (other_village, other_ts, other_county):
        problem(await c.get(f"/api/v1/claims/{cid}"), 404, "not_found")
        assert (await c.get("/api/v1/claims")).json()["items"] == []
    problem(await other_village.post(f"/api/v1/claims/{cid}/submit"), 404, "not_found")
    problem(
        await other_village.patch(
            f"/api/v1/claims/{cid}", json={"facts": RURAL_FACTS}, headers={"If-Match": '"1"'}
        ),
        404,
        "not_found",
    )
    problem(
        await other_village.post(
            "/api/v1/claims/check",
            json={"programme": "rural_reward", "person_id": mother["id"], "year": 2024, "facts": {}},
        ),
        404,
        "not_found",
    )
    problem(
        await other_village.post(
            "/api/v1/claims",
            json={"programme": "rural_reward", "person_id": mother["id"], "year": 2025, "facts": {}},
        ),
        404,
        "not_found",
    )
    await step(staff.village, cid, "submit")
    problem(await other_ts.post(f"/api/v1/claims/{cid}/review", json=ALL_ACTIONS["review"]), 404, "not_found")
    problem(
        await other_ts.post(f"/api/v1/claims/{cid}/change_payee", json={"payee": payee("王桂兰")}),
        404,
        "not_found",
    )
    await step(staff.township, cid, "review", ALL_ACTIONS["review"])
    for c in (other_county, other_admin):
        problem(await c.post(f"/api/v1/claims/{cid}/approve", json=ALL_ACTIONS["approve"]), 404, "not_found")
    await step(staff.county, cid, "approve", ALL_ACTIONS["approve"])
    problem(await other_county.post(f"/api/v1/claims/{cid}/publish", json={}), 404, "not_found")
    await step(staff.county, cid, "publish", {})
    problem(await other_county.post(f"/api/v1/claims/{cid}/object", json={"comment": "x"}), 404, "not_found")
    await end_posting(db, cid)
    problem(await other_county.post(f"/api/v1/claims/{cid}/pay", json=ALL_ACTIONS["pay"]), 404, "not_found")
    # the township and the county see it; list filters by area
    assert [c["id"] for c in (await staff.township.get("/api/v1/claims")).json()["items"]] == [cid]
    assert [
        c["id"] for c in (await staff.county.get("/api/v1/claims", params={"area_code": V1})).json()["items"]
    ] == [cid]
    assert (await staff.county.get("/api/v1/claims", params={"area_code": V2})).json()["items"] == []
    problem(await other_county.get("/api/v1/claims", params={"area_code": V1}), 404, "not_found")
    csv_text = (await other_admin.get("/api/v1/claims/payments.csv")).text
    assert cid not in csv_text
    out = await other_admin.post("/api/v1/claims/renewals", json={"programme": "rural_reward", "year": 2024})
    assert out.json()["drafted"] == []


async def test_returned_claims_are_corrected_and_resubmitted(staff, db):
    mother = await elder(staff.village)
    claim = await mk_claim(staff.village, mother, facts={"hukou_rural": True})  # policy not declared
    cid = claim["id"]
    assert claim["eligible"] is False
    out = problem(await staff.village.post(f"/api/v1/claims/{cid}/submit"), 422, "not_eligible")
    assert {e["field"] for e in out["errors"]} == {"births_within_policy"}
    assert any(r["rule"] == "births_within_policy" and not r["passed"] for r in out["reasons"])
    r = await staff.village.patch(
        f"/api/v1/claims/{cid}", json={"facts": RURAL_FACTS}, headers={"If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["eligible"], r.json()["amount"], r.json()["version"]) == (True, "960.00", 2)
    await step(staff.village, cid, "submit")
    returned = await step(
        staff.township, cid, "review", {"decision": "return", "comment": "请补充银行卡复印件"}
    )
    assert returned["status"] == "returned"
    inbox = (await staff.village.get("/api/v1/tasks", params={"status": "open"})).json()["items"]
    assert [(t["kind"], t["source_id"]) for t in inbox] == [("claim_correction", cid)]
    assert (
        await staff.township.get("/api/v1/tasks", params={"status": "open", "kind": "claim_review"})
    ).json()["items"] == []
    version = returned["version"]
    problem(
        await staff.village.patch(f"/api/v1/claims/{cid}", json={"payee": payee("王桂兰")}),
        428,
        "precondition_required",
    )
    problem(
        await staff.township.patch(
            f"/api/v1/claims/{cid}", json={"payee": payee("王桂兰")}, headers={"If-Match": f'"{version}"'}
        ),
        403,
        "forbidden",
    )
    fixed = await staff.village.patch(
        f"/api/v1/claims/{cid}",
        json={"payee": payee("王桂兰", "6228480000000000002")},
        headers={"If-Match": f'"{version}"'},
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["payee"]["account_masked"].endswith("0002")
    again = await step(staff.village, cid, "submit")
    assert again["status"] == "submitted"
    assert (await staff.village.get("/api/v1/tasks", params={"status": "open"})).json()["items"] == []
    assert [a["action"] for a in again["history"]] == ["create", "submit", "review", "submit"]
    # only draft and returned claims are corrected by PATCH
    problem(
        await staff.village.patch(
            f"/api/v1/claims/{cid}",
            json={"facts": RURAL_FACTS},
            headers={"If-Match": f'"{again["version"]}"'},
        ),
        409,
        "invalid_transition",
    )


async def test_payee_must_be_the_beneficiary_and_changes_are_reviewed(staff, db):
    mother = await elder(staff.village)
    problem(
        await staff.village.post(
            "/api/v1/claims",
            json={
                "programme": "rural_reward",
                "person_id": mother["id"],
                "year": 2024,
                "facts": RURAL_FACTS,
                "payee": payee("李四"),
            },
        ),
        422,
        "payee_mismatch",
    )
    no_payee = await mk_claim(staff.village, mother, payee=None)
    problem(await staff.village.post(f"/api/v1/claims/{no_payee['id']}/submit"), 422, "payee_required")
    problem(
        await staff.village.post(
            f"/api/v1/claims/{no_payee['id']}/change_payee", json={"payee": payee("王桂兰")}
        ),
        409,
        "invalid_transition",
    )
    r = await staff.village.patch(
        f"/api/v1/claims/{no_payee['id']}", json={"payee": payee("王桂兰")}, headers={"If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    cid = no_payee["id"]
    await to_status(staff, db, cid, "posted")
    problem(
        await staff.village.post(f"/api/v1/claims/{cid}/change_payee", json={"payee": payee("王某")}),
        422,
        "payee_mismatch",
    )
    out = await step(
        staff.village,
        cid,
        "change_payee",
        {"payee": payee("王桂兰", "6228480000000009999"), "comment": "原卡挂失"},
    )
    assert (out["status"], out["posted_on"], out["approved_amount"]) == ("submitted", None, None)
    last = out["history"][-1]
    assert (last["action"], last["from_status"], last["to_status"]) == ("change_payee", "posted", "submitted")
    assert "***************0123" in last["comment"]
    assert "***************9999" in last["comment"]
    assert "原卡挂失" in last["comment"]
    inbox = (await staff.township.get("/api/v1/tasks", params={"status": "open"})).json()["items"]
    assert [(t["kind"], t["source_id"]) for t in inbox] == [("claim_review", cid)]
    paid = await to_status(staff, db, cid, "paid")
    assert paid["payment"]["payee"]["account_masked"] == "***************9999"
    problem(
        await staff.village.post(f"/api/v1/claims/{cid}/change_payee", json={"payee": payee("王桂兰")}),
        409,
        "invalid_transition",
    )
    # the payment keeps the account it was paid to
    stored = (await db.execute(select(Payment))).scalar_one()
    assert stored.payee_account_masked.endswith("9999")


async def test_childcare_claimed_by_a_parent_once_per_child_and_year(staff):
    h = await mk_household(staff.village)
    mother = await mk_person(staff.village, h["id"], born=date(1996, 2, 2), name="陈丽")
    father = await mk_person(
        staff.village, h["id"], born=date(1994, 4, 4), sex="male", name="周强", relation_to_head="配偶"
    )
    child = await mk_person(
        staff.village,
        h["id"],
        born=date(2023, 12, 10),
        name="周宝",
        sex="male",
        mother_id=mother["id"],
        father_id=father["id"],
        relation_to_head="子",
        marital_status="single",
    )
    base = {"programme": "childcare_subsidy", "person_id": child["id"], "year": 2025, "facts": {}}
    problem(await staff.village.post("/api/v1/claims", json=base), 422, "validation_failed")
    problem(
        await staff.village.post(
            "/api/v1/claims", json={**base, "applicant_id": mother["id"], "payee": payee("周宝")}
        ),
        422,
        "payee_mismatch",
    )
    first = await mk_claim(
        staff.village,
        child,
        programme="childcare_subsidy",
        year=2025,
        facts={},
        applicant_id=mother["id"],
        payee=payee("陈丽"),
    )
    assert (first["eligible"], first["amount"], first["applicant_id"]) == (True, "3600.00", mother["id"])
    problem(
        await staff.village.post(
            "/api/v1/claims", json={**base, "applicant_id": father["id"], "payee": payee("周强")}
        ),
        409,
        "claim_exists",
    )
    check = await staff.village.post(
        "/api/v1/claims/check", json={**base, "year": 2026, "applicant_id": father["id"]}
    )
    assert check.json()["amount"] == "3600.00"


# --- renewals and the bank file ---------------------------------------------------------------


async def test_renewals_draft_next_year_and_list_exits(staff, db):
    h = await mk_household(staff.village)
    mother = await mk_person(staff.village, h["id"], born=date(1994, 1, 1), name="陈丽")
    young = await mk_person(
        staff.village,
        h["id"],
        born=date(2023, 12, 10),
        name="小一",
        mother_id=mother["id"],
        relation_to_head="女",
        marital_status="single",
    )
    older = await mk_person(
        staff.village,
        h["id"],
        born=date(2022, 6, 10),
        name="小二",
        mother_id=mother["id"],
        relation_to_head="女",
        marital_status="single",
    )
    h2 = await mk_household(staff.village)
    mother2 = await mk_person(staff.village, h2["id"], born=date(1995, 1, 1), name="刘芳")
    gone = await mk_person(
        staff.village,
        h2["id"],
        born=date(2024, 2, 2),
        name="小三",
        mother_id=mother2["id"],
        relation_to_head="子",
        marital_status="single",
        sex="male",
    )
    claims = {}
    for kid, parent in ((young, mother), (older, mother), (gone, mother2)):
        c = await mk_claim(
            staff.village,
            kid,
            programme="childcare_subsidy",
            year=2025,
            facts={},
            applicant_id=parent["id"],
            payee=payee(parent["name"]),
        )
        await to_status(staff, db, c["id"], "paid")
        claims[kid["id"]] = c
    assert (
        await staff.village.post("/api/v1/deaths", json={"person_id": gone["id"], "death_date": "2026-01-05"})
    ).status_code == 201
    # an unpaid claim is not renewed
    unpaid_parent = await mk_person(staff.village, h2["id"], born=date(1990, 1, 1), name="某")
    unpaid = await mk_person(
        staff.village,
        h2["id"],
        born=date(2024, 5, 5),
        name="小四",
        mother_id=unpaid_parent["id"],
        relation_to_head="子",
        marital_status="single",
    )
    await mk_claim(
        staff.village,
        unpaid,
        programme="childcare_subsidy",
        year=2025,
        facts={},
        applicant_id=unpaid_parent["id"],
        payee=payee("某"),
    )

    r = await staff.county.post(
        "/api/v1/claims/renewals", json={"programme": "childcare_subsidy", "year": 2025}
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["year"], out["for_year"]) == (2025, 2026)  # renewed 2025's, drafted for 2026
    assert [(d["person_id"], d["year"], d["status"], d["amount"]) for d in out["drafted"]] == [
        (young["id"], 2026, "draft", "3600.00")
    ]
    drafted = out["drafted"][0]
    assert drafted["renewed_from_id"] == claims[young["id"]]["id"]
    assert drafted["payee"]["name"] == "陈丽"
    assert drafted["applicant_id"] == mother["id"]
    exits = {e["person_id"]: e for e in out["exits"]}
    assert exits[older["id"]]["reason"] == "child_turned_3"
    assert exits[gone["id"]]["reason"] == "died"
    assert set(exits) == {older["id"], gone["id"]}
    # running it again drafts nothing twice
    again = (
        await staff.county.post(
            "/api/v1/claims/renewals", json={"programme": "childcare_subsidy", "year": 2025}
        )
    ).json()
    assert again["drafted"] == []
    assert again["already_claimed"] == [young["id"]]
    # the village carries the draft on
    assert (await step(staff.village, drafted["id"], "submit"))["status"] == "submitted"


async def test_rural_renewal_exits_on_death_and_new_children(staff, db):
    one = await elder(staff.village, name="甲")
    two = await elder(staff.village, name="乙")
    three = await elder(staff.village, name="丙")
    for p in (one, two, three):
        c = await mk_claim(staff.village, p)
        await to_status(staff, db, c["id"], "paid")
    await staff.village.post("/api/v1/deaths", json={"person_id": two["id"], "death_date": "2025-03-03"})
    await mk_person(
        staff.village,
        three["household_id"],
        born=date(1995, 5, 5),
        sex="male",
        name="丙子二",
        mother_id=three["id"],
        relation_to_head="子",
        marital_status="single",
    )
    out = (
        await staff.admin.post("/api/v1/claims/renewals", json={"programme": "rural_reward", "year": 2024})
    ).json()
    assert [d["person_id"] for d in out["drafted"]] == [one["id"]]
    assert {e["person_id"]: e["reason"] for e in out["exits"]} == {
        two["id"]: "died",
        three["id"]: "children_changed",
    }
    assert "children: 2 个在世子女" in next(
        e["detail"] for e in out["exits"] if e["person_id"] == three["id"]
    )


async def test_payments_csv_for_the_bank(staff, db):
    mother = await elder(staff.village)
    claim = await mk_claim(staff.village, mother)
    await to_status(staff, db, claim["id"], "posted")
    draft_only = await elder(staff.village, name="钱多多")
    await mk_claim(staff.village, draft_only)
    r = await staff.county.get(
        "/api/v1/claims/payments.csv",
        params={"programme": "rural_reward", "year": 2024},
        headers={"Accept-Language": "en"},  # field names as the header (Chinese titles by default)
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == rules_header()
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    person = (await staff.village.get(f"/api/v1/persons/{mother['id']}")).json()
    assert row["id_number_masked"] == person["id_number_masked"]
    assert person["id_number"] not in r.text
    number = person["id_number"]
    assert row["id_number_masked"] == number[0] + "*" * 16 + number[-1]
    assert (row["beneficiary_name"], row["payee_name"], row["payee_account"], row["amount"]) == (
        "王桂兰",
        "王桂兰",
        ACCOUNT,
        "960.00",
    )
    assert row["status"] == "posted"
    assert (await staff.county.get("/api/v1/claims/payments.csv", params={"status": "paid"})).text.count(
        "\n"
    ) == 1
    problem(
        await staff.county.get("/api/v1/claims/payments.csv", params={"status": "draft"}),
        422,
        "validation_failed",
    )
    await end_posting(db, claim["id"])
    await step(
        staff.treasurer,
        claim["id"],
        "pay",
        {"paid_on": today().isoformat(), "amount": "960", "reference": "B1"},
    )
    paid = (await staff.county.get("/api/v1/claims/payments.csv", params={"status": "paid"})).content.decode(
        "utf-8-sig"
    )
    assert ACCOUNT in paid
    events = (await db.execute(select(AuditEvent).where(AuditEvent.action == "export"))).scalars().all()
    assert len(events) == 3


def rules_header() -> list[str]:
    from app.services.claims import CSV_HEADER

    return CSV_HEADER


# --- storage ----------------------------------------------------------------------------------


async def test_history_is_insert_only(staff, db):
    mother = await elder(staff.village)
    claim = await mk_claim(staff.village, mother)
    row = (
        await db.execute(select(ClaimHistory).where(ClaimHistory.claim_id == uuid.UUID(claim["id"])))
    ).scalar_one()
    row.comment = "rewritten"
    with pytest.raises(RuntimeError, match="insert-only"):
        await db.flush()
    await db.rollback()


async def test_merge_moves_claims(staff, db):
    mother = await elder(staff.village)
    h = await mk_household(staff.village)
    dup = await mk_person(staff.village, h["id"], born=date(1964, 3, 1), with_id=False, name="王桂兰")
    c = await mk_claim(staff.village, dup, facts={**RURAL_FACTS}, status=201)
    # the duplicate has no children: not eligible, still a draft that follows the survivor
    assert c["eligible"] is False
    r = await staff.township.post(f"/api/v1/persons/{dup['id']}/merge", json={"into_id": mother["id"]})
    assert r.status_code == 200, r.text
    got = (await staff.village.get(f"/api/v1/claims/{c['id']}")).json()
    assert got["person_id"] == mother["id"]


def test_a_fresh_database_ships_the_national_defaults(tmp_path):
    from app.core.migrations import upgrade

    path = tmp_path / "fresh.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    con = sqlite3.connect(path)
    try:
        programmes = con.execute("select code, name, basis from programme order by code").fetchall()
        versions = con.execute("select programme_code, effective_from, params from rule_version").fetchall()
    finally:
        con.close()
    assert sorted(programmes) == sorted((p["code"], p["name"], p["basis"]) for p in rules.PROGRAMMES)
    import json

    shipped = {
        (v["programme_code"], v["effective_from"].isoformat(), json.dumps(v["params"], sort_keys=True))
        for v in rules.NATIONAL_DEFAULTS
    }
    stored = {
        (code, start, json.dumps(json.loads(params), sort_keys=True)) for code, start, params in versions
    }
    assert stored == shipped
    assert not any(code == "only_child_parent_reward" for code, *_ in versions)


async def test_pending_claims_follow_a_confirmed_move(staff, client_as):
    """A beneficiary moves to another township: her submitted claim follows her and waits in the
    receiving township's inbox; the old township no longer sees it."""
    mother = await elder(staff.village)
    claim = await mk_claim(staff.village, mother)
    await step(staff.village, claim["id"], "submit")
    number = (await staff.village.get(f"/api/v1/persons/{mother['id']}")).json()["id_number"]
    receiving = await client_as("village", V_OTHER_TS)
    inflow = await receiving.post(
        "/api/v1/migrants",
        json={
            "person": {
                "id_number": number,
                "name": mother["name"],
                "sex": "female",
                "birth_date": mother["birth_date"],
                "marital_status": mother["marital_status"],
            },
            "direction": "inflow",
            "village_code": V_OTHER_TS,
            "moved_on": clock.today().isoformat(),
            "origin_area_code": V1,
            "address": "格塘村五组2号",
        },
    )
    assert inflow.status_code == 201, inflow.text
    # her village releases her (issue 14: the receiving side cannot)
    r = await staff.village.post(f"/api/v1/migrants/{inflow.json()['id']}/confirm", json={})
    assert r.status_code == 200, r.text
    other_ts = await client_as("township", "430122101000")
    moved = (await other_ts.get(f"/api/v1/claims/{claim['id']}")).json()
    assert moved["village_code"] == V_OTHER_TS and moved["status"] == "submitted"
    tasks = (await other_ts.get("/api/v1/tasks", params={"kind": "claim_review", "status": "open"})).json()[
        "items"
    ]
    assert [t["source_id"] for t in tasks] == [claim["id"]]
    problem(await staff.township.get(f"/api/v1/claims/{claim['id']}"), 404, "not_found")
    assert (
        await staff.township.get("/api/v1/tasks", params={"kind": "claim_review", "status": "open"})
    ).json()["items"] == []

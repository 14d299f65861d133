"""Programme rules per area, through HTTP: a county's rule version applies inside that county only
(listing and every evaluation: check, create, submit, renewals), national versions ship with the
migrations, the most specific version in force on the date decides, and an admin writes only its
own county's versions. Plus the upgrade that brings the area column (and the claim's approver)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from app.models.claims import Claim, ProgrammeCode, RuleVersion
from app.services import claim_rules as rules
from tests.claims.test_api import (  # noqa: F401  (programmes, staff: fixtures used here)
    COUNTY,
    OTHER_COUNTY,
    RURAL_FACTS,
    TS1,
    V1,
    V2,
    elder,
    mk_claim,
    programmes,
    staff,
    step,
    to_status,
)
from tests.households.test_api import problem

B_TOWNSHIP = "430181100000"
B_VILLAGE = "430181100201"
RULES = "/api/v1/programmes/rural_reward/rules"


def national(code: str, start: date) -> str:
    """The id of a national version shipped with the migrations."""
    found = [
        v["id"]
        for v in rules.NATIONAL_DEFAULTS
        if v["programme_code"] == code and v["effective_from"] == start
    ]
    assert len(found) == 1
    return str(found[0])


NATIONAL_2012 = national("rural_reward", date(2012, 1, 1))


class CountyB:
    """Another county's staff, with the same roles as ``staff``."""

    village: object
    township: object
    county: object
    treasurer: object
    admin: object


@pytest.fixture
async def county_a(staff):  # noqa: F811  (the claims tests' staff: county A, 430122)
    return staff


@pytest.fixture
async def county_b(client_as) -> CountyB:
    s = CountyB()
    s.village = await client_as("village", B_VILLAGE)
    s.township = await client_as("township", B_TOWNSHIP)
    s.county = await client_as("county", OTHER_COUNTY)
    s.treasurer = await client_as("county", OTHER_COUNTY)
    s.admin = await client_as("admin", OTHER_COUNTY)
    return s


async def add_version(c, body: dict, *, programme: str = "rural_reward") -> dict:
    r = await c.post(f"/api/v1/programmes/{programme}/rules", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def check(c, person: dict, year: int) -> dict:
    r = await c.post(
        "/api/v1/claims/check",
        json={"programme": "rural_reward", "person_id": person["id"], "year": year, "facts": RURAL_FACTS},
    )
    assert r.status_code == 200, r.text
    return r.json()


async def rural_versions(c, **params: str) -> list[tuple[str, str | None, str]]:
    r = await c.get("/api/v1/programmes", params=params)
    assert r.status_code == 200, r.text
    (rural,) = [p for p in r.json() if p["code"] == "rural_reward"]
    return [(v["effective_from"], v["area_code"], v["params"]["amount"]) for v in rural["versions"]]


SHIPPED = [
    ("2004-01-01", None, "600.00"),
    ("2009-01-01", None, "720.00"),
    ("2012-01-01", None, "960.00"),
]


async def test_a_county_version_applies_in_its_county_only(county_a, county_b, db):
    """County A's admin raises the rural reward: A's check and claims use it; county B sees
    nothing of it and its check and claims keep the national version."""
    mother_a = await elder(county_a.village)
    mother_b = await elder(county_b.village, village=B_VILLAGE, name="陈玉梅")
    v = await add_version(
        county_a.admin, {"effective_from": "2024-01-01", "params": {"amount": "1200.00"}, "note": "县级标准"}
    )
    assert (v["area_code"], v["params"]["amount"], v["params"]["min_age"]) == (COUNTY, "1200.00", 60)
    stored = await db.get(RuleVersion, uuid.UUID(v["id"]))
    assert stored is not None and stored.area_code == COUNTY
    await db.commit()  # end the read: the next one sees what the API has committed since

    # county A evaluates with its own version ...
    own_ref = {"id": v["id"], "area_code": COUNTY, "effective_from": "2024-01-01"}
    out = await check(county_a.village, mother_a, 2024)
    assert (out["eligible"], out["amount"], out["rule_version"]) == (True, "1200.00", own_ref)
    claim_a = await mk_claim(county_a.village, mother_a)
    assert (claim_a["amount"], claim_a["rule_version"]) == ("1200.00", own_ref)

    # ... county B with the national one, on check and on create
    national_ref = {"id": NATIONAL_2012, "area_code": None, "effective_from": "2012-01-01"}
    out = await check(county_b.village, mother_b, 2024)
    assert (out["eligible"], out["amount"], out["rule_version"]) == (True, "960.00", national_ref)
    claim_b = await mk_claim(county_b.village, mother_b)
    assert (claim_b["amount"], claim_b["rule_version"]) == ("960.00", national_ref)
    rows = {
        c.id: (c.rule_version_id, c.amount_fen)
        for c in (await db.execute(select(Claim).execution_options(populate_existing=True))).scalars()
    }
    assert rows == {
        uuid.UUID(claim_a["id"]): (uuid.UUID(v["id"]), 120000),
        uuid.UUID(claim_b["id"]): (uuid.UUID(NATIONAL_2012), 96000),
    }

    # the listing: A's people see A's version, B's do not
    for c in (county_a.village, county_a.township, county_a.county, county_a.admin):
        assert await rural_versions(c) == [*SHIPPED, ("2024-01-01", COUNTY, "1200.00")]
    for c in (county_b.village, county_b.township, county_b.county, county_b.admin):
        assert await rural_versions(c) == SHIPPED
    # an area filter: the caller's county, an area inside its scope or one above it
    assert await rural_versions(county_a.village, area_code=COUNTY) == [
        *SHIPPED,
        ("2024-01-01", COUNTY, "1200.00"),
    ]
    assert await rural_versions(county_a.county, area_code=V1) == [
        *SHIPPED,
        ("2024-01-01", COUNTY, "1200.00"),
    ]
    assert await rural_versions(county_b.village, area_code=OTHER_COUNTY) == SHIPPED
    # another county's area (or a sibling village) is out of scope: 404, as for every area filter
    problem(await county_b.admin.get("/api/v1/programmes", params={"area_code": COUNTY}), 404, "not_found")
    problem(await county_b.admin.get("/api/v1/programmes", params={"area_code": V1}), 404, "not_found")
    problem(
        await county_a.admin.get("/api/v1/programmes", params={"area_code": OTHER_COUNTY}), 404, "not_found"
    )
    problem(await county_a.village.get("/api/v1/programmes", params={"area_code": V2}), 404, "not_found")


async def test_an_admin_adds_versions_only_for_its_own_county(county_a, county_b, db):
    def order(row: tuple[str | None, date, str]) -> tuple[str, date]:
        return (row[0] or "", row[1])

    async def stored() -> list[tuple[str | None, date, str]]:
        await db.commit()  # a fresh read: what the API has committed by now
        rows = await db.execute(
            select(RuleVersion)
            .where(RuleVersion.programme_code == "rural_reward")
            .execution_options(populate_existing=True)
        )
        return sorted(
            ((v.area_code, v.effective_from, v.params["amount"]) for v in rows.scalars()), key=order
        )

    before = await stored()
    body = {"effective_from": "2025-01-01", "params": {"amount": "5000.00"}}
    # another county: 403 out_of_scope, for the admin of A and the other way round
    problem(await county_a.admin.post(RULES, json={**body, "area_code": OTHER_COUNTY}), 403, "out_of_scope")
    problem(await county_b.admin.post(RULES, json={**body, "area_code": COUNTY}), 403, "out_of_scope")
    # not a county: a township, a village, a city, or national (null; those ship with the service)
    for code in (TS1, V1, B_VILLAGE, "430100000000", None):
        out = problem(
            await county_a.admin.post(RULES, json={**body, "area_code": code}), 422, "validation_failed"
        )
        assert [e["field"] for e in out["errors"]] == ["area_code"], code
    # and no other role, of either county
    for c in (county_a.county, county_a.township, county_a.village, county_b.county):
        problem(await c.post(RULES, json={**body, "area_code": COUNTY}), 403, "forbidden")
    assert await stored() == before

    # the own county, named or by default; parameters carry over from what is in force there
    a1 = await add_version(county_a.admin, {"effective_from": "2024-01-01", "params": {"top_up": "100.00"}})
    a2 = await add_version(
        county_a.admin, {"area_code": COUNTY, "effective_from": "2025-01-01", "params": {"amount": "1000.00"}}
    )
    assert (a1["area_code"], a1["params"]["amount"], a1["params"]["top_up"]) == (COUNTY, "960.00", "100.00")
    assert (a2["area_code"], a2["params"]["amount"], a2["params"]["top_up"]) == (COUNTY, "1000.00", "100.00")
    # two counties may change on the same day (and on the day of a national version)
    b1 = await add_version(county_b.admin, {"effective_from": "2025-01-01", "params": {"amount": "1000.00"}})
    assert (b1["area_code"], b1["params"]["top_up"]) == (OTHER_COUNTY, "0.00")
    b0 = await add_version(county_b.admin, {"effective_from": "2012-01-01", "params": {"amount": "990.00"}})
    assert b0["area_code"] == OTHER_COUNTY
    problem(
        await county_a.admin.post(RULES, json={"effective_from": "2025-01-01", "params": {"amount": "1.00"}}),
        409,
        "rule_version_exists",
    )
    assert await stored() == sorted(
        [
            *before,
            (COUNTY, date(2024, 1, 1), "960.00"),
            (COUNTY, date(2025, 1, 1), "1000.00"),
            (OTHER_COUNTY, date(2012, 1, 1), "990.00"),
            (OTHER_COUNTY, date(2025, 1, 1), "1000.00"),
        ],
        key=order,
    )


async def test_the_most_specific_version_in_force_on_the_date(county_a, county_b, db):
    """A county version effective 2026-01-01 beats a national one effective 2026-06-01 in that
    county (see ``claim_rules.version_on``); the other county gets the national one."""
    shipped = RuleVersion(
        programme_code="rural_reward",
        effective_from=date(2026, 6, 1),
        params=rules.validate_params(ProgrammeCode.rural_reward, {"amount": "1500.00"}),
        note="national default",
    )
    db.add(shipped)  # as a later migration would ship it
    await db.commit()
    own = await add_version(county_a.admin, {"effective_from": "2026-01-01", "params": {"amount": "1200.00"}})
    mother_a = await elder(county_a.village)
    mother_b = await elder(county_b.village, village=B_VILLAGE, name="陈玉梅")

    out = await check(county_a.village, mother_a, 2026)
    assert (out["amount"], out["rule_version"]["id"]) == ("1200.00", own["id"])
    out = await check(county_a.village, mother_a, 2025)  # the county's version is not in force yet
    assert (out["amount"], out["rule_version"]["id"]) == ("960.00", NATIONAL_2012)
    out = await check(county_b.village, mother_b, 2026)
    assert (out["amount"], out["rule_version"]["id"]) == ("1500.00", str(shipped.id))
    claim = await mk_claim(county_a.village, mother_a, year=2026)
    assert (claim["amount"], claim["rule_version"]["id"]) == ("1200.00", own["id"])

    # each county's listing shows the versions that can apply there
    assert await rural_versions(county_a.county) == [*SHIPPED, ("2026-01-01", COUNTY, "1200.00")]
    assert await rural_versions(county_b.county) == [*SHIPPED, ("2026-06-01", None, "1500.00")]


async def test_submit_and_renewals_evaluate_with_the_claims_county(county_a, county_b, db):
    mother_a = await elder(county_a.village)
    mother_b = await elder(county_b.village, village=B_VILLAGE, name="陈玉梅")
    claim_a = await mk_claim(county_a.village, mother_a)
    claim_b = await mk_claim(county_b.village, mother_b)
    assert claim_a["amount"] == claim_b["amount"] == "960.00"
    own = await add_version(county_a.admin, {"effective_from": "2024-01-01", "params": {"amount": "1200.00"}})

    # submitting evaluates again, each with its own county's versions
    sub_a = await step(county_a.village, claim_a["id"], "submit")
    sub_b = await step(county_b.village, claim_b["id"], "submit")
    assert (sub_a["amount"], sub_a["rule_version"]["id"]) == ("1200.00", own["id"])
    assert (sub_b["amount"], sub_b["rule_version"]["id"]) == ("960.00", NATIONAL_2012)
    stored = await db.get(Claim, uuid.UUID(claim_b["id"]), populate_existing=True)
    assert stored is not None and (stored.rule_version_id, stored.amount_fen) == (
        uuid.UUID(NATIONAL_2012),
        96000,
    )
    await db.commit()  # end the read (expires nothing: the users stay loaded)

    # renewals for 2025: A drafts at its new 2025 rate, B at the national one
    await to_status(county_a, db, claim_a["id"], "paid")
    await to_status(county_b, db, claim_b["id"], "paid")
    next_a = await add_version(
        county_a.admin, {"effective_from": "2025-01-01", "params": {"amount": "1100.00"}}
    )
    r = await county_a.county.post(
        "/api/v1/claims/renewals", json={"programme": "rural_reward", "year": 2024}
    )
    assert r.status_code == 200, r.text
    assert [(d["person_id"], d["amount"], d["rule_version"]["id"]) for d in r.json()["drafted"]] == [
        (mother_a["id"], "1100.00", next_a["id"])
    ]
    r = await county_b.county.post(
        "/api/v1/claims/renewals", json={"programme": "rural_reward", "year": 2024}
    )
    assert r.status_code == 200, r.text
    assert [(d["person_id"], d["amount"], d["rule_version"]["id"]) for d in r.json()["drafted"]] == [
        (mother_b["id"], "960.00", NATIONAL_2012)
    ]
    drafts = (
        await db.execute(
            select(Claim.county_code, Claim.rule_version_id, Claim.amount_fen).where(Claim.year == 2025)
        )
    ).all()
    assert sorted(drafts) == sorted(
        [("430122", uuid.UUID(next_a["id"]), 110000), ("430181", uuid.UUID(NATIONAL_2012), 96000)]
    )


# --- the upgrade ------------------------------------------------------------------------------

REVISION = "b14a00000004"


async def test_the_upgrade_keeps_shipped_versions_national_and_names_the_approvers(settings, tmp_path):
    """On a database one revision before this one: every version stays national (and the new
    national-uniqueness holds), and claims approved before the upgrade get their approver from
    the history, so the approver cannot pay them after the upgrade either."""
    from app.core.migrations import alembic_config
    from tests.conftest import IS_PG, _recreate_pg_database

    if IS_PG:
        url = settings.database_url + "_upg"
        await _recreate_pg_database(url)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'upgrade.db'}"
    cfg = alembic_config(url)
    await _in_thread(command.upgrade, cfg, f"{REVISION}-1")

    approver, reviewer, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    posted, draft = uuid.uuid4(), uuid.uuid4()
    now = datetime(2026, 11, 1, tzinfo=UTC)
    claim = sa.table(
        "claim",
        *(
            sa.column(n)
            for n in ("county_code", "township_code", "village_code", "programme", "year", "status")
        ),
        *(sa.column(n) for n in ("eligible", "amount_fen", "version")),
        sa.column("id", sa.Uuid),
        sa.column("person_id", sa.Uuid),
        sa.column("rule_version_id", sa.Uuid),
        sa.column("facts", sa.JSON),
        sa.column("evaluation", sa.JSON),
        *(sa.column(n, sa.DateTime(timezone=True)) for n in ("created_at", "updated_at", "evaluated_at")),
    )
    history = sa.table(
        "claim_history",
        sa.column("id", sa.Uuid),
        sa.column("claim_id", sa.Uuid),
        sa.column("actor_id", sa.Uuid),
        sa.column("action"),
        sa.column("from_status"),
        sa.column("to_status"),
        sa.column("at", sa.DateTime(timezone=True)),
    )
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            if IS_PG:  # the claims' people are not part of this test
                await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            base = {
                "county_code": "430122",
                "township_code": "430122100",
                "village_code": V1,
                "programme": "rural_reward",
                "year": 2024,
                "eligible": True,
                "amount_fen": 96000,
                "version": 1,
                "person_id": uuid.uuid4(),
                "rule_version_id": uuid.UUID(NATIONAL_2012),
                "facts": {},
                "evaluation": {},
                "created_at": now,
                "updated_at": now,
                "evaluated_at": now,
            }
            await conn.execute(
                claim.insert(),
                [
                    {**base, "id": posted, "status": "posted"},
                    {**base, "id": draft, "status": "draft", "person_id": uuid.uuid4()},
                ],
            )
            steps = [
                (posted, reviewer, "review", "submitted", "reviewed", 1),
                (posted, other, "approve", "reviewed", "approved", 2),
                (posted, other, "object", "posted", "reviewed", 3),  # an objection, then ...
                (posted, approver, "approve", "reviewed", "approved", 4),  # ... approved again
                (posted, approver, "publish", "approved", "posted", 5),
                (draft, other, "approve", "reviewed", "returned", 6),
            ]
            await conn.execute(
                history.insert(),
                [
                    {
                        "id": uuid.uuid4(),
                        "claim_id": cid,
                        "actor_id": who,
                        "action": action,
                        "from_status": src,
                        "to_status": dst,
                        "at": now.replace(hour=h),
                    }
                    for cid, who, action, src, dst, h in steps
                ],
            )
        await _in_thread(command.upgrade, cfg, REVISION)
        async with engine.connect() as conn:
            got = dict(
                (
                    await conn.execute(
                        sa.select(sa.column("id", sa.Uuid), sa.column("approved_by", sa.Uuid)).select_from(
                            sa.table("claim")
                        )
                    )
                ).all()
            )
            assert got == {posted: approver, draft: None}
            areas = (
                (await conn.execute(sa.text("SELECT DISTINCT area_code FROM rule_version"))).scalars().all()
            )
            assert areas == [None]
            count = (await conn.execute(select(func.count()).select_from(sa.table("rule_version")))).scalar()
            assert count == len(rules.NATIONAL_DEFAULTS)
            # a second national version of a programme on the same day is refused by the index
            version = sa.table(
                "rule_version",
                sa.column("id", sa.Uuid),
                sa.column("programme_code"),
                sa.column("effective_from", sa.Date),
                sa.column("params", sa.JSON),
                sa.column("created_at", sa.DateTime(timezone=True)),
            )
            twin = {"programme_code": "childcare_subsidy", "effective_from": date(2025, 1, 1), "params": {}}
            with pytest.raises(sa.exc.IntegrityError):
                await conn.execute(version.insert(), {**twin, "id": uuid.uuid4(), "created_at": now})
            await conn.rollback()
    finally:
        await engine.dispose()
        if IS_PG:
            await _drop_pg_database(url)


async def _in_thread(fn, *args) -> None:  # type: ignore[no-untyped-def]
    """Alembic's env runs its own event loop: keep it off this test's loop."""
    import asyncio

    await asyncio.to_thread(fn, *args)


async def _drop_pg_database(url: str) -> None:
    import asyncpg

    base, _, name = url.replace("postgresql+asyncpg://", "postgresql://").rpartition("/")
    conn = await asyncpg.connect(base + "/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()

"""``jiahe seed-demo``: the demo county has life in it (people, a round in progress, claims at
every step, notifications, non-zero figures), its users log in with the README's passwords, a
second run changes nothing, and ``seed-scale`` tops the county up afterwards."""

from __future__ import annotations

from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select

from app.core.security import FieldCipher
from app.models.checkups import CheckupAppointment, CheckupRound
from app.models.claims import Claim, ClaimHistory, Payment
from app.models.households import Birth, Household, Person
from app.models.migrants import Migrant, PartnerNotification
from app.models.users import MachineClient, User
from app.models.visits import Task, Visit
from app.services.demo import DEMO_USERS, seed_demo
from app.services.scale import seed_scale
from tests.claims import test_api as claims_api

programmes = claims_api.programmes  # the shipped programmes and rule versions, as migrated

COUNTY = "430122000000"
TABLES = (
    Person,
    Household,
    Birth,
    Visit,
    Task,
    Migrant,
    Claim,
    ClaimHistory,
    Payment,
    CheckupRound,
    CheckupAppointment,
    PartnerNotification,
    User,
    MachineClient,
)


async def counts(db) -> dict[str, int]:
    out = {}
    for model in TABLES:
        out[model.__name__] = int((await db.execute(select(func.count()).select_from(model))).scalar_one())
    return out


async def login(app, username: str, password: str) -> AsyncClient:
    c = AsyncClient(transport=ASGITransport(app=app), base_url="http://test")
    r = await c.post(
        "/api/v1/auth/token", data={"grant_type": "password", "username": username, "password": password}
    )
    assert r.status_code == 200, r.text
    c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    return c


async def test_demo_county_has_life_and_a_second_run_adds_nothing(app, db, settings, areas):  # noqa: ARG001
    cipher = FieldCipher(settings)
    assert await seed_demo(db, cipher) > 1000
    first = await counts(db)
    assert first["Person"] >= 1000
    assert 300 <= first["Household"] <= 600  # a few hundred households
    assert first["Birth"] > 0 and first["Visit"] > 0 and first["Migrant"] > 0

    # the README's users and passwords
    users = {}
    for username, password, *_rest in DEMO_USERS:
        users[username] = await login(app, username, password)
    county, village = users["county"], users["village"]
    try:
        r = await village.get("/api/v1/persons?limit=5")
        assert r.status_code == 200 and len(r.json()["items"]) == 5
        assert all(p["village_code"] == "430122100201" for p in r.json()["items"])

        # a round in progress: opened, not closed, some women done, some still due
        r = await county.get("/api/v1/checkup-rounds")
        assert r.status_code == 200, r.text
        rounds = r.json()["items"] if isinstance(r.json(), dict) else r.json()
        assert len(rounds) == 1
        r = await county.get(f"/api/v1/checkup-rounds/{rounds[0]['id']}")
        detail = r.json()
        assert detail["done"] > 0 and detail["due"] > detail["done"], detail

        # claims at every step
        for status in ("submitted", "reviewed", "returned", "approved", "posted", "paid"):
            r = await county.get(f"/api/v1/claims?status={status}&limit=1")
            assert r.status_code == 200, r.text
            assert r.json()["items"], status
        # the inboxes: a returned claim waits in its village, a submitted one at its township
        assert (
            await db.execute(select(func.count()).select_from(Task).where(Task.kind == "claim_review"))
        ).scalar_one()
        # the police system's notifications reached the villages
        r = await county.get("/api/v1/migrant-notifications")
        assert r.status_code == 200, r.text
        assert r.json()["items"]

        # the figures are not zero
        r = await county.get(f"/api/v1/indicators?area_code={COUNTY}")
        assert r.status_code == 200, r.text
        figures = r.json()
        assert figures["population"] > 1000, figures
        assert figures["households"] > 300 and figures["visits"] > 0 and figures["deaths"] > 0
        assert figures["births"]["total"] > 0, figures["births"]
        assert figures["claims"], figures["claims"]
        assert figures["checkups"], figures["checkups"]
    finally:
        for c in users.values():
            await c.aclose()

    # a second run adds nothing
    assert await seed_demo(db, cipher) == 0
    assert await counts(db) == first

    # seed-scale afterwards tops the county up
    topped = await seed_scale(db, cipher, persons=first["Person"] + 500)
    assert topped["persons"] == 500

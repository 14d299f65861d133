"""Partner notifications through HTTP: idempotency keys (replay, reuse, in flight, concurrency),
validation, each kind's matching, township-level areas, partner isolation (its own county, its
own list), the inbox, nothing personal in clear at rest."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import date, timedelta

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select

from app.core import clock
from app.core.security import FieldCipher
from app.models.migrants import IdempotencyKey, Migrant, PartnerNotification
from app.models.visits import Task
from app.services import partner as partner_svc
from tests.conftest import IS_PG
from tests.factories import id_number, make_client
from tests.households.test_api import TS1, V1, V2, V_OTHER_TS, mk_household, mk_person, problem
from tests.migrants.test_api import inflow_body

URL = "/api/v1/partner/notifications"


@pytest.fixture
async def partner_as(app, db, areas):
    """``await partner_as()`` → a client logged in as a new partner machine client."""
    clients: list[AsyncClient] = []

    async def _make(area_code: str = "430122000000", agency: str = "police") -> AsyncClient:
        client, secret = await make_client(db, role="partner", area_code=area_code, agency=agency)
        await db.commit()
        c = AsyncClient(transport=ASGITransport(app=app), base_url="http://test")
        clients.append(c)
        r = await c.post(
            "/api/v1/auth/token",
            data={"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": secret},
        )
        assert r.status_code == 200, r.text
        c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        c.machine = client  # type: ignore[attr-defined]
        return c

    yield _make
    for c in clients:
        await c.aclose()


@pytest.fixture
async def police(partner_as):
    return await partner_as()


@pytest.fixture
def cipher(settings):
    return FieldCipher(settings)


def note(number: str, *, kind: str = "residence_registered", area: str = V1, **kw) -> dict:
    return {
        "kind": kind,
        "id_number": number,
        "name": kw.pop("name", "王桂兰"),
        "address": kw.pop("address", "团头湖村5组12号"),
        "area_code": area,
        "occurred_on": kw.pop("occurred_on", (clock.today() - timedelta(days=2)).isoformat()),
        "reference": kw.pop("reference", f"GA-{uuid.uuid4().hex[:10]}"),
        **kw,
    }


async def send(c, body: dict, key: str | None = None) -> object:
    headers = {"Idempotency-Key": key or uuid.uuid4().hex}
    return await c.post(URL, json=body, headers=headers)


async def count(db, model) -> int:
    return int((await db.execute(select(func.count()).select_from(model))).scalar_one())


async def status_of(c, nid: str) -> str:
    r = await c.get(f"{URL}/{nid}")
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"id", "status", "received_at"}
    return r.json()["status"]


# --- idempotency ------------------------------------------------------------------------------


async def test_same_key_same_body_replays_the_first_answer(police, db, cipher):
    body = note(id_number(date(1995, 1, 1), "female", "440305"))
    first = await send(police, body, "key-1")
    assert first.status_code == 202, first.text
    assert set(first.json()) == {"id", "status"}
    assert first.json()["status"] == "received"
    again = await police.post(
        URL,
        content=json.dumps(body, indent=2, sort_keys=True),
        headers={"Idempotency-Key": "key-1", "content-type": "application/json"},
    )
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await count(db, PartnerNotification) == 1
    assert await count(db, IdempotencyKey) == 1
    assert await count(db, Task) == 1
    stored = (await db.execute(select(PartnerNotification))).scalar_one()
    assert json.loads(partner_svc.received_body(cipher, stored)) == body  # stored as received
    assert body["id_number"] not in stored.body_enc and body["name"] not in stored.body_enc
    assert stored.id_number_hash and body["id_number"] not in stored.id_number_enc
    assert stored.agency == "police"


async def test_same_key_other_body_is_422(police, db):
    body = note(id_number(date(1995, 1, 1), "female", "440305"))
    assert (await send(police, body, "key-2")).status_code == 202
    problem(await send(police, {**body, "address": "别处"}, "key-2"), 422, "idempotency_key_reused")
    assert await count(db, PartnerNotification) == 1


async def test_missing_or_overlong_key(police, db):
    body = note(id_number(date(1995, 1, 1), "female", "440305"))
    problem(await police.post(URL, json=body), 400, "idempotency_key_required")
    problem(
        await police.post(URL, json=body, headers={"Idempotency-Key": "  "}), 400, "idempotency_key_required"
    )
    problem(await send(police, body, "k" * 256), 422, "validation_failed")
    assert (await send(police, body, "k" * 255)).status_code == 202
    assert await count(db, PartnerNotification) == 1


async def test_an_error_answer_is_replayed_and_nothing_is_stored(police, db):
    good = id_number(date(1995, 1, 1), "female", "440305")
    body = note(good[:-1] + ("0" if good[-1] != "0" else "1"))
    first = problem(await send(police, body, "bad-1"), 422, "id_number_invalid")
    again = await send(police, body, "bad-1")
    assert again.status_code == 422
    assert again.json() == first
    assert again.headers["content-type"].startswith("application/problem+json")
    assert await count(db, PartnerNotification) == 0
    assert await count(db, IdempotencyKey) == 1
    # malformed JSON is an answer too
    r = await police.post(
        URL, content=b"{not json", headers={"Idempotency-Key": "bad-2", "content-type": "application/json"}
    )
    problem(r, 422, "validation_failed")


async def test_keys_are_per_partner_client(partner_as, db):
    a = await partner_as()
    b = await partner_as(agency="market_regulation")
    r1 = await send(a, note(id_number(date(1990, 1, 1), "male", "440305")), "shared-key")
    r2 = await send(b, note(id_number(date(1991, 1, 1), "male", "440305")), "shared-key")
    assert (r1.status_code, r2.status_code) == (202, 202)
    assert r1.json()["id"] != r2.json()["id"]
    assert await count(db, PartnerNotification) == 2


async def test_concurrent_identical_requests_store_one(police, db):
    body = note(id_number(date(1995, 1, 1), "female", "440305"))
    answers = await asyncio.gather(*[send(police, body, "same-moment") for _ in range(6)])
    assert {r.status_code for r in answers} == {202}, [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert await count(db, PartnerNotification) == 1
    assert await count(db, IdempotencyKey) == 1
    assert await count(db, Task) == 1


async def test_a_resend_under_a_new_key_is_the_same_notification(police, db):
    body = note(id_number(date(1995, 1, 1), "female", "440305"))
    r1, r2 = await send(police, body, "a"), await send(police, body, "b")
    assert r1.json()["id"] == r2.json()["id"]
    assert await count(db, PartnerNotification) == 1
    assert await count(db, IdempotencyKey) == 2


async def test_a_key_still_processing_is_409(police, db, cipher):
    from app.core.db import utcnow

    body = note(id_number(date(1995, 1, 1), "female", "440305"))
    db.add(
        IdempotencyKey(
            client_id=police.machine.id,
            key=partner_svc.key_digest(cipher, "busy"),
            request_sha256=partner_svc.body_digest(cipher, json.dumps(body).encode()),
            response_status=0,
            response_body="{}",
            expires_at=utcnow() + timedelta(days=30),
        )
    )
    await db.commit()
    problem(await send(police, body, "busy"), 409, "idempotency_key_in_flight")
    assert await count(db, PartnerNotification) == 0


@pytest.mark.skipif(not IS_PG, reason="row locks: PostgreSQL")
async def test_a_key_held_by_a_running_transaction_is_409_in_flight(police, engine, db, monkeypatch, cipher):
    from app.core.db import utcnow
    from app.services import partner

    monkeypatch.setattr(partner, "IN_FLIGHT_WAIT", "300ms")
    body = note(id_number(date(1995, 1, 1), "female", "440305"))
    async with engine.connect() as holder:
        trans = await holder.begin()
        await holder.execute(
            IdempotencyKey.__table__.insert().values(
                id=uuid.uuid4(),
                client_id=police.machine.id,
                key=partner.key_digest(cipher, "held"),
                request_sha256=partner.body_digest(cipher, json.dumps(body).encode()),
                response_status=0,
                response_body="{}",
                created_at=utcnow(),
                expires_at=utcnow() + timedelta(days=30),
            )
        )
        problem(await send(police, body, "held"), 409, "idempotency_key_in_flight")
        await trans.rollback()
    assert (await send(police, body, "held")).status_code == 202
    assert await count(db, PartnerNotification) == 1


async def test_expired_keys_are_purged(police, db, engine, cipher):
    from app.core.db import make_sessionmaker, utcnow
    from app.services import partner

    await send(police, note(id_number(date(1995, 1, 1), "female", "440305")), "old")
    await send(police, note(id_number(date(1995, 1, 2), "female", "440305")), "new")
    old = partner.key_digest(cipher, "old")
    row = (await db.execute(select(IdempotencyKey).where(IdempotencyKey.key == old))).scalar_one()
    assert row.expires_at - row.created_at >= timedelta(days=30)
    row.expires_at = utcnow() - timedelta(seconds=1)
    await db.commit()
    async with make_sessionmaker(engine)() as s:
        assert await partner.purge_expired_keys(s) == 1
        await s.commit()
    keys = [k.key for k in (await db.execute(select(IdempotencyKey))).scalars()]
    assert keys == [partner.key_digest(cipher, "new")]


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "status", "code", "field"),
    [
        ({"area_code": "430122100299"}, 422, "validation_failed", "area_code"),  # unknown village
        ({"area_code": "430122000000"}, 422, "validation_failed", "area_code"),  # a county
        ({"area_code": "4301221002"}, 422, "validation_failed", "area_code"),
        (
            {"occurred_on": (clock.today() + timedelta(days=2)).isoformat()},
            422,
            "validation_failed",
            "occurred_on",
        ),
        ({"kind": "birth"}, 422, "validation_failed", "kind"),
        ({"name": ""}, 422, "validation_failed", "name"),
        ({"reference": None}, 422, "validation_failed", "reference"),
        ({"area_code": "430181100201"}, 403, "out_of_scope", None),  # another county
    ],
)
async def test_validation(police, db, patch, status, code, field):
    body = {**note(id_number(date(1995, 1, 1), "female", "440305")), **patch}
    out = problem(await send(police, body), status, code)
    if field:
        assert any(e["field"] == field for e in out["errors"]), out
    assert await count(db, PartnerNotification) == 0


# --- matching -----------------------------------------------------------------------------------


async def test_residence_registered_unknown_person_is_pending_then_accepted(police, client_as, db):
    cadre = await client_as("village", V1)
    number = id_number(date(1998, 8, 8), "female", "440305")
    nid = (await send(police, note(number, details={"origin_area_code": "440305000000"}))).json()["id"]
    assert await status_of(police, nid) == "pending_confirmation"
    inbox = (await cadre.get("/api/v1/migrant-notifications", params={"status": "pending"})).json()["items"]
    assert [n["id"] for n in inbox] == [nid]
    item = inbox[0]
    assert item["id_number_masked"] == number[0] + "*" * 16 + number[-1]
    assert "id_number" not in item
    assert (item["person_id"], item["kind"], item["agency"]) == (None, "residence_registered", "police")
    tasks = (await cadre.get("/api/v1/tasks", params={"kind": "notification_confirm"})).json()["items"]
    assert [t["source_id"] for t in tasks] == [nid]
    r = await cadre.post(f"/api/v1/migrant-notifications/{nid}/accept", json={"marital_status": "married"})
    assert r.status_code == 200, r.text
    accepted = r.json()
    assert accepted["status"] == "applied"
    assert accepted["decided_by"] == str(cadre.user.id)
    migrant = (await cadre.get(f"/api/v1/migrants/{accepted['migrant_id']}")).json()
    assert (migrant["direction"], migrant["status"], migrant["village_code"]) == ("inflow", "open", V1)
    assert (migrant["address"], migrant["origin_area_code"]) == ("团头湖村5组12号", "440305000000")
    person = (await cadre.get(f"/api/v1/persons/{migrant['person_id']}")).json()
    assert (person["id_number"], person["marital_status"], person["name"]) == (number, "married", "王桂兰")
    assert await status_of(police, nid) == "applied"
    assert (
        await cadre.get("/api/v1/tasks", params={"kind": "notification_confirm", "status": "open"})
    ).json()["items"] == []
    problem(await cadre.post(f"/api/v1/migrant-notifications/{nid}/accept"), 409, "invalid_transition")
    problem(
        await cadre.post(f"/api/v1/migrant-notifications/{nid}/dismiss", json={"reason": "x"}),
        409,
        "invalid_transition",
    )


async def test_residence_registered_with_an_open_inflow_there_is_matched(police, client_as, db):
    cadre = await client_as("village", V1)
    number = id_number(date(1993, 3, 3), "male", "440305")
    m = (await cadre.post("/api/v1/migrants", json=inflow_body(number))).json()
    nid = (await send(police, note(number, address="团头湖村7组3号"))).json()["id"]
    assert await status_of(police, nid) == "matched"
    updated = (await cadre.get(f"/api/v1/migrants/{m['id']}")).json()
    assert (updated["address"], updated["version"]) == ("团头湖村7组3号", 2)
    assert (await cadre.get("/api/v1/migrant-notifications", params={"status": "pending"})).json()[
        "items"
    ] == []
    matched = (await cadre.get("/api/v1/migrant-notifications", params={"status": "matched"})).json()["items"]
    assert [(n["id"], n["migrant_id"], n["person_id"]) for n in matched] == [(nid, m["id"], m["person_id"])]
    # the same person registered in another village of the county is not a match
    nid2 = (await send(police, note(number, area=V2))).json()["id"]
    assert await status_of(police, nid2) == "pending_confirmation"


async def test_residence_registered_for_a_resident_elsewhere_starts_a_movement(police, client_as):
    receiving = await client_as("village", V1)
    origin = await client_as("village", V_OTHER_TS)
    h = await mk_household(origin, V_OTHER_TS)
    number = id_number(date(1996, 6, 6), "female")
    p = await mk_person(origin, h["id"], id_number=number)
    nid = (await send(police, note(number))).json()["id"]
    item = (await receiving.get(f"/api/v1/migrant-notifications/{nid}")).json()
    assert item["person_id"] is None  # not in the reader's scope
    r = await receiving.post(f"/api/v1/migrant-notifications/{nid}/accept")
    assert r.status_code == 200, r.text
    assert r.json()["person_id"] is None
    # the same rule as a cadre's inflow (issue 14): a request waiting for her village's release
    inflow = (await receiving.get(f"/api/v1/migrants/{r.json()['migrant_id']}")).json()
    assert (inflow["status"], inflow["person_id"], inflow["transfer"]) == ("pending_release", None, "pending")
    assert p["id"] not in r.text
    problem(await receiving.post(f"/api/v1/migrants/{inflow['id']}/confirm"), 403, "forbidden")
    assert (await origin.get(f"/api/v1/persons/{p['id']}")).json()["household_id"] == h["id"]
    release = (await origin.get("/api/v1/tasks", params={"kind": "migrant_release"})).json()["items"]
    assert [(t["source_id"], t["person_id"]) for t in release] == [(inflow["id"], p["id"])]
    r = await origin.post(f"/api/v1/migrants/{inflow['id']}/confirm")
    assert r.status_code == 200, r.text
    person = (await receiving.get(f"/api/v1/persons/{p['id']}")).json()
    assert person["village_code"] == V1
    household = (await receiving.get(f"/api/v1/households/{person['household_id']}")).json()
    assert household["address"] == inflow["address"]


async def test_residence_cancelled(police, client_as, db):
    cadre = await client_as("village", V1)
    number = id_number(date(1993, 3, 3), "male", "440305")
    m = (await cadre.post("/api/v1/migrants", json=inflow_body(number))).json()
    nid = (await send(police, note(number, kind="residence_cancelled"))).json()["id"]
    assert await status_of(police, nid) == "pending_confirmation"
    tasks = (await cadre.get("/api/v1/tasks", params={"kind": "notification_confirm"})).json()["items"]
    assert [t["source_id"] for t in tasks] == [nid]
    r = await cadre.post(f"/api/v1/migrant-notifications/{nid}/accept", json={"close_reason": "returned"})
    assert r.status_code == 200, r.text
    closed = (await cadre.get(f"/api/v1/migrants/{m['id']}")).json()
    assert (closed["status"], closed["close_reason"]) == ("closed", "returned")
    assert await status_of(police, nid) == "applied"
    # nothing to cancel: dismissed at once, with the reason kept
    other = (
        await send(police, note(id_number(date(1990, 2, 2), "male", "440305"), kind="residence_cancelled"))
    ).json()
    assert await status_of(police, other["id"]) == "dismissed"
    row = await db.get(PartnerNotification, uuid.UUID(other["id"]))
    assert "no open inflow" in row.dismiss_reason


async def test_business_licensed(partner_as, client_as, db):
    market = await partner_as(agency="market_regulation")
    cadre = await client_as("village", V1)
    number = id_number(date(1988, 8, 8), "male", "440305")
    m = (await cadre.post("/api/v1/migrants", json=inflow_body(number, employer=None))).json()
    body = note(number, kind="business_licensed", area=V2, details={"business_name": "桂兰小吃店"})
    nid = (await send(market, body)).json()["id"]
    assert await status_of(market, nid) == "matched"
    assert (await cadre.get(f"/api/v1/migrants/{m['id']}")).json()["employer"] == "桂兰小吃店"
    # no migrant record: pending, and accepting opens one with the employer
    other = id_number(date(1989, 9, 9), "female", "440305")
    nid2 = (
        await send(market, note(other, kind="business_licensed", details={"business_name": "湘味餐馆"}))
    ).json()["id"]
    assert await status_of(market, nid2) == "pending_confirmation"
    r = await cadre.post(f"/api/v1/migrant-notifications/{nid2}/accept")
    assert r.status_code == 200, r.text
    created = (await cadre.get(f"/api/v1/migrants/{r.json()['migrant_id']}")).json()
    assert (created["employer"], created["direction"]) == ("湘味餐馆", "inflow")


async def test_township_level_area_code(partner_as, client_as, db):
    """A business licence may name only the township; its township staff pick the village."""
    market = await partner_as(agency="market_regulation")
    cadre = await client_as("village", V1)
    township = await client_as("township", TS1)
    number = id_number(date(1995, 5, 5), "female", "440305")
    licence = note(number, kind="business_licensed", area=TS1, details={"business_name": "乔口米粉店"})
    nid = (await send(market, licence)).json()["id"]
    assert await status_of(market, nid) == "pending_confirmation"
    row = await db.get(PartnerNotification, uuid.UUID(nid))
    assert (row.township_code, row.village_code) == ("430122100", TS1)
    assert (await cadre.get("/api/v1/migrant-notifications")).json()["items"] == []
    problem(await cadre.get(f"/api/v1/migrant-notifications/{nid}"), 404, "not_found")
    assert (await cadre.get("/api/v1/tasks")).json()["items"] == []
    assert [n["id"] for n in (await township.get("/api/v1/migrant-notifications")).json()["items"]] == [nid]
    assert [t["source_id"] for t in (await township.get("/api/v1/tasks")).json()["items"]] == [nid]
    problem(await township.post(f"/api/v1/migrant-notifications/{nid}/accept"), 422, "validation_failed")
    problem(
        await township.post(f"/api/v1/migrant-notifications/{nid}/accept", json={"village_code": V_OTHER_TS}),
        422,
        "validation_failed",
    )
    r = await township.post(f"/api/v1/migrant-notifications/{nid}/accept", json={"village_code": V2})
    assert r.status_code == 200, r.text
    migrant = (await township.get(f"/api/v1/migrants/{r.json()['migrant_id']}")).json()
    assert (migrant["village_code"], migrant["employer"]) == (V2, "乔口米粉店")
    assert (await township.get("/api/v1/tasks", params={"status": "open"})).json()["items"] == []


async def test_township_level_match_on_an_inflow_in_one_of_its_villages(partner_as, client_as):
    market = await partner_as(agency="market_regulation")
    cadre = await client_as("village", V2)
    number = id_number(date(1993, 3, 3), "male", "440305")
    m = (await cadre.post("/api/v1/migrants", json=inflow_body(number, village=V2, employer=None))).json()
    body = note(number, kind="business_licensed", area=TS1, details={"business_name": "靖港茶馆"})
    nid = (await send(market, body)).json()["id"]
    assert await status_of(market, nid) == "matched"
    assert (await cadre.get(f"/api/v1/migrants/{m['id']}")).json()["employer"] == "靖港茶馆"


@pytest.mark.parametrize("kind", ["residence_registered", "residence_cancelled"])
async def test_a_township_area_code_is_only_for_business_licences(police, db, kind):
    """A residence is registered (or cancelled) at an address in a village: a township-level
    ``area_code`` is refused for these kinds, and nothing is stored."""
    body = note(id_number(date(1995, 5, 5), "female"), kind=kind, area=TS1)
    out = problem(await send(police, body), 422, "validation_failed")
    assert [e["field"] for e in out["errors"]] == ["area_code"]
    assert (await count(db, PartnerNotification), await count(db, Task)) == (0, 0)


# --- the inbox and isolation ------------------------------------------------------------------


async def test_dismiss_and_inbox_scope(police, client_as, db):
    cadre = await client_as("village", V1)
    neighbour = await client_as("village", V2)
    other_township = await client_as("township", "430122101000")
    nid = (await send(police, note(id_number(date(1995, 5, 5), "female", "440305")))).json()["id"]
    assert (await neighbour.get("/api/v1/migrant-notifications")).json()["items"] == []
    assert (await other_township.get("/api/v1/migrant-notifications")).json()["items"] == []
    problem(await neighbour.post(f"/api/v1/migrant-notifications/{nid}/accept"), 404, "not_found")
    problem(
        await neighbour.post(f"/api/v1/migrant-notifications/{nid}/dismiss", json={"reason": "不认识"}),
        404,
        "not_found",
    )
    county = await client_as("county", "430122000000")
    assert [n["id"] for n in (await county.get("/api/v1/migrant-notifications")).json()["items"]] == [nid]
    problem(await county.post(f"/api/v1/migrant-notifications/{nid}/accept"), 403, "forbidden")
    problem(
        await cadre.post(f"/api/v1/migrant-notifications/{nid}/dismiss", json={}), 422, "validation_failed"
    )
    r = await cadre.post(
        f"/api/v1/migrant-notifications/{nid}/dismiss", json={"reason": "查无此人，地址有误"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["dismiss_reason"]) == ("dismissed", "查无此人，地址有误")
    assert await status_of(police, nid) == "dismissed"
    problem(await cadre.post(f"/api/v1/migrant-notifications/{nid}/accept"), 409, "invalid_transition")
    assert (await cadre.get("/api/v1/migrant-notifications", params={"status": "pending"})).json()[
        "items"
    ] == []
    assert [
        n["id"]
        for n in (await cadre.get("/api/v1/migrant-notifications", params={"status": "dismissed"})).json()[
            "items"
        ]
    ] == [nid]
    assert await count(db, Migrant) == 0


async def test_partner_reads_only_its_own_notifications(partner_as):
    a = await partner_as()
    b = await partner_as()
    nid = (await send(a, note(id_number(date(1995, 5, 5), "female", "440305")))).json()["id"]
    assert await status_of(a, nid) == "pending_confirmation"
    problem(await b.get(f"{URL}/{nid}"), 404, "not_found")
    problem(await a.get(f"{URL}/{uuid.uuid4()}"), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/migrants"),
        ("POST", "/api/v1/migrants"),
        ("GET", "/api/v1/migrant-notifications"),
        ("POST", "/api/v1/migrant-notifications/{id}/accept"),
        ("POST", "/api/v1/migrant-notifications/{id}/dismiss"),
        ("GET", "/api/v1/households"),
        ("GET", "/api/v1/persons"),
        ("GET", "/api/v1/tasks"),
        ("GET", "/api/v1/visits"),
        ("GET", "/api/v1/sync/pull"),
        ("GET", "/api/v1/users"),
    ],
)
async def test_partner_may_call_no_other_endpoint(police, method, path):
    nid = (await send(police, note(id_number(date(1995, 5, 5), "female", "440305")))).json()["id"]
    url = path.replace("{id}", nid)
    body = inflow_body(id_number(date(1990, 1, 1), "male")) if path == "/api/v1/migrants" else {"reason": "x"}
    r = await police.request(method, url, json=body if method == "POST" else None)
    problem(r, 403, "forbidden")


async def test_people_may_not_post_partner_notifications(client_as):
    for role, area in (("village", V1), ("township", TS1), ("admin", "430122000000")):
        c = await client_as(role, area)
        problem(await send(c, note(id_number(date(1995, 5, 5), "female", "440305"))), 403, "forbidden")
        problem(await c.get(f"{URL}/{uuid.uuid4()}"), 403, "forbidden")


async def test_openapi_documents_the_partner_body(app):
    spec = app.openapi()
    op = spec["paths"]["/api/v1/partner/notifications"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert {"kind", "id_number", "area_code", "occurred_on", "reference"} <= set(schema["required"])
    assert "Idempotency-Key" in [p["name"] for p in op["parameters"]]
    refs = json.dumps(schema)
    for name in ("NotificationKind",):
        if name in refs:
            assert name in spec["components"]["schemas"]
    assert {"202", "400", "409", "422"} <= set(op["responses"])


async def test_a_new_notification_writes_its_task_audit_and_change_rows(police, client_as, db):
    """The notification, its audit row, the cadre's task with its own audit and change-log rows
    (PostgreSQL writes them in one statement): the task reaches the cadre's inbox and phone."""
    from app.models.audit import AuditEvent
    from app.models.sync import Change

    cadre = await client_as("village", V1)
    body = note(id_number(date(1990, 4, 5), "female"))
    r = await send(police, body, "with-task")
    assert r.status_code == 202, r.text
    nid = uuid.UUID(r.json()["id"])
    task = (await db.execute(select(Task).where(Task.source_id == nid))).scalar_one()
    assert (task.kind, task.status, task.village_code, task.version) == (
        "notification_confirm",
        "open",
        V1,
        1,
    )
    audits = (
        await db.execute(
            select(AuditEvent.entity, AuditEvent.action).where(
                AuditEvent.entity_id.in_([str(nid), str(task.id)])
            )
        )
    ).all()
    assert sorted(audits) == [("partner_notification", "create"), ("task", "create")]
    changes = (await db.execute(select(Change).where(Change.entity_id == task.id))).scalars().all()
    assert [(c.entity, c.version, c.deleted, c.village_code) for c in changes] == [("task", 1, False, V1)]
    inbox = (await cadre.get("/api/v1/tasks", params={"kind": "notification_confirm"})).json()["items"]
    assert [t["id"] for t in inbox] == [str(task.id)]
    pulled = (await cadre.get("/api/v1/sync/pull", params={"limit": 500})).json()["changes"]
    assert str(task.id) in {c["id"] for c in pulled if c["entity"] == "task"}
    # the same body under a new key is the same notification: nothing written twice
    again = await send(police, body, "with-task-2")
    assert again.json()["id"] == str(nid)
    assert await count(db, Task) == 1


# --- its own county only ----------------------------------------------------------------------

OTHER_COUNTY = "430181000000"
OTHER_VILLAGE = "430181100201"


async def _county_state(db, county: str) -> dict[str, object]:
    """Everything a partner could change or reveal in a county (read afresh)."""
    from app.models.audit import AuditEvent
    from app.models.households import Person

    await db.rollback()  # a new snapshot (SQLite keeps one per read transaction)
    migrants = select(Migrant.id, Migrant.version, Migrant.status, Migrant.address, Migrant.employer)
    tasks = select(Task.id, Task.version, Task.status)
    persons = select(Person.id, Person.version)
    return {
        "migrants": sorted((await db.execute(migrants.where(Migrant.county_code == county))).all()),
        "tasks": sorted((await db.execute(tasks.where(Task.county_code == county))).all()),
        "persons": sorted((await db.execute(persons.where(Person.county_code == county))).all()),
        "notifications": (
            await db.execute(select(func.count()).where(PartnerNotification.county_code == county))
        ).scalar_one(),
        "audit": (
            await db.execute(select(func.count()).where(AuditEvent.county_code == county))
        ).scalar_one(),
    }


@pytest.mark.parametrize("kind", ["residence_registered", "residence_cancelled", "business_licensed"])
async def test_another_countys_person_is_an_unknown_number_to_a_partner(
    partner_as, client_as, db, engine, kind
):
    """Attacker: the police client of county 430181 posts about numbers of county 430122 — a
    person with an open inflow there (whose record the old matching changed) and a registered
    resident — hoping to read ``matched`` or to change the record. Each is handled exactly like
    an unknown number: the same answers, the same stored row (no person, no record), the same
    statements run; nothing in 430122 changes or shows. Its own county's partner gets the match."""
    from sqlalchemy import event

    cadre = await client_as("village", V1)
    readers = [cadre, await client_as("township", TS1), await client_as("county", "430122000000")]
    inflow_number = id_number(date(1993, 3, 3), "male", "440305")
    m = (await cadre.post("/api/v1/migrants", json=inflow_body(inflow_number, employer=None))).json()
    resident_number = id_number(date(1991, 1, 9), "female")
    await mk_person(cadre, (await mk_household(cadre, V1))["id"], id_number=resident_number)
    attacker = await partner_as(area_code=OTHER_COUNTY)

    def body(number: str) -> dict:
        return note(number, kind=kind, area=OTHER_VILLAGE, details={"business_name": "浏阳烟花店"})

    await send(attacker, body(id_number(date(1980, 1, 1), "male", "440305")))  # warm the caches
    before = await _county_state(db, "430122")
    statements: list[str] = []

    def seen(conn, cursor, statement, params, context, executemany) -> None:  # noqa: ARG001
        statements.append(statement)

    numbers = {
        "inflow there": inflow_number,
        "resident there": resident_number,
        "unknown": id_number(date(1992, 2, 2), "male", "440305"),
    }
    answers, work, rows = {}, {}, {}
    for label, number in numbers.items():
        statements.clear()
        event.listen(engine.sync_engine, "before_cursor_execute", seen)
        try:
            r = await send(attacker, body(number))
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", seen)
        assert r.status_code == 202, r.text
        work[label] = list(statements)
        nid = r.json()["id"]
        got = await attacker.get(f"{URL}/{nid}")
        assert got.status_code == 200
        answers[label] = (r.json()["status"], sorted(r.json()), got.json()["status"], sorted(got.json()))
        await db.rollback()
        n = await db.get(PartnerNotification, uuid.UUID(nid))
        n_tasks = (await db.execute(select(Task.kind, Task.village_code).where(Task.source_id == n.id))).all()
        rows[label] = (n.status, n.person_id, n.migrant_id, n.dismiss_reason, n.village_code, n_tasks)
    unknown = answers["unknown"]
    assert unknown[0] == "received"
    assert unknown[2] == ("dismissed" if kind == "residence_cancelled" else "pending_confirmation")
    assert answers["inflow there"] == answers["resident there"] == unknown
    assert rows["inflow there"] == rows["resident there"] == rows["unknown"]
    assert rows["unknown"][1:3] == (None, None)
    assert work["inflow there"] == work["resident there"] == work["unknown"]
    # nothing in 430122 changed, and its people see nothing of it
    assert await _county_state(db, "430122") == before
    assert (await cadre.get(f"/api/v1/migrants/{m['id']}")).json()["employer"] is None
    for reader in readers:
        assert (await reader.get("/api/v1/migrant-notifications")).json()["items"] == []
        tasks = (await reader.get("/api/v1/tasks", params={"kind": "notification_confirm"})).json()["items"]
        assert tasks == []
    # the county's own partner: the same notification about its inflow is matched there (the
    # arranging session's read snapshot predates the audited reads above: start a new one)
    await db.rollback()
    own = await partner_as()
    local = note(inflow_number, kind=kind, area=V1, details={"business_name": "浏阳烟花店"})
    nid = (await send(own, local)).json()["id"]
    assert await status_of(own, nid) == (
        "pending_confirmation" if kind == "residence_cancelled" else "matched"
    )
    assert (await db.get(PartnerNotification, uuid.UUID(nid))).migrant_id == uuid.UUID(m["id"])


async def test_another_countys_area_code_is_out_of_scope(partner_as, db):
    attacker = await partner_as(area_code=OTHER_COUNTY)
    for area in (V1, TS1):
        body = note(id_number(date(1995, 1, 1), "female"), kind="business_licensed", area=area)
        problem(await send(attacker, body), 403, "out_of_scope")
    assert (await count(db, PartnerNotification), await count(db, Task)) == (0, 0)


# --- a partner's own list ---------------------------------------------------------------------


async def test_a_partner_lists_only_its_own_notifications(partner_as, client_as, db):
    from tests.factories import make_client

    a, b = await partner_as(), await partner_as()
    elsewhere = await partner_as(area_code=OTHER_COUNTY)
    mine = []
    for kind in ("residence_registered", "residence_cancelled", "residence_registered"):
        mine.append(
            (await send(a, note(id_number(date(1995, 5, 5), "female", "440305"), kind=kind))).json()["id"]
        )
    theirs = (await send(b, note(id_number(date(1996, 6, 6), "male", "440305")))).json()["id"]
    far = (await send(elsewhere, note(id_number(date(1997, 7, 7), "male"), area=OTHER_VILLAGE))).json()["id"]

    seen, cursor, pages = [], None, 0
    while True:
        r = await a.get(URL, params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        assert all(set(item) == {"id", "status", "received_at"} for item in page["items"])
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 2
    assert sorted(i["id"] for i in seen) == sorted(mine)
    assert [i["received_at"] for i in seen] == sorted(i["received_at"] for i in seen)
    statuses = {i["id"]: i["status"] for i in seen}
    assert statuses == {
        mine[0]: "pending_confirmation",
        mine[1]: "dismissed",
        mine[2]: "pending_confirmation",
    }
    dismissed = (await a.get(URL, params={"status": "dismissed"})).json()
    assert ([i["id"] for i in dismissed["items"]], dismissed["next_cursor"]) == ([mine[1]], None)
    pending = (await a.get(URL, params={"status": "pending_confirmation"})).json()["items"]
    assert sorted(i["id"] for i in pending) == sorted([mine[0], mine[2]])
    assert [i["id"] for i in (await b.get(URL)).json()["items"]] == [theirs]
    assert [i["id"] for i in (await elsewhere.get(URL)).json()["items"]] == [far]
    problem(await a.get(URL, params={"status": "lost"}), 422, "validation_failed")
    problem(await a.get(URL, params={"cursor": "not-a-cursor"}), 422, "invalid_cursor")
    # nobody else may list partner notifications
    for role, area in (
        ("village", V1),
        ("township", TS1),
        ("county", "430122000000"),
        ("admin", "430122000000"),
    ):
        problem(await (await client_as(role, area)).get(URL), 403, "forbidden")
    dashboard, secret = await make_client(db, role="dashboard", agency=None)
    await db.commit()
    token = (
        await a.post(
            "/api/v1/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": dashboard.client_id,
                "client_secret": secret,
            },
        )
    ).json()["access_token"]
    problem(await a.get(URL, headers={"Authorization": f"Bearer {token}"}), 403, "forbidden")


async def test_openapi_documents_the_partner_list(app):
    op = app.openapi()["paths"]["/api/v1/partner/notifications"]["get"]
    assert {"200", "401", "403", "422"} <= set(op["responses"])
    assert {"status", "cursor", "limit"} <= {p["name"] for p in op["parameters"]}


# --- nothing personal in clear at rest --------------------------------------------------------


async def test_the_stored_rows_hold_no_plaintext_number(police, client_as, db, engine, cipher):
    """The body as received, the free-form details and the partner's own key may all carry ID
    and phone numbers: none of them is stored in clear, all of them still work."""
    from sqlalchemy import text

    from tests.conftest import plaintext_at_rest

    cadre = await client_as("village", V1)
    number = id_number(date(1990, 4, 5), "female", "440305")
    landlord, phone = id_number(date(1960, 6, 1), "male"), "13912345678"
    details = {"landlord_id_number": landlord, "landlord_phone": phone, "origin_area_code": "440305000000"}
    body = note(number, details=details)
    key = f"GA-{number}-20261201"
    first = await send(police, body, key)
    assert first.status_code == 202, first.text
    async with engine.connect() as conn:
        stored = [
            *(await conn.execute(text("SELECT * FROM partner_notification"))).all(),
            *(await conn.execute(text("SELECT * FROM idempotency_key"))).all(),
        ]
    assert len(stored) == 2
    flat = "\n".join(str(value) for row in stored for value in row)
    for secret in (number, landlord, phone, number[:17]):
        assert secret not in flat
    assert await plaintext_at_rest(engine) == []
    # still the body as received, details readable in the inbox and used on accept
    await db.rollback()
    n = await db.get(PartnerNotification, uuid.UUID(first.json()["id"]))
    assert json.loads(partner_svc.received_body(cipher, n)) == body
    assert n.details_enc is not None and n.details_enc.startswith("f1:")
    item = (await cadre.get(f"/api/v1/migrant-notifications/{n.id}")).json()
    assert item["details"] == details
    accepted = (await cadre.post(f"/api/v1/migrant-notifications/{n.id}/accept")).json()
    migrant = (await cadre.get(f"/api/v1/migrants/{accepted['migrant_id']}")).json()
    assert migrant["origin_area_code"] == "440305000000"
    # idempotency through the hashed key and keyed digest
    again = await send(police, body, key)
    assert (again.status_code, again.json(), again.headers["idempotent-replayed"]) == (
        202,
        first.json(),
        "true",
    )
    problem(await send(police, {**body, "address": "别处"}, key), 422, "idempotency_key_reused")
    assert (await count(db, PartnerNotification), await count(db, IdempotencyKey)) == (1, 1)


async def test_an_error_answer_stored_before_keyed_digests_still_replays(police, db, cipher):
    """Key rows answered with an error before revision b14a00000002 keep their plain digest
    (no stored body to re-key it from): the same body under that key still gets that answer."""
    import hashlib

    from app.core.db import utcnow

    body = note(id_number(date(1995, 1, 1), "female", "440305"), occurred_on="2999-01-01")
    answer = {"code": "validation_failed", "status": 422, "title": "x", "type": "about:blank"}
    db.add(
        IdempotencyKey(
            client_id=police.machine.id,
            key=partner_svc.key_digest(cipher, "legacy"),
            request_sha256=hashlib.sha256(partner_svc.canonical_body(json.dumps(body).encode())).hexdigest(),
            response_status=422,
            response_body=json.dumps(answer),
            expires_at=utcnow() + timedelta(days=30),
        )
    )
    await db.commit()
    again = await send(police, body, "legacy")
    assert (again.status_code, again.json(), again.headers["idempotent-replayed"]) == (422, answer, "true")
    problem(await send(police, {**body, "name": "别人"}, "legacy"), 422, "idempotency_key_reused")


async def test_accepting_a_licence_leaves_another_countys_record_alone(partner_as, client_as, db):
    """A licence in 430122 for a person whose open inflow is in 430181: accepting it opens the
    inflow here with the employer, and never writes the employer into 430181's record."""
    market = await partner_as(agency="market_regulation")
    cadre = await client_as("village", V1)
    far_cadre = await client_as("village", OTHER_VILLAGE)
    number = id_number(date(1988, 8, 8), "male", "440305")
    far = await far_cadre.post(
        "/api/v1/migrants", json=inflow_body(number, village=OTHER_VILLAGE, employer=None)
    )
    assert far.status_code == 201, far.text
    licence = note(number, kind="business_licensed", details={"business_name": "桂兰小吃店"})
    nid = (await send(market, licence)).json()["id"]
    assert await status_of(market, nid) == "pending_confirmation"
    r = await cadre.post(f"/api/v1/migrant-notifications/{nid}/accept")
    assert r.status_code == 200, r.text
    here = (await cadre.get(f"/api/v1/migrants/{r.json()['migrant_id']}")).json()
    assert (here["village_code"], here["employer"]) == (V1, "桂兰小吃店")
    await db.rollback()
    there = await db.get(Migrant, uuid.UUID(far.json()["id"]))
    assert there.employer is None

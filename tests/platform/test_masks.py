"""Masks that hide (issue 14, item 2): an ID number shown masked keeps its first and last
character only, so that beside the other fields of the same item (birth date, sex, village,
hukou area) it still cannot be rebuilt; phones are ``phone_masked`` everywhere but the audited
single-record GET; the migration re-masks what was stored with the old mask."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import date, timedelta
from typing import Any

from alembic import command
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import select, text

from app.core import clock
from app.core.migrations import alembic_config
from app.models.audit import AuditEvent
from app.models.households import Person
from app.models.migrants import PartnerNotification
from app.models.sync import SyncConflict, SyncOp
from app.services.idnumber import check_char
from tests.conftest import DATABASE_URL
from tests.factories import id_number
from tests.households.test_api import TS1, V1, mk_household, mk_person, problem
from tests.migrants.test_partner import note, partner_as, send  # noqa: F401  (fixture)
from tests.sync.test_api import PULL, op, pull_all, push

MOBILE = "13812345678"
MOBILE_MASKED = "138****5678"
REVISION = "b14a00000003"
BORN = date(1986, 4, 23)


# --- the attacker's view ------------------------------------------------------------------------


def fitting_numbers(masked: str, *, area: str, birth_date: date, sex: str | None) -> list[str]:
    """Every valid number that fits the mask and the other fields of its item. The attacker's
    best case: the area code (first 6) guessed right from the item's village or hukou area."""
    stem = area + birth_date.strftime("%Y%m%d")
    out = []
    for seq in range(1000):
        if sex is not None and (seq % 2 == 1) != (sex == "male"):
            continue
        first17 = f"{stem}{seq:03d}"
        number = first17 + check_char(first17)
        if all(m in ("*", c) for m, c in zip(masked, number, strict=True)):
            out.append(number)
    return out


def assert_hides(masked: str | None, number: str, item: dict[str, Any] | None = None) -> None:
    """Exactly the first and last character show, the 16 between are stars, and with every other
    field of the item (birth date, sex, area) dozens of numbers still fit."""
    assert masked is not None
    assert len(masked) == 18
    assert (masked[0], masked[-1]) == (number[0], number[-1])
    assert masked[1:17] == "*" * 16
    item = item or {}
    if item.get("birth_date"):
        for area in {a[:6] for a in (item.get("village_code"), item.get("hukou_area_code")) if a}:
            assert area == number[:6]  # the item does give the area away…
        fits = fitting_numbers(
            masked, area=number[:6], birth_date=date.fromisoformat(item["birth_date"]), sex=item.get("sex")
        )
        assert number in fits
        assert len(fits) >= 10, fits  # …but not the number


def _new_mask(number: str) -> str:
    return number[0] + "*" * 16 + number[-1]


def test_the_old_mask_beside_the_birth_date_was_the_number() -> None:
    """Why the mask changed: first 6 + last 4 beside the birth date leaves one number."""
    number = id_number(BORN, "female")
    old = number[:6] + "*" * 8 + number[-4:]
    assert fitting_numbers(old, area=number[:6], birth_date=BORN, sex="female") == [number]
    new = _new_mask(number)
    assert len(fitting_numbers(new, area=number[:6], birth_date=BORN, sex="female")) >= 10


def keys_of(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()


def masked_only(body: Any, *secrets: str) -> None:
    """No full value and no unmasked key anywhere in an answer."""
    dumped = json.dumps(body, ensure_ascii=False)
    for secret in secrets:
        assert secret not in dumped
    assert not keys_of(body) & {"id_number", "phone"}, keys_of(body)


async def audit_reads(db, entity: str, ident: str) -> list[AuditEvent]:
    await db.commit()
    rows = await db.execute(
        select(AuditEvent).where(
            AuditEvent.entity == entity, AuditEvent.entity_id == ident, AuditEvent.action == "read"
        )
    )
    return list(rows.scalars())


# --- ID numbers in every item shape -------------------------------------------------------------


async def test_no_item_gives_the_id_number_back(client_as, partner_as, db):  # noqa: F811
    cadre = await client_as("village", V1)
    h = await mk_household(cadre)
    number = id_number(BORN, "female")  # area 430122: the village's county, the worst case
    created = await mk_person(
        cadre, h["id"], id_number=number, hukou_area_code=V1, phone=MOBILE, name="陈秀兰"
    )
    assert_hides(created["id_number_masked"], number, created)
    masked_only(created, number, MOBILE)
    pid = created["id"]

    # lists: by name, by household, the audited exact lookup, the household's members
    for params in ({}, {"household_id": h["id"]}, {"id_number": number}):
        r = await cadre.get("/api/v1/persons", params=params)
        assert r.status_code == 200, r.text
        [item] = r.json()["items"]
        assert_hides(item["id_number_masked"], number, item)
        masked_only(r.json(), number, MOBILE)
    members = (await cadre.get(f"/api/v1/households/{h['id']}")).json()["members"]
    assert_hides(members[0]["id_number_masked"], number, members[0])
    masked_only(members, number, MOBILE)

    # the phone's pull
    changes, _ = await pull_all(cadre)
    [person] = [c["data"] for c in changes if c["entity"] == "person"]
    assert_hides(person["id_number_masked"], number, person)
    masked_only(changes, number, MOBILE)

    # a write answer and a stale write's 412 ``current``
    url = f"/api/v1/persons/{pid}"
    r = await cadre.patch(url, json={"marital_status": "widowed"}, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert_hides(r.json()["id_number_masked"], number, r.json())
    masked_only(r.json(), number, MOBILE)
    stale = problem(
        await cadre.patch(url, json={"name": "陈兰"}, headers={"If-Match": '"1"'}), 412, "version_conflict"
    )
    assert_hides(stale["current"]["id_number_masked"], number, stale["current"])
    masked_only(stale, number, MOBILE)

    # a sync conflict's ``current``, first answer and replay alike
    stale_op = op("person", {"marital_status": "divorced"}, rid=pid, base=1)
    for _ in range(2):
        [res] = await push(cadre, [stale_op])
        assert res["status"] == "conflict"
        assert_hides(res["current"]["id_number_masked"], number, res["current"])
        masked_only(res, number, MOBILE)

    # the person_exists error names the record, never the number or its mask
    body = {"household_id": h["id"], "id_number": number, "name": "重复", "relation_to_head": "女"}
    dup = problem(
        await cadre.post("/api/v1/persons", json={**body, "marital_status": "single"}), 409, "person_exists"
    )
    assert number not in json.dumps(dup) and number[1:17] not in json.dumps(dup)
    assert not {k for k in dup if "id_number" in k}

    # the inbox of partner notifications
    police = await partner_as()
    other = id_number(date(1979, 11, 2), "male", "440305")
    assert (await send(police, note(other, name="黄志强"))).status_code == 202
    inbox = (await cadre.get("/api/v1/migrant-notifications")).json()
    [n] = inbox["items"]
    assert_hides(n["id_number_masked"], other)
    masked_only(inbox, other)

    # stored: the new shape only
    await db.commit()
    stored = (await db.execute(select(Person.id_number_masked))).scalars().all()
    stored += (await db.execute(select(PartnerNotification.id_number_masked))).scalars().all()
    assert stored and all(m[1:17] == "*" * 16 and len(m) == 18 for m in stored), stored


async def test_conflict_lists_mask_what_the_phone_sent(client_as):
    """A conflict over the ID number or the phone shows the phone's values masked (under
    ``*_masked`` keys, as every list does) to the township, and in the resolve answer."""
    cadre = await client_as("village", V1)
    other = await client_as("village", V1)
    h = await mk_household(cadre)
    p = await mk_person(cadre, h["id"], with_id=False, born=BORN, phone="13900001111")
    url = f"/api/v1/persons/{p['id']}"
    server_number = id_number(BORN, "female")
    r = await other.patch(
        url, json={"id_number": server_number, "phone": "13900002222"}, headers={"If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    phone_number = id_number(BORN, "female")
    [res] = await push(
        cadre, [op("person", {"id_number": phone_number, "phone": MOBILE}, rid=p["id"], base=1)]
    )
    assert res["status"] == "conflict"
    assert sorted(res["fields"]) == ["id_number", "phone"]
    masked_only(res, server_number, "13900002222", phone_number, MOBILE)
    assert res["current"]["phone_masked"] == "139****2222"
    ts = await client_as("township", TS1)
    listed = (await ts.get("/api/v1/sync/conflicts")).json()
    [c] = listed["items"]
    assert c["client_values"]["phone_masked"] == MOBILE_MASKED
    assert_hides(c["client_values"]["id_number_masked"], phone_number)
    masked_only(listed, phone_number, MOBILE)
    resolved = await ts.post(f"/api/v1/sync/conflicts/{c['id']}/resolve", json={"values": {"phone": MOBILE}})
    assert resolved.status_code == 200, resolved.text
    masked_only(resolved.json(), server_number, phone_number, MOBILE)
    assert resolved.json()["record"]["phone_masked"] == MOBILE_MASKED
    full = (await ts.get(url)).json()
    assert (full["phone"], full["id_number"]) == (MOBILE, server_number)


# --- phones ---------------------------------------------------------------------------------------


async def test_person_phone_masked_everywhere_but_the_audited_get(client_as, db):
    cadre = await client_as("village", V1)
    h = await mk_household(cadre)
    p = await mk_person(cadre, h["id"], phone=MOBILE)
    assert p["phone_masked"] == MOBILE_MASKED  # the create's answer: masked too
    masked_only(p, MOBILE)
    listed = (await cadre.get("/api/v1/persons")).json()
    assert [i["phone_masked"] for i in listed["items"]] == [MOBILE_MASKED]
    masked_only(listed, MOBILE)
    members = (await cadre.get(f"/api/v1/households/{h['id']}")).json()["members"]
    assert members[0]["phone_masked"] == MOBILE_MASKED
    masked_only(members, MOBILE)
    changes, _ = await pull_all(cadre)
    assert [c["data"]["phone_masked"] for c in changes if c["entity"] == "person"] == [MOBILE_MASKED]
    masked_only(changes, MOBILE)
    url = f"/api/v1/persons/{p['id']}"
    r = await cadre.patch(url, json={"phone": "0731-88123456"}, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert r.json()["phone_masked"] == "073******456"
    masked_only(r.json(), "073188123456")
    assert await audit_reads(db, "person", p["id"]) == []
    full = await cadre.get(url)
    assert full.status_code == 200
    assert (full.json()["phone"], full.json()["phone_masked"]) == ("073188123456", "073******456")
    [event] = await audit_reads(db, "person", p["id"])
    assert event.actor_id == cadre.user.id


async def test_migrant_phone_masked_everywhere_but_the_audited_get(client_as, db):
    cadre = await client_as("village", V1)
    body = {
        "direction": "inflow",
        "village_code": V1,
        "moved_on": (clock.today() - timedelta(days=10)).isoformat(),
        "person": {
            "id_number": id_number(date(1995, 3, 8), "female", "440305"),
            "name": "王桂兰",
            "marital_status": "single",
        },
        "address": "团头湖村5组出租屋",
        "phone": MOBILE,
    }
    r = await cadre.post("/api/v1/migrants", json=body)
    assert r.status_code == 201, r.text
    m = r.json()
    assert m["phone_masked"] == MOBILE_MASKED
    masked_only(m, MOBILE)
    listed = (await cadre.get("/api/v1/migrants")).json()
    assert [i["phone_masked"] for i in listed["items"]] == [MOBILE_MASKED]
    masked_only(listed, MOBILE)
    changes = (await cadre.get(PULL, params={"limit": 1000})).json()["changes"]
    assert [c["data"]["phone_masked"] for c in changes if c["entity"] == "migrant"] == [MOBILE_MASKED]
    masked_only(changes, MOBILE)
    assert await audit_reads(db, "migrant", m["id"]) == []
    full = await cadre.get(f"/api/v1/migrants/{m['id']}")
    assert full.status_code == 200, full.text
    assert full.headers["etag"] == '"1"'
    assert (full.json()["phone"], full.json()["phone_masked"]) == (MOBILE, MOBILE_MASKED)
    [event] = await audit_reads(db, "migrant", m["id"])
    assert event.actor_id == cadre.user.id
    # out of scope: 404 and nothing read
    far = await client_as("village", "430122101201")
    problem(await far.get(f"/api/v1/migrants/{m['id']}"), 404, "not_found")
    assert len(await audit_reads(db, "migrant", m["id"])) == 1


async def test_a_stale_edit_to_the_same_phone_still_merges(client_as):
    """Overlap detection compares full values (the masked view would make every stale phone
    edit a conflict)."""
    cadre = await client_as("village", V1)
    other = await client_as("village", V1)
    h = await mk_household(cadre)
    p = await mk_person(cadre, h["id"], phone="13900001111")
    r = await other.patch(f"/api/v1/persons/{p['id']}", json={"phone": MOBILE}, headers={"If-Match": '"1"'})
    assert r.status_code == 200
    [res] = await push(cadre, [op("person", {"phone": MOBILE, "name": "李秀"}, rid=p["id"], base=1)])
    assert res["status"] == "applied", res
    full = (await cadre.get(f"/api/v1/persons/{p['id']}")).json()
    assert (full["phone"], full["name"], full["version"]) == (MOBILE, "李秀", 3)


# --- the migration ------------------------------------------------------------------------------


def _revision(url: str = DATABASE_URL) -> Any:
    return ScriptDirectory.from_config(alembic_config(url)).get_revision(REVISION)


async def _run_revision(engine) -> None:
    module = _revision().module

    def run(conn: Any) -> None:
        with Operations.context(MigrationContext.configure(conn)):
            module.upgrade()

    async with engine.begin() as conn:
        await conn.run_sync(run)


def _old_mask(number: str) -> str:
    return number[:6] + "*" * 8 + number[-4:]


async def test_the_migration_remasks_stored_masks_and_kept_answers(client_as, partner_as, engine, db):  # noqa: F811
    """Rows written before the change (old masks, a kept conflict answer with the full phone) are
    re-masked by the revision's upgrade, run here on this database; a second run changes nothing."""
    cadre = await client_as("village", V1)
    h = await mk_household(cadre)
    number = id_number(BORN, "female")
    p = await mk_person(cadre, h["id"], id_number=number, phone=MOBILE)
    police = await partner_as()
    other = id_number(date(1979, 11, 2), "male", "440305")
    assert (await send(police, note(other))).status_code == 202
    stale = op("person", {"marital_status": "divorced"}, rid=p["id"], base=1)
    assert (
        await cadre.patch(f"/api/v1/persons/{p['id']}", json={"name": "陈兰"}, headers={"If-Match": '"1"'})
    ).status_code == 200
    assert (
        await cadre.patch(
            f"/api/v1/persons/{p['id']}", json={"marital_status": "widowed"}, headers={"If-Match": '"2"'}
        )
    ).status_code == 200
    [res] = await push(cadre, [stale])
    assert res["status"] == "conflict"

    # what the code before this change stored
    old_current = {**res["current"], "id_number_masked": _old_mask(number), "phone": MOBILE}
    del old_current["phone_masked"]
    pid = uuid.UUID(p["id"])
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE person SET id_number_masked = :m WHERE id = :id"),
            {"m": _old_mask(number), "id": pid.hex if conn.dialect.name == "sqlite" else pid},
        )
        await conn.execute(
            text("UPDATE partner_notification SET id_number_masked = :m"), {"m": _old_mask(other)}
        )
        await conn.execute(
            text("UPDATE sync_op SET result = :r WHERE op_id = :op"),
            {"r": json.dumps({**res, "current": old_current}, ensure_ascii=False), "op": stale["op_id"]},
        )
        # a conflict kept what the phone sent as sent
        await conn.execute(
            text("UPDATE sync_conflict SET client_values = :v"),
            {"v": json.dumps({"marital_status": "divorced", "id_number": number, "phone": MOBILE})},
        )
    [replayed] = await push(cadre, [stale])
    assert replayed["current"]["phone"] == MOBILE  # the leak the migration closes

    await _run_revision(engine)
    await db.commit()
    assert (await db.execute(select(Person.id_number_masked))).scalar_one() == number[0] + "*" * 16 + number[
        -1
    ]
    assert (await db.execute(select(PartnerNotification.id_number_masked))).scalar_one() == _new_mask(other)
    kept_values = json.loads((await db.execute(select(SyncConflict.client_values))).scalar_one())
    assert kept_values == {
        "marital_status": "divorced",
        "id_number_masked": _new_mask(number),
        "phone_masked": MOBILE_MASKED,
    }
    kept = json.loads(
        (await db.execute(select(SyncOp.result).where(SyncOp.op_id == stale["op_id"]))).scalar_one()
    )
    assert kept["current"] == res["current"]
    [replayed] = await push(cadre, [stale])
    assert replayed["current"]["phone_masked"] == MOBILE_MASKED
    masked_only(replayed, number, MOBILE)

    # a second run (and rows already in the new shape) change nothing
    before = [tuple(r) for r in (await db.execute(select(SyncOp.op_id, SyncOp.result))).all()]
    await db.commit()
    await _run_revision(engine)
    assert [tuple(r) for r in (await db.execute(select(SyncOp.op_id, SyncOp.result))).all()] == before
    assert (await db.execute(select(Person.id_number_masked))).scalar_one() == number[0] + "*" * 16 + number[
        -1
    ]


def test_upgrading_from_the_old_head_remasks(tmp_path):
    """The revision in the chain: a database at the revision before it, holding old masks, comes
    out of ``upgrade heads`` with the new ones."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    cfg = alembic_config(url)
    before = _revision(url).down_revision
    command.upgrade(cfg, before)
    number = id_number(BORN, "female")
    person, baby = uuid.uuid4().hex, uuid.uuid4().hex
    db = sqlite3.connect(tmp_path / "m.db")
    for ident, masked in ((person, _old_mask(number)), (baby, None)):
        db.execute(
            "INSERT INTO person (id, household_id, id_number_masked, name, sex, birth_date,"
            " relation_to_head, marital_status, current_village_code, county_code, township_code,"
            " village_code, version, created_at, updated_at) VALUES (?, ?, ?, '甲', 'female',"
            " '1986-04-23', '户主', 'married', ?, '430122', '430122100', ?, 1, '2026-11-01 00:00:00',"
            " '2026-11-01 00:00:00')",
            (ident, uuid.uuid4().hex, masked, V1, V1),
        )
    result = {
        "op_id": "o1",
        "status": "conflict",
        "current": {"id_number_masked": _old_mask(number), "phone": MOBILE},
    }
    db.execute(
        "INSERT INTO sync_op (id, device_id, op_id, actor_id, status, result, at) VALUES (?, 'd', 'o1', ?,"
        " 'conflict', ?, '2026-11-01 00:00:00')",
        (uuid.uuid4().hex, uuid.uuid4().hex, json.dumps(result)),
    )
    db.commit()
    command.upgrade(cfg, "heads")
    masks = dict(db.execute("SELECT id, id_number_masked FROM person").fetchall())
    assert masks == {person: _new_mask(number), baby: None}
    [(kept,)] = db.execute("SELECT result FROM sync_op").fetchall()
    assert json.loads(kept)["current"] == {
        "id_number_masked": _new_mask(number),
        "phone_masked": MOBILE_MASKED,
    }
    command.downgrade(cfg, before)  # reversible: the narrower masks stay
    assert db.execute("SELECT id_number_masked FROM person WHERE id = ?", (person,)).fetchone() == (
        _new_mask(number),
    )
    db.close()

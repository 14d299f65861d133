"""Every field action syncs (issue 15): decline, exempt, task completion, migrant close and claim
ops; an unknown entity or bad data rejected alone; checkup results in one batch."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from app.core import clock
from app.models.checkups import CheckupAppointment
from app.models.claims import Claim
from app.models.migrants import Migrant
from app.models.sync import SyncConflict
from app.models.visits import Task
from tests.checkups.test_api import appointments, round_body, woman
from tests.claims.test_api import RURAL_FACTS, elder, payee
from tests.claims.test_api import programmes as programmes  # noqa: F401,PLC0414  (autouse: rule versions)
from tests.factories import id_number
from tests.households.test_api import TS1, V1, V2, mk_household
from tests.migrants.test_api import inflow_body
from tests.sync.test_api import household_op, op, pull_all, push
from tests.visits.test_api import visit_body

TODAY = clock.today()


@pytest.fixture
async def cadre(client_as):
    return await client_as("village", V1)


@pytest.fixture
async def township(client_as):
    return await client_as("township", TS1)


async def open_round(cadre, township, women: int, **kw) -> list[dict]:
    """A round of the township with ``women`` due women of V1; their appointments."""
    h = await mk_household(cadre)
    for i in range(women):
        await woman(cadre, h["id"], date(1980 + i % 20, 1 + i % 12, 1 + i % 28))
    r = await township.post("/api/v1/checkup-rounds", json=round_body(**kw))
    assert r.status_code == 201, r.text
    return sorted(await appointments(cadre, round_id=r.json()["id"]), key=lambda a: a["id"])


async def follow_up_task(cadre) -> dict:
    h = await mk_household(cadre)
    follow = (TODAY + timedelta(days=3)).isoformat()
    r = await cadre.post("/api/v1/visits", json=visit_body(h["id"], follow_up_on=follow))
    assert r.status_code == 201, r.text
    tasks = (await cadre.get("/api/v1/tasks", params={"kind": "follow_up"})).json()["items"]
    return next(t for t in tasks if t["source_id"] == r.json()["id"])


async def inflow(cadre) -> dict:
    r = await cadre.post("/api/v1/migrants", json=inflow_body(id_number(date(1991, 1, 1), "male")))
    assert r.status_code == 201, r.text
    return r.json()


async def pull_until(c, cursor: str | None, want: set[tuple[str, str]], timeout: float = 20.0) -> list[dict]:
    """Pull from ``cursor`` until every ``(entity, id)`` of ``want`` came (the latest change of
    each wins). On PostgreSQL a transaction running anywhere on the cluster holds back the
    changes committed after it began (delayed, never lost: see ``sync.pull``), so while other
    suites share the cluster a change may come a few seconds late."""
    import asyncio
    import time

    got: dict[tuple[str, str], dict] = {}
    deadline = time.monotonic() + timeout
    while True:
        changes, cursor = await pull_all(c, cursor)
        got.update({(x["entity"], x["id"]): x for x in changes})
        if want <= got.keys() or time.monotonic() > deadline:
            return list(got.values())
        await asyncio.sleep(0.5)


def result_data(appointment_id: str, **kw) -> dict:
    return {
        "appointment_id": appointment_id,
        "checked_on": TODAY.isoformat(),
        "place": "station",
        "consent": True,
        "items": {"iud": "in_place"},
        **kw,
    }


async def test_every_action_applies_answers_duplicate_and_is_pulled(cadre, township, db):
    declined, exempted = await open_round(cadre, township, 2)
    task = await follow_up_task(cadre)
    migrant = await inflow(cadre)
    _, cursor = await pull_all(cadre)
    ops = [
        op("checkup_decline", {"reason": "外出务工"}, rid=declined["id"]),
        op("checkup_exempt", {"appointment_id": exempted["id"], "reason": "pregnant"}, rid=exempted["id"]),
        op("task_completion", {"note": "已随访"}, rid=task["id"]),
        op("migrant_close", {"closed_on": TODAY.isoformat(), "reason": "returned"}, rid=migrant["id"]),
    ]
    first = await push(cadre, ops)
    assert [x["status"] for x in first] == ["applied"] * 4, first
    assert [x["id"] for x in first] == [declined["id"], exempted["id"], task["id"], migrant["id"]]
    assert [x["version"] for x in first] == [2, 2, 2, 2]
    again = await push(cadre, ops)
    assert [x["status"] for x in again] == ["duplicate"] * 4
    assert [x["version"] for x in again] == [2, 2, 2, 2]
    # stored once, as the REST endpoints store it
    appts = {
        str(a.id): a
        for a in (await db.execute(select(CheckupAppointment))).scalars()
        if str(a.id) in (declined["id"], exempted["id"])
    }
    assert (appts[declined["id"]].status, appts[declined["id"]].decline_reason) == ("declined", "外出务工")
    assert appts[declined["id"]].recorded_by == cadre.user.id
    assert (appts[exempted["id"]].status, appts[exempted["id"]].exempt_reason) == ("exempted", "pregnant")
    stored_task = await db.get(Task, uuid.UUID(task["id"]))
    assert stored_task is not None
    assert (stored_task.status, stored_task.note, stored_task.version) == ("done", "已随访", 2)
    stored_migrant = await db.get(Migrant, uuid.UUID(migrant["id"]))
    assert stored_migrant is not None
    assert (stored_migrant.status, stored_migrant.close_reason) == ("closed", "returned")
    await db.commit()
    # each effect comes in the phone's next pull
    acted = [
        ("checkup_appointment", declined["id"]),
        ("checkup_appointment", exempted["id"]),
        ("task", task["id"]),
        ("migrant", migrant["id"]),
    ]
    changes = await pull_until(cadre, cursor, set(acted))
    seen = {(c["entity"], c["id"]): c for c in changes}
    assert seen[("checkup_appointment", declined["id"])]["data"]["status"] == "declined"
    assert seen[("checkup_appointment", exempted["id"])]["data"]["status"] == "exempted"
    assert seen[("task", task["id"])]["data"]["status"] == "done"
    assert seen[("migrant", migrant["id"])]["data"]["status"] == "closed"
    assert all(not seen[k]["deleted"] and seen[k]["version"] == 2 for k in acted)


async def test_action_on_a_stale_version_is_a_conflict_and_writes_nothing(cadre, township, db):
    (appt,) = await open_round(cadre, township, 1)
    # the server changed the appointment since the phone read it (version 1 → 2)
    await db.execute(
        update(CheckupAppointment)
        .where(CheckupAppointment.id == uuid.UUID(appt["id"]))
        .values(version=2, note="改期")
    )
    await db.commit()
    stale = op("checkup_decline", {"reason": "不愿参加"}, rid=appt["id"], base=1)
    (res,) = await push(cadre, [stale])
    assert res["status"] == "conflict", res
    assert res["version"] == 2
    assert res["current"]["id"] == appt["id"] and res["current"]["status"] == "scheduled"
    stored = await db.get(CheckupAppointment, uuid.UUID(appt["id"]))
    assert stored is not None and (stored.status, stored.version) == ("scheduled", 2)
    assert (await db.execute(select(func.count()).select_from(SyncConflict))).scalar_one() == 0
    await db.commit()
    # the current version acts; a version the record never had is refused
    future = op("checkup_decline", {"reason": "不愿参加"}, rid=appt["id"], base=7)
    current = op("checkup_decline", {"reason": "不愿参加"}, rid=appt["id"], base=2)
    bad, ok = await push(cadre, [future, current])
    assert bad["status"] == "rejected" and bad["error"]["code"] == "invalid_base_version"
    assert (ok["status"], ok["version"]) == ("applied", 3)


async def test_unknown_entity_and_bad_data_are_rejected_alone(cadre, township, db):
    a1, a2, a3 = await open_round(cadre, township, 3)
    ops = [
        household_op(),
        op("checkup_reschedule_v9", {"when": "later"}),
        op("checkup_decline", {"reason": "外出"}, rid=a1["id"]),
        op("checkup_exempt", {"reason": "sick"}, rid=a2["id"]),  # not an exemption reason
        op("checkup_decline", {"appointment_id": a1["id"], "reason": "外出"}, rid=a3["id"]),  # two ids
        op("checkup_decline", {}, rid=a3["id"]),  # no reason
        op("migrant_close", {"closed_on": "not a date", "reason": "returned"}),
        household_op(),
    ]
    res = await push(cadre, ops)
    assert [x["status"] for x in res] == [
        "applied",
        "rejected",
        "applied",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "applied",
    ], res
    unknown = res[1]["error"]
    assert (unknown["status"], unknown["code"]) == (422, "unsupported_entity")
    assert unknown["errors"][0]["field"] == "entity"
    assert res[3]["error"]["code"] == "validation_failed"
    assert res[3]["error"]["errors"][0]["field"] == "reason"
    assert res[4]["error"]["errors"][0]["field"] == "appointment_id"
    assert res[5]["error"]["errors"][0]["field"] == "reason"
    assert res[6]["error"]["code"] == "validation_failed"
    statuses = {str(a.id): a.status for a in (await db.execute(select(CheckupAppointment))).scalars()}
    assert statuses == {a1["id"]: "declined", a2["id"]: "scheduled", a3["id"]: "scheduled"}
    await db.commit()
    # the envelope is still checked as a whole: too many ops or no device is a 422
    r = await cadre.post("/api/v1/sync/push", json={"ops": [household_op()]})
    assert r.status_code == 422
    r = await cadre.post("/api/v1/sync/push", json={"device_id": "p", "ops": [household_op()] * 501})
    assert r.status_code == 422
    r = await cadre.post("/api/v1/sync/push", json={"device_id": "p", "ops": {"op_id": "x"}})
    assert r.status_code == 422


async def test_another_villages_records_do_not_exist_for_an_action(cadre, township, client_as, db):
    """An attacker's test: a cadre of V2 acting by id on V1's appointment, task and migrant
    gets exactly the answer of an id that exists nowhere, and nothing changes."""
    (appt,) = await open_round(cadre, township, 1)
    task = await follow_up_task(cadre)
    migrant = await inflow(cadre)
    other = await client_as("village", V2)
    made_up = str(uuid.uuid4())
    for entity, data, real in (
        ("checkup_decline", {"reason": "x"}, appt["id"]),
        ("checkup_exempt", {"reason": "other"}, appt["id"]),
        ("task_completion", {}, task["id"]),
        ("migrant_close", {"closed_on": TODAY.isoformat(), "reason": "returned"}, migrant["id"]),
    ):
        for base in (None, 1):
            theirs, nowhere = await push(
                other, [op(entity, data, rid=real, base=base), op(entity, data, rid=made_up, base=base)]
            )
            assert theirs["status"] == nowhere["status"] == "rejected"
            assert theirs["error"]["code"] == "not_found" and theirs["error"]["status"] == 404
            assert theirs["error"] == nowhere["error"], entity
            assert "current" not in theirs and theirs.get("version") is None
    stored = await db.get(CheckupAppointment, uuid.UUID(appt["id"]))
    assert stored is not None and stored.status == "scheduled"
    t = await db.get(Task, uuid.UUID(task["id"]))
    assert t is not None and t.status == "open"
    m = await db.get(Migrant, uuid.UUID(migrant["id"]))
    assert m is not None and m.status == "open"
    await db.commit()


async def test_a_checkup_due_item_is_not_completed_as_a_task(cadre, township):
    (appt,) = await open_round(cadre, township, 1)
    (res,) = await push(cadre, [op("task_completion", {}, rid=appt["id"])])
    assert res["status"] == "rejected" and res["error"]["code"] == "record_checkup_instead"


async def test_claim_ops_create_correct_and_submit(cadre, client_as, db):
    mother = await elder(cadre)
    _, cursor = await pull_all(cadre)
    cid = str(uuid.uuid4())
    create = op(
        "claim",
        {"programme": "rural_reward", "person_id": mother["id"], "year": 2024, "facts": RURAL_FACTS},
        rid=cid,
    )
    (made,) = await push(cadre, [create])
    assert (made["status"], made["id"], made["version"]) == ("applied", cid, 1), made
    # a correction of the draft (the payee) and then, in a later op, the submission
    correct = op("claim", {"payee": payee(mother["name"])}, rid=cid, base=1)
    submit = op("claim", {"submit": True}, rid=cid, base=2)
    fixed, sent = await push(cadre, [correct, submit])
    assert (fixed["status"], fixed["version"]) == ("applied", 2), fixed
    assert (sent["status"], sent["version"]) == ("applied", 3), sent
    again = await push(cadre, [create, correct, submit])
    assert [x["status"] for x in again] == ["duplicate"] * 3
    assert [x["version"] for x in again] == [1, 2, 3]
    stored = await db.get(Claim, uuid.UUID(cid))
    assert stored is not None
    assert (stored.status, stored.submitted_by, stored.payee_name) == (
        "submitted",
        cadre.user.id,
        mother["name"],
    )
    assert (await db.execute(select(func.count()).select_from(Claim))).scalar_one() == 1
    await db.commit()
    # the same claim as the REST API shows it, in the phone's pull
    changes = await pull_until(cadre, cursor, {("claim", cid)})
    (pulled,) = [c for c in changes if c["entity"] == "claim"]
    assert (pulled["id"], pulled["version"], pulled["data"]["status"]) == (cid, 3, "submitted")
    rest = (await cadre.get(f"/api/v1/claims/{cid}")).json()
    assert {k: rest[k] for k in pulled["data"]} == pulled["data"]
    assert pulled["data"]["payee"]["account_masked"].endswith("0123")
    # a first pull (snapshot) has it too; another village's cadre never sees it
    first, _ = await pull_all(cadre)
    assert {c["id"] for c in first if c["entity"] == "claim"} == {cid}
    other = await client_as("village", V2)
    theirs, _ = await pull_all(other)
    assert [c for c in theirs if c["entity"] == "claim"] == []


async def test_claim_op_created_and_submitted_at_once_or_not_at_all(cadre, db):
    mother = await elder(cadre)
    body = {"programme": "rural_reward", "person_id": mother["id"], "year": 2024, "submit": True}
    # not eligible (no facts): the submit is refused, and the draft is not kept either
    (refused,) = await push(cadre, [op("claim", body, rid=str(uuid.uuid4()))])
    assert refused["status"] == "rejected" and refused["error"]["code"] == "not_eligible"
    assert (await db.execute(select(func.count()).select_from(Claim))).scalar_one() == 0
    await db.commit()
    cid = str(uuid.uuid4())
    whole = {**body, "facts": RURAL_FACTS, "payee": payee(mother["name"])}
    (done,) = await push(cadre, [op("claim", whole, rid=cid)])
    assert (done["status"], done["version"]) == ("applied", 2), done
    stored = await db.get(Claim, uuid.UUID(cid))
    assert stored is not None and stored.status == "submitted"
    await db.commit()
    # a second claim for the same person, programme and year, and a bad submit flag
    twin = op("claim", {**whole, "submit": False}, rid=str(uuid.uuid4()))
    flag = op("claim", {**whole, "year": 2023, "submit": "yes"}, rid=str(uuid.uuid4()))
    a, b = await push(cadre, [twin, flag])
    assert a["status"] == "rejected" and a["error"]["code"] == "claim_exists"
    assert b["status"] == "rejected" and b["error"]["errors"][0]["field"] == "submit"


async def test_checkup_results_in_one_batch_each_answered_as_alone(cadre, township, client_as, db):
    """A run of results is checked together and written by one flush; every op gets the answer
    it would get alone, a bad op in the middle writes nothing and stops nothing."""
    appts = await open_round(cadre, township, 9, items=["iud", "pregnancy"])
    other = await client_as("village", V2)
    h2 = await mk_household(other, V2)
    await woman(other, h2["id"], date(1985, 5, 5))
    r = await township.post(
        "/api/v1/checkup-rounds", json=round_body(area=V2, name="别村", items=["gynecological"])
    )
    assert r.status_code == 201, r.text
    (theirs,) = await appointments(other, round_id=r.json()["id"])
    # one woman declined before and changed her mind (the round is open)
    r = await cadre.post(f"/api/v1/checkup-appointments/{appts[5]['id']}/decline", json={"reason": "外出"})
    assert r.status_code == 200, r.text
    reused = str(uuid.uuid4())
    ops = [
        op("checkup_result", result_data(appts[0]["id"]), rid=reused),
        op("checkup_result", result_data(appts[1]["id"], items={"pregnancy": "positive"})),
        op("checkup_result", result_data(theirs["id"])),  # another village's
        op("checkup_result", result_data(appts[2]["id"], consent=False)),
        op("checkup_result", result_data(appts[3]["id"], items={"gynecological": "normal"})),
        op("checkup_result", result_data(appts[4]["id"]), rid=reused),  # the result id of op 0
        op("checkup_result", result_data(appts[5]["id"])),  # declined, round open
        op("checkup_result", result_data(appts[6]["id"], checked_on=(TODAY + timedelta(days=2)).isoformat())),
        op("checkup_result", {"checked_on": TODAY.isoformat()}),  # no appointment, no items
        op("checkup_result", result_data(appts[7]["id"])),
        op("checkup_result", result_data(appts[7]["id"])),  # the same appointment again
    ]
    res = await push(cadre, ops)
    assert [x["status"] for x in res] == [
        "applied",
        "applied",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "applied",
        "rejected",
        "rejected",
        "applied",
        "rejected",
    ], res
    codes = [x.get("error", {}).get("code") for x in res]
    assert codes[2] == "not_found" and res[2]["error"]["status"] == 404
    assert codes[3] == "consent_required"
    assert codes[4] == "item_not_in_round"
    assert codes[5] == "id_conflict"
    assert codes[7] == "validation_failed" and res[7]["error"]["errors"][0]["field"] == "checked_on"
    assert codes[8] == "validation_failed"
    assert codes[10] == "invalid_transition"
    assert [x["version"] for x in res if x["status"] == "applied"] == [2, 2, 3, 2]
    stored = {str(a.id): a for a in (await db.execute(select(CheckupAppointment))).scalars()}
    assert str(stored[appts[0]["id"]].result_id) == reused
    done = {k for k, a in stored.items() if a.status == "done"}
    assert done == {appts[i]["id"] for i in (0, 1, 5, 7)}
    assert stored[appts[5]["id"]].decline_reason == "外出"  # the decline stays on record
    assert stored[theirs["id"]].status == "scheduled"
    # the positive pregnancy made its prenatal-care task
    tasks = (await db.execute(select(Task).where(Task.kind == "prenatal_care"))).scalars().all()
    assert [str(t.source_id) for t in tasks] == [appts[1]["id"]]
    await db.commit()
    # re-sent: the applied ones are duplicates, nothing is written twice
    again = await push(cadre, ops)
    assert [x["status"] for x in again] == [
        "duplicate" if x["status"] == "applied" else x["status"] for x in res
    ]
    assert (
        await db.execute(select(func.count()).select_from(Task).where(Task.kind == "prenatal_care"))
    ).scalar_one() == 1
    await db.commit()
    # a new op reusing a stored result id on another appointment is id_conflict; the same
    # result again on its own appointment (another op id) is a replay, applied at its version
    clash, replay = await push(
        cadre,
        [
            op("checkup_result", result_data(appts[8]["id"]), rid=reused),
            op("checkup_result", result_data(appts[0]["id"]), rid=reused),
        ],
    )
    assert clash["status"] == "rejected" and clash["error"]["code"] == "id_conflict"
    assert (replay["status"], replay["version"]) == ("applied", 2)
    # the results come in the pull
    changes, _ = await pull_all(cadre)
    pulled = {c["id"]: c["data"]["status"] for c in changes if c["entity"] == "checkup_appointment"}
    assert {k for k, v in pulled.items() if v == "done"} == done


async def test_a_run_of_results_costs_the_same_statements_for_5_or_25(cadre, township, engine):
    from sqlalchemy import event

    appts = await open_round(cadre, township, 30)
    counted: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        counted.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        sizes = {}
        for n, chunk in ((5, appts[:5]), (25, appts[5:30])):
            counted.clear()
            res = await push(cadre, [op("checkup_result", result_data(a["id"])) for a in chunk])
            assert [x["status"] for x in res] == ["applied"] * n
            sizes[n] = len(counted)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert sizes[5] == sizes[25], sizes


async def test_a_run_whose_flush_clashes_is_applied_op_by_op(cadre, township, db, monkeypatch):
    """If the one flush of a run fails on stored data (here: the check of used result ids is
    made blind, as if another request stored the id after it ran), the run is applied op by op
    and each op still gets its own answer."""
    from app.services import sync as sync_svc

    a0, a1, a2 = await open_round(cadre, township, 3)
    used = str(uuid.uuid4())
    (first,) = await push(cadre, [op("checkup_result", result_data(a0["id"]), rid=used)])
    assert first["status"] == "applied"
    batch = sync_svc.PUSH["checkup_result"].batch
    assert batch is not None
    real_load = batch.load

    async def blind(session, actor, items):
        refs = await real_load(session, actor, items)
        refs.taken.clear()
        return refs

    monkeypatch.setattr(batch, "load", blind)
    res = await push(
        cadre,
        [
            op("checkup_result", result_data(a1["id"])),
            op("checkup_result", result_data(a2["id"]), rid=used),
        ],
    )
    assert res[0]["status"] == "applied" and res[0]["version"] == 2
    assert res[1]["status"] == "rejected" and res[1]["error"]["code"] == "id_conflict"
    stored = {str(a.id): a for a in (await db.execute(select(CheckupAppointment))).scalars()}
    assert (stored[a1["id"]].status, stored[a2["id"]].status) == ("done", "scheduled")
    assert str(stored[a0["id"]].result_id) == used
    await db.commit()


async def test_a_stale_claim_correction_merges_other_fields_and_conflicts_on_the_same(cadre, db):
    mother = await elder(cadre)
    cid = str(uuid.uuid4())
    create = op(
        "claim",
        {"programme": "rural_reward", "person_id": mother["id"], "year": 2024, "facts": RURAL_FACTS},
        rid=cid,
    )
    assert (await push(cadre, [create]))[0]["status"] == "applied"
    # the cadre's other device (the REST API) corrected the facts: version 2
    r = await cadre.patch(
        f"/api/v1/claims/{cid}",
        json={"facts": {**RURAL_FACTS, "only_child_certificate": True}},
        headers={"If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    # the phone, still at version 1, sets the payee (not changed on the server): merged
    (merged,) = await push(cadre, [op("claim", {"payee": payee(mother["name"])}, rid=cid, base=1)])
    assert (merged["status"], merged["version"]) == ("applied", 3), merged
    # and then changes the facts, which the server changed since version 1: a conflict
    other_facts = {"hukou_rural": False, "births_within_policy_1973_2001": True}
    (clash,) = await push(cadre, [op("claim", {"facts": other_facts}, rid=cid, base=1)])
    assert clash["status"] == "conflict" and clash["fields"] == ["facts"], clash
    assert clash["current"]["facts"]["only_child_certificate"] is True
    assert "account" not in clash["current"]["payee"]  # answers show the masked account only
    stored = await db.get(Claim, uuid.UUID(cid))
    assert stored is not None
    assert (stored.version, stored.facts["hukou_rural"], stored.payee_name) == (3, True, mother["name"])
    assert (await db.execute(select(func.count()).select_from(SyncConflict))).scalar_one() == 1
    await db.commit()
    # a payee in conflict is kept masked, like every list shows it
    (kept,) = await push(
        cadre,
        [
            op(
                "claim",
                {"facts": other_facts, "payee": payee(mother["name"], "6228480012345678")},
                rid=cid,
                base=1,
            )
        ],
    )
    assert kept["status"] == "conflict", kept
    conflict = (
        (await db.execute(select(SyncConflict).order_by(SyncConflict.created_at.desc()))).scalars().first()
    )
    assert conflict is not None and "6228480012345678" not in conflict.client_values
    assert "************5678" in conflict.client_values
    await db.commit()

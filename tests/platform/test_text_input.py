"""Text input: NUL and control characters refused (422) in every kind of input, on both
databases, in one place (``app/core/text.py``); a sync op carrying them is rejected alone.
Out-of-range timestamps and cursors are 422, never 500."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.models.audit import AuditEvent
from app.models.auth import LoginSession
from app.models.checkups import CheckupRound
from app.models.households import Household
from app.models.migrants import PartnerNotification
from app.models.sync import SyncOp
from app.models.visits import Visit
from tests.checkups.test_api import round_body
from tests.factories import id_number, make_client
from tests.households.test_api import TS1, V1, mk_household, problem
from tests.visits.test_api import visit_body

REFUSED = ["a\x00b", "a\rb", "a\x07b", "a\x1bb", "a\x7fb", "a\x85b", "a\ud800b"]


async def count(db, model, *where) -> int:
    await db.rollback()  # a fresh snapshot: see what the app committed since
    stmt = select(func.count()).select_from(model)
    for w in where:
        stmt = stmt.where(w)
    return int((await db.execute(stmt)).scalar_one())


def text_problem(r, field: str) -> dict:
    body = problem(r, 422, "validation_failed")
    assert [e["field"] for e in body["errors"]] == [field], body
    # in Chinese by default (tests/platform/test_language.py has both languages)
    assert body["errors"][0]["message"] == "不得含有 NUL 或控制字符（仅允许制表符和换行）"
    return body


@pytest.fixture
async def cadre(client_as):
    return await client_as("village", V1)


async def post_json(c, url: str, body: dict, *, ascii_only: bool):
    """The body as a client writes it: every non-ASCII character escaped (``\\u0085``), or
    UTF-8 as is (a raw C1 byte)."""
    raw = json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    return await c.post(url, content=raw, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("bad", "ascii_only"),
    # a lone surrogate has no UTF-8 form: it only arrives escaped
    [(b, a) for b in REFUSED for a in (True, False) if a or b != "a\ud800b"],
)
async def test_control_characters_in_visit_notes_are_422_and_nothing_is_stored(cadre, db, bad, ascii_only):
    """``notes`` is a plain ``str`` field: the request-level check covers it anyway. (A NUL in
    notes was a 500 on PostgreSQL; SQLite stored it.)"""
    h = await mk_household(cadre)
    for field in ("notes", "follow_up_note"):
        body = visit_body(h["id"], **{field: bad})
        text_problem(await post_json(cadre, "/api/v1/visits", body, ascii_only=ascii_only), field)
    assert await count(db, Visit) == 0


async def test_tab_newline_and_look_alikes_are_kept(cadre, db):
    h = await mk_household(cadre)
    notes = "第一行\n\t第二行 C:\\bin \\u0000 · ½ 家"  # an escaped backslash before b/u is text
    r = await cadre.post("/api/v1/visits", json=visit_body(h["id"], notes=notes))
    assert r.status_code == 201, r.text
    assert r.json()["notes"] == notes
    assert (await db.execute(select(Visit.notes))).scalar_one() == notes


async def test_escaped_and_raw_forms_in_a_json_body(cadre, db):
    """The same characters whichever way the JSON writes them: ``\\u0000``, ``\\r``, a raw C1
    byte (UTF-8 C2 85) — and as an object key the model would ignore."""
    h = await mk_household(cadre)
    base = json.dumps(visit_body(h["id"]), ensure_ascii=False)
    for raw, field in [
        (base[:-1] + ', "notes": "x\\u0000y"}', "notes"),
        (base[:-1] + ', "notes": "x\\ry"}', "notes"),
        (base[:-1] + ', "notes": "x\u0085y"}', "notes"),
        (base[:-1] + ', "x\\u0000": 1}', "x\x00"),
    ]:
        r = await cadre.post(
            "/api/v1/visits", content=raw.encode(), headers={"content-type": "application/json"}
        )
        text_problem(r, field)
    assert await count(db, Visit) == 0


async def test_nul_in_a_query_filter_is_422(cadre):
    """``GET /households?q=%00`` was a 500 on PostgreSQL."""
    await mk_household(cadre)
    text_problem(await cadre.get("/api/v1/households?q=%00"), "q")
    text_problem(await cadre.get("/api/v1/persons", params={"q": "李\x00"}), "q")
    text_problem(await cadre.get("/api/v1/households?q%00=1"), "query")
    r = await cadre.get("/api/v1/households", params={"q": "团头湖"})
    assert r.status_code == 200
    assert len(r.json()["items"]) == 1


async def test_nul_in_a_path_is_422(cadre, client_as):
    # ids in paths are UUIDs at routing level: a NUL there matches no route (404, never a 500)
    problem(await cadre.get("/api/v1/households/%00"), 404, "not_found")
    admin = await client_as("admin", "430122000000")
    body = {"effective_from": "2027-01-01", "params": {}}
    text_problem(await admin.post("/api/v1/programmes/rural%00reward/rules", json=body), "path")


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"grant_type": "password", "username": "admin\x00", "password": "x" * 12}, "username"),
        ({"grant_type": "client_credentials", "client_id": "c\x00", "client_secret": "s" * 12}, "client_id"),
        ({"grant_type": "password\x00", "username": "admin", "password": "x" * 12}, "grant_type"),
    ],
)
async def test_nul_in_token_form_fields_is_422_without_login(anon, db, areas, form, field):
    """No token needed to reach this: it was a 500 on PostgreSQL."""
    events = await count(db, AuditEvent)
    text_problem(await anon.post("/api/v1/auth/token", data=form), field)
    assert await count(db, LoginSession) == 0
    assert await count(db, AuditEvent) == events


async def test_nul_in_a_round_name_is_422(client_as, db):
    township = await client_as("township", TS1)
    text_problem(await township.post("/api/v1/checkup-rounds", json=round_body(name="春季\x00三查")), "name")
    assert await count(db, CheckupRound) == 0


async def test_control_characters_in_headers_are_422(cadre, anon, db):
    client, secret = await make_client(db, role="partner", area_code="430122000000")
    await db.commit()
    r = await anon.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": secret},
    )
    police = {"Authorization": f"Bearer {r.json()['access_token']}"}
    note = {
        "kind": "residence_registered",
        "id_number": id_number(datetime(1990, 1, 1).date(), "female"),
        "name": "王桂兰",
        "address": "团头湖村5组12号",
        "area_code": V1,
        "occurred_on": (datetime.now(UTC) - timedelta(days=2)).date().isoformat(),
        "reference": "GA-1",
    }
    headers = {**police, "Idempotency-Key": "k\x00"}
    r = await anon.post("/api/v1/partner/notifications", json=note, headers=headers)
    text_problem(r, "idempotency-key")
    assert await count(db, PartnerNotification) == 0

    h = await mk_household(cadre)
    r = await cadre.patch(
        f"/api/v1/households/{h['id']}", json={"address": "新地址"}, headers={"If-Match": '"1\x01"'}
    )
    text_problem(r, "if-match")
    await db.rollback()
    stored = (await db.execute(select(Household))).scalar_one()
    assert (stored.version, stored.address) == (1, h["address"])


async def test_a_sync_op_with_nul_is_rejected_alone_and_nothing_of_it_is_stored(cadre, db):
    """An op whose ``op_id`` or data holds NUL is ``rejected`` (a problem object); the ops
    around it are applied; neither the op nor its answer is stored."""
    from tests.sync.test_api import household_op, visit_op

    h = await mk_household(cadre)
    first = household_op()
    bad_data = visit_op(h["id"])
    bad_data["data"]["notes"] = "走访\x00"
    bad_id = visit_op(h["id"], op_id="op\x00-1")
    bad_key = visit_op(h["id"])
    bad_key["data"]["x\u0000"] = 1
    last = visit_op(h["id"])
    r = await cadre.post(
        "/api/v1/sync/push", json={"device_id": "phone-1", "ops": [first, bad_data, bad_id, bad_key, last]}
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["applied", "rejected", "rejected", "rejected", "applied"]
    assert [x["op_id"] for x in results] == [o["op_id"] for o in (first, bad_data, bad_id, bad_key, last)]
    for res, field in zip(results[1:4], ["data.notes", "op_id", "data.x\x00"], strict=True):
        assert res["error"]["code"] == "validation_failed"
        assert res["error"]["status"] == 422
        assert [e["field"] for e in res["error"]["errors"]] == [field]
    assert {str(v) for v in (await db.execute(select(Visit.id))).scalars()} == {last["id"]}
    assert await count(db, Household) == 2
    held = set((await db.execute(select(SyncOp.op_id))).scalars())
    assert held == {first["op_id"], last["op_id"]}

    # The corrected op under the same op id is applied on the next push.
    bad_data["data"]["notes"] = "走访"
    r = await cadre.post("/api/v1/sync/push", json={"device_id": "phone-1", "ops": [bad_data]})
    assert r.json()["results"][0]["status"] == "applied"
    # Text outside the ops is the request's own: the whole push is refused.
    text_problem(await cadre.post("/api/v1/sync/push", json={"device_id": "p\x00", "ops": []}), "device_id")


# --- timestamps and cursors out of range ---------------------------------------------------


@pytest.mark.parametrize(
    "when",
    ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1850-06-01T08:00:00+08:00"],
)
async def test_extreme_visited_at_is_422(cadre, db, when):
    h = await mk_household(cadre)
    body = problem(
        await cadre.post("/api/v1/visits", json=visit_body(h["id"], visited_at=when)),
        422,
        "validation_failed",
    )
    assert [e["field"] for e in body["errors"]] == ["visited_at"]
    assert await count(db, Visit) == 0


async def test_extreme_visited_at_in_a_sync_op_is_rejected_alone(cadre, db):
    from tests.sync.test_api import visit_op

    h = await mk_household(cadre)
    bad = visit_op(h["id"])
    bad["data"]["visited_at"] = "0001-01-01T00:00:00+14:00"
    good = visit_op(h["id"])
    r = await cadre.post("/api/v1/sync/push", json={"device_id": "phone-2", "ops": [bad, good]})
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == ["rejected", "applied"]
    assert r.json()["results"][0]["error"]["code"] == "validation_failed"
    assert await count(db, Visit) == 1


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_extreme_timestamp_filters_are_422(client_as, when):
    cadre = await client_as("village", V1)
    admin = await client_as("admin", "430122000000")
    problem(await cadre.get("/api/v1/visits", params={"from": when}), 422, "validation_failed")
    problem(await admin.get("/api/v1/audit-events", params={"to": when}), 422, "validation_failed")


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _raw_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        _cursor({"p": "l", "tx": 10**30, "seq": 1}),
        _cursor({"p": "l", "tx": 1, "seq": 2**64}),
        _cursor({"p": "l", "tx": -1, "seq": 1}),
        _raw_cursor('{"p": "l", "tx": 1e400, "seq": 1}'),
        _cursor({"p": "l", "tx": 1.5, "seq": 1}),
        _cursor({"p": "s", "e": 10**20, "last": None, "tx": 1, "seq": 1}),
        _cursor({"p": "s", "e": -1, "last": None, "tx": 1, "seq": 1}),
    ],
)
async def test_pull_cursor_with_huge_numbers_is_422(cadre, cursor):
    problem(await cadre.get("/api/v1/sync/pull", params={"cursor": cursor}), 422, "invalid_cursor")


@pytest.mark.parametrize(
    ("url", "cursor"),
    [
        ("/api/v1/visits", _cursor(["0001-01-01T00:00:00+14:00", str(uuid.uuid4())])),
        ("/api/v1/visits", _cursor(["9999-12-31T23:59:59-14:00", str(uuid.uuid4())])),
        ("/api/v1/persons", _cursor(["李\x00", str(uuid.uuid4())])),
        ("/api/v1/areas", _cursor(["4301\x00"])),
    ],
)
async def test_list_cursor_values_a_database_cannot_take_are_422(client_as, url, cursor):
    c = await client_as("admin" if "areas" in url else "village", "430122000000" if "areas" in url else V1)
    problem(await c.get(url, params={"cursor": cursor}), 422, "invalid_cursor")


async def test_every_operation_documents_the_422(app, anon):
    """The check runs before every route, public ones included, so every operation says so."""
    for ops in app.openapi()["paths"].values():
        for op in ops.values():
            assert "422" in op["responses"]
    text_problem(await anon.get("/healthz", headers={"X-Probe": "a\x01"}), "x-probe")


def test_an_areas_file_with_control_characters_is_refused_line_by_line():
    """``jiahe areas import`` reads text from outside too (a NUL would stop PostgreSQL)."""
    from app.services.areas import parse_area_csv

    rows, errors = parse_area_csv("code,name\n430122000000,望城\x00区\n430122100000,乔口镇\n".encode())
    assert [r[1] for r in rows] == ["430122100000"]
    assert [(e.field, e.message) for e in errors] == [("line 2", "name has control characters")]

"""The register through HTTP: households, persons, protected ID numbers, concurrency, births,
deaths, moves, merges, scope."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import select, text

from app.core import clock
from app.models.audit import AuditEvent
from app.models.households import Household, Person, PersonMove
from tests.factories import id_number

V1 = "430122100201"  # 团头湖村, township 430122100
V2 = "430122100202"  # same township
V_OTHER_TS = "430122101201"  # another township
TS1 = "430122100000"
COUNTY = "430122000000"


def problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == code
    return body


async def mk_household(c, village: str = V1, **kw) -> dict:
    body = {"village_code": village, "address": "团头湖村3组12号", "household_type": "rural", **kw}
    r = await c.post("/api/v1/households", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def mk_person(
    c, household_id: str, *, sex: str = "female", born: date = date(1990, 5, 17), with_id: bool = True, **kw
) -> dict:
    body = {
        "household_id": household_id,
        "name": kw.pop("name", "李秀英"),
        "relation_to_head": kw.pop("relation_to_head", "户主"),
        "marital_status": kw.pop("marital_status", "married"),
        **kw,
    }
    if with_id:
        body.setdefault("id_number", id_number(born, sex))
    else:
        body.setdefault("sex", sex)
        body.setdefault("birth_date", born.isoformat())
    r = await c.post("/api/v1/persons", json=body)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
async def cadre(client_as):
    return await client_as("village", V1)


# --- households -------------------------------------------------------------------------------


async def test_create_household_and_idempotent_retry(cadre, db):
    hid = str(uuid.uuid4())
    body = {"id": hid, "village_code": V1, "address": "团头湖村3组12号", "household_type": "rural"}
    r = await cadre.post("/api/v1/households", json=body)
    assert r.status_code == 201
    assert r.headers["etag"] == '"1"'
    out = r.json()
    assert out["id"] == hid
    assert out["version"] == 1
    assert out["address"] == "团头湖村3组12号"
    again = await cadre.post("/api/v1/households", json=body)
    assert again.status_code == 200
    assert again.json() == out
    problem(await cadre.post("/api/v1/households", json={**body, "address": "别处"}), 409, "id_conflict")
    rows = (await db.execute(select(Household))).scalars().all()
    assert len(rows) == 1
    assert (rows[0].county_code, rows[0].township_code, rows[0].village_code) == ("430122", "430122100", V1)


async def test_household_outside_scope_is_403_and_invisible(cadre, client_as):
    problem(
        await cadre.post(
            "/api/v1/households", json={"village_code": V2, "address": "x", "household_type": "rural"}
        ),
        403,
        "out_of_scope",
    )
    other = await client_as("village", V2)
    h = await mk_household(other, V2)
    problem(await cadre.get(f"/api/v1/households/{h['id']}"), 404, "not_found")
    problem(
        await cadre.patch(
            f"/api/v1/households/{h['id']}", json={"address": "y"}, headers={"If-Match": '"1"'}
        ),
        404,
        "not_found",
    )
    assert (await cadre.get("/api/v1/households")).json()["items"] == []


async def test_unknown_village_is_422(client_as):
    county = await client_as("county", COUNTY)
    r = await county.post(
        "/api/v1/households", json={"village_code": "430122100299", "address": "x", "household_type": "rural"}
    )
    problem(r, 422, "validation_failed")


async def test_household_list_filters_and_scope_by_level(client_as):
    c1 = await client_as("village", V1)
    c2 = await client_as("village", V2)
    c3 = await client_as("village", V_OTHER_TS)
    a = await mk_household(c1, V1, address="团头湖村一组5号")
    b = await mk_household(c2, V2, address="柏叶村二组8号")
    c = await mk_household(c3, V_OTHER_TS, address="格塘村三组1号")
    ts = await client_as("township", TS1)
    ids = {h["id"] for h in (await ts.get("/api/v1/households")).json()["items"]}
    assert ids == {a["id"], b["id"]}
    county = await client_as("county", COUNTY)
    ids = {h["id"] for h in (await county.get("/api/v1/households")).json()["items"]}
    assert ids == {a["id"], b["id"], c["id"]}
    r = await county.get("/api/v1/households", params={"q": "柏叶"})
    assert [h["id"] for h in r.json()["items"]] == [b["id"]]
    r = await county.get("/api/v1/households", params={"village_code": V_OTHER_TS})
    assert [h["id"] for h in r.json()["items"]] == [c["id"]]
    r = await county.get("/api/v1/households", params={"q": "%"})
    assert r.json()["items"] == []


async def test_household_pagination_walks_all(cadre):
    made = {(await mk_household(cadre))["id"] for _ in range(5)}
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await cadre.get("/api/v1/households", params=params)).json()
        seen += [h["id"] for h in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(made)
    problem(await cadre.get("/api/v1/households", params={"limit": 501}), 422, "validation_failed")
    problem(await cadre.get("/api/v1/households", params={"cursor": "garbage!"}), 422, "invalid_cursor")


async def test_patch_household_needs_if_match(cadre):
    h = await mk_household(cadre)
    url = f"/api/v1/households/{h['id']}"
    problem(await cadre.patch(url, json={"address": "新地址"}), 428, "precondition_required")
    r = await cadre.patch(url, json={"address": "新地址"}, headers={"If-Match": '"1"'})
    assert r.status_code == 200
    assert r.json()["version"] == 2
    assert r.headers["etag"] == '"2"'
    body = problem(
        await cadre.patch(url, json={"address": "旧"}, headers={"If-Match": '"1"'}), 412, "version_conflict"
    )
    assert body["current"]["address"] == "新地址"
    assert body["current"]["version"] == 2


async def test_head_must_be_living_member(cadre):
    h = await mk_household(cadre)
    h2 = await mk_household(cadre)
    p = await mk_person(cadre, h2["id"])
    url = f"/api/v1/households/{h['id']}"
    problem(
        await cadre.patch(url, json={"head_person_id": p["id"]}, headers={"If-Match": '"1"'}),
        422,
        "validation_failed",
    )
    got = (await cadre.get(f"/api/v1/households/{h2['id']}")).json()
    assert got["head_person_id"] == p["id"]  # the first 户主 became head
    assert [m["id"] for m in got["members"]] == [p["id"]]


# --- persons and ID numbers -------------------------------------------------------------------


async def test_person_birth_date_and_sex_come_from_id_number(cadre):
    h = await mk_household(cadre)
    number = id_number(date(1988, 2, 29), "male")
    r = await cadre.post(
        "/api/v1/persons",
        json={
            "household_id": h["id"],
            "id_number": number,
            "name": "王建国",
            "relation_to_head": "户主",
            "marital_status": "married",
        },
    )
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["birth_date"] == "1988-02-29"
    assert out["sex"] == "male"
    assert out["id_number_masked"] == number[0] + "*" * 16 + number[-1]
    assert "id_number" not in out


@pytest.mark.parametrize(
    ("field", "value"),
    [("sex", "female"), ("birth_date", "1988-03-01")],
)
async def test_disagreeing_sex_or_birth_date_is_mismatch(cadre, field, value):
    h = await mk_household(cadre)
    number = id_number(date(1988, 2, 29), "male")
    body = {
        "household_id": h["id"],
        "id_number": number,
        "name": "王建国",
        "relation_to_head": "户主",
        "marital_status": "married",
        field: value,
    }
    problem(await cadre.post("/api/v1/persons", json=body), 422, "id_number_mismatch")


@pytest.mark.parametrize(
    ("number", "fragment"),
    [
        ("430122199002301234", "date"),
        ("43012219900101123", "18"),
        ("430122900101123", "15-digit"),
        ("ABCDEFGHIJKLMNOPQR", "digit"),
    ],
)
async def test_invalid_id_numbers(cadre, number, fragment):
    h = await mk_household(cadre)
    body = {
        "household_id": h["id"],
        "id_number": number,
        "name": "张三",
        "relation_to_head": "户主",
        "marital_status": "single",
    }
    r = await cadre.post("/api/v1/persons", json=body, headers={"Accept-Language": "en"})
    out = problem(r, 422, "id_number_invalid")
    assert fragment in out["detail"]
    assert out["errors"][0]["field"] == "id_number"


async def test_wrong_check_character(cadre):
    h = await mk_household(cadre)
    good = id_number(date(1990, 1, 1), "female")
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    body = {
        "household_id": h["id"],
        "id_number": bad,
        "name": "张三",
        "relation_to_head": "户主",
        "marital_status": "single",
    }
    out = problem(await cadre.post("/api/v1/persons", json=body), 422, "id_number_invalid")
    assert out["detail"] == "校验码错误"  # Chinese by default
    r = await cadre.post("/api/v1/persons", json=body, headers={"Accept-Language": "en"})
    assert problem(r, 422, "id_number_invalid")["detail"] == "wrong check character"


async def test_lowercase_x_is_stored_as_upper(cadre):
    from app.services.idnumber import generate_id_number

    h = await mk_household(cadre)
    number = next(
        n
        for s in range(500)
        if (
            n := generate_id_number(area_code="430122", birth_date=date(1975, 6, 1), sex="female", sequence=s)
        ).endswith("X")
    )
    r = await cadre.post(
        "/api/v1/persons",
        json={
            "household_id": h["id"],
            "id_number": number.lower(),
            "name": "赵敏",
            "relation_to_head": "户主",
            "marital_status": "married",
        },
    )
    assert r.status_code == 201, r.text
    full = (await cadre.get(f"/api/v1/persons/{r.json()['id']}")).json()
    assert full["id_number"] == number


async def test_id_number_never_stored_in_plain_text(cadre, db):
    h = await mk_household(cadre)
    number = id_number(date(1992, 7, 7), "female")
    p = await mk_person(cadre, h["id"], id_number=number, phone="13812345678")
    raw = (
        (
            await db.execute(
                text("SELECT * FROM person WHERE id = :id"),
                {"id": uuid.UUID(p["id"]).hex if db.bind.dialect.name == "sqlite" else p["id"]},
            )
        )
        .mappings()
        .one()
    )
    dump = " ".join(str(v) for v in raw.values())
    assert number not in dump
    assert number[6:14] + number[14:17] not in dump
    assert "13812345678" not in dump
    assert raw["id_number_enc"].startswith("f1:")
    assert len(raw["id_number_hash"]) == 64


async def test_full_read_is_audited_and_lists_are_masked(cadre, db):
    h = await mk_household(cadre)
    number = id_number(date(1985, 3, 3), "female")
    p = await mk_person(cadre, h["id"], id_number=number)
    lists = [
        await cadre.get("/api/v1/persons"),
        await cadre.get("/api/v1/persons", params={"household_id": h["id"]}),
        await cadre.get("/api/v1/persons", params={"q": "秀英"}),
        await cadre.get(f"/api/v1/households/{h['id']}"),
        await cadre.get("/api/v1/persons", params={"id_number": number}),
    ]
    for r in lists:
        assert r.status_code == 200
        assert number not in r.text
        assert number[0] + "*" * 16 + number[-1] in r.text
    full = await cadre.get(f"/api/v1/persons/{p['id']}")
    assert full.json()["id_number"] == number
    assert full.headers["etag"] == '"1"'
    events = (await db.execute(select(AuditEvent).where(AuditEvent.entity == "person"))).scalars().all()
    actions = [(e.action, e.entity_id) for e in events]
    assert ("read", p["id"]) in actions
    assert ("lookup", None) in actions
    assert ("create", p["id"]) in actions
    assert all(e.actor_id == cadre.user.id for e in events)


async def test_id_number_lookup_is_exact(cadre):
    h = await mk_household(cadre)
    number = id_number(date(1970, 1, 2), "male")
    p = await mk_person(cadre, h["id"], id_number=number, sex="male", name="刘德")
    r = await cadre.get("/api/v1/persons", params={"id_number": number})
    assert [x["id"] for x in r.json()["items"]] == [p["id"]]
    r = await cadre.get("/api/v1/persons", params={"id_number": number[:10]})
    problem(r, 422, "id_number_invalid")


async def test_duplicate_id_number_in_and_out_of_scope(client_as):
    c1 = await client_as("village", V1)
    c2 = await client_as("village", V2)
    number = id_number(date(1991, 1, 9), "female")
    h1 = await mk_household(c1)
    p = await mk_person(c1, h1["id"], id_number=number)
    body = {
        "household_id": h1["id"],
        "id_number": number,
        "name": "重复",
        "relation_to_head": "女",
        "marital_status": "single",
    }
    out = problem(await c1.post("/api/v1/persons", json=body), 409, "person_exists")
    assert out["person_id"] == p["id"]
    h2 = await mk_household(c2, V2)
    out = problem(
        await c2.post("/api/v1/persons", json={**body, "household_id": h2["id"]}),
        409,
        "person_exists_elsewhere",
    )
    assert p["id"] not in str(out)


async def test_idempotent_person_create(cadre, db):
    h = await mk_household(cadre)
    pid = str(uuid.uuid4())
    body = {
        "id": pid,
        "household_id": h["id"],
        "id_number": id_number(date(1980, 8, 8), "female"),
        "name": "周芳",
        "relation_to_head": "户主",
        "marital_status": "married",
        "phone": "13900001111",
    }
    first = await cadre.post("/api/v1/persons", json=body)
    assert first.status_code == 201
    again = await cadre.post("/api/v1/persons", json=body)
    assert again.status_code == 200
    assert again.json() == first.json()
    problem(await cadre.post("/api/v1/persons", json={**body, "name": "周芳芳"}), 409, "id_conflict")
    assert len((await db.execute(select(Person))).scalars().all()) == 1


async def test_baby_without_id_number_needs_sex_and_birth_date(cadre):
    h = await mk_household(cadre)
    p = await mk_person(
        cadre,
        h["id"],
        with_id=False,
        born=clock.today() - timedelta(days=30),
        name="小宝",
        relation_to_head="子",
        marital_status="single",
        sex="male",
    )
    assert p["id_number_masked"] is None
    r = await cadre.post(
        "/api/v1/persons",
        json={"household_id": h["id"], "name": "小宝", "relation_to_head": "子", "marital_status": "single"},
    )
    out = problem(r, 422, "validation_failed")
    assert {e["field"] for e in out["errors"]} == {"birth_date", "sex"}
    # The ID number arrives later: PATCH adds it, it must agree with what is on record.
    good = id_number(date.fromisoformat(p["birth_date"]), "male")
    wrong = id_number(date.fromisoformat(p["birth_date"]), "female")
    url = f"/api/v1/persons/{p['id']}"
    problem(
        await cadre.patch(url, json={"id_number": wrong, "sex": "male"}, headers={"If-Match": '"1"'}),
        422,
        "id_number_mismatch",
    )
    r = await cadre.patch(url, json={"id_number": good}, headers={"If-Match": '"1"'})
    assert r.status_code == 200
    assert r.json()["id_number_masked"] == good[0] + "*" * 16 + good[-1]


async def test_name_search_matches_chinese_substring(cadre):
    h = await mk_household(cadre)
    a = await mk_person(cadre, h["id"], name="欧阳秀英")
    await mk_person(cadre, h["id"], name="王建国", sex="male", relation_to_head="配偶")
    r = await cadre.get("/api/v1/persons", params={"q": "阳秀"})
    assert [p["id"] for p in r.json()["items"]] == [a["id"]]


async def test_parent_links_must_be_plausible(cadre):
    h = await mk_household(cadre)
    mother = await mk_person(cadre, h["id"], born=date(1990, 1, 1), sex="female")
    father = await mk_person(
        cadre, h["id"], born=date(1988, 1, 1), sex="male", name="王强", relation_to_head="配偶"
    )
    kid = {
        "household_id": h["id"],
        "name": "王小",
        "sex": "female",
        "birth_date": "2015-06-01",
        "relation_to_head": "女",
        "marital_status": "single",
    }
    problem(
        await cadre.post("/api/v1/persons", json={**kid, "mother_id": father["id"]}), 422, "validation_failed"
    )
    problem(
        await cadre.post("/api/v1/persons", json={**kid, "father_id": mother["id"]}), 422, "validation_failed"
    )
    problem(
        await cadre.post(
            "/api/v1/persons", json={**kid, "birth_date": "2002-01-01", "mother_id": mother["id"]}
        ),
        422,
        "validation_failed",
    )
    problem(
        await cadre.post("/api/v1/persons", json={**kid, "mother_id": str(uuid.uuid4())}),
        422,
        "validation_failed",
    )
    r = await cadre.post(
        "/api/v1/persons", json={**kid, "mother_id": mother["id"], "father_id": father["id"]}
    )
    assert r.status_code == 201
    assert r.json()["mother_id"] == mother["id"]
    assert r.json()["father_id"] == father["id"]


async def test_two_cadres_editing_one_person(client_as):
    a = await client_as("village", V1)
    b = await client_as("village", V1)
    h = await mk_household(a)
    p = await mk_person(a, h["id"])
    url = f"/api/v1/persons/{p['id']}"
    r1 = await a.patch(url, json={"marital_status": "divorced"}, headers={"If-Match": '"1"'})
    r2 = await b.patch(url, json={"marital_status": "widowed"}, headers={"If-Match": '"1"'})
    assert r1.status_code == 200
    body = problem(r2, 412, "version_conflict")
    assert body["current"]["marital_status"] == "divorced"
    assert body["current"]["version"] == 2
    got = (await a.get(url)).json()
    assert got["marital_status"] == "divorced"
    assert got["version"] == 2


async def test_person_scope(client_as):
    c1 = await client_as("village", V1)
    c2 = await client_as("village", V2)
    h = await mk_household(c1)
    p = await mk_person(c1, h["id"])
    problem(await c2.get(f"/api/v1/persons/{p['id']}"), 404, "not_found")
    problem(
        await c2.patch(f"/api/v1/persons/{p['id']}", json={"name": "x"}, headers={"If-Match": '"1"'}),
        404,
        "not_found",
    )
    assert (await c2.get("/api/v1/persons")).json()["items"] == []
    problem(
        await c2.post(
            "/api/v1/persons",
            json={
                "household_id": h["id"],
                "name": "x",
                "sex": "male",
                "birth_date": "2000-01-01",
                "relation_to_head": "子",
                "marital_status": "single",
            },
        ),
        404,
        "not_found",
    )
    ts = await client_as("township", TS1)
    assert (await ts.get(f"/api/v1/persons/{p['id']}")).status_code == 200
    ts2 = await client_as("township", "430122101000")
    problem(await ts2.get(f"/api/v1/persons/{p['id']}"), 404, "not_found")
    dash = await client_as("county", COUNTY)
    assert (await dash.get(f"/api/v1/persons/{p['id']}")).status_code == 200


# --- moves and merges -------------------------------------------------------------------------


async def test_move_keeps_history_and_respects_scope(cadre, client_as, db):
    h1 = await mk_household(cadre)
    h2 = await mk_household(cadre)
    p = await mk_person(cadre, h1["id"])
    r = await cadre.post(f"/api/v1/persons/{p['id']}/move", json={"household_id": h2["id"]})
    assert r.status_code == 200
    assert r.json()["household_id"] == h2["id"]
    assert r.json()["version"] == 2
    moves = (await db.execute(select(PersonMove))).scalars().all()
    assert [(str(m.from_household_id), str(m.to_household_id)) for m in moves] == [(h1["id"], h2["id"])]
    old = (await cadre.get(f"/api/v1/households/{h1['id']}")).json()
    assert old["members"] == []
    assert old["head_person_id"] is None
    other = await client_as("village", V2)
    h3 = await mk_household(other, V2)
    problem(
        await cadre.post(f"/api/v1/persons/{p['id']}/move", json={"household_id": h3["id"]}), 404, "not_found"
    )
    # The township can move a person between its villages; the place columns follow.
    ts = await client_as("township", TS1)
    r = await ts.post(f"/api/v1/persons/{p['id']}/move", json={"household_id": h3["id"]})
    assert r.status_code == 200
    assert r.json()["village_code"] == V2
    assert r.json()["current_village_code"] == V2
    problem(await cadre.get(f"/api/v1/persons/{p['id']}"), 404, "not_found")


async def test_merge_moves_everything_and_leaves_a_tombstone(client_as, db):
    c1 = await client_as("village", V1)
    c2 = await client_as("village", V2)
    h1 = await mk_household(c1)
    h2 = await mk_household(c2, V2)
    number = id_number(date(1985, 4, 4), "female")
    keep = await mk_person(c1, h1["id"], with_id=False, born=date(1985, 4, 4), name="陈静")
    dup = await mk_person(c2, h2["id"], id_number=number, name="陈静")
    child = await c2.post(
        "/api/v1/births",
        json={"mother_id": dup["id"], "child": {"sex": "male", "birth_date": "2012-03-03", "name": "陈小"}},
    )
    assert child.status_code == 201
    problem(
        await c1.post(f"/api/v1/persons/{dup['id']}/merge", json={"into_id": keep["id"]}), 403, "forbidden"
    )
    ts = await client_as("township", TS1)
    dq = (await ts.get("/api/v1/data-quality", params={"kind": "likely_duplicate"})).json()
    assert {f["id"] for f in dq} == {keep["id"], dup["id"]}
    r = await ts.post(f"/api/v1/persons/{dup['id']}/merge", json={"into_id": keep["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["moved"] >= 2  # the child's mother link and the birth's mother
    kid = (await ts.get(f"/api/v1/persons/{child.json()['child_person_id']}")).json()
    assert kid["mother_id"] == keep["id"]
    tomb = (await ts.get(f"/api/v1/persons/{dup['id']}")).json()
    assert tomb["merged_into_id"] == keep["id"]
    assert tomb["version"] == 2
    survivor = (await ts.get(f"/api/v1/persons/{keep['id']}")).json()
    assert survivor["id_number"] == number
    listed = {p["id"] for p in (await ts.get("/api/v1/persons")).json()["items"]}
    assert dup["id"] not in listed
    assert keep["id"] in listed
    assert (await ts.get("/api/v1/data-quality", params={"kind": "likely_duplicate"})).json() == []
    ev = (await db.execute(select(AuditEvent).where(AuditEvent.entity == "person_merge"))).scalars().all()
    assert len(ev) == 1
    assert ev[0].actor_id == ts.user.id
    problem(
        await ts.post(f"/api/v1/persons/{dup['id']}/merge", json={"into_id": keep["id"]}),
        409,
        "person_merged",
    )


# --- births and deaths ------------------------------------------------------------------------


async def test_births_order_and_household(cadre, db):
    h = await mk_household(cadre)
    mother = await mk_person(cadre, h["id"], born=date(1985, 1, 1))
    orders = []
    for i, born in enumerate(["2008-05-01", "2011-07-02", "2015-09-03", "2019-01-04"]):
        bid = str(uuid.uuid4())
        r = await cadre.post(
            "/api/v1/births",
            json={
                "id": bid,
                "mother_id": mother["id"],
                "child": {"sex": "female" if i % 2 else "male", "birth_date": born},
            },
        )
        assert r.status_code == 201, r.text
        orders.append(r.json()["birth_order"])
        kid = await db.get(Person, uuid.UUID(r.json()["child_person_id"]))
        assert str(kid.household_id) == h["id"]
        assert str(kid.mother_id) == mother["id"]
        await db.commit()
    assert orders == [1, 2, 3, 4]
    # A retried upload of the same birth is the same record, not a fifth child.
    retry = await cadre.post(
        "/api/v1/births",
        json={"id": bid, "mother_id": mother["id"], "child": {"sex": "female", "birth_date": "2019-01-04"}},
    )
    assert retry.status_code == 200
    assert retry.json()["birth_order"] == 4
    members = (await cadre.get(f"/api/v1/households/{h['id']}")).json()["members"]
    assert len(members) == 5


async def test_birth_refusals(cadre):
    h = await mk_household(cadre)
    young = await mk_person(cadre, h["id"], born=date(2000, 6, 1))
    r = await cadre.post(
        "/api/v1/births",
        json={"mother_id": young["id"], "child": {"sex": "male", "birth_date": "2015-05-31"}},
    )
    problem(r, 422, "birth_refused")
    man = await mk_person(cadre, h["id"], born=date(1980, 1, 1), sex="male", name="男")
    problem(
        await cadre.post(
            "/api/v1/births",
            json={"mother_id": man["id"], "child": {"sex": "male", "birth_date": "2015-05-31"}},
        ),
        422,
        "validation_failed",
    )
    dead = await mk_person(cadre, h["id"], born=date(1980, 1, 1), name="故")
    assert (
        await cadre.post("/api/v1/deaths", json={"person_id": dead["id"], "death_date": "2020-01-01"})
    ).status_code == 201
    problem(
        await cadre.post(
            "/api/v1/births",
            json={"mother_id": dead["id"], "child": {"sex": "male", "birth_date": "2021-01-01"}},
        ),
        422,
        "birth_refused",
    )
    future = (clock.today() + timedelta(days=3)).isoformat()
    problem(
        await cadre.post(
            "/api/v1/births", json={"mother_id": young["id"], "child": {"sex": "male", "birth_date": future}}
        ),
        422,
        "validation_failed",
    )


async def test_death_closes_the_person(cadre, db):
    h = await mk_household(cadre)
    p = await mk_person(cadre, h["id"], born=date(1940, 1, 1))
    did = str(uuid.uuid4())
    r = await cadre.post("/api/v1/deaths", json={"id": did, "person_id": p["id"], "death_date": "2024-02-02"})
    assert r.status_code == 201
    assert (
        await cadre.post("/api/v1/deaths", json={"id": did, "person_id": p["id"], "death_date": "2024-02-02"})
    ).status_code == 200
    problem(
        await cadre.post("/api/v1/deaths", json={"person_id": p["id"], "death_date": "2024-02-03"}),
        409,
        "already_deceased",
    )
    got = (await cadre.get(f"/api/v1/persons/{p['id']}")).json()
    assert got["alive"] is False
    assert got["death_date"] == "2024-02-02"
    assert got["version"] == 2
    problem(
        await cadre.post("/api/v1/deaths", json={"person_id": p["id"], "death_date": "1930-01-01"}),
        409,
        "already_deceased",
    )


# --- data quality -----------------------------------------------------------------------------


async def kinds(c, **params) -> dict[str, set[str]]:
    r = await c.get("/api/v1/data-quality", params=params)
    assert r.status_code == 200, r.text
    out: dict[str, set[str]] = {}
    for f in r.json():
        out.setdefault(f["kind"], set()).add(f["id"])
    return out


async def test_data_quality_faults_appear_and_clear(cadre, db):
    h = await mk_household(cadre)
    assert kinds
    assert h["id"] in (await kinds(cadre))["household_without_head"]
    assert h["id"] in (await kinds(cadre))["household_no_living_member"]
    head = await mk_person(cadre, h["id"], born=date(1960, 1, 1))
    k = await kinds(cadre)
    assert h["id"] not in k.get("household_without_head", set())
    assert h["id"] not in k.get("household_no_living_member", set())
    # married woman under 20
    teen = await mk_person(
        cadre,
        h["id"],
        born=clock.today() - timedelta(days=365 * 19),
        relation_to_head="女",
        marital_status="married",
    )
    assert teen["id"] in (await kinds(cadre))["married_under_20"]
    await cadre.patch(
        f"/api/v1/persons/{teen['id']}", json={"marital_status": "single"}, headers={"If-Match": '"1"'}
    )
    assert teen["id"] not in (await kinds(cadre)).get("married_under_20", set())
    # over 110 and alive
    old = await mk_person(
        cadre,
        h["id"],
        with_id=False,
        born=date(1910, 1, 1),
        relation_to_head="祖母",
        marital_status="widowed",
    )
    assert old["id"] in (await kinds(cadre))["over_110_alive"]
    await cadre.post("/api/v1/deaths", json={"person_id": old["id"], "death_date": "2019-01-01"})
    assert old["id"] not in (await kinds(cadre)).get("over_110_alive", set())
    # child born before the mother's 15th birthday (a legacy row: written around the API)
    kid = await mk_person(
        cadre, h["id"], with_id=False, born=date(1990, 1, 1), relation_to_head="女", marital_status="single"
    )
    await db.execute(
        text("UPDATE person SET mother_id = :m WHERE id = :k"),
        {"m": _raw_id(db, head["id"]), "k": _raw_id(db, kid["id"])},
    )
    await db.execute(
        text("UPDATE person SET birth_date = :d WHERE id = :k"),
        {"d": date(1970, 1, 1), "k": _raw_id(db, kid["id"])},
    )
    await db.commit()
    # Written around the API: not seen until the kept state is rebuilt (``jiahe figures-rebuild``).
    assert kid["id"] not in (await kinds(cadre)).get("child_born_before_mother_15", set())
    from app.services.indicator_upkeep import rebuild

    await db.run_sync(lambda s: rebuild(s.connection(), "430122"))
    await db.commit()
    assert kid["id"] in (await kinds(cadre))["child_born_before_mother_15"]
    r = await cadre.patch(
        f"/api/v1/persons/{kid['id']}", json={"mother_id": None}, headers={"If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    assert kid["id"] not in (await kinds(cadre)).get("child_born_before_mother_15", set())
    # current village differs from the household's
    r = await cadre.patch(
        f"/api/v1/persons/{kid['id']}", json={"current_village_code": V2}, headers={"If-Match": '"2"'}
    )
    assert r.status_code == 200, r.text
    assert kid["id"] in (await kinds(cadre))["village_mismatch"]
    await cadre.patch(
        f"/api/v1/persons/{kid['id']}", json={"current_village_code": V1}, headers={"If-Match": '"3"'}
    )
    assert kid["id"] not in (await kinds(cadre)).get("village_mismatch", set())
    # household with no living member after the last death
    await cadre.post("/api/v1/deaths", json={"person_id": head["id"], "death_date": "2024-01-01"})
    await cadre.post("/api/v1/deaths", json={"person_id": teen["id"], "death_date": "2024-01-01"})
    await cadre.post("/api/v1/deaths", json={"person_id": kid["id"], "death_date": "2024-01-01"})
    assert h["id"] in (await kinds(cadre))["household_no_living_member"]


def _raw_id(db, value: str):
    return uuid.UUID(value).hex if db.bind.dialect.name == "sqlite" else uuid.UUID(value)


async def test_data_quality_scope(client_as):
    c1 = await client_as("village", V1)
    c2 = await client_as("village", V2)
    h1 = await mk_household(c1)
    await mk_household(c2, V2)
    assert set().union(*(await kinds(c2)).values()).isdisjoint({h1["id"]})
    ts = await client_as("township", TS1)
    assert h1["id"] in (await kinds(ts, area_code=V1))["household_without_head"]
    assert (await c1.get("/api/v1/data-quality", params={"area_code": V2})).status_code == 404


async def test_register_endpoints_refuse_machines(app, db, anon, areas):
    from tests.factories import make_client

    client, secret = await make_client(db, role="dashboard")
    await db.commit()
    tok = (
        await anon.post(
            "/api/v1/auth/token",
            data={"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": secret},
        )
    ).json()["access_token"]
    h = {"Authorization": f"Bearer {tok}"}
    for method, url in [
        ("GET", "/api/v1/persons"),
        ("GET", "/api/v1/households"),
        ("GET", "/api/v1/data-quality"),
        ("POST", "/api/v1/households"),
    ]:
        r = await anon.request(
            method, url, headers=h, json={"village_code": V1, "address": "x", "household_type": "rural"}
        )
        problem(r, 403, "forbidden")

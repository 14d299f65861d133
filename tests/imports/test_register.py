"""Register imports through HTTP: dry run report by row and column, commit, idempotence, the
errors workbook, the template, roles and scope (both databases)."""

from __future__ import annotations

import io
from datetime import date, datetime

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from app.core.security import FieldCipher
from app.models.audit import AuditEvent
from app.models.households import Household, Person
from app.models.imports import ImportJob
from tests.factories import id_number

V1 = "430122100201"  # township 430122100
V2 = "430122100202"  # same township
V_OTHER_TS = "430122101201"  # another township
TS1 = "430122100000"
COUNTY = "430122000000"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

HEADERS = [
    "户编号",
    "村编码",
    "地址",
    "户类型",
    "姓名",
    "身份证号",
    "性别",
    "出生日期",
    "与户主关系",
    "婚姻状况",
    "户籍地编码",
    "联系电话",
    "备注",
]


def problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == code
    return body


def xlsx(rows: list[list[object]], headers: list[str] = HEADERS) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.append(headers)
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def row(
    hh: str,
    village: str,
    name: str,
    number: str,
    *,
    sex: str = "",
    born: object = "",
    relation: str = "户主",
    marital: str = "已婚",
    phone: str = "",
    hukou: str = "",
) -> list[object]:
    return [
        hh,
        village,
        f"{village[-3:]}村1组",
        "农村",
        name,
        number,
        sex,
        born,
        relation,
        marital,
        hukou,
        phone,
        "备注",
    ]


async def upload(c, content: bytes, name: str = "register.xlsx", kind: str = "register"):
    return await c.post("/api/v1/imports", files={"file": (name, content, XLSX)}, data={"kind": kind})


def at(report: dict, r: int) -> list[tuple[str, str]]:
    return sorted((e["column"], e["code"]) for e in report["errors"] if e["row"] == r)


async def count(db, model, *where) -> int:
    await db.rollback()  # a fresh snapshot: what the app committed since
    return (await db.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


@pytest.fixture
async def township(client_as):
    return await client_as("township", TS1)


async def test_register_import_dry_run_commit_and_idempotence(township, client_as, db, settings):
    county = await client_as("county", COUNTY)
    # already registered in V1 without a phone: matched and filled
    h = (
        await township.post(
            "/api/v1/households", json={"village_code": V1, "address": "旧址", "household_type": "rural"}
        )
    ).json()
    known_id = id_number(date(1980, 3, 4), "female")
    r = await township.post(
        "/api/v1/persons",
        json={
            "household_id": h["id"],
            "id_number": known_id,
            "name": "王芳",
            "relation_to_head": "户主",
            "marital_status": "married",
        },
    )
    assert r.status_code == 201, r.text
    known = r.json()
    # registered in another township: out of this township's area
    h2 = (
        await county.post(
            "/api/v1/households",
            json={"village_code": V_OTHER_TS, "address": "外乡", "household_type": "rural"},
        )
    ).json()
    elsewhere_id = id_number(date(1975, 6, 7), "male")
    r = await county.post(
        "/api/v1/persons",
        json={
            "household_id": h2["id"],
            "id_number": elsewhere_id,
            "name": "赵强",
            "relation_to_head": "户主",
            "marital_status": "married",
        },
    )
    assert r.status_code == 201, r.text

    head = id_number(date(1985, 1, 2), "male")
    wife = id_number(date(1986, 2, 3), "female")
    son = id_number(date(2010, 4, 5), "male")
    other = id_number(date(1970, 7, 8), "female")
    daughter = id_number(date(2012, 9, 10), "female")
    bad = id_number(date(1990, 1, 1), "male")
    bad = bad[:17] + ("0" if bad[17] != "0" else "1")
    mismatch = id_number(date(1991, 1, 1), "female")
    outside = id_number(date(1992, 1, 1), "male")
    content = xlsx(
        [
            row(
                "A", V1, "刘一", head, sex="男", born="1985-01-02", phone="13800000001"
            ),  # 2 good, YYYY-MM-DD
            row(
                "A", V1, "陈二", wife, sex="女", born=datetime(1986, 2, 3), relation="配偶"
            ),  # 3 good, Excel date
            row("A", V1, "刘三", son, born="2010/4/5", relation="子", marital="未婚"),  # 4 good, YYYY/M/D
            row("B", V2, "张四", other, born="19700708", hukou=V2),  # 5 good, YYYYMMDD
            row("C", V1, "李五", bad),  # 6 bad check digit
            row("D", V1, "周六", mismatch, sex="男"),  # 7 sex mismatch
            row("E", V1, "吴七", head),  # 8 duplicate of row 2
            row("F", V1, "王芳", known_id, phone="13900000002"),  # 9 registered: matched, phone filled
            row("G", V1, "赵强", elsewhere_id),  # 10 registered elsewhere
            row("H", V_OTHER_TS, "钱八", outside),  # 11 out-of-scope village
            row("I", V2, "孙九", daughter, born="2012年9月10日", relation="女", marital="未婚"),  # 12 good
            row("J", V1, "郑十", "", sex="女", born="2020-13-01"),  # 13 impossible date
        ]
    )
    r = await upload(township, content)
    assert r.status_code == 201, r.text
    rep = r.json()
    assert rep["status"] == "validated"
    assert rep["kind"] == "register"
    assert rep["rows"] == 12
    assert rep["valid_rows"] == 6
    assert at(rep, 2) == at(rep, 3) == at(rep, 4) == at(rep, 5) == at(rep, 9) == at(rep, 12) == []
    assert at(rep, 6) == [("身份证号", "id_number_invalid")]
    assert at(rep, 7) == [("性别", "id_number_mismatch")]
    assert at(rep, 8) == [("身份证号", "duplicate_in_file")]
    assert at(rep, 10) == [("身份证号", "person_exists_elsewhere")]
    assert at(rep, 11) == [("村编码", "out_of_scope")]
    assert at(rep, 13) == [("出生日期", "invalid_date")]
    assert all(e["message"] and not e["message"].isascii() for e in rep["errors"])
    assert rep["summary"]["matched_persons"] == 1
    assert rep["summary"]["persons_to_fill"] == 1
    assert rep["summary"]["ignored_columns"] == ["备注"]
    # nothing written but the import record
    assert await count(db, Person) == 2
    assert await count(db, Household) == 2
    job = await db.get(ImportJob, __import__("uuid").UUID(rep["id"]))
    assert job is not None
    assert head not in (job.payload_enc or "")
    assert head not in job.errors

    got = await township.get(f"/api/v1/imports/{rep['id']}")
    assert got.status_code == 200
    assert got.json()["errors"] == rep["errors"]

    # the errors workbook: the rows with errors and a reason
    r = await township.get(f"/api/v1/imports/{rep['id']}/errors.xlsx")
    assert r.status_code == 200
    assert r.headers["content-type"] == XLSX
    ws = load_workbook(io.BytesIO(r.content), read_only=True).worksheets[0]
    lines = list(ws.iter_rows(values_only=True))
    assert lines[0][0] == "行号"
    assert lines[0][-1] == "错误原因"
    assert [line[0] for line in lines[1:]] == [6, 7, 8, 10, 11, 13]
    assert "性别" in lines[2][-1]
    await db.rollback()
    audited = (
        await db.execute(
            select(AuditEvent.detail).where(AuditEvent.action == "export", AuditEvent.entity == "import_job")
        )
    ).scalars()
    assert list(audited) == ["errors.xlsx rows=6"]

    # commit: exactly the good rows
    r = await township.post(f"/api/v1/imports/{rep['id']}/commit")
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["status"] == "committed"
    # households A, B, I + persons 2, 3, 4, 5, 12
    assert (res["created"], res["updated"], res["skipped"]) == (8, 1, 0)
    assert await count(db, Person) == 7
    assert await count(db, Household) == 5
    cipher = FieldCipher(settings)
    for number in (head, wife, son, other, daughter):
        assert await count(db, Person, Person.id_number_hash == cipher.blind_index(number)) == 1
    for number in (bad, mismatch, outside):
        assert await count(db, Person, Person.id_number_hash == cipher.blind_index(number)) == 0
    stmt = select(Person.id, Person.household_id).where(Person.id_number_hash == cipher.blind_index(head))
    a_id, a_household = (await db.execute(stmt)).one()
    head_of = (
        await db.execute(select(Household.head_person_id).where(Household.id == a_household))
    ).scalar_one()
    assert head_of == a_id
    assert await count(db, Person, Person.household_id == a_household) == 3
    full = (await township.get(f"/api/v1/persons/{known['id']}")).json()
    assert full["phone"] == "13900000002"
    assert full["name"] == "王芳"

    # a second commit and the same file again write nothing new
    r = await township.post(f"/api/v1/imports/{rep['id']}/commit")
    assert r.status_code == 200
    assert (r.json()["created"], r.json()["updated"]) == (0, 0)
    r = await upload(township, content)
    assert r.status_code == 200
    assert r.json()["id"] == rep["id"]
    assert r.json()["status"] == "committed"
    assert await count(db, Person) == 7
    assert await count(db, Household) == 5
    assert await count(db, ImportJob) == 1


async def test_require_all_writes_nothing_when_a_row_fails(township, db):
    content = xlsx(
        [
            row("A", V1, "刘一", id_number(date(1985, 1, 2), "male")),
            row("B", V1, "李五", "123"),
        ]
    )
    rep = (await upload(township, content)).json()
    assert rep["valid_rows"] == 1
    problem(
        await township.post(f"/api/v1/imports/{rep['id']}/commit", json={"require_all": True}),
        422,
        "import_has_errors",
    )
    assert await count(db, Person) == 0
    r = await township.post(f"/api/v1/imports/{rep['id']}/commit", json={"require_all": False})
    assert r.status_code == 200
    assert r.json()["created"] == 2
    assert await count(db, Person) == 1


async def test_township_cannot_import_into_another_township(township, db):
    content = xlsx([row("A", V_OTHER_TS, "钱八", id_number(date(1992, 1, 1), "male"))])
    rep = (await upload(township, content)).json()
    assert rep["valid_rows"] == 0
    assert at(rep, 2) == [("村编码", "out_of_scope")]
    r = await township.post(f"/api/v1/imports/{rep['id']}/commit")
    assert r.json()["created"] == 0
    assert await count(db, Person) == 0
    assert await count(db, Household) == 0


async def test_imports_of_other_areas_are_not_found(client_as):
    t1 = await client_as("township", TS1)
    t2 = await client_as("township", "430122101000")
    rep = (await upload(t1, xlsx([row("A", V1, "刘一", id_number(date(1985, 1, 2), "male"))]))).json()
    problem(await t2.get(f"/api/v1/imports/{rep['id']}"), 404, "not_found")
    problem(await t2.post(f"/api/v1/imports/{rep['id']}/commit"), 404, "not_found")
    problem(await t2.get(f"/api/v1/imports/{rep['id']}/errors.xlsx"), 404, "not_found")
    other_county = await client_as("county", "430181000000")
    problem(await other_county.get(f"/api/v1/imports/{rep['id']}"), 404, "not_found")


async def test_roles(client_as, db):
    from tests.factories import make_client

    village = await client_as("village", V1)
    content = xlsx([row("A", V1, "刘一", id_number(date(1985, 1, 2), "male"))])
    problem(await upload(village, content), 403, "forbidden")
    problem(await village.get("/api/v1/imports/templates/register.xlsx"), 403, "forbidden")
    for role in ("partner", "dashboard"):
        client, secret = await make_client(db, role=role, agency="police" if role == "partner" else None)
        await db.commit()
        r = await village.post(
            "/api/v1/auth/token",
            data={"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": secret},
        )
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = await village.post(
            "/api/v1/imports",
            files={"file": ("r.xlsx", content, XLSX)},
            data={"kind": "register"},
            headers=headers,
        )
        problem(r, 403, "forbidden")
    county = await client_as("county", COUNTY)
    r = await upload(county, content)
    assert r.status_code == 201
    assert r.json()["valid_rows"] == 1
    assert await count(db, ImportJob) == 1


async def test_template_round_trips(client_as, db):
    county = await client_as("county", COUNTY)
    r = await county.get("/api/v1/imports/templates/register.xlsx")
    assert r.status_code == 200
    assert r.headers["content-type"] == XLSX
    wb = load_workbook(io.BytesIO(r.content), read_only=True)
    lines = list(wb.worksheets[0].iter_rows(values_only=True))
    assert lines[0][:3] == ("户编号", "村编码", "地址")
    assert len(lines) == 2
    notes = list(wb.worksheets[1].iter_rows(values_only=True))
    assert ("性别", "否", "男/女") in notes
    rep = (await upload(county, r.content, "template.xlsx")).json()
    assert rep["errors"] == []
    assert rep["valid_rows"] == 1
    res = (await county.post(f"/api/v1/imports/{rep['id']}/commit")).json()
    assert res["created"] == 2
    assert await count(db, Person) == 1


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
async def test_csv_in_each_encoding(township, db, encoding):
    number = id_number(date(1985, 1, 2), "male")
    lines = [",".join(HEADERS), ",".join(str(c) for c in row("A", V1, "刘一", number, born="1985/1/2"))]
    content = ("\r\n".join(lines) + "\r\n").encode(encoding)
    r = await upload(township, content, "register.csv")
    assert r.status_code == 201, r.text
    rep = r.json()
    assert rep["errors"] == []
    assert rep["valid_rows"] == 1
    await township.post(f"/api/v1/imports/{rep['id']}/commit")
    p = (await db.execute(select(Person))).scalar_one()
    assert p.name == "刘一"


async def test_bad_files(township):
    problem(await upload(township, b"not a workbook"), 422, "import_unreadable")
    problem(await upload(township, b"a,b\n1,2\n", "x.txt"), 422, "import_unreadable")
    problem(await upload(township, xlsx([], ["姓名"])), 422, "import_missing_columns")
    # no header row: the first person's data is not stored in the report as column names
    number = id_number(date(1985, 1, 2), "male")
    headless = xlsx([[*row("A", V1, "刘一", number), "x", "y"]], [*HEADERS, "13800000001", number])
    rep = (await upload(township, headless, "bad\x00name.xlsx")).json()
    assert rep["summary"]["ignored_columns"] == ["备注", "第14列", "第15列"]
    assert "\x00" not in rep["file_name"]
    problem(await upload(township, b"\xff\xfe\x00", "x.csv"), 422, "import_unreadable")
    r = await township.post("/api/v1/imports", files={"file": ("r.xlsx", b"x", XLSX)}, data={"kind": "nope"})
    assert r.status_code == 422
    big = b"0" * (32 * 1024 * 1024 + 10)
    problem(await upload(township, big, "big.csv"), 413, "payload_too_large")
    problem(await township.get("/api/v1/imports/00000000-0000-0000-0000-000000000000"), 404, "not_found")


@pytest.mark.parametrize("bulk", [False, True])
async def test_figures_follow_the_import(client_as, db, monkeypatch, bulk):
    """Small commits keep the figures by per-row upkeep; large ones rebuild the county's state
    at commit (forced here with a threshold of 0): both show the imported people."""
    from app.services import imports as imports_svc

    if bulk:
        monkeypatch.setattr(imports_svc, "BULK_ROWS", 0)
    county = await client_as("county", COUNTY)
    rows = [
        row(
            f"H{i}",
            V1 if i % 2 else V_OTHER_TS,
            f"人{i}",
            id_number(date(1980 + i, 1, 1), "male" if i % 2 else "female"),
        )
        for i in range(6)
    ]
    rep = (await upload(county, xlsx(rows))).json()
    assert rep["valid_rows"] == 6
    r = await county.post(f"/api/v1/imports/{rep['id']}/commit")
    assert r.json()["created"] == 12
    body = (await county.get("/api/v1/indicators", params={"area_code": COUNTY})).json()
    assert body["population"] == 6
    assert await count(db, Person) == 6

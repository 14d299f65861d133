"""Migrants imports through HTTP: inflow and outflow records as POST /api/v1/migrants makes them,
errors by row and column, commit of exactly the good rows, re-import, scope, template (both
databases)."""

from __future__ import annotations

import io
import uuid
from datetime import date, timedelta

from openpyxl import load_workbook
from sqlalchemy import select

from app.core import clock
from app.core.security import FieldCipher
from app.models.households import Household, Person
from app.models.imports import ImportJob
from app.models.migrants import Migrant
from tests.factories import id_number
from tests.households.test_api import mk_household, mk_person
from tests.imports.test_register import (
    COUNTY,
    TS1,
    V1,
    V2,
    V_OTHER_TS,
    XLSX,
    at,
    count,
    problem,
    upload,
    xlsx,
)

HEADERS = [
    "身份证号",
    "姓名",
    "性别",
    "出生日期",
    "婚姻状况",
    "方向",
    "村编码",
    "流动日期",
    "原籍/去向",
    "住址",
    "单位",
    "联系电话",
    "备注",
]
ORIGIN = "430181100201"


def book(rows: list[list[object]]) -> bytes:
    return xlsx(rows, HEADERS)


def mrow(
    number: str,
    name: str,
    direction: str,
    village: str,
    *,
    sex: str = "",
    born: object = "",
    marital: str = "已婚",
    moved: object = "2026-03-01",
    other: str = "",
    address: str = "",
    employer: str = "",
    phone: str = "",
) -> list[object]:
    return [number, name, sex, born, marital, direction, village, moved, other, address, employer, phone, "x"]


async def person_in(c, village: str, born: date, sex: str = "female", name: str = "李秀英") -> dict:
    """A registered person, with her full ID number (the API answers it masked)."""
    h = await mk_household(c, village)
    number = id_number(born, sex)
    return {
        **await mk_person(c, h["id"], born=born, sex=sex, name=name, id_number=number),
        "id_number": number,
    }


async def test_migrants_dry_run_commit_and_reimport(client_as, db, settings):
    township = await client_as("township", TS1)
    county = await client_as("county", COUNTY)
    home = await person_in(township, V1, date(1990, 3, 4), name="王芳")  # leaves V1
    here = await person_in(township, V2, date(1991, 5, 6), sex="male", name="刘强")  # inflow where registered
    away = await person_in(county, V_OTHER_TS, date(1988, 1, 1), name="赵敏")  # another township
    newcomer = id_number(date(1993, 7, 8), "female")
    unknown = id_number(date(1994, 2, 2), "male")
    bad = newcomer[:17] + ("0" if newcomer[17] != "0" else "1")
    future = (clock.today() + timedelta(days=3)).isoformat()
    content = book(
        [
            mrow(
                home["id_number"],
                "王芳",
                "流出",
                V1,
                other="广东东莞",
                employer="电子厂",
                phone="13800000001",
            ),  # 2
            mrow(here["id_number"], "刘强", "流入", V2, other=ORIGIN),  # 3 registered here: open
            mrow(
                newcomer,
                "陈静",
                "流入",
                V1,
                sex="女",
                born="1993-07-08",
                address="团头湖村5组",
                phone="13900000002",
            ),  # 4 new
            mrow(away["id_number"], "赵敏", "流入", V1, address="团头湖村6组"),  # 5 a request for her release
            mrow(bad, "李五", "流入", V1, address="x"),  # 6 bad check digit
            mrow(newcomer, "陈静", "流入", V2, address="y"),  # 7 duplicate of row 4
            mrow(unknown, "周六", "流出", V1),  # 8 outflow of a person not registered
            mrow(away["id_number"], "赵敏", "流出", V1),  # 9 outflow of another township's person
            mrow(here["id_number"], "刘强", "流出", V1),  # 10 outflow not from her home village
            mrow(unknown, "周六", "流入", V_OTHER_TS, address="z"),  # 11 village out of scope
            mrow(unknown, "周六", "迁移", V1),  # 12 unknown direction
            mrow(unknown, "周六", "流入", V1, moved=future, address="z"),  # 13 future date
            mrow(
                unknown, "周六", "流入", V1, marital="", address="z", sex="女"
            ),  # 14 sex ≠ number; no marital
            mrow(id_number(date(1995, 1, 1), "male"), "周七", "流入", "430122100299"),  # 15 no such village
            mrow(unknown, "周六", "流入", V1, other="广州"),  # 16 an inflow's origin is an area code
            mrow(unknown, "周六", "流入", V1, moved="明年", phone="12"),  # 17 bad date, bad phone
        ]
    )
    r = await upload(township, content, kind="migrants")
    assert r.status_code == 201, r.text
    rep = r.json()
    assert rep["kind"] == "migrants"
    assert rep["rows"] == 16
    assert rep["valid_rows"] == 4, rep["errors"]
    assert at(rep, 2) == at(rep, 3) == at(rep, 4) == at(rep, 5) == []
    assert at(rep, 6) == [("身份证号", "id_number_invalid")]
    assert at(rep, 7) == [("身份证号", "duplicate_migrant_in_file")]
    assert at(rep, 8) == [("身份证号", "person_not_found")]
    assert at(rep, 9) == [("身份证号", "person_exists_elsewhere")]
    assert at(rep, 10) == [("村编码", "not_home_village")]
    assert at(rep, 11) == [("村编码", "out_of_scope")]
    assert at(rep, 12) == [("方向", "invalid_value")]
    assert at(rep, 13) == [("流动日期", "date_out_of_range")]
    assert at(rep, 14) == [("性别", "id_number_mismatch")]
    assert at(rep, 15) == [("村编码", "unknown_village")]
    assert at(rep, 16) == [("原籍/去向", "invalid_code")]
    assert at(rep, 17) == [("流动日期", "invalid_date"), ("联系电话", "invalid_phone")]
    assert all(e["message"] and not e["message"].isascii() for e in rep["errors"])
    summary = rep["summary"]
    assert (summary["inflows"], summary["outflows"], summary["new_persons"], summary["release_requests"]) == (
        3,
        1,
        1,
        1,
    )
    assert summary["ignored_columns"] == ["备注"]
    assert await count(db, Migrant) == 0
    assert await count(db, Person) == 3
    job = await db.get(ImportJob, uuid.UUID(rep["id"]))
    assert job is not None
    assert newcomer not in (job.payload_enc or "") + job.errors

    r = await township.get(f"/api/v1/imports/{rep['id']}/errors.xlsx")
    assert r.status_code == 200
    lines = list(
        load_workbook(io.BytesIO(r.content), read_only=True).worksheets[0].iter_rows(values_only=True)
    )
    assert lines[0] == ("行号", *HEADERS, "错误原因")
    assert [line[0] for line in lines[1:]] == list(range(6, 18))

    # commit: exactly the good rows, through the migrants service
    r = await township.post(f"/api/v1/imports/{rep['id']}/commit")
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["updated"], r.json()["skipped"]) == (4, 0, 0)
    assert await count(db, Migrant) == 4
    assert await count(db, Person) == 4  # the newcomer registered in V1
    cipher = FieldCipher(settings)
    stmt = select(Person).where(Person.id_number_hash == cipher.blind_index(newcomer))
    new_person = (await db.execute(stmt)).scalar_one()
    assert new_person.village_code == V1
    assert new_person.name == "陈静"
    assert (await db.get(Household, new_person.household_id)).address == "团头湖村5组"  # type: ignore[union-attr]
    rows = (await db.execute(select(Migrant))).scalars().all()
    by_person = {m.person_id: m for m in rows}
    out = by_person[uuid.UUID(home["id"])]
    assert (out.direction, out.status, out.village_code, out.destination, out.employer) == (
        "outflow",
        "open",
        V1,
        "广东东莞",
        "电子厂",
    )
    assert out.moved_on == date(2026, 3, 1)
    assert out.phone_enc and cipher.decrypt(out.phone_enc, context=b"phone") == "13800000001"
    assert (by_person[uuid.UUID(here["id"])].status, by_person[uuid.UUID(here["id"])].origin_area_code) == (
        "open",
        ORIGIN,
    )
    assert by_person[new_person.id].status == "open"
    request = by_person[uuid.UUID(away["id"])]
    assert (request.status, request.transfer, request.village_code) == ("pending_release", "pending", V1)
    # the API shows them as its own records
    listed = (await township.get("/api/v1/migrants", params={"direction": "outflow"})).json()
    assert [m["id"] for m in listed["items"]] == [str(out.id)]

    # a second commit and the same file write nothing
    r = await township.post(f"/api/v1/imports/{rep['id']}/commit")
    assert r.json()["created"] == 0
    r = await upload(township, content, kind="migrants")
    assert (r.status_code, r.json()["id"]) == (200, rep["id"])
    # another file: identical records are skipped, a different one is an error row
    again = book(
        [
            mrow(
                home["id_number"],
                "王芳",
                "流出",
                V1,
                other="广东东莞",
                employer="电子厂",
                phone="13800000001",
            ),
            mrow(here["id_number"], "刘强", "流入", V2, other=ORIGIN, employer="另一单位"),
        ]
    )
    rep2 = (await upload(township, again, "again.xlsx", kind="migrants")).json()
    assert rep2["valid_rows"] == 1
    assert at(rep2, 3) == [("身份证号", "migrant_exists")]
    assert rep2["summary"]["records_already_registered"] == 1
    r = await township.post(f"/api/v1/imports/{rep2['id']}/commit")
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["skipped"]) == (0, 1)
    assert await count(db, Migrant) == 4


async def test_another_township_cannot_import_into_this_one(client_as, db):
    other = await client_as("township", "430122101000")
    county = await client_as("county", COUNTY)
    p = await person_in(county, V1, date(1990, 3, 4))
    content = book(
        [
            mrow(p["id_number"], "李秀英", "流出", V1),
            mrow(id_number(date(1993, 7, 8), "female"), "陈静", "流入", V2, address="a"),
        ]
    )
    rep = (await upload(other, content, kind="migrants")).json()
    assert at(rep, 2) == [("村编码", "out_of_scope")]
    assert at(rep, 3) == [("村编码", "out_of_scope")]
    assert (await other.post(f"/api/v1/imports/{rep['id']}/commit")).json()["created"] == 0
    assert await count(db, Migrant) == 0


async def test_migrants_template_round_trips(client_as, db):
    county = await client_as("county", COUNTY)
    village = await client_as("village", V1)
    problem(await village.get("/api/v1/imports/templates/migrants.xlsx"), 403, "forbidden")
    r = await county.get("/api/v1/imports/templates/migrants.xlsx")
    assert r.status_code == 200
    assert r.headers["content-type"] == XLSX
    wb = load_workbook(io.BytesIO(r.content), read_only=True)
    lines = list(wb.worksheets[0].iter_rows(values_only=True))
    assert lines[0] == tuple(HEADERS[:-1])
    notes = {n[0]: n for n in wb.worksheets[1].iter_rows(values_only=True)}
    assert notes["方向"][1:] == ("是", "流入/流出")
    rep = (await upload(county, r.content, "t.xlsx", kind="migrants")).json()
    assert rep["errors"] == []
    assert (await county.post(f"/api/v1/imports/{rep['id']}/commit")).json()["created"] == 1
    assert await count(db, Migrant) == 1
    assert await count(db, Person) == 1


async def test_odd_cells_are_error_rows_never_500(client_as, db):
    """Cells of every odd shape in both kinds: error rows by row and column, never a 500."""
    county = await client_as("county", COUNTY)
    odd: list[object] = [
        "NaN",
        "1e400",
        "-1",
        "9" * 40,
        "\u202e",
        "0",
        1.5,
        True,
        "２０２５",
        "2025-02-30",
        "x\ty",
    ]
    rows = [[value] * 12 + ["x"] for value in odd]
    rep = (await upload(county, book(rows), kind="migrants")).json()
    assert rep["rows"] == len(odd)
    assert rep["valid_rows"] == 0
    assert {e["row"] for e in rep["errors"]} == set(range(2, 2 + len(odd)))
    claims = [[value] * 6 for value in odd]
    rep = (
        await upload(
            county, xlsx(claims, ["身份证号", "项目", "年度", "金额", "开户行", "账号"]), kind="beneficiaries"
        )
    ).json()
    assert rep["valid_rows"] == 0
    assert {e["row"] for e in rep["errors"]} == set(range(2, 2 + len(odd)))
    csv = "身份证号,项目,年度,金额,开户行,账号\r\n" + "\r\n".join(
        ",".join(str(v) for v in row) for row in claims
    )
    r = await upload(county, csv.encode("gb18030"), "b.csv", kind="beneficiaries")
    assert r.status_code == 201, r.text
    assert r.json()["valid_rows"] == 0
    problem(await upload(county, xlsx([], ["身份证号"]), kind="migrants"), 422, "import_missing_columns")
    problem(await upload(county, xlsx([], ["身份证号"]), kind="beneficiaries"), 422, "import_missing_columns")
    assert await count(db, Migrant) == 0

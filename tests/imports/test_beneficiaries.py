"""Beneficiaries imports through HTTP: paid claims of past years with their history and payment,
errors by row and column, commit of exactly the good rows, re-import, scope, template
(both databases)."""

from __future__ import annotations

import io
import uuid
from datetime import date

from openpyxl import load_workbook
from sqlalchemy import select

from app.core import clock
from app.core.security import FieldCipher
from app.models.claims import Claim, ClaimHistory, Payment
from app.models.imports import ImportJob
from app.services.claims import ACCOUNT_CONTEXT
from app.services.imports import PROGRAMME_NAMES
from app.web.render import PROGRAMME_LABELS
from tests.claims.test_api import programmes  # noqa: F401  (the shipped programmes, autouse)
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

HEADERS = ["身份证号", "项目", "年度", "金额", "开户行", "账号", "备注"]
RURAL = "农村部分计划生育家庭奖励扶助"
BANK = "望城农商银行"


def brow(number: str, programme: str = RURAL, year: object = None, amount: object = "960", **kw: str) -> list:
    year = clock.today().year - 1 if year is None else year
    return [
        number,
        programme,
        year,
        amount,
        kw.get("bank", BANK),
        kw.get("account", "6230 9012 3456 7890"),
        "x",
    ]


def book(rows: list[list[object]], headers: list[str] = HEADERS) -> bytes:
    return xlsx(rows, headers)


async def person_in(c, village: str, born: date, sex: str = "female", name: str = "李秀英") -> dict:
    """A registered person, with her full ID number (the API answers it masked)."""
    h = await mk_household(c, village)
    number = id_number(born, sex)
    return {
        **await mk_person(c, h["id"], born=born, sex=sex, name=name, id_number=number),
        "id_number": number,
    }


async def test_beneficiaries_dry_run_commit_and_reimport(client_as, db, settings):
    township = await client_as("township", TS1)
    county = await client_as("county", COUNTY)
    last = clock.today().year - 1
    a = await person_in(township, V1, date(1960, 3, 4), name="王芳")
    b = await person_in(township, V2, date(1962, 5, 6), sex="male", name="刘强")
    away = await person_in(county, V_OTHER_TS, date(1961, 1, 1), name="赵敏")
    unknown = id_number(date(1963, 2, 2), "female")
    bad = a["id_number"][:17] + ("0" if a["id_number"][17] != "0" else "1")
    content = book(
        [
            brow(a["id_number"], RURAL, last, "960"),  # 2 good, Chinese name
            brow(a["id_number"], "special_assistance", last - 1, "1,200.50"),  # 3 good, code
            brow(b["id_number"], RURAL, str(last), "960元"),  # 4 good
            brow(a["id_number"], RURAL, last, "960"),  # 5 duplicate of row 2
            brow(bad),  # 6 bad check digit
            brow(unknown),  # 7 not registered
            brow(away["id_number"]),  # 8 another township's person
            brow(b["id_number"], "低保"),  # 9 unknown programme
            brow(b["id_number"], RURAL, clock.today().year),  # 10 this year: not past
            brow(b["id_number"], RURAL, "去年"),  # 11 not a year
            brow(b["id_number"], RURAL, last - 2, "9.999"),  # 12 three decimals
            brow(b["id_number"], RURAL, last - 2, "0"),  # 13 zero
            brow(b["id_number"], RURAL, last - 3, account="12ab"),  # 14 bad account
            brow(b["id_number"], RURAL, last - 4, bank=""),  # 15 no bank
        ]
    )
    r = await upload(township, content, kind="beneficiaries")
    assert r.status_code == 201, r.text
    rep = r.json()
    assert rep["kind"] == "beneficiaries"
    assert rep["rows"] == 14
    assert rep["valid_rows"] == 3
    assert at(rep, 2) == at(rep, 3) == at(rep, 4) == []
    assert at(rep, 5) == [("身份证号", "duplicate_claim_in_file")]
    assert at(rep, 6) == [("身份证号", "id_number_invalid")]
    assert at(rep, 7) == [("身份证号", "person_not_found")]
    assert at(rep, 8) == [("身份证号", "person_exists_elsewhere")]
    assert at(rep, 9) == [("项目", "invalid_value")]
    assert at(rep, 10) == [("年度", "year_not_past")]
    assert at(rep, 11) == [("年度", "invalid_year")]
    assert at(rep, 12) == [("金额", "invalid_amount")]
    assert at(rep, 13) == [("金额", "invalid_amount")]
    assert at(rep, 14) == [("账号", "invalid_account")]
    assert at(rep, 15) == [("开户行", "required")]
    assert all(e["message"] and not e["message"].isascii() for e in rep["errors"])
    assert rep["summary"]["new_claims"] == 3
    assert rep["summary"]["ignored_columns"] == ["备注"]
    assert await count(db, Claim) == 0
    job = await db.get(ImportJob, uuid.UUID(rep["id"]))
    assert job is not None
    assert a["id_number"] not in (job.payload_enc or "") + job.errors
    assert "6230901234567890" not in (job.payload_enc or "")

    # errors.xlsx: the failed rows as uploaded
    r = await township.get(f"/api/v1/imports/{rep['id']}/errors.xlsx")
    assert r.status_code == 200
    lines = list(
        load_workbook(io.BytesIO(r.content), read_only=True).worksheets[0].iter_rows(values_only=True)
    )
    assert lines[0] == ("行号", *HEADERS, "错误原因")
    assert [line[0] for line in lines[1:]] == list(range(5, 16))
    assert lines[3][1] == unknown  # row 7 in full, for correction
    assert "身份证号" in lines[3][-1]

    # commit: exactly the good rows, paid, with history and payment
    r = await township.post(f"/api/v1/imports/{rep['id']}/commit")
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["updated"], r.json()["skipped"]) == (3, 0, 0)
    assert await count(db, Claim) == 3
    assert await count(db, Payment) == 3
    assert await count(db, ClaimHistory) == 3
    claims = (await db.execute(select(Claim).order_by(Claim.year, Claim.amount_fen))).scalars().all()
    assert [(c.programme, c.year, c.approved_amount_fen, str(c.person_id)) for c in claims] == [
        ("special_assistance", last - 1, 120050, a["id"]),
        ("rural_reward", last, 96000, a["id"]),
        ("rural_reward", last, 96000, b["id"]),
    ]
    cipher = FieldCipher(settings)
    for c in claims:
        assert c.status == "paid"
        assert c.payee_account_enc is not None
        assert cipher.decrypt(c.payee_account_enc, context=ACCOUNT_CONTEXT) == "6230901234567890"
        assert c.payee_account_masked == "************7890"
        assert c.evaluation["source"] == "import"
    detail = (await township.get(f"/api/v1/claims/{claims[1].id}")).json()
    assert detail["status"] == "paid"
    assert detail["amount"] == detail["approved_amount"] == "960.00"
    assert detail["payee"] == {"name": "王芳", "bank": BANK, "account_masked": "************7890"}
    assert [(h["action"], h["to_status"]) for h in detail["history"]] == [("import", "paid")]
    assert detail["history"][0]["comment"].startswith("source: import")
    assert detail["payment"]["paid_on"] == f"{last}-12-31"
    assert detail["payment"]["amount"] == "960.00"
    assert detail["village_code"] == V1
    # the figures see the payments (the month of each payment)
    r = await county.get(
        "/api/v1/indicators/series",
        params={
            "area_code": COUNTY,
            "metric": "beneficiaries",
            "from": f"{last - 1}-01-01",
            "to": f"{last}-12-31",
        },
    )
    assert r.status_code == 200, r.text
    series = {p["month"]: p["value"] for p in r.json()["points"]}
    assert (series[f"{last}-12"], series[f"{last - 1}-12"], sum(series.values())) == (2, 1, 3)

    # a second commit writes nothing; the same file answers the same import
    r = await township.post(f"/api/v1/imports/{rep['id']}/commit")
    assert r.json()["created"] == 0
    r = await upload(township, content, kind="beneficiaries")
    assert r.status_code == 200
    assert r.json()["id"] == rep["id"]
    # another file with the same claims: identical ones are skipped, a different one is an error
    again = book(
        [
            brow(a["id_number"], RURAL, last, "960"),
            brow(b["id_number"], RURAL, last, "480"),
            brow(b["id_number"], "special_assistance", last, "1200"),
            brow(b["id_number"], "only_child_parent_reward", last, "120"),
        ]
    )
    rep2 = (await upload(township, again, "again.xlsx", kind="beneficiaries")).json()
    assert rep2["valid_rows"] == 2, rep2["errors"]
    assert at(rep2, 3) == [("身份证号", "claim_exists")]
    assert at(rep2, 5) == [("项目", "programme_without_rules")]  # no rule version in this county
    assert rep2["summary"]["claims_already_registered"] == 1
    r = await township.post(f"/api/v1/imports/{rep2['id']}/commit")
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["skipped"]) == (1, 1)
    assert await count(db, Claim) == 4
    assert await count(db, Payment) == 4


async def test_county_imports_across_townships_another_county_does_not(client_as, db):
    county = await client_as("county", COUNTY)
    away = await person_in(county, V_OTHER_TS, date(1961, 1, 1))
    rep = (await upload(county, book([brow(away["id_number"])]), kind="beneficiaries")).json()
    assert rep["valid_rows"] == 1
    other = await client_as("county", "430181000000")
    rep2 = (await upload(other, book([brow(away["id_number"])]), kind="beneficiaries")).json()
    assert at(rep2, 2) == [("身份证号", "person_exists_elsewhere")]
    assert (await other.post(f"/api/v1/imports/{rep2['id']}/commit")).json()["created"] == 0
    assert await count(db, Claim) == 0
    assert (await county.post(f"/api/v1/imports/{rep['id']}/commit")).json()["created"] == 1
    assert await count(db, Claim) == 1


async def test_beneficiaries_template_round_trips(client_as, db):
    county = await client_as("county", COUNTY)
    village = await client_as("village", V1)
    problem(await village.get("/api/v1/imports/templates/beneficiaries.xlsx"), 403, "forbidden")
    r = await county.get("/api/v1/imports/templates/beneficiaries.xlsx")
    assert r.status_code == 200
    assert r.headers["content-type"] == XLSX
    wb = load_workbook(io.BytesIO(r.content), read_only=True)
    lines = list(wb.worksheets[0].iter_rows(values_only=True))
    assert lines[0] == tuple(HEADERS[:-1])
    notes = {n[0]: n for n in wb.worksheets[1].iter_rows(values_only=True)}
    assert RURAL in notes["项目"][2]
    # the example's person registered: the template imports as it is
    number = lines[1][0]
    h = await mk_household(county, V1)
    r = await county.post(
        "/api/v1/persons",
        json={
            "household_id": h["id"],
            "id_number": number,
            "name": "张桂兰",
            "relation_to_head": "户主",
            "marital_status": "married",
        },
    )
    assert r.status_code == 201, r.text
    rep = (
        await upload(
            county,
            r_content := (await county.get("/api/v1/imports/templates/beneficiaries.xlsx")).content,
            "t.xlsx",
            kind="beneficiaries",
        )
    ).json()  # noqa: E501
    assert r_content
    assert rep["errors"] == [], rep["errors"]
    assert (await county.post(f"/api/v1/imports/{rep['id']}/commit")).json()["created"] == 1
    assert await count(db, Claim) == 1


def test_programme_names_are_the_web_labels():
    assert {code.value: name for name, code in PROGRAMME_NAMES.items()} == PROGRAMME_LABELS


async def test_bulk_commit_rebuilds_the_figures(client_as, db, monkeypatch):
    """Above ``BULK_ROWS`` new claims the county's figures are rebuilt at commit (forced here
    with a threshold of 0): they show the imported payments all the same."""
    from app.services import imports as imports_svc

    monkeypatch.setattr(imports_svc, "BULK_ROWS", 0)
    county = await client_as("county", COUNTY)
    last = clock.today().year - 1
    people = [await person_in(county, v, date(1960 + i, 1, 1)) for i, v in enumerate((V1, V2, V_OTHER_TS))]
    rep = (await upload(county, book([brow(p["id_number"]) for p in people]), kind="beneficiaries")).json()
    assert rep["valid_rows"] == 3
    assert (await county.post(f"/api/v1/imports/{rep['id']}/commit")).json()["created"] == 3
    r = await county.get(
        "/api/v1/indicators/series",
        params={
            "area_code": COUNTY,
            "metric": "beneficiaries",
            "from": f"{last}-01-01",
            "to": f"{last}-12-31",
        },
    )
    assert {p["month"]: p["value"] for p in r.json()["points"]}[f"{last}-12"] == 3
    assert await count(db, Payment) == 3

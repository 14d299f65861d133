"""Rosters out: ``GET /persons.xlsx`` (the 花名册) and ``GET /claims.xlsx`` read back with openpyxl:
the list's rows in the list's order, masked by default, full ID numbers for the county only and
audited with the row count, the caller's scope, the filters."""

from __future__ import annotations

import io
from datetime import date

from openpyxl import load_workbook
from sqlalchemy import select

from app.models.audit import AuditEvent
from app.services.rosters import CLAIM_HEADERS, PERSON_HEADERS, XLSX
from tests.claims import test_api as claims_api
from tests.claims.test_api import elder, mk_claim, to_status
from tests.households.test_api import COUNTY, TS1, V1, V2, V_OTHER_TS, mk_household, mk_person, problem

programmes = claims_api.programmes  # the claims tests' autouse fixture: the shipped programmes
staff = claims_api.staff

SEX = {"male": "男", "female": "女"}
MARITAL = {"single": "未婚", "married": "已婚", "divorced": "离婚", "widowed": "丧偶"}


def sheet(r) -> list[tuple]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == XLSX
    assert "attachment" in r.headers["content-disposition"]
    wb = load_workbook(io.BytesIO(r.content), read_only=True)
    rows = [tuple(row) for row in wb.worksheets[0].iter_rows(values_only=True)]
    wb.close()
    width = len(rows[0])  # read-only mode leaves trailing empty cells out
    rows = [row + (None,) * (width - len(row)) for row in rows]
    assert int(r.headers["x-row-count"]) == len(rows) - 1
    return rows


async def listed(c, path: str, query: str = "") -> list[dict]:
    items, cursor = [], None
    while True:
        sep = "&" if query else ""
        url = f"/api/v1/{path}?{query}{sep}limit=2" + (f"&cursor={cursor}" if cursor else "")
        r = await c.get(url)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return items


async def register(c_v1, c_v2, c_far) -> dict:
    """Two households in V1, one in V2 (same township), one in another township."""
    h1 = await mk_household(c_v1, V1, address="团头湖村1组1号")
    head = await mk_person(
        c_v1, h1["id"], sex="male", born=date(1960, 1, 2), name="王建国", phone="13812345678"
    )
    await mk_person(
        c_v1, h1["id"], born=date(1962, 3, 4), name="李桂兰", relation_to_head="配偶", phone="073188889999"
    )
    await mk_person(
        c_v1,
        h1["id"],
        sex="male",
        born=date(1990, 5, 6),
        name="王小军",
        relation_to_head="子",
        marital_status="single",
    )
    h2 = await mk_household(c_v1, V1, address="团头湖村2组8号", household_type="urban")
    await mk_person(c_v1, h2["id"], born=date(2001, 7, 8), name="张丽", marital_status="single")
    h3 = await mk_household(c_v2, V2, address="柏叶村5组2号")
    await mk_person(c_v2, h3["id"], born=date(1985, 9, 10), name="赵红梅")
    h4 = await mk_household(c_far, V_OTHER_TS, address="格塘村1组3号")
    far = await mk_person(c_far, h4["id"], born=date(1975, 11, 12), name="远方人")
    return {"h1": h1, "head": head, "far": far}


async def test_roster_equals_the_list_masked(client_as, db):
    v1, v2 = await client_as("village", V1), await client_as("village", V2)
    far = await client_as("village", V_OTHER_TS)
    made = await register(v1, v2, far)
    township = await client_as("township", TS1)

    rows = sheet(await township.get("/api/v1/persons.xlsx"))
    assert rows[0] == PERSON_HEADERS
    want = await listed(township, "persons")
    assert len(rows) - 1 == len(want) == 5
    by_col = [dict(zip(PERSON_HEADERS, row, strict=True)) for row in rows[1:]]
    for got, item in zip(by_col, want, strict=True):  # same order as the list
        assert got["姓名"] == item["name"]
        assert got["身份证号"] == item["id_number_masked"]
        assert "*" in got["身份证号"]
        assert got["性别"] == SEX[item["sex"]]
        assert got["出生日期"].date().isoformat() == item["birth_date"]
        assert got["婚姻状况"] == MARITAL[item["marital_status"]]
        assert got["村编码"] == item["village_code"]
        assert got["户编号"] == item["household_id"]
        assert got["联系电话"] == item["phone_masked"]
    wang = next(r for r in by_col if r["姓名"] == "王小军")
    assert wang["户主"] == "王建国"
    assert wang["与户主关系"] == "子"
    assert wang["村"] == "团头湖村"
    assert wang["地址"] == "团头湖村1组1号"
    assert wang["户类型"] == "农村"
    head = next(r for r in by_col if r["姓名"] == "王建国")
    assert head["联系电话"] == "138****5678"
    # another township's people are never in the file
    assert "远方人" not in {r["姓名"] for r in by_col}
    assert made["far"]["id"]
    # the village sees its village only
    v1_rows = sheet(await v1.get("/api/v1/persons.xlsx"))
    assert {r[2] for r in v1_rows[1:]} == {"王建国", "李桂兰", "王小军", "张丽"}
    # a masked export is audited too, with its row count
    events = (await db.execute(select(AuditEvent).where(AuditEvent.action == "export"))).scalars().all()
    assert any("persons.xlsx masked" in (e.detail or "") and "rows=5" in (e.detail or "") for e in events)


async def test_roster_filters(client_as):
    v1, v2 = await client_as("village", V1), await client_as("village", V2)
    await register(v1, v2, await client_as("village", V_OTHER_TS))
    county = await client_as("county", COUNTY)
    for query in (
        f"village_code={V1}",
        "sex=male",
        "marital_status=single",
        "q=王",
        "age_min=30&age_max=60",
        f"village_code={V1}&sex=female",
    ):
        rows = sheet(await county.get(f"/api/v1/persons.xlsx?{query}"))
        want = [i["name"] for i in await listed(county, "persons", query)]
        assert [r[2] for r in rows[1:]] == want, query
        assert want, query
    rows = sheet(await county.get("/api/v1/persons.xlsx?q=没有这个人"))
    assert rows == [PERSON_HEADERS]
    # the list's checks: a bad range, an unknown parameter, a bad village code
    problem(await county.get("/api/v1/persons.xlsx?age_min=60&age_max=30"), 422, "invalid_range")
    problem(await county.get("/api/v1/persons.xlsx?limit=5"), 422, "unknown_parameter")
    problem(await county.get("/api/v1/persons.xlsx?village_code=12"), 422, "validation_failed")


async def test_full_id_numbers_for_the_county_only_and_audited(client_as, db):
    v1, v2 = await client_as("village", V1), await client_as("village", V2)
    made = await register(v1, v2, await client_as("village", V_OTHER_TS))
    for role, area in (("village", V1), ("township", TS1)):
        c = await client_as(role, area)
        problem(await c.get("/api/v1/persons.xlsx?full_id_numbers=true"), 403, "forbidden")
    county = await client_as("county", COUNTY)
    rows = sheet(await county.get(f"/api/v1/persons.xlsx?full_id_numbers=true&village_code={V1}"))
    by_name = {r[2]: dict(zip(PERSON_HEADERS, r, strict=True)) for r in rows[1:]}
    full = (await county.get(f"/api/v1/persons/{made['head']['id']}")).json()
    assert by_name["王建国"]["身份证号"] == full["id_number"]
    assert "*" not in by_name["王建国"]["身份证号"]
    assert by_name["王建国"]["联系电话"] == "13812345678"
    assert by_name["李桂兰"]["联系电话"] == "073188889999"
    events = (
        (
            await db.execute(
                select(AuditEvent).where(AuditEvent.action == "export", AuditEvent.entity == "person")
            )
        )
        .scalars()
        .all()
    )
    fulls = [e for e in events if "persons.xlsx full" in (e.detail or "")]
    assert len(fulls) == 1
    assert "rows=4" in fulls[0].detail
    assert fulls[0].actor_role == "county"
    admin = await client_as("admin", COUNTY)
    assert len(sheet(await admin.get("/api/v1/persons.xlsx?full_id_numbers=true"))) == 7


async def test_claims_workbook_equals_the_list(staff, client_as, db):
    a = await elder(staff.village, name="王桂兰")
    b = await elder(staff.village, name="李秀英")
    c = await elder(staff.village2, village=V2, name="赵红梅")
    elsewhere = await client_as("village", V_OTHER_TS)
    far = await elder(elsewhere, village=V_OTHER_TS, name="远方人")
    c1 = await mk_claim(staff.village, a)
    c2 = await mk_claim(staff.village, b, year=2025)
    c3 = await mk_claim(staff.village2, c)
    c_far = await mk_claim(elsewhere, far)
    await to_status(staff, db, c1["id"], "approved")

    rows = sheet(await staff.township.get("/api/v1/claims.xlsx"))
    assert rows[0] == CLAIM_HEADERS
    want = await listed(staff.township, "claims")
    assert [r[0] for r in rows[1:]] == [i["id"] for i in want]  # newest first, as listed
    assert {r[0] for r in rows[1:]} == {c1["id"], c2["id"], c3["id"]}  # never another township's
    assert c_far["id"] in {r[0] for r in sheet(await staff.county.get("/api/v1/claims.xlsx"))[1:]}
    by_id = {r[0]: dict(zip(CLAIM_HEADERS, r, strict=True)) for r in rows[1:]}
    one = by_id[c1["id"]]
    assert one["项目"] == "农村奖扶"
    assert one["状态"] == "已审批"
    assert one["姓名"] == "王桂兰"
    assert "*" in one["身份证号"]
    assert one["收款账号"].endswith("0123") and one["收款账号"].startswith("*")
    listed_one = next(i for i in want if i["id"] == c1["id"])
    assert float(one["核算金额（元）"]) == float(listed_one["amount"])
    assert float(one["核定金额（元）"]) == float(listed_one["approved_amount"])
    # filters as the list's
    for query in ("year=2025", "status=approved", f"area_code={V2}", "q=李", "programme=rural_reward"):
        got = [r[0] for r in sheet(await staff.township.get(f"/api/v1/claims.xlsx?{query}"))[1:]]
        assert got == [i["id"] for i in await listed(staff.township, "claims", query)], query
    # scope: the village sees its own village's claims only
    got = {r[0] for r in sheet(await staff.village.get("/api/v1/claims.xlsx"))[1:]}
    assert got == {c1["id"], c2["id"]}
    # an area outside the caller's scope: the list's answer
    problem(await staff.village.get(f"/api/v1/claims?area_code={V_OTHER_TS}"), 404, "not_found")
    problem(await staff.village.get(f"/api/v1/claims.xlsx?area_code={V_OTHER_TS}"), 404, "not_found")
    events = (
        (
            await db.execute(
                select(AuditEvent).where(AuditEvent.action == "export", AuditEvent.entity == "claim")
            )
        )
        .scalars()
        .all()
    )
    assert any("rows=3" in (e.detail or "") for e in events)


async def test_row_cap(client_as, monkeypatch):
    """Above the cap: 422 ``export_too_large`` naming the count, never a truncated file."""
    from app.services import rosters

    v1 = await client_as("village", V1)
    await register(v1, await client_as("village", V2), await client_as("village", V_OTHER_TS))
    monkeypatch.setattr(rosters, "ROW_CAP", 3)
    body = problem(await v1.get("/api/v1/persons.xlsx"), 422, "export_too_large")
    assert "4" in body["detail"]
    assert len(sheet(await v1.get("/api/v1/persons.xlsx?sex=male"))) == 3  # 2 rows: within the cap


async def test_a_text_is_never_a_formula(client_as):
    v1 = await client_as("village", V1)
    h = await mk_household(v1, V1, address='=HYPERLINK("http://evil.example","点我")')
    await mk_person(v1, h["id"], name="=1+1")
    r = await v1.get("/api/v1/persons.xlsx")
    wb = load_workbook(io.BytesIO(r.content))  # not read-only: cell types are kept
    row = list(wb.worksheets[0][2])
    by_col = dict(zip(PERSON_HEADERS, row, strict=False))
    assert by_col["姓名"].value == "=1+1" and by_col["姓名"].data_type == "s"
    assert by_col["地址"].value.startswith("=HYPERLINK") and by_col["地址"].data_type == "s"
    assert all(c.data_type != "f" for c in row)

"""待遇申领 and 公示 pages: queues with filters and scope, one claim with its steps (role, CSRF,
stale page), bulk approval all or nothing, the home cards, the printable public notice."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from app.core import clock
from app.models.claims import Claim, ClaimHistory, Payment, Programme, RuleVersion
from app.services import claim_rules as rules
from tests.factories import id_number
from tests.households.test_api import mk_household, mk_person

V1 = "430122100201"
V2 = "430122100202"
V_OTHER_TS = "430122101201"
TS1 = "430122100000"
COUNTY = "430122000000"

RURAL_FACTS = {"hukou_rural": True, "births_within_policy_1973_2001": True}
ROW_RE = re.compile(r'<tr data-id="([0-9a-f-]{36})"')


@pytest.fixture(autouse=True)
async def programmes(clean_db, db):  # noqa: ARG001  (after the tables are emptied)
    for p in rules.PROGRAMMES:
        db.add(Programme(**p))
    await db.flush()
    for v in rules.NATIONAL_DEFAULTS:
        db.add(RuleVersion(**v))
    await db.commit()


class Api:
    """API clients arranging the claims (as tests/claims/test_api.py does)."""

    village: object
    village2: object
    other_village: object
    township: object
    county: object


@pytest.fixture
async def api(client_as) -> Api:
    a = Api()
    a.village = await client_as("village", V1)
    a.village2 = await client_as("village", V2)
    a.other_village = await client_as("village", V_OTHER_TS)
    a.township = await client_as("township", TS1)
    a.county = await client_as("county", COUNTY)
    return a


async def claimant(c, village: str, name: str) -> tuple[dict, str]:
    """An eligible rural mother (born 1964, one son): the person and her full ID number."""
    born = date(1964, 3, 1)
    number = id_number(born, "female")
    h = await mk_household(c, village)
    mother = await mk_person(c, h["id"], born=born, sex="female", name=name, id_number=number)
    await mk_person(
        c,
        h["id"],
        born=date(1990, 5, 5),
        sex="male",
        name=f"{name}子",
        relation_to_head="子",
        mother_id=mother["id"],
    )
    return mother, number


async def claim(c, person: dict, *, year: int = 2024, submit: bool = True) -> dict:
    body = {
        "programme": "rural_reward",
        "person_id": person["id"],
        "year": year,
        "facts": RURAL_FACTS,
        "payee": {"name": person["name"], "bank": "湖南农村信用社", "account": "6217001234567890123"},
    }
    r = await c.post("/api/v1/claims", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    if submit:
        out = await step(c, out["id"], "submit")
    return out


async def step(c, claim_id: str, action: str, body: dict | None = None) -> dict:
    r = await c.post(f"/api/v1/claims/{claim_id}/{action}", json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def stored(db, claim_id: str) -> Claim:
    await db.commit()  # end the read snapshot: see what the pages committed
    stmt = select(Claim).where(Claim.id == uuid.UUID(claim_id)).execution_options(populate_existing=True)
    row = (await db.execute(stmt)).scalar_one()
    return row


async def history(db, claim_id: str) -> list[ClaimHistory]:
    await db.commit()  # end the read snapshot: see what the pages committed
    rows = await db.execute(
        select(ClaimHistory).where(ClaimHistory.claim_id == uuid.UUID(claim_id)).order_by(ClaimHistory.at)
    )
    return list(rows.scalars())


def rows(html: str) -> list[str]:
    return ROW_RE.findall(html)


async def reviewed(api: Api, person: dict, village=None) -> dict:
    c = await claim(village or api.village, person)
    return await step(api.township, c["id"], "review", {"decision": "approve", "comment": "核实无误"})


# --- the list ---------------------------------------------------------------------------------


async def test_queues_filters_and_scope(api, web_as):
    mother, number = await claimant(api.village, V1, "王桂兰")
    other, _ = await claimant(api.village2, V2, "赵春梅")
    far, _ = await claimant(api.other_village, V_OTHER_TS, "钱玉珍")
    mine = await claim(api.village, mother)
    mine2 = await claim(api.village2, other, year=2025)
    theirs = await claim(api.other_village, far)
    draft, _ = await claimant(api.village, V1, "孙丽华")
    await claim(api.village, draft, submit=False)

    township = await web_as("township", TS1)
    r = await township.get("/web/claims")  # the township's next step: 待审核
    assert r.status_code == 200, r.text
    assert "<h1>待遇申领</h1>" in r.text
    assert 'data-tab="submitted" class="on"' in r.text or 'class="on" data-tab="submitted"' in r.text
    assert set(rows(r.text)) == {mine["id"], mine2["id"]}
    assert "王桂兰" in r.text and "农村部分计划生育家庭奖励扶助" in r.text
    assert number not in r.text and f"<td>{mother['id_number_masked']}</td>" in r.text  # masked ID
    assert "6 项条件均符合" in r.text
    assert "960.00" in r.text
    assert theirs["id"] not in r.text and "钱玉珍" not in r.text

    # filters: name, village, year, programme
    r = await township.get("/web/claims", params={"status": "submitted", "q": "桂兰"})
    assert rows(r.text) == [mine["id"]]
    r = await township.get("/web/claims", params={"status": "all", "village_code": V2})
    assert rows(r.text) == [mine2["id"]]
    r = await township.get("/web/claims", params={"status": "submitted", "year": "2025"})
    assert rows(r.text) == [mine2["id"]]
    r = await township.get("/web/claims", params={"status": "submitted", "programme": "childcare_subsidy"})
    assert rows(r.text) == []
    assert (await township.get("/web/claims", params={"year": "20x5"})).status_code == 422
    # another township's village as a filter, and its claim's page: 404
    assert (await township.get("/web/claims", params={"village_code": V_OTHER_TS})).status_code == 404
    r = await township.get(f"/web/claims/{theirs['id']}")
    assert r.status_code == 404
    assert "找不到" in r.text

    # the county opens on 待审批 (nothing yet); 全部 shows the whole county, drafts included
    county = await web_as("county", COUNTY)
    r = await county.get("/web/claims")
    assert 'data-tab="reviewed"' in r.text and rows(r.text) == []
    r = await county.get("/web/claims", params={"status": "all"})
    assert len(rows(r.text)) == 4

    # a village sees its own village only
    village = await web_as("village", V2)
    r = await village.get("/web/claims", params={"status": "all"})
    assert rows(r.text) == [mine2["id"]]
    assert (await village.get(f"/web/claims/{mine['id']}")).status_code == 404


async def test_one_page_of_fifty_with_a_next_link(api, web_as, db):
    mother, _ = await claimant(api.village, V1, "周凤英")
    first = await claim(api.village, mother)
    # 50 more claims of the same person in other years, written straight into the table
    row = await stored(db, first["id"])
    for year in range(2030, 2081):
        db.add(
            Claim(
                **{
                    k: getattr(row, k)
                    for k in (
                        "programme",
                        "person_id",
                        "status",
                        "village_code",
                        "township_code",
                        "county_code",
                        "facts",
                        "eligible",
                        "amount_fen",
                        "rule_version_id",
                        "evaluation",
                        "payee_name",
                        "payee_bank",
                        "payee_account_masked",
                        "payee_account_enc",
                        "submitted_by",
                    )
                },
                year=year,
            )
        )
    await db.commit()
    township = await web_as("township", TS1)
    r = await township.get("/web/claims")
    assert len(rows(r.text)) == 50
    nxt = re.search(r'<a href="(/web/claims\?[^"]*cursor=[^"]+)">下一页', r.text)
    assert nxt, r.text
    r2 = await township.get(nxt.group(1).replace("&amp;", "&"))
    assert r2.status_code == 200
    assert len(rows(r2.text)) == 2
    assert not set(rows(r.text)) & set(rows(r2.text))
    assert "下一页" not in r2.text


# --- one claim and its steps ------------------------------------------------------------------


async def test_township_reviews_returns_and_village_cannot(api, web_as, db):
    mother, number = await claimant(api.village, V1, "王桂兰")
    c = await claim(api.village, mother)
    township = await web_as("township", TS1)
    village = await web_as("village", V1)

    r = await township.get(f"/web/claims/{c['id']}")
    assert r.status_code == 200, r.text
    for hook in ("review", "return", "reject"):
        assert f'data-action="{hook}"' in r.text
    assert 'data-action="approve"' not in r.text and 'data-action="pay"' not in r.text
    assert number not in r.text and "***************0123" in r.text  # masked ID and account
    assert "上报" in r.text  # history
    assert "农业户籍" in r.text and "hukou_rural" not in r.text

    # the village: no step buttons, a forged POST is 403 and nothing changes
    r = await village.get(f"/web/claims/{c['id']}")
    assert r.status_code == 200
    assert "data-action=" not in r.text
    version = (await stored(db, c["id"])).version
    r = await village.submit(f"/web/claims/{c['id']}/review", {"version": version, "decision": "approve"})
    assert r.status_code == 403, r.text
    assert (await stored(db, c["id"])).status == "submitted"

    # without the CSRF token: 403, nothing changes
    r = await township.post(f"/web/claims/{c['id']}/review", data={"version": version, "decision": "approve"})
    assert r.status_code == 403
    assert (await stored(db, c["id"])).status == "submitted"

    # returning needs a reason
    r = await township.submit(f"/web/claims/{c['id']}/review", {"version": version, "decision": "return"})
    assert r.status_code == 422
    r = await township.submit(
        f"/web/claims/{c['id']}/review", {"version": version, "decision": "return", "comment": "缺少生育证明"}
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/web/claims/{c['id']}?done=review"
    row = await stored(db, c["id"])
    assert row.status == "returned" and row.version == version + 1
    last = (await history(db, c["id"]))[-1]
    assert (last.action, last.from_status, last.to_status, last.comment) == (
        "review",
        "submitted",
        "returned",
        "缺少生育证明",
    )
    assert last.actor_id == township.user.id
    page = await township.get(r.headers["location"])
    assert "已审核" in page.text and "缺少生育证明" in page.text and township.user.display_name in page.text

    # the village opens on 已退回 and sees it there
    r = await village.get("/web/claims")
    assert 'data-tab="returned"' in r.text and rows(r.text) == [c["id"]]


async def test_stale_page_is_412_and_reject(api, web_as, db):
    mother, _ = await claimant(api.village, V1, "王桂兰")
    c = await claim(api.village, mother)
    township = await web_as("township", TS1)
    version = (await stored(db, c["id"])).version
    # someone changes the claim after the page was rendered (a new payee: back to submitted)
    r = await api.village.post(
        f"/api/v1/claims/{c['id']}/change_payee",
        json={"payee": {"name": "王桂兰", "bank": "邮储银行", "account": "6221880000111122"}},
    )
    assert r.status_code == 200, r.text
    r = await township.submit(f"/web/claims/{c['id']}/review", {"version": version, "decision": "approve"})
    assert r.status_code == 412, r.text
    row = await stored(db, c["id"])
    assert row.status == "submitted" and row.reviewed_by is None

    r = await township.submit(
        f"/web/claims/{c['id']}/review",
        {"version": row.version, "decision": "reject", "comment": "不符合条件"},
    )
    assert r.status_code == 303
    row = await stored(db, c["id"])
    assert row.status == "rejected"
    assert (await history(db, c["id"]))[-1].comment == "不符合条件"


async def test_county_approves_publishes_and_pays(api, web_as, db):
    mother, _ = await claimant(api.village, V1, "王桂兰")
    c = await reviewed(api, mother)
    county = await web_as("county", COUNTY)
    treasurer = await web_as("county", COUNTY)
    township = await web_as("township", TS1)

    # the township may not approve (no button; forged: 403)
    r = await township.get(f"/web/claims/{c['id']}")
    assert "data-action=" not in r.text
    r = await township.submit(
        f"/web/claims/{c['id']}/approve", {"version": c["version"], "decision": "approve"}
    )
    assert r.status_code == 403

    r = await county.get(f"/web/claims/{c['id']}")
    assert 'data-action="approve"' in r.text and 'data-action="return"' in r.text
    r = await county.submit(
        f"/web/claims/{c['id']}/approve", {"version": c["version"], "decision": "approve", "comment": "同意"}
    )
    assert r.status_code == 303, r.text
    row = await stored(db, c["id"])
    assert row.status == "approved" and row.approved_by == county.user.id and row.approved_amount_fen == 96000

    r = await county.get(f"/web/claims/{c['id']}")
    assert 'data-action="publish"' in r.text
    r = await county.submit(f"/web/claims/{c['id']}/publish", {"version": row.version, "notice_days": "5"})
    assert r.status_code == 303, r.text
    row = await stored(db, c["id"])
    assert row.status == "posted"
    assert row.posted_on == clock.today() and row.notice_until == clock.today() + timedelta(days=4)
    assert (await history(db, c["id"]))[-1].action == "publish"

    # pay: not while posted (no form), not by the approver (no button), by another county user
    r = await treasurer.get(f"/web/claims/{c['id']}")
    assert 'data-action="pay"' not in r.text and "期满后方可发放" in r.text
    await db.execute(
        update(Claim).where(Claim.id == row.id).values(notice_until=clock.today() - timedelta(days=1))
    )
    await db.commit()
    r = await county.get(f"/web/claims/{c['id']}")
    assert 'data-action="pay"' not in r.text  # four eyes on the money
    r = await treasurer.get(f"/web/claims/{c['id']}")
    assert 'data-action="pay"' in r.text
    row = await stored(db, c["id"])
    form = {
        "version": row.version,
        "paid_on": clock.today().isoformat(),
        "amount": "960.00",
        "reference": "BANK-1",
    }
    r = await county.submit(f"/web/claims/{c['id']}/pay", form)
    assert r.status_code == 403
    r = await treasurer.submit(f"/web/claims/{c['id']}/pay", form)
    assert r.status_code == 303, r.text
    row = await stored(db, c["id"])
    assert row.status == "paid"
    pay = (await db.execute(select(Payment).where(Payment.claim_id == row.id))).scalar_one()
    assert (pay.amount_fen, pay.reference, pay.recorded_by) == (96000, "BANK-1", treasurer.user.id)
    r = await treasurer.get(f"/web/claims/{c['id']}")
    assert "发放记录" in r.text and "BANK-1" in r.text


# --- bulk approval ----------------------------------------------------------------------------


async def test_bulk_approve_all_or_nothing(api, web_as, db):
    people = [(await claimant(api.village, V1, name))[0] for name in ("王桂兰", "李秀英", "张玉梅")]
    claims = [await reviewed(api, p) for p in people]
    county = await web_as("county", COUNTY)
    r = await county.get("/web/claims")  # the county opens on 待审批
    assert set(rows(r.text)) == {c["id"] for c in claims}
    assert 'data-select-all="ids"' in r.text and 'data-action="bulk-approve"' in r.text
    boxes = re.findall(r'name="ids" value="([^"]+)"', r.text)
    assert len(boxes) == 3

    # one of them changes after the page was shown: nothing is approved, the page names it
    stale = claims[1]["id"]
    await step(api.county, stale, "approve", {"decision": "return", "comment": "补充材料"})
    r = await county.submit("/web/claims/bulk-approve", {"ids": boxes, "comment": "同意"})
    assert r.status_code == 409, r.text
    assert "批量审批未执行" in r.text and "李秀英" in r.text
    assert re.findall(r'<tr data-id="([^"]+)"', r.text) == [stale]
    for c in claims:
        assert (await stored(db, c["id"])).status in ("reviewed", "returned")
    assert (await stored(db, claims[0]["id"])).approved_by is None

    # without the CSRF token: 403, nothing approved
    ok = [b for b in boxes if not b.startswith(stale)]
    r = await county.post("/web/claims/bulk-approve", data={"ids": ok})
    assert r.status_code == 403
    assert (await stored(db, claims[0]["id"])).status == "reviewed"

    # a township may not (403), then the county approves the two
    township = await web_as("township", TS1)
    assert "data-select-all" not in (await township.get("/web/claims?status=reviewed")).text
    r = await township.submit("/web/claims/bulk-approve", {"ids": ok})
    assert r.status_code == 403
    r = await county.submit("/web/claims/bulk-approve", {"ids": ok, "comment": "同意"})
    assert r.status_code == 303
    assert r.headers["location"] == "/web/claims?status=reviewed&done=bulk-approve"
    for c in (claims[0], claims[2]):
        row = await stored(db, c["id"])
        assert row.status == "approved" and row.approved_by == county.user.id
        last = (await history(db, c["id"]))[-1]
        assert (last.action, last.to_status, last.comment) == ("approve", "approved", "同意")
    assert (await stored(db, stale)).status == "returned"


# --- home cards -------------------------------------------------------------------------------


def card_count(html: str, key: str) -> int:
    found = re.search(rf'href="([^"]+)" id="card-{key}" data-count="(\d+)"', html)
    assert found, html
    return int(found.group(2))


async def test_home_cards_match_their_lists(api, web_as, db):
    people = [(await claimant(api.village, V1, f"人{i}"))[0] for i in range(4)]
    far, _ = await claimant(api.other_village, V_OTHER_TS, "钱玉珍")
    await claim(api.other_village, far)  # another township's: counted by nobody here
    submitted = await claim(api.village, people[0])
    rev = await reviewed(api, people[1])
    ret = await claim(api.village, people[2])
    await step(api.township, ret["id"], "review", {"decision": "return", "comment": "补充材料"})
    posted = await reviewed(api, people[3])
    await step(api.county, posted["id"], "approve", {"decision": "approve"})
    await step(api.county, posted["id"], "publish", {"notice_days": 7})

    township = await web_as("township", TS1)
    county = await web_as("county", COUNTY)
    village = await web_as("village", V1)
    checks = [
        (township, "claims-submitted", "/web/claims?status=submitted", [submitted["id"]]),
        (county, "claims-reviewed", "/web/claims?status=reviewed", [rev["id"]]),
        (county, "claims-payable", "/web/claims?status=payable", []),
        (village, "claims-returned", "/web/claims?status=returned", [ret["id"]]),
    ]
    for client, key, href, expected in checks:
        home = await client.get("/web/")
        assert card_count(home.text, key) == len(expected)
        assert f'href="{href}" id="card-{key}"' in home.text
        assert rows((await client.get(href)).text) == expected
    # the notice period ends: the claim becomes payable
    await db.execute(
        update(Claim)
        .where(Claim.id == uuid.UUID(posted["id"]))
        .values(notice_until=clock.today() - timedelta(days=1))
    )
    await db.commit()
    home = await county.get("/web/")
    assert card_count(home.text, "claims-payable") == 1
    assert rows((await county.get("/web/claims?status=payable")).text) == [posted["id"]]


# --- the public notice ------------------------------------------------------------------------


async def test_public_notice(api, web_as):
    a, a_number = await claimant(api.village, V1, "王桂兰")
    b, _ = await claimant(api.village, V1, "李秀英")
    c, _ = await claimant(api.village2, V2, "赵春梅")
    d, _ = await claimant(api.village, V1, "张玉梅")  # approved, not posted: not on the notice
    e, _ = await claimant(api.other_village, V_OTHER_TS, "钱玉珍")
    for p in (a, b, c, d):
        x = await reviewed(api, p, api.village2 if p is c else None)
        await step(api.county, x["id"], "approve", {"decision": "approve"})
        if p is not d:
            await step(api.county, x["id"], "publish", None)
    x = await claim(api.other_village, e)

    township = await web_as("township", TS1)
    r = await township.get("/web/notices")
    assert r.status_code == 200 and "<h1>公示</h1>" in r.text
    assert f'value="{V1}"' in r.text and f'value="{V_OTHER_TS}"' not in r.text

    r = await township.get(
        "/web/notices/print", params={"village_code": V1, "programme": "rural_reward", "year": 2024}
    )
    assert r.status_code == 200, r.text
    assert r.text.count('class="panel print-page notice"') == 1
    assert "团头湖村 2024年度 农村部分计划生育家庭奖励扶助 公示" in r.text
    assert "王桂兰" in r.text and "李秀英" in r.text
    assert "张玉梅" not in r.text and "赵春梅" not in r.text
    assert a_number not in r.text and f"<td>{a['id_number_masked']}</td>" in r.text
    today = clock.today()
    until = today + timedelta(days=6)  # settings.claim_notice_days = 7, as the publish step stored it
    assert f"公示期：{today} 至 {until}（7 天）" in r.text
    assert "如有异议请于公示期内向乡镇计生办反映" in r.text and "乔口镇计生办" in r.text
    assert "data-print" in r.text
    assert "1,920.00" in r.text  # the total of the two

    # all the township's villages at once: one page each
    r = await township.get("/web/notices/print", params={"programme": "rural_reward", "year": 2024})
    assert r.status_code == 200
    assert r.text.count('class="panel print-page notice"') == 2
    assert "柏叶村 2024年度" in r.text and "赵春梅" in r.text

    # another township's village: 404; a village user prints its own village only
    r = await township.get(
        "/web/notices/print", params={"village_code": V_OTHER_TS, "programme": "rural_reward", "year": 2024}
    )
    assert r.status_code == 404
    village = await web_as("village", V2)
    r = await village.get(
        "/web/notices/print", params={"village_code": V1, "programme": "rural_reward", "year": 2024}
    )
    assert r.status_code == 404
    r = await village.get("/web/notices/print", params={"programme": "rural_reward", "year": 2024})
    assert (
        r.text.count('class="panel print-page notice"') == 1 and "赵春梅" in r.text and "王桂兰" not in r.text
    )
    # nothing posted for another year
    r = await township.get("/web/notices/print", params={"programme": "rural_reward", "year": 2023})
    assert r.status_code == 200 and "print-page" not in r.text and "没有公示中的" in r.text


async def test_objection_during_posting(api, web_as, db):
    mother, _ = await claimant(api.village, V1, "王桂兰")
    c = await reviewed(api, mother)
    await step(api.county, c["id"], "approve", {"decision": "approve"})
    posted = await step(api.county, c["id"], "publish", None)
    county = await web_as("county", COUNTY)
    r = await county.get(f"/web/claims/{c['id']}")
    assert 'data-action="object"' in r.text and "公示期" in r.text
    url = f"/web/claims/{c['id']}/object"
    assert (await county.submit(url, {"version": posted["version"], "comment": " "})).status_code == 422
    r = await county.submit(url, {"version": posted["version"], "comment": "群众反映家中有第三个孩子"})
    assert r.status_code == 303, r.text
    row = await stored(db, c["id"])
    assert row.status == "reviewed" and row.posted_on is None and row.approved_by is None
    last = (await history(db, c["id"]))[-1]
    assert (last.action, last.from_status, last.to_status, last.comment) == (
        "object",
        "posted",
        "reviewed",
        "群众反映家中有第三个孩子",
    )
    # the same (now stale) form again: 412, nothing changes
    r = await county.submit(url, {"version": posted["version"], "comment": "重复提交"})
    assert r.status_code == 412
    assert (await history(db, c["id"]))[-1].comment == "群众反映家中有第三个孩子"


async def test_the_filter_form_answers_in_place_with_htmx(api: Api, web_as) -> None:
    mother, _ = await claimant(api.village, V1, "王桂兰")
    c = await claim(api.village, mother)
    ts = await web_as("township", TS1)
    page = await ts.get("/web/claims")
    assert 'hx-select="#claims-results"' in page.text and 'id="claims-results"' in page.text
    r = await ts.get("/web/claims", params={"q": "王桂兰"}, headers=ts.hx)
    assert r.status_code == 200 and 'id="claims-results"' in r.text and rows(r.text) == [c["id"]]
    r = await ts.get("/web/claims", params={"q": "没有这个人"}, headers=ts.hx)
    assert rows(r.text) == []

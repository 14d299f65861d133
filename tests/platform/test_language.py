"""Chinese first (api.md v1.1 "Language"): ``Accept-Language`` chooses the language of problem
texts, claim reasons, task titles, data-quality details and CSV headers; Chinese when absent;
codes, rules, kinds and enum values never change. Plus the catalogue itself: both languages for
every message, the same parameters, and every text a raise site writes found in it."""

from __future__ import annotations

import ast
import csv
import io
import string
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest

from app.core import messages
from app.core.db import today
from tests.claims.test_api import (  # noqa: F401  (programmes: the autouse fixture seeding rules)
    RURAL_FACTS,
    elder,
    mk_claim,
    programmes,
    step,
    to_status,
)
from tests.households.test_api import mk_household, mk_person, problem

V1 = "430122100201"
TS1 = "430122100000"
COUNTY = "430122000000"
EN = {"Accept-Language": "en"}
ZH = {"Accept-Language": "zh-CN"}


def says(r, lang: str) -> None:
    """The answer names its language, and caches key it by the request's."""
    assert r.headers["content-language"] == {"zh": "zh-CN", "en": "en"}[lang]
    assert "accept-language" in r.headers["vary"].lower()


# --- negotiation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, "zh"),
        ("", "zh"),
        ("zh-CN", "zh"),
        ("zh", "zh"),
        ("zh-Hans-CN,zh;q=0.9", "zh"),
        ("en", "en"),
        ("en-US", "en"),
        ("EN-gb", "en"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("zh-CN;q=0.5, en;q=0.9", "en"),
        ("en;q=0, zh", "zh"),
        ("fr-FR, en;q=0.5", "en"),
        ("fr, de", "zh"),
        ("*", "zh"),
        ("en;q=abc, zh;q=0.1", "zh"),
    ],
)
def test_accept_language_negotiation(header, lang):
    assert messages.negotiate(header) == lang


# --- the catalogue ----------------------------------------------------------------------------


def _params(template: str) -> set[str]:
    return {n for _l, n, _s, _c in string.Formatter().parse(template) if n is not None}


def test_every_message_has_both_languages_with_the_same_parameters():
    for key, entry in messages.MESSAGES.items():
        assert set(entry) == {"zh", "en"}, key
        assert entry["zh"] and entry["en"], key
        if key.startswith(("csv.claims.",)):
            continue  # the English header names the code, the Chinese one the programme
        # translating reads the parameters out of the English text: the Chinese needs no other
        assert _params(entry["zh"]) <= _params(entry["en"]), key


ERRORS = {
    "AppError",
    "BadRequest",
    "Unauthorized",
    "InvalidCredentials",
    "Forbidden",
    "OutOfScope",
    "NotFound",
    "Conflict",
    "IdConflict",
    "InvalidTransition",
    "VersionConflict",
    "PreconditionRequired",
    "ValidationFailed",
    "TooManyRequests",
    "ServiceUnavailable",
    "invalid",
    "bad_grant",
    "IdNumberError",
}


def _is_message(text: str) -> bool:
    """Field names and codes (``payee.name``, ``payee_mismatch``) are not read by people."""
    return " " in text


def _raise_site_texts() -> tuple[set[str], list[str]]:
    """The English texts of every error a module raises: constants, and f-strings as templates
    (each ``{…}`` replaced by ``{}``)."""
    constants: set[str] = set()
    templates: list[str] = []
    for path in Path("app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name not in ERRORS and name != "FieldError":
                continue
            args = list(node.args) + [k.value for k in node.keywords if k.arg in ("message", "detail")]
            for a in args:
                if isinstance(a, ast.Constant) and isinstance(a.value, str) and _is_message(a.value):
                    constants.add(a.value)
                elif isinstance(a, ast.JoinedStr):
                    shape = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in a.values)
                    if _is_message(shape):
                        templates.append(f"{path}:{a.lineno}: {shape}")
    return constants, templates


def test_every_error_text_a_raise_site_writes_is_in_the_catalogue():
    """A message added in English only would reach Chinese readers in English: add it to
    app/core/messages.py (parametrised ones as a template with the same wording)."""
    constants, templates = _raise_site_texts()
    known = {e["en"] for e in messages.MESSAGES.values()}
    missing = sorted(t for t in constants if t not in known and messages.translate(t, "zh") == t)
    assert not missing, missing
    shapes = {
        "".join(
            lit + ("{}" if name is not None else "") for lit, name, _s, _c in string.Formatter().parse(en)
        )
        for en in known
    }
    unknown = [t for t in templates if t.split(": ", 1)[1] not in shapes]
    assert not unknown, unknown


def test_translation_reads_parameters_back():
    assert messages.translate("The task is done, not open", "zh") == "该任务状态为 done，不是待办"
    assert messages.translate("No person with this id", "zh") == "没有此 id 的人员"
    assert messages.translate("Value error, must not be in the future", "zh") == "不得晚于今天"
    assert messages.translate("String should have at most 200 characters", "zh") == "最多 200 个字符"
    assert messages.translate("the mother turns 49 on 2020-03-01", "zh") == "母亲于 2020-03-01 年满 49 周岁"
    # English is the source language; unknown text is served as written
    assert messages.translate("The task is done, not open", "en") == "The task is done, not open"
    assert messages.translate("something new", "zh") == "something new"


# --- problems ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_validation_error_in_the_callers_language(client_as, lang):
    c = await client_as("village", V1)
    headers = EN if lang == "en" else {}
    r = await c.post("/api/v1/households", json={"village_code": V1}, headers=headers)
    body = problem(r, 422, "validation_failed")
    says(r, lang)
    messages_by_field = {e["field"]: e["message"] for e in body["errors"]}
    assert set(messages_by_field) == {"address", "household_type"}
    if lang == "zh":
        assert body["title"] == "校验未通过"
        assert body["detail"] == "请求中有无效字段"
        assert messages_by_field["address"] == "必填字段"
    else:
        assert body["title"] == "Validation failed"
        assert body["detail"] == "The request has invalid fields"
        assert messages_by_field["address"] == "Field required"
    # a service's own field message
    r = await c.post(
        "/api/v1/visits",
        json={
            "household_id": (await mk_household(c))["id"],
            "visited_at": "2099-01-01T10:00:00+08:00",
            "purpose": "elder_care",
        },
        headers=headers,
    )
    body = problem(r, 422, "validation_failed")
    assert body["errors"][0]["field"] == "visited_at"
    assert body["errors"][0]["message"] == ("不得晚于今天" if lang == "zh" else "must not be in the future")


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_not_found_in_the_callers_language(client_as, lang):
    c = await client_as("village", V1)
    headers = EN if lang == "en" else ZH
    r = await c.get(f"/api/v1/persons/{uuid.uuid4()}", headers=headers)
    body = problem(r, 404, "not_found")
    says(r, lang)
    assert (body["title"], body["detail"]) == (
        ("未找到", "没有此 id 的人员") if lang == "zh" else ("Not found", "No person with this id")
    )
    r = await c.get("/api/v1/no-such-route", headers=headers)
    body = problem(r, 404, "not_found")
    assert body["detail"] == ("未找到" if lang == "zh" else "Not Found")
    r = await c.delete("/api/v1/households", headers=headers)
    body = problem(r, 405, "method_not_allowed")
    assert body["title"] == ("不支持该请求方法" if lang == "zh" else "Method not allowed")


@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_conflict_in_the_callers_language(client_as, lang):
    c = await client_as("village", V1)
    headers = EN if lang == "en" else {}
    h = await mk_household(c)
    r = await c.post(
        "/api/v1/households",
        json={"id": h["id"], "village_code": V1, "address": "另一个地址", "household_type": "rural"},
        headers=headers,
    )
    body = problem(r, 409, "id_conflict")
    says(r, lang)
    if lang == "zh":
        assert body["title"] == "该 id 已用于不同的内容"
        assert body["detail"] == "此 id 已被另一条记录使用"
    else:
        assert body["title"] == "Id already used with different content"
        assert body["detail"] == "This id is already used by a different record"
    # a parametrised detail (an f-string at the raise site) has its parameters carried over
    p = await mk_person(c, h["id"])
    r = await c.patch(
        f"/api/v1/persons/{p['id']}", json={"name": "李秀兰"}, headers={"If-Match": '"9"', **headers}
    )
    body = problem(r, 412, "version_conflict")
    assert body["detail"] == (
        "记录当前为第 1 版，您发送的是第 9 版" if lang == "zh" else "The record is at version 1, you sent 9"
    )
    assert body["current"]["id"] == p["id"]


async def test_an_unauthenticated_request_is_answered_in_chinese_by_default(anon):
    r = await anon.get("/api/v1/me")
    body = problem(r, 401, "unauthorized")
    says(r, "zh")
    assert body["title"] == "需要登录"
    r = await anon.get("/api/v1/me", headers=EN)
    assert problem(r, 401, "unauthorized")["title"] == "Authentication required"


# --- claim reasons ----------------------------------------------------------------------------


async def test_claim_check_reasons_in_the_callers_language(client_as):
    c = await client_as("village", V1)
    mother = await elder(c, children=(("male", None), ("male", None)))
    body = {"programme": "rural_reward", "person_id": mother["id"], "year": 2024, "facts": RURAL_FACTS}
    zh = await c.post("/api/v1/claims/check", json=body)
    en = await c.post("/api/v1/claims/check", json=body, headers=EN)
    assert zh.status_code == en.status_code == 200, zh.text
    says(zh, "zh")
    says(en, "en")
    zh_reasons = {r["rule"]: r for r in zh.json()["reasons"]}
    en_reasons = {r["rule"]: r for r in en.json()["reasons"]}
    assert {k: v["passed"] for k, v in zh_reasons.items()} == {k: v["passed"] for k, v in en_reasons.items()}
    assert zh.json()["eligible"] is en.json()["eligible"] is False
    assert en_reasons["children"]["detail"] == "2 living children (2 sons, 0 daughters)"
    assert zh_reasons["children"]["detail"] == "2 个在世子女（2 个儿子，0 个女儿）"
    assert zh_reasons["alive"]["detail"] == "在世"
    assert zh_reasons["hukou_rural"]["detail"] == "申报为农村居民"
    assert zh_reasons["births_within_policy"]["detail"] == "已申报：1973–2001 年间无政策外生育"
    # every reason reads Chinese by default (none left in English)
    assert all(not any("a" <= ch <= "z" for ch in r["detail"]) for r in zh_reasons.values()), zh_reasons


async def test_stored_claim_reasons_and_submit_refusal_follow_the_reader(client_as):
    c = await client_as("village", V1)
    mother = await elder(c, children=(("male", None), ("male", None)))
    claim = await mk_claim(c, mother)
    zh = (await c.get(f"/api/v1/claims/{claim['id']}")).json()
    en = (await c.get(f"/api/v1/claims/{claim['id']}", headers=EN)).json()
    assert [r["rule"] for r in zh["reasons"]] == [r["rule"] for r in en["reasons"]]
    assert "2 个在世子女（2 个儿子，0 个女儿）" in [r["detail"] for r in zh["reasons"]]
    assert "2 living children (2 sons, 0 daughters)" in [r["detail"] for r in en["reasons"]]
    r = await c.post(f"/api/v1/claims/{claim['id']}/submit")
    body = problem(r, 422, "not_eligible")
    assert body["detail"] == "申领不符合规则"
    assert {"field": "children", "message": "2 个在世子女（2 个儿子，0 个女儿）"} in body["errors"]
    children = next(x for x in body["reasons"] if x["rule"] == "children")
    assert children["detail"] == "2 个在世子女（2 个儿子，0 个女儿）"
    r = await c.post(f"/api/v1/claims/{claim['id']}/submit", headers=EN)
    body = problem(r, 422, "not_eligible")
    assert {"field": "children", "message": "2 living children (2 sons, 0 daughters)"} in body["errors"]


# --- task titles ------------------------------------------------------------------------------


async def _titles(c, headers=None, **params) -> dict[str, str]:
    r = await c.get("/api/v1/tasks", params={"status": "open", **params}, headers=headers or {})
    assert r.status_code == 200, r.text
    return {t["kind"]: t["title"] for t in r.json()["items"]}


async def test_task_titles_name_the_person_in_the_callers_language(client_as):
    c = await client_as("village", V1)
    h = await mk_household(c)
    p = await mk_person(c, h["id"], name="王芳")
    r = await c.post(
        "/api/v1/visits",
        json={
            "household_id": h["id"],
            "person_id": p["id"],
            "visited_at": "2026-01-05T10:00:00+08:00",
            "purpose": "postnatal",
            "follow_up_on": (today() + timedelta(days=7)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    noted = await c.post(
        "/api/v1/visits",
        json={
            "household_id": h["id"],
            "visited_at": "2026-01-05T11:00:00+08:00",
            "purpose": "elder_care",
            "follow_up_on": (today() + timedelta(days=8)).isoformat(),
            "follow_up_note": "下周送药",
        },
    )
    assert noted.status_code == 201, noted.text
    r = await c.get("/api/v1/tasks", params={"status": "open"})
    says(r, "zh")
    zh = [t["title"] for t in r.json()["items"]]
    en = [
        t["title"]
        for t in (await c.get("/api/v1/tasks", params={"status": "open"}, headers=EN)).json()["items"]
    ]
    assert zh == ["走访跟进（产后访视）：王芳", "下周送药"]
    # the cadre's own note is kept as written in both languages
    assert en == ["Follow-up of postnatal visit: 王芳", "下周送药"]


async def test_returned_claim_task_carries_the_township_comment(client_as):
    village = await client_as("village", V1)
    township = await client_as("township", TS1)
    mother = await elder(village, name="王芳")
    claim = await mk_claim(village, mother)
    await step(village, claim["id"], "submit")
    review = await _titles(township)
    assert review["claim_review"] == "待审核的待遇申领（农村奖扶 2024）：王芳"
    await step(township, claim["id"], "review", {"decision": "return", "comment": "材料不全"})
    assert (await _titles(village))["claim_correction"] == (
        "退回的待遇申领待修改（农村奖扶 2024）：王芳 — 乡镇意见：材料不全"
    )
    assert (await _titles(village, EN))["claim_correction"] == (
        "Correct returned benefit claim (rural reward 2024): 王芳 — township's comment: 材料不全"
    )


async def test_checkup_due_items_and_follow_ups_name_the_woman(client_as, db):
    village = await client_as("village", V1)
    township = await client_as("township", TS1)
    h = await mk_household(village)
    her = await mk_person(village, h["id"], name="王芳", born=date(1995, 3, 3))
    start = today()
    r = await township.post(
        "/api/v1/checkup-rounds",
        json={
            "area_code": TS1,
            "name": "2026年第一季度",
            "opens_on": start.isoformat(),
            "closes_on": (start + timedelta(days=30)).isoformat(),
            "items": ["pregnancy", "gynecological"],
        },
    )
    assert r.status_code == 201, r.text
    assert (await _titles(village))["checkup_due"] == "三查到期：王芳（2026年第一季度）"
    assert (await _titles(village, EN))["checkup_due"] == "Checkup due: 王芳 (2026年第一季度)"
    appts = (await village.get("/api/v1/checkup-appointments", params={"round_id": r.json()["id"]})).json()
    appt = next(a for a in appts["items"] if a["person_id"] == her["id"])
    r = await village.post(
        f"/api/v1/checkup-appointments/{appt['id']}/result",
        json={
            "checked_on": start.isoformat(),
            "place": "station",
            "consent": True,
            "items": {"pregnancy": "positive", "gynecological": "abnormal"},
        },
    )
    assert r.status_code in (200, 201), r.text
    zh, en = await _titles(village), await _titles(village, EN)
    assert (zh["prenatal_care"], zh["referral"]) == ("产前保健随访：王芳", "妇科筛查异常转诊：王芳")
    assert (en["prenatal_care"], en["referral"]) == (
        "Prenatal care visit: 王芳",
        "Referral after abnormal screening: 王芳",
    )


async def test_sync_pull_carries_task_titles_in_the_phones_language(client_as):
    c = await client_as("village", V1)
    h = await mk_household(c)
    p = await mk_person(c, h["id"], name="王芳")
    r = await c.post(
        "/api/v1/visits",
        json={
            "household_id": h["id"],
            "person_id": p["id"],
            "visited_at": "2026-01-05T10:00:00+08:00",
            "purpose": "elder_care",
            "follow_up_on": (today() + timedelta(days=3)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text

    async def pulled(headers: dict) -> str:
        r = await c.get("/api/v1/sync/pull", params={"limit": 500}, headers=headers)
        assert r.status_code == 200, r.text
        says(r, "en" if headers else "zh")
        return next(ch["data"]["title"] for ch in r.json()["changes"] if ch["entity"] == "task")

    assert await pulled({}) == "走访跟进（老年关怀）：王芳"
    assert await pulled(EN) == "Follow-up of elder care visit: 王芳"


# --- data quality -----------------------------------------------------------------------------


async def test_data_quality_details_in_the_callers_language(client_as):
    c = await client_as("village", V1)
    h = await mk_household(c)
    young = await mk_person(c, h["id"], born=today().replace(year=today().year - 18) - timedelta(days=3))
    zh = (await c.get("/api/v1/data-quality", params={"kind": "married_under_20"})).json()
    en = (await c.get("/api/v1/data-quality", params={"kind": "married_under_20"}, headers=EN)).json()
    assert (
        [(f["kind"], f["id"]) for f in zh]
        == [(f["kind"], f["id"]) for f in en]
        == [("married_under_20", young["id"])]
    )
    assert (zh[0]["detail"], en[0]["detail"]) == ("已婚女性未满 20 岁", "married woman under 20")


# --- CSV headers ------------------------------------------------------------------------------


def _header(r) -> list[str]:
    assert r.status_code == 200, r.text
    return next(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))


async def test_payments_csv_header_in_the_callers_language(client_as, db):
    from tests.claims.test_api import Staff

    s = Staff()
    s.village = await client_as("village", V1)
    s.township = await client_as("township", TS1)
    s.county = await client_as("county", COUNTY)
    mother = await elder(s.village)
    claim = await mk_claim(s.village, mother)
    await to_status(s, db, claim["id"], "posted")
    zh = await s.county.get("/api/v1/claims/payments.csv")
    en = await s.county.get("/api/v1/claims/payments.csv", headers=EN)
    says(zh, "zh")
    assert _header(zh)[:5] == ["申领编号", "项目", "年度", "村代码", "受益人姓名"]
    assert _header(en)[:5] == ["claim_id", "programme", "year", "village_code", "beneficiary_name"]
    assert len(_header(zh)) == len(_header(en))
    # the rows are the same data: codes and enum values do not change
    zh_rows = list(csv.reader(io.StringIO(zh.content.decode("utf-8-sig"))))[1:]
    en_rows = list(csv.reader(io.StringIO(en.content.decode("utf-8-sig"))))[1:]
    assert zh_rows == en_rows
    assert zh_rows[0][1] == "rural_reward"


async def test_indicators_csv_header_language_and_etag(client_as):
    c = await client_as("county", COUNTY)
    zh = await c.get("/api/v1/indicators.csv")
    en = await c.get("/api/v1/indicators.csv", headers=EN)
    says(zh, "zh")
    says(en, "en")
    assert "出生人口性别比" in _header(zh)
    assert "sex_ratio_at_birth" in _header(en)
    assert zh.headers["etag"] != en.headers["etag"]
    # a validator of one language never answers 304 for the other
    r = await c.get("/api/v1/indicators.csv", headers={"If-None-Match": zh.headers["etag"], **EN})
    assert r.status_code == 200
    assert "sex_ratio_at_birth" in _header(r)
    r = await c.get("/api/v1/indicators.csv", headers={"If-None-Match": zh.headers["etag"]})
    assert r.status_code == 304
    # ``lang`` still overrides the header
    forced = await c.get("/api/v1/indicators.csv", params={"lang": "en"})
    assert _header(forced) == _header(en)
    assert forced.headers["content-language"] == "en"


async def test_a_rejected_sync_op_speaks_the_phones_language_and_replays_as_it_was(client_as):
    from tests.sync.test_api import household_op, person_op

    c = await client_as("village", V1)
    h = household_op()
    bad = person_op(h["id"], data={"id_number": "430122199002301234"})

    async def pushed(ops: list[dict], headers: dict) -> list[dict]:
        r = await c.post("/api/v1/sync/push", json={"device_id": "phone-1", "ops": ops}, headers=headers)
        assert r.status_code == 200, r.text
        says(r, "en" if headers else "zh")
        return r.json()["results"]

    results = await pushed([h, bad], {})
    assert [x["status"] for x in results] == ["applied", "rejected"]
    error = results[1]["error"]
    assert (error["code"], error["title"], error["detail"]) == (
        "id_number_invalid",
        "校验未通过",
        "出生日期不存在",
    )
    other = person_op(h["id"], data={"id_number": "430122199002301234"})
    error = (await pushed([other], EN))[0]["error"]
    assert (error["code"], error["title"], error["detail"]) == (
        "id_number_invalid",
        "Validation failed",
        "impossible birth date",
    )
    # the same op again is answered as it was first (nothing is evaluated twice)
    again = (await pushed([bad], EN))[0]
    assert again["status"] == "rejected" and again["error"]["detail"] == "出生日期不存在"

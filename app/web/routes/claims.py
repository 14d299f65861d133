"""待遇申领: the claim queues, one claim with its history and the steps the caller may take,
and the county's bulk approval.

Every read and step goes through ``app.services.claims`` with the signed-in actor, exactly as
``app/routers/claims.py`` does: the list is ``list_claims`` (+ ``claim_items`` for the people,
their ID numbers already masked), a step is ``transition``. A step form carries the version of
the claim the page showed; a stale page gets the service's 412 (``check_version``) and nothing
changes. A bulk approval is one savepoint: if any claim fails, none is approved and the page
names each failure with its reason.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.authz.actor import Actor
from app.authz.scope import scoped
from app.core import clock
from app.core.errors import AppError, ValidationFailed
from app.core.messages import translate
from app.deps import CipherDep, SessionDep
from app.models.claims import Claim, ClaimStatus, Decision, ProgrammeCode
from app.models.users import Role, User
from app.services import claim_rules as rules
from app.services import claims as svc
from app.services.records import check_version
from app.services.summaries import load_people
from app.web.cards import Card
from app.web.deps import WebCaller
from app.web.render import page

router = APIRouter(prefix="/web", include_in_schema=False)

PAGE_SIZE = 50

# Tabs: (key, label); a key is a status, ``payable`` (posted, notice over: the 待发放 card) or all.
TABS: tuple[tuple[str, str], ...] = (
    ("submitted", "待审核"),
    ("reviewed", "待审批"),
    ("posted", "公示中"),
    ("approved", "已审批"),
    ("returned", "已退回"),
    ("paid", "已发放"),
    ("payable", "待发放"),
    ("all", "全部"),
)
TAB_KEYS = {key for key, _ in TABS}

# The caller's next step: the queue a role opens on.
DEFAULT_TAB = {Role.township: "submitted", Role.county: "reviewed", Role.village: "returned"}

STATUS_BADGE = {
    "submitted": "warn",
    "reviewed": "warn",
    "returned": "bad",
    "rejected": "bad",
    "approved": "ok",
    "posted": "ok",
    "paid": "ok",
}

# Step buttons: (route action, decision, data-action hook, button text, confirm question).
DECISION_BUTTONS = {
    "review": (
        ("approve", "review", "审核通过", ""),
        ("return", "return", "退回村级", "退回后由村级修改重报，确定？"),
        ("reject", "reject", "审核不通过", "不通过为终结状态，确定？"),
    ),
    "approve": (
        ("approve", "approve", "审批通过", ""),
        ("return", "return", "退回", "退回后由村级修改重报，确定？"),
        ("reject", "reject", "审批不通过", "不通过为终结状态，确定？"),
    ),
}
ACTION_LABELS = {
    "create": "建立",
    "submit": "上报",
    "review": "审核",
    "approve": "审批",
    "publish": "公示",
    "object": "异议",
    "pay": "发放",
    "change_payee": "变更收款账户",
    "withdraw": "撤回",
}
DONE_TEXT = {
    "review": "已审核",
    "approve": "已审批",
    "publish": "已公示",
    "object": "已登记异议",
    "pay": "已登记发放",
    "bulk-approve": "已批量审批",
}
# The declared facts (``ClaimFacts``) as the cadre reads them.
FACT_LABELS = {
    "hukou_rural": "农业户籍",
    "births_within_policy_1973_2001": "1973—2001年间按政策生育",
    "only_child_disability_grade": "独生子女伤残等级",
    "later_child_or_adoption": "此后再生育或收养",
    "only_child_certificate": "持独生子女父母光荣证",
}
STEP_ACTIONS = ("review", "approve", "publish", "object", "pay")


def _programme(value: str | None) -> ProgrammeCode | None:
    if not value:
        return None
    try:
        return ProgrammeCode(value)
    except ValueError:
        raise ValidationFailed("The request has invalid fields") from None


def _year(value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdigit() or not 2000 <= int(value) <= 2100:
        raise ValidationFailed("The request has invalid fields")
    return int(value)


def _area(value: str | None) -> str | None:
    if not value:
        return None
    if len(value) != 12 or not value.isdigit():
        raise ValidationFailed("The request has invalid fields")
    return value


def can(actor: Actor, claim: Claim, action: str, decision: Decision | None = None) -> bool:
    """Whether the service would let the caller take this step now (role, status, separation
    of duties: the same table ``transition`` checks)."""
    move = rules.TRANSITIONS.get((action, decision))
    if move is None or actor.role not in move.roles or ClaimStatus(claim.status) not in move.sources:
        return False
    return all(getattr(claim, attr) != actor.id for attr in move.separate_from)


def _reasons(reasons: list[Any], limit: int = 2) -> str:
    """The eligibility reasons in a line: the failed ones, else how many rules passed."""
    failed = [r.detail for r in reasons if not r.passed]
    if not failed:
        return f"{len(reasons)} 项条件均符合" if reasons else ""
    return "；".join(failed[:limit]) + ("…" if len(failed) > limit else "")


def local_time(value: datetime | None) -> str:
    """A stored (UTC) moment in the configured zone, to the minute."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(clock.zone()).strftime("%Y-%m-%d %H:%M")


# --- the list ---------------------------------------------------------------------------------


@router.get("/claims")
async def claim_list(
    request: Request,
    session: SessionDep,
    caller: WebCaller,
    cipher: CipherDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    programme: Annotated[str | None, Query(max_length=32)] = None,
    year: Annotated[str | None, Query(max_length=4)] = None,
    village_code: Annotated[str | None, Query(max_length=12)] = None,
    q: Annotated[str | None, Query(max_length=50)] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    tab = status if status in TAB_KEYS else DEFAULT_TAB.get(caller.role, "all")
    prog, yr, area = _programme(programme), _year(year), _area(village_code)
    name = (q or "").strip() or None
    rows, nxt = await svc.list_claims(
        session,
        caller,
        programme=prog,
        year=yr,
        status=ClaimStatus(tab) if tab not in ("all", "payable") else None,
        payable=tab == "payable",
        area_code=area,
        person_id=None,
        limit=PAGE_SIZE,
        cursor=cursor or None,
        q=name,
        cipher=cipher,
    )
    items = await svc.claim_items(session, rows)
    filters = {
        "programme": prog.value if prog else "",
        "year": yr or "",
        "village_code": area or "",
        "q": name or "",
    }
    kept = {k: v for k, v in filters.items() if v}

    def url(**extra: Any) -> str:
        return "/web/claims?" + urlencode({**kept, **extra})

    bulk = tab == "reviewed" and caller.role in (Role.county, Role.admin)
    versions = {c.id: c.version for c in rows}
    can_approve = {c.id for c in rows if can(caller, c, "approve", Decision.approve)}
    return page(
        request,
        "claims/list.html",
        {
            "tabs": [(key, text, url(status=key)) for key, text in TABS],
            "tab": tab,
            "filters": filters,
            "items": items,
            "reasons": {i.id: _reasons(i.reasons) for i in items},
            "versions": versions,
            "bulk": bulk,
            "can_approve": can_approve,
            "next_url": url(status=tab, cursor=nxt) if nxt else "",
            "badges": STATUS_BADGE,
            "done": DONE_TEXT.get(done or "", ""),
        },
        active="claims",
    )


# --- one claim --------------------------------------------------------------------------------


async def _names(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Who took each step: display names of the history's users (one query)."""
    if not ids:
        return {}
    rows = await session.execute(select(User.id, User.display_name).where(col(User.id).in_(ids)))
    return {row[0]: row[1] for row in rows.all()}


@router.get("/claims/{claim_id:uuid}")
async def claim_page(
    request: Request,
    session: SessionDep,
    caller: WebCaller,
    claim_id: uuid.UUID,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    claim = await svc.get_claim(session, caller, claim_id)
    detail = await svc.claim_detail(session, claim)
    people = await load_people(session, person_ids=(claim.person_id, claim.applicant_id))
    names = await _names(session, {h.actor_id for h in detail.history if h.actor_id})
    decisions = {
        action: [b for b in buttons if can(caller, claim, action, Decision(b[0]))]
        for action, buttons in DECISION_BUTTONS.items()
    }
    settings = request.app.state.settings
    return page(
        request,
        "claims/detail.html",
        {
            "claim": detail,
            "person": people.person(claim.person_id),
            "applicant": people.person(claim.applicant_id),
            "household": people.household(person_id=claim.person_id),
            "names": names,
            "decisions": {k: v for k, v in decisions.items() if v},
            "can_publish": can(caller, claim, "publish"),
            "can_object": can(caller, claim, "object"),
            "can_pay": can(caller, claim, "pay"),
            "notice_over": claim.notice_until is not None and claim.notice_until < clock.today(),
            "notice_days": settings.claim_notice_days,
            "action_labels": ACTION_LABELS,
            "fact_labels": FACT_LABELS,
            "local_time": local_time,
            "badges": STATUS_BADGE,
            "done": DONE_TEXT.get(done or "", ""),
        },
        active="claims",
    )


def _money(value: str) -> Decimal:
    try:
        return Decimal(value.strip())
    except InvalidOperation:
        raise ValidationFailed("The request has invalid fields") from None


@router.post("/claims/{claim_id:uuid}/{action}")
async def claim_step(
    request: Request,
    session: SessionDep,
    caller: WebCaller,
    cipher: CipherDep,
    claim_id: uuid.UUID,
    action: str,
    version: Annotated[int, Form()],
    decision: Annotated[Decision | None, Form()] = None,
    comment: Annotated[str, Form(max_length=1000)] = "",
    notice_days: Annotated[int | None, Form(ge=1, le=90)] = None,
    paid_on: Annotated[date | None, Form()] = None,
    amount: Annotated[str, Form(max_length=20)] = "",
    reference: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """One step, as ``POST /api/v1/claims/{id}/{action}`` does it, on the version the page showed."""
    if action not in STEP_ACTIONS:
        raise ValidationFailed("The request has invalid fields")
    claim = await svc.get_claim(session, caller, claim_id, lock=True)
    check_version(claim.version, version, (await svc.claim_public(session, claim)).model_dump(mode="json"))
    kw: dict[str, Any] = {"comment": comment}
    if action in ("review", "approve"):
        if decision is None:
            raise ValidationFailed("The request has invalid fields")
        kw["decision"] = decision
    elif action == "publish":
        kw = {"notice_days": notice_days, "default_notice_days": request.app.state.settings.claim_notice_days}
    elif action == "object":
        if not comment.strip():
            raise ValidationFailed("The request has invalid fields")
    elif action == "pay":
        if paid_on is None or not reference.strip():
            raise ValidationFailed("The request has invalid fields")
        kw = {"paid_on": paid_on, "amount": _money(amount), "reference": reference.strip()}
    await svc.transition(session, caller, cipher, claim_id, action, **kw)
    return RedirectResponse(f"/web/claims/{claim_id}?done={action}", status_code=303)


# --- bulk approval ----------------------------------------------------------------------------


def _picked(values: list[str]) -> list[tuple[uuid.UUID, int]]:
    """The ticked boxes: ``{id}:{version}`` each."""
    out: list[tuple[uuid.UUID, int]] = []
    for value in values:
        ident, _, ver = value.partition(":")
        try:
            out.append((uuid.UUID(ident), int(ver)))
        except ValueError:
            raise ValidationFailed("The request has invalid fields") from None
    return out


@router.post("/claims/bulk-approve")
async def bulk_approve(
    request: Request,
    session: SessionDep,
    caller: WebCaller,
    cipher: CipherDep,
    ids: Annotated[list[str] | None, Form(max_length=500)] = None,
    comment: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Approve the ticked claims at once: all of them or, if any fails, none (one savepoint)."""
    picked = _picked(ids or [])
    if not picked:
        return RedirectResponse("/web/claims?status=reviewed", status_code=303)
    failures: list[tuple[str, str, str]] = []  # (claim id, whose, why)
    savepoint = await session.begin_nested()
    for claim_id, version in picked:
        try:
            claim = await svc.get_claim(session, caller, claim_id, lock=True)
            check_version(claim.version, version, {})
            await svc.transition(
                session,
                caller,
                cipher,
                claim_id,
                "approve",
                decision=Decision.approve,
                comment=comment or None,
            )
        except AppError as exc:
            if exc.status == 403:  # not the caller's to approve (a forged form): refused outright
                await savepoint.rollback()
                raise
            failures.append((str(claim_id), "", translate(exc.detail)))
    if not failures:
        await savepoint.commit()
        return RedirectResponse("/web/claims?status=reviewed&done=bulk-approve", status_code=303)
    await savepoint.rollback()
    # name the failed claims the caller may see (the others are simply "not found")
    failed_ids = [uuid.UUID(f[0]) for f in failures]
    stmt = scoped(select(Claim), caller).where(col(Claim.id).in_(failed_ids))
    found = {c.id: c for c in (await session.execute(stmt)).scalars()}
    people = await load_people(session, person_ids=(c.person_id for c in found.values()))
    named = []
    for ident, _, why in failures:
        c = found.get(uuid.UUID(ident))
        p = people.person(c.person_id) if c else None
        who = f"{p.name}（{p.id_number_masked or ''}）" if p else ident
        named.append({"id": ident, "who": who, "why": why})
    return page(
        request,
        "claims/bulk_failed.html",
        {"failures": named, "count": len(picked)},
        active="claims",
        status_code=409,
    )


# --- 工作台 cards -------------------------------------------------------------------------------


async def cards(session: AsyncSession, caller: Actor) -> list[Card]:
    """The caller's claim queues; each links to the tab that lists exactly these claims."""
    out: list[Card] = []
    if caller.role == Role.township:
        n = await svc.count_claims(session, caller, status=ClaimStatus.submitted)
        out.append(
            Card("claims-submitted", "待审核申领", n, "/web/claims?status=submitted", "村级上报，待乡镇审核")
        )
    elif caller.role in (Role.county, Role.admin):
        n = await svc.count_claims(session, caller, status=ClaimStatus.reviewed)
        out.append(
            Card("claims-reviewed", "待审批申领", n, "/web/claims?status=reviewed", "乡镇已审核，待县级审批")
        )
        n = await svc.count_claims(session, caller, payable=True)
        out.append(Card("claims-payable", "待发放", n, "/web/claims?status=payable", "公示期已满，可以发放"))
    elif caller.role == Role.village:
        n = await svc.count_claims(session, caller, status=ClaimStatus.returned)
        out.append(
            Card("claims-returned", "被退回的申领", n, "/web/claims?status=returned", "请修改后重新上报")
        )
    return out

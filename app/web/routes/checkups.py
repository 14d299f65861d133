"""三查: checkup rounds with their progress per area, the overdue list, opening a round.

Every figure comes from the checkup service the API uses (``round_figures``,
``round_breakdown``, ``list_appointments``), with the caller's scope: the numbers on these
pages are the numbers ``GET /api/v1/checkup-rounds/{id}`` answers the same caller.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.authz.actor import Actor
from app.authz.policies import SUPERVISOR_ROLES, require_role
from app.core import clock
from app.core.errors import AppError
from app.core.messages import translate
from app.core.pagination import Cursor
from app.deps import CipherDep, SessionDep
from app.models.checkups import ITEMS, AppointmentStatus, CheckupRound, RoundCreate
from app.services import areas as areas_svc
from app.services import checkups as svc
from app.web.cards import Card
from app.web.deps import WebCaller
from app.web.render import page

router = APIRouter(prefix="/web/checkups", include_in_schema=False)

PAGE = 50
VillageCode = Annotated[str | None, Query(pattern=r"^[0-9]{12}$")]

ITEM_LABELS = {"iud": "查环", "pregnancy": "查孕", "gynecological": "查病"}
FIELD_LABELS = {
    "area_code": "区域",
    "name": "名称",
    "opens_on": "开始日期",
    "closes_on": "结束日期",
    "items": "检查项目",
}


def round_state(rnd: CheckupRound, today: date) -> tuple[str, str]:
    """The round's status as the page shows it: (label, badge kind)."""
    if rnd.opens_on > today:
        return "未开始", ""
    if rnd.closes_on < today:
        return "已结束", "warn"
    return "进行中", "ok"


def can_open(caller: Actor) -> bool:
    return caller.role in SUPERVISOR_ROLES


async def _area_choices(session: AsyncSession, caller: Actor) -> list[tuple[str, str]]:
    """The caller's own area and the areas just below it (where a round is usually opened)."""
    own = await areas_svc.names_of(session, {caller.area_code})
    children, _ = await areas_svc.list_areas(
        session, caller, parent_code=caller.area_code, limit=500, cursor=None
    )
    return [(caller.area_code, own.get(caller.area_code, caller.area_code))] + [
        (a.code, a.name) for a in children
    ]


async def _rounds_page(
    request: Request,
    session: AsyncSession,
    caller: Actor,
    *,
    cursor: str | None,
    form: dict[str, Any] | None = None,
    errors: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    rounds, nxt = await svc.list_rounds(session, caller, area_code=None, limit=PAGE, cursor=cursor)
    figures = await svc.figures_by_round(session, caller, rounds)
    names = await areas_svc.names_of(session, {r.area_code for r in rounds})
    today = clock.today()
    context: dict[str, Any] = {
        "rounds": [
            {
                "round": r,
                "area_name": names.get(r.area_code, r.area_code),
                "state": round_state(r, today),
                "figures": figures[r.id],
                "items": [ITEM_LABELS.get(i, i) for i in r.items.split(",")],
            }
            for r in rounds
        ],
        "next_url": f"/web/checkups?{urlencode({'cursor': nxt})}" if nxt else None,
        "can_open": can_open(caller),
        "item_labels": ITEM_LABELS,
        "errors": errors or [],
        "form": form
        or {
            "area_code": caller.area_code,
            "name": "",
            "opens_on": today.isoformat(),
            "closes_on": "",
            "items": list(ITEMS),
        },
    }
    if can_open(caller):
        context["areas"] = await _area_choices(session, caller)
    return page(request, "checkups/index.html", context, active="checkups", status_code=status_code)


@router.get("")
async def rounds(request: Request, session: SessionDep, caller: WebCaller, cursor: Cursor = None) -> Response:
    return await _rounds_page(request, session, caller, cursor=cursor)


@router.post("/rounds")
async def open_round(request: Request, session: SessionDep, caller: WebCaller) -> Response:
    """Open a round through ``create_round`` (township, county); then its page."""
    require_role(caller, *SUPERVISOR_ROLES)
    raw = await request.form()
    form = {
        "area_code": str(raw.get("area_code") or ""),
        "name": str(raw.get("name") or "").strip(),
        "opens_on": str(raw.get("opens_on") or ""),
        "closes_on": str(raw.get("closes_on") or ""),
        "items": [str(i) for i in raw.getlist("items")],
    }
    try:
        body = RoundCreate.model_validate(form)
    except ValidationError as exc:
        errors = []
        for e in exc.errors():
            field = str(e["loc"][0]) if e.get("loc") else ""
            label = FIELD_LABELS.get(field, "")
            message = translate(str(e["msg"]))
            errors.append(f"{label}: {message}" if label else message)
        return await _rounds_page(
            request, session, caller, cursor=None, form=form, errors=errors, status_code=422
        )
    try:
        rnd, _created = await svc.create_round(session, caller, body)
    except AppError as exc:
        if exc.status not in (409, 422):
            raise
        errors = [translate(exc.detail)] + [
            f"{FIELD_LABELS.get(e.field, e.field)}: {translate(e.message)}" for e in exc.errors or []
        ]
        return await _rounds_page(
            request, session, caller, cursor=None, form=form, errors=errors, status_code=exc.status
        )
    return RedirectResponse(f"/web/checkups/rounds/{rnd.id}", status_code=303)


@router.get("/rounds/{round_id:uuid}")
async def round_detail(
    request: Request, session: SessionDep, caller: WebCaller, round_id: uuid.UUID
) -> Response:
    rnd = await svc.get_round(session, caller, round_id)
    breakdown = await svc.round_breakdown(session, caller, round_id)
    figures = svc.total_of(breakdown)  # = round_figures (the API's GET), one read of the round
    names = await areas_svc.names_of(session, {rnd.area_code})
    rows = []
    for a in breakdown:
        village = not a.area_code.endswith("000")
        params = {"round_id": str(rnd.id), **({"village_code": a.area_code} if village else {})}
        rows.append({"area": a, "overdue_url": f"/web/checkups/overdue?{urlencode(params)}"})
    return page(
        request,
        "checkups/round.html",
        {
            "round": rnd,
            "area_name": names.get(rnd.area_code, rnd.area_code),
            "state": round_state(rnd, clock.today()),
            "figures": figures,
            "rows": rows,
            "items": [ITEM_LABELS.get(i, i) for i in rnd.items.split(",")],
            "by_village": any(not a.area_code.endswith("000") for a in breakdown) or len(caller.prefix) >= 9,
        },
        active="checkups",
    )


@router.get("/overdue")
async def overdue(
    request: Request,
    session: SessionDep,
    caller: WebCaller,
    cipher: CipherDep,
    round_id: uuid.UUID | None = None,
    village_code: VillageCode = None,
    cursor: Cursor = None,
) -> Response:
    """Women still scheduled after their round's window closed: whom to chase, and how."""
    rnd = await svc.get_round(session, caller, round_id) if round_id else None
    rows, nxt = await svc.list_appointments(
        session,
        caller,
        round_id=round_id,
        status=AppointmentStatus.overdue,
        village_code=village_code,
        limit=PAGE,
        cursor=cursor,
    )
    items = await svc.appointment_items(session, rows)
    phones = await svc.masked_phones(session, caller, cipher, (a.id for a in items))
    villages = await areas_svc.names_of(
        session, {a.village_code for a in items} | ({village_code} if village_code else set())
    )
    round_names = await svc.round_names(session, {a.round_id for a in items})
    total = await svc.count_appointments(
        session, caller, status=AppointmentStatus.overdue, round_id=round_id, village_code=village_code
    )
    filters = {
        k: v
        for k, v in (("round_id", str(round_id) if round_id else None), ("village_code", village_code))
        if v
    }
    return page(
        request,
        "checkups/overdue.html",
        {
            "round": rnd,
            "village_code": village_code,
            "village_name": villages.get(village_code, village_code) if village_code else None,
            "items": [
                {
                    "a": a,
                    "phone": phones.get(a.id),
                    "village": villages.get(a.village_code, a.village_code),
                    "round_name": round_names.get(a.round_id, ""),
                    "closes_on": closes,
                }
                for a, (_, closes) in zip(items, rows, strict=True)
            ],
            "total": total,
            "next_url": f"/web/checkups/overdue?{urlencode({**filters, 'cursor': nxt})}" if nxt else None,
        },
        active="checkups",
    )


async def cards(session: AsyncSession, caller: Actor) -> list[Card]:
    """逾期未查: the overdue appointments in scope (the rows of the overdue list, all pages)."""
    count = await svc.count_appointments(session, caller, status=AppointmentStatus.overdue)
    return [Card("overdue-checkups", "逾期未查", count, "/web/checkups/overdue", "三查窗口已过仍未检查")]

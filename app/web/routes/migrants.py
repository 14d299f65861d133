"""流动人口: partner notifications to accept or dismiss, and moves waiting for this place's
release to confirm or refuse — two tabs with their counts.

Notifications are ``partner.list_inbox(status=pending)`` (the API's
``GET /migrant-notifications?status=pending``), decided with ``partner.accept`` / ``partner.dismiss``
(village cadres and township staff; others read only). Releases are the inflows elsewhere
waiting for a person whose current village the caller holds (``migrants.list_pending_releases``),
decided with ``migrants.confirm_transfer`` / ``migrants.refuse_transfer`` (the API's
``POST /migrants/{id}/confirm`` and ``…/refuse``). A decided item leaves its list.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.authz.actor import Actor
from app.core.errors import ValidationFailed
from app.core.pagination import Cursor
from app.deps import CipherDep, SessionDep
from app.models.areas import Area
from app.models.migrants import (
    InboxStatus,
    MigrantConfirm,
    MigrantRefuse,
    NotificationAccept,
    NotificationDismiss,
)
from app.services import migrants as svc
from app.services import partner as partner_svc
from app.services.summaries import load_people
from app.web.cards import Card
from app.web.deps import WebCaller
from app.web.render import page

router = APIRouter(prefix="/web", include_in_schema=False)

PAGE_SIZE = 50

NOTIFICATION_KIND_LABELS = {
    "residence_registered": "居住登记",
    "residence_cancelled": "居住注销",
    "business_licensed": "营业执照登记",
}
AGENCY_LABELS = {"police": "公安", "market_regulation": "市场监管", "other": "其他单位"}
MARITAL_LABELS = {"single": "未婚", "married": "已婚", "divorced": "离婚", "widowed": "丧偶"}
DONE = {
    "accepted": "通报已采纳。",
    "dismissed": "通报已忽略。",
    "confirmed": "已确认迁出。",
    "refused": "已拒绝迁出。",
}


async def cards(session: AsyncSession, caller: Actor) -> list[Card]:
    notes = await partner_svc.count_inbox(session, caller, status=InboxStatus.pending)
    releases = await svc.count_pending_releases(session, caller)
    return [
        Card(
            "notifications",
            "待处理通报",
            notes,
            "/web/migrants?tab=notifications",
            "协作单位通报的流入、注销",
        ),
        Card("releases", "待确认迁出", releases, "/web/migrants?tab=releases", "外地申请迁入本辖区人员"),
    ]


async def _area_names(session: AsyncSession, codes: set[str]) -> dict[str, str]:
    if not codes:
        return {}
    stmt = select(Area.code, Area.name).where(col(Area.code).in_(sorted(codes)))
    return {str(code): str(name) for code, name in (await session.execute(stmt)).all()}


async def _villages_of(session: AsyncSession, townships: set[str]) -> dict[str, list[tuple[str, str]]]:
    """The villages of these townships (for a township-level notification's village choice)."""
    if not townships:
        return {}
    stmt = select(Area.code, Area.name, Area.parent_code).where(col(Area.parent_code).in_(sorted(townships)))
    out: dict[str, list[tuple[str, str]]] = {}
    for code, name, parent in (await session.execute(stmt.order_by(Area.code))).all():
        out.setdefault(parent, []).append((code, name))
    return out


@router.get("/migrants")
async def migrants_page(
    request: Request,
    session: SessionDep,
    caller: WebCaller,
    cipher: CipherDep,
    tab: Literal["notifications", "releases"] = "notifications",
    cursor: Cursor = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    counts = {
        "notifications": await partner_svc.count_inbox(session, caller, status=InboxStatus.pending),
        "releases": await svc.count_pending_releases(session, caller),
    }
    ctx: dict[str, Any] = {"tab": tab, "counts": counts, "done": DONE.get(done or ""), "next_url": None}
    if tab == "notifications":
        rows, nxt = await partner_svc.list_inbox(
            session, caller, status=InboxStatus.pending, kind=None, limit=PAGE_SIZE, cursor=cursor
        )
        views = await partner_svc.notification_views(session, caller, cipher, rows)
        names = await _area_names(session, {n.village_code for n in views})
        township_level = {n.village_code[:9] + "000" for n in views if n.village_code.endswith("000")}
        ctx.update(
            notifications=views,
            names=names,
            villages=await _villages_of(session, township_level),
            may_decide=partner_svc.may_decide(caller),
            kind_labels=NOTIFICATION_KIND_LABELS,
            marital_labels=MARITAL_LABELS,
            agency_labels=AGENCY_LABELS,
        )
    else:
        releases, nxt = await svc.list_pending_releases(session, caller, limit=PAGE_SIZE, cursor=cursor)
        people = await load_people(session, person_ids=(m.person_id for m in releases), actor=caller)
        names = await _area_names(session, {m.village_code for m in releases})
        ctx.update(
            releases=[(m, people.person(m.person_id)) for m in releases],
            names=names,
        )
    if nxt:
        ctx["next_url"] = f"/web/migrants?tab={tab}&cursor={nxt}"
    return page(request, "migrants/list.html", ctx, active="migrants")


def _valid(model: Any, **fields: Any) -> Any:
    try:
        return model(**fields)
    except (ValidationError, ValueError):
        raise ValidationFailed("The request has invalid fields") from None


@router.post("/migrants/notifications/{notification_id:uuid}/accept")
async def accept_notification(
    session: SessionDep,
    caller: WebCaller,
    cipher: CipherDep,
    notification_id: uuid.UUID,
    village_code: Annotated[str, Form(max_length=12)] = "",
    marital_status: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """``marital_status``: of a person the notification registers (the register never guesses
    it; the form asks when the number is not a person the caller holds)."""
    fields: dict[str, Any] = {"village_code": village_code or None}
    if marital_status:
        fields["marital_status"] = marital_status
    body = _valid(NotificationAccept, **fields)
    await partner_svc.accept(session, caller, cipher, notification_id, body)
    return RedirectResponse("/web/migrants?tab=notifications&done=accepted", status_code=303)


@router.post("/migrants/notifications/{notification_id:uuid}/dismiss")
async def dismiss_notification(
    session: SessionDep,
    caller: WebCaller,
    notification_id: uuid.UUID,
    reason: Annotated[str, Form(min_length=1, max_length=500)],
) -> Response:
    body = _valid(NotificationDismiss, reason=reason.strip())
    await partner_svc.dismiss(session, caller, notification_id, body)
    return RedirectResponse("/web/migrants?tab=notifications&done=dismissed", status_code=303)


@router.post("/migrants/releases/{migrant_id:uuid}/confirm")
async def confirm_release(
    session: SessionDep,
    caller: WebCaller,
    migrant_id: uuid.UUID,
    children_stay: Annotated[bool, Form()] = False,
) -> Response:
    await svc.confirm_transfer(session, caller, migrant_id, MigrantConfirm(children_stay=children_stay))
    return RedirectResponse("/web/migrants?tab=releases&done=confirmed", status_code=303)


@router.post("/migrants/releases/{migrant_id:uuid}/refuse")
async def refuse_release(
    session: SessionDep,
    caller: WebCaller,
    migrant_id: uuid.UUID,
    reason: Annotated[str, Form(min_length=1, max_length=500)],
) -> Response:
    body = _valid(MigrantRefuse, reason=reason.strip())
    await svc.refuse_transfer(session, caller, migrant_id, body)
    return RedirectResponse("/web/migrants?tab=releases&done=refused", status_code=303)

"""公示: the printable public notice of the posted (公示中) claims of a programme and year.

One A4 page per village (``class="print-page"``): the title, the posted claims (name, masked ID
number, programme, amount), the notice period as the publish step stored it on each claim
(``posted_on`` .. ``notice_until``: ``settings.claim_notice_days`` days unless the county chose
another number, see ``services.claims.transition``), where to object, and a print button. A
township may print all its villages at once. The claims come from
``services.claims.posted_claims`` (the caller's scope; an area outside it is 404).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlmodel import col, select

from app.authz.scope import scoped
from app.core import clock
from app.core.errors import ValidationFailed
from app.deps import SessionDep
from app.models.areas import Area, AreaLevel
from app.models.claims import Claim, ProgrammeCode
from app.models.users import Role
from app.services import claim_rules as rules
from app.services import claims as svc
from app.services.summaries import load_people
from app.web.deps import WebCaller
from app.web.render import PROGRAMME_LABELS, page

router = APIRouter(prefix="/web", include_in_schema=False)

# Where to object: this module's own copy (the register keeps no office addresses or phones, so
# the township's name comes from the area register and the phone is a line to fill in by hand).
OBJECTION_TEXT = "如有异议请于公示期内向乡镇计生办反映"
OBJECTION_OFFICE = "受理单位：{township}计生办"
OBJECTION_PHONE = "联系电话：____________"


@dataclass
class NoticeRow:
    name: str
    id_number_masked: str
    programme: str
    amount: str
    notice_until: date | None


@dataclass
class NoticePage:
    village_code: str
    village_name: str
    township_name: str
    title: str
    rows: list[NoticeRow] = field(default_factory=list)
    posted_from: date | None = None
    posted_until: date | None = None
    days: int | None = None
    total: str = "0.00"


async def _villages(session: SessionDep, caller: Any) -> list[Area]:
    """The villages of the caller's scope (area names are not personal)."""
    stmt = scoped(select(Area), caller).where(Area.level == AreaLevel.village).order_by(col(Area.code))
    return list((await session.execute(stmt)).scalars().all())


@router.get("/notices")
async def notices(request: Request, session: SessionDep, caller: WebCaller) -> Response:
    return page(
        request,
        "claims/notices.html",
        {
            "villages": await _villages(session, caller),
            "all_villages": caller.role == Role.township,
            "year": clock.today().year,
            "notice_days": request.app.state.settings.claim_notice_days,
        },
        active="notices",
    )


def _pages(
    claims: list[Claim], people: Any, areas: dict[str, Area], programme: str, year: int
) -> list[NoticePage]:
    pages: dict[str, NoticePage] = {}
    for c in claims:
        p = pages.get(c.village_code)
        if p is None:
            village = areas.get(c.village_code)
            township = areas.get(c.village_code[:9] + "000")
            vname = village.name if village else c.village_code
            p = pages[c.village_code] = NoticePage(
                village_code=c.village_code,
                village_name=vname,
                township_name=township.name if township else "乡镇",
                title=f"{vname} {year}年度 {PROGRAMME_LABELS.get(programme, programme)} 公示",
            )
        person = people.person(c.person_id)
        amount_fen = c.approved_amount_fen if c.approved_amount_fen is not None else c.amount_fen
        p.rows.append(
            NoticeRow(
                name=person.name if person else "",
                id_number_masked=(person.id_number_masked or "") if person else "",
                programme=PROGRAMME_LABELS.get(c.programme, c.programme),
                amount=rules.yuan(amount_fen),
                notice_until=c.notice_until,
            )
        )
        if c.posted_on and (p.posted_from is None or c.posted_on < p.posted_from):
            p.posted_from = c.posted_on
        if c.notice_until and (p.posted_until is None or c.notice_until > p.posted_until):
            p.posted_until = c.notice_until
        if c.posted_on and c.notice_until and p.days is None:
            p.days = (c.notice_until - c.posted_on).days + 1
        p.total = rules.yuan(rules.to_fen(p.total) + amount_fen)
    return list(pages.values())


@router.get("/notices/print")
async def notice_print(
    request: Request,
    session: SessionDep,
    caller: WebCaller,
    programme: ProgrammeCode,
    year: Annotated[int, Query(ge=2000, le=2100)],
    village_code: Annotated[str | None, Query(max_length=12)] = None,
) -> Response:
    if village_code:
        if len(village_code) != 12 or not village_code.isdigit():
            raise ValidationFailed("The request has invalid fields")
        area_code = village_code
    elif caller.role == Role.township or caller.role == Role.village:
        area_code = caller.area_code  # all the township's villages (a village: its own)
    else:
        raise ValidationFailed("The request has invalid fields")
    claims = await svc.posted_claims(session, caller, programme=programme, year=year, area_code=area_code)
    people = await load_people(session, person_ids=(c.person_id for c in claims))
    codes = {c.village_code for c in claims} | {c.village_code[:9] + "000" for c in claims}
    stmt = scoped(select(Area), caller).where(col(Area.code).in_(codes))
    areas = {a.code: a for a in (await session.execute(stmt)).scalars()} if codes else {}
    return page(
        request,
        "claims/notice_print.html",
        {
            "pages": _pages(claims, people, areas, programme.value, year),
            "programme": programme.value,
            "year": year,
            "area_code": area_code,
            "objection": OBJECTION_TEXT,
            "office": OBJECTION_OFFICE,
            "phone": OBJECTION_PHONE,
        },
        active="notices",
    )

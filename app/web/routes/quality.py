"""数据质量: the register's faults by kind, merging duplicates (with a preview of what moves) and
setting a fault aside with a reason.

The list is ``data_quality.list_faults`` (the API's ``GET /data-quality``) in the caller's scope;
merging is ``households.merge_persons`` (``POST /persons/{id}/merge``), dismissing is
``data_quality.dismiss_fault`` (``POST /data-quality/dismiss``). Township, county and admin only
(the services refuse village cadres: 403).

A merge posts the versions of both records the preview showed: if either changed since, 412
``version_conflict`` and nothing is merged (the preview the user confirmed is what happens).
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.authz.actor import Actor
from app.authz.policies import SUPERVISOR_ROLES, require_role
from app.authz.scope import get_scoped, scoped
from app.core.errors import ValidationFailed
from app.deps import SessionDep
from app.models.areas import Area
from app.models.households import DataQualityFault, DismissRequest, FaultEntity, FaultKind, Household, Person
from app.services import data_quality as dq
from app.services import households as hh
from app.services.records import check_version
from app.services.summaries import load_people
from app.web.cards import Card
from app.web.deps import WebCaller
from app.web.render import page

router = APIRouter(prefix="/web", include_in_schema=False)

PAGE_SIZE = 50

KIND_LABELS = {
    "likely_duplicate": "疑似重复",
    "child_born_before_mother_15": "母亲未满15岁生育",
    "married_under_20": "未满20岁已婚",
    "over_110_alive": "110岁以上未登记死亡",
    "household_without_head": "户无户主",
    "household_no_living_member": "户无在世成员",
    "village_mismatch": "现居村与户籍村不一致",
}

REF_LABELS = {
    ("person", "mother_id"): "子女（作为母亲）",
    ("person", "father_id"): "子女（作为父亲）",
    ("birth", "mother_id"): "出生登记（母亲）",
    ("birth", "father_id"): "出生登记（父亲）",
    ("visit", "person_id"): "随访记录",
    ("task", "person_id"): "待办任务",
    ("checkup_appointment", "person_id"): "三查预约",
    ("claim", "person_id"): "待遇申领",
    ("claim", "applicant_id"): "待遇申领（作为申请人）",
    ("migrant", "person_id"): "流动人口记录",
    ("partner_notification", "person_id"): "协作单位通报",
}

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

DONE = {"merged": "已合并。", "dismissed": "已忽略该问题。"}


def other_of(fault: DataQualityFault) -> uuid.UUID | None:
    """The other record of a likely duplicate (named in the fault's detail)."""
    if fault.kind != "likely_duplicate":
        return None
    found = UUID_RE.search(fault.detail)
    return uuid.UUID(found.group(0)) if found else None


async def open_faults(session: AsyncSession, caller: Actor) -> list[DataQualityFault]:
    require_role(caller, *SUPERVISOR_ROLES)
    return await dq.list_faults(session, caller, area_code=None, kind=None)


async def cards(session: AsyncSession, caller: Actor) -> list[Card]:
    if caller.role not in SUPERVISOR_ROLES:
        return []
    faults = await open_faults(session, caller)
    return [Card("quality", "数据质量问题", len(faults), "/web/data-quality", "核实、合并重复或忽略")]


async def _household_villages(
    session: AsyncSession, caller: Actor, ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str | None]]:
    if not ids:
        return {}
    query: Any = (
        select(Household.id, Household.village_code, Area.name)
        .outerjoin(Area, col(Area.code) == Household.village_code)
        .where(col(Household.id).in_(ids))
    )
    stmt = scoped(query, caller, Household)
    return {r[0]: (r[1], r[2]) for r in (await session.execute(stmt)).all()}


@router.get("/data-quality")
async def quality_page(
    request: Request,
    session: SessionDep,
    caller: WebCaller,
    kind: Annotated[str | None, Query(pattern="^(" + "|".join(dq.KINDS) + ")$")] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    faults = await open_faults(session, caller)
    counts = dict.fromkeys(dq.KINDS, 0)
    for f in faults:
        counts[f.kind] += 1
    current = kind or next((k for k in dq.KINDS if counts[k]), dq.KINDS[0])
    of_kind = [f for f in faults if f.kind == current]
    rows = of_kind[:PAGE_SIZE]
    await dq.add_people(session, rows)
    others = {f.id: other_of(f) for f in rows}
    other_people = await load_people(session, person_ids=(o for o in others.values() if o), actor=caller)
    villages = await _household_villages(
        session, caller, [f.id for f in rows if f.entity == FaultEntity.household.value]
    )
    items: list[dict[str, Any]] = []
    for f in rows:
        other = other_people.person(others[f.id])
        item: dict[str, Any] = {"fault": f, "other": other, "other_id": others[f.id]}
        if f.entity == "person" and f.person is not None:
            item["village"] = f.person.village_name or f.person.village_code
        else:
            code, name = villages.get(f.id, ("", None))
            item["village"] = name or code
        if other is not None and f.person is not None:
            # keep the record with the ID number (the merge would carry it over anyway)
            keep_self = bool(f.person.id_number_masked) and not other.id_number_masked
            item["keep"], item["drop"] = (f.id, other.id) if keep_self else (other.id, f.id)
        items.append(item)
    return page(
        request,
        "quality/list.html",
        {
            "kinds": dq.KINDS,
            "kind_labels": KIND_LABELS,
            "counts": counts,
            "total": len(faults),
            "current": current,
            "items": items,
            "shown_all": len(of_kind) <= PAGE_SIZE,
            "of_kind": len(of_kind),
            "done": DONE.get(done or ""),
        },
        active="quality",
    )


@router.get("/data-quality/merge-preview")
async def merge_preview(
    request: Request, session: SessionDep, caller: WebCaller, keep: uuid.UUID, drop: uuid.UUID
) -> Response:
    preview = await hh.merge_preview(session, caller, drop, keep)
    people = await load_people(session, person_ids=[keep, drop], actor=caller)
    refs = [(REF_LABELS.get((t, c), f"{t}.{c}"), n) for t, c, n in preview.refs]
    return page(
        request,
        "quality/merge_preview.html",
        {
            "preview": preview,
            "keep": people.person(keep),
            "drop": people.person(drop),
            "keep_household": people.household(person_id=keep),
            "drop_household": people.household(person_id=drop),
            "refs": refs,
            "moved_total": sum(n for _, n in refs),
        },
        active="quality",
    )


@router.post("/data-quality/merge")
async def merge(
    session: SessionDep,
    caller: WebCaller,
    keep: Annotated[uuid.UUID, Form()],
    drop: Annotated[uuid.UUID, Form()],
    keep_version: Annotated[int, Form(ge=1)],
    drop_version: Annotated[int, Form(ge=1)],
) -> Response:
    require_role(caller, *SUPERVISOR_ROLES)
    kept = await get_scoped(session, Person, keep, caller)
    dropped = await get_scoped(session, Person, drop, caller)
    check_version(kept.version, keep_version, {})
    check_version(dropped.version, drop_version, {})
    await hh.merge_persons(session, caller, drop, keep)
    return RedirectResponse("/web/data-quality?kind=likely_duplicate&done=merged", status_code=303)


@router.post("/data-quality/dismiss")
async def dismiss(
    request: Request,
    session: SessionDep,
    caller: WebCaller,
    kind: Annotated[FaultKind, Form()],
    entity: Annotated[FaultEntity, Form()],
    id: Annotated[uuid.UUID, Form()],
    reason: Annotated[str, Form(min_length=1, max_length=200)],
    other_id: Annotated[str, Form(max_length=36)] = "",
) -> Response:
    require_role(caller, *SUPERVISOR_ROLES)
    try:
        body = DismissRequest(
            kind=kind,
            entity=entity,
            id=id,
            reason=reason.strip(),
            other_id=uuid.UUID(other_id) if other_id else None,
        )
    except (ValidationError, ValueError):
        raise ValidationFailed("The request has invalid fields") from None
    await dq.dismiss_fault(session, caller, body)
    if request.headers.get("hx-request") == "true":
        # htmx (the row's form): only the row is replaced, with what was done; the page stays.
        return page(request, "quality/_dismissed_row.html", {"id": id, "reason": body.reason})
    return RedirectResponse(f"/web/data-quality?kind={kind.value}&done=dismissed", status_code=303)

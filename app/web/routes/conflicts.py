"""同步冲突: edits a phone made offline that overlapped a change on the server.

Each conflict is shown field by field: what the phone sent beside what the server holds now
(both masked as lists mask them), with the person or household concerned, when and who. A
township (or county) user resolves it by choosing, per field, the phone's value or the
server's: the chosen phone values are applied through ``resolve_conflict`` (the API's
``POST /api/v1/sync/conflicts/{id}/resolve``) and the conflict leaves the list. The values
applied are read from the stored conflict, never from the form: the form only says which.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.authz.actor import Actor
from app.authz.policies import SUPERVISOR_ROLES
from app.core.errors import ValidationFailed
from app.core.pagination import Cursor
from app.deps import CipherDep, SessionDep
from app.models.sync import SyncConflict
from app.services import areas as areas_svc
from app.services import sync as svc
from app.services import sync_actions  # noqa: F401  (registers the v1.1 entities, as the router does)
from app.web.cards import Card
from app.web.deps import WebCaller
from app.web.render import page

router = APIRouter(prefix="/web/conflicts", include_in_schema=False)

PAGE = 50

ENTITY_LABELS = {
    "household": "户",
    "person": "人员",
    "visit": "随访",
    "task": "待办",
    "task_completion": "待办",
    "checkup_result": "三查结果",
    "checkup_appointment": "三查预约",
    "migrant": "流动人口",
    "claim": "待遇申领",
    "birth": "出生",
    "death": "死亡",
}

FIELD_LABELS = {
    "address": "地址",
    "household_type": "户别",
    "village_code": "村",
    "name": "姓名",
    "sex": "性别",
    "birth_date": "出生日期",
    "relation_to_head": "与户主关系",
    "marital_status": "婚姻状况",
    "hukou_area_code": "户籍地",
    "phone_masked": "电话",
    "id_number_masked": "身份证号",
    "current_village_code": "现居村",
    "mother_id": "母亲",
    "father_id": "父亲",
    "visit_date": "随访日期",
    "visited_on": "随访日期",
    "note": "备注",
    "notes": "备注",
    "kind": "类别",
    "programme": "项目",
    "year": "年度",
    "payee": "收款人",
    "amount": "金额",
    "destination": "去向",
    "origin_area_code": "来源地",
    "moved_on": "流动日期",
}


def masked_field(key: str, value: Any) -> bool:
    """A value kept only masked: the phone's full value is gone, it cannot be applied."""
    return key.endswith("_masked") or (isinstance(value, dict) and "account_masked" in value)


def shown(value: Any) -> str:
    if value is None or value == "":
        return "（空）"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def rows_of(item: dict[str, Any]) -> list[dict[str, Any]]:
    """Field by field: the phone's value, the server's, whether they differ, whether the phone's
    value may be applied. The fields the server changed as well come first."""
    client: dict[str, Any] = item["client_values"]
    server: dict[str, Any] | None = item.get("server_values")
    overlap = set(item["fields"])
    keys = sorted(client, key=lambda k: (k.removesuffix("_masked") not in overlap and k not in overlap, k))
    out = []
    for key in keys:
        mine = client[key]
        theirs = server.get(key) if server is not None else None
        out.append(
            {
                "key": key,
                "label": FIELD_LABELS.get(key, key),
                "phone": shown(mine),
                "server": shown(theirs) if server is not None else "（已不在本辖区）",
                "differs": server is None or mine != theirs,
                "overlap": key in overlap or key.removesuffix("_masked") in overlap,
                "takeable": not masked_field(key, mine),
            }
        )
    return out


async def _views(
    session: AsyncSession, caller: Actor, cipher: Any, conflicts: list[SyncConflict]
) -> list[dict[str, Any]]:
    items = await svc.conflict_items(session, caller, svc.SyncContext(cipher), conflicts)
    people = {uuid.UUID(i["actor_id"]) for i in items} | {
        uuid.UUID(i["resolved_by"]) for i in items if i["resolved_by"]
    }
    names = await svc.user_names(session, people)
    villages = await areas_svc.names_of(session, {i["village_code"] for i in items})
    out = []
    for item in items:
        out.append(
            {
                **item,
                "entity_label": ENTITY_LABELS.get(item["entity"], item["entity"]),
                "who": names.get(uuid.UUID(item["actor_id"]), "—"),
                "resolver": names.get(uuid.UUID(item["resolved_by"]), "—") if item["resolved_by"] else None,
                "when": item["created_at"][:16].replace("T", " "),
                "village": villages.get(item["village_code"], item["village_code"]),
                "rows": rows_of(item),
            }
        )
    return out


@router.get("")
async def conflicts(
    request: Request, session: SessionDep, caller: WebCaller, cipher: CipherDep, cursor: Cursor = None
) -> Response:
    rows, nxt = await svc.list_conflicts(session, caller, status="open", limit=PAGE, cursor=cursor)
    total = await svc.count_conflicts(session, caller, status="open")
    return page(
        request,
        "conflicts/index.html",
        {
            "conflicts": await _views(session, caller, cipher, rows),
            "total": total,
            "can_resolve": caller.role in SUPERVISOR_ROLES,
            "next_url": f"/web/conflicts?{urlencode({'cursor': nxt})}" if nxt else None,
        },
        active="conflicts",
    )


@router.get("/{conflict_id:uuid}")
async def conflict_detail(
    request: Request, session: SessionDep, caller: WebCaller, cipher: CipherDep, conflict_id: uuid.UUID
) -> Response:
    conflict = await svc.get_conflict(session, caller, conflict_id)
    (view,) = await _views(session, caller, cipher, [conflict])
    return page(
        request,
        "conflicts/detail.html",
        {"c": view, "can_resolve": caller.role in SUPERVISOR_ROLES},
        active="conflicts",
    )


@router.post("/{conflict_id:uuid}/resolve")
async def resolve(
    request: Request, session: SessionDep, caller: WebCaller, cipher: CipherDep, conflict_id: uuid.UUID
) -> Response:
    """Apply the phone's values of the fields chosen (``take``), keep the server's for the rest."""
    conflict = await svc.conflict_for_resolving(session, caller, conflict_id)
    client = svc.conflict_view(conflict)["client_values"]
    form = await request.form()
    values: dict[str, Any] = {}
    for raw in form.getlist("take"):
        key = str(raw)
        if key not in client or masked_field(key, client[key]):
            raise ValidationFailed("The request has invalid fields")
        values[key] = client[key]
    await svc.resolve_conflict(session, caller, svc.SyncContext(cipher), conflict_id, values)
    return RedirectResponse("/web/conflicts", status_code=303)


async def cards(session: AsyncSession, caller: Actor) -> list[Card]:
    """同步冲突: the unresolved conflicts in scope (the rows of the list, all pages)."""
    count = await svc.count_conflicts(session, caller, status="open")
    return [
        Card("sync-conflicts", "同步冲突", count, "/web/conflicts", "手机离线修改与服务器冲突，待乡镇处理")
    ]

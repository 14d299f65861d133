"""Offline sync: push, pull, receipts, conflicts."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, StrictInt

from app.core.errors import ValidationFailed, error_responses
from app.core.openapi import PER_OP_TEXT
from app.core.pagination import Cursor, Limit
from app.core.text import text_guard
from app.deps import Caller, CipherDep, SessionDep
from app.models.households import HouseholdSummary, PersonSummary
from app.services import sync as svc
from app.services import sync_actions  # noqa: F401  (registers the v1.1 entities)

router = APIRouter(prefix="/api/v1/sync", tags=["sync"])

MAX_OPS = 500

DeviceId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]


class PushOpIn(BaseModel):
    # NUL or control characters here make this op ``rejected`` alone (the batch goes on)
    op_id: str = Field(min_length=1, max_length=64, json_schema_extra={PER_OP_TEXT: True})
    # Any other entity makes this op ``rejected`` alone (``unsupported_entity``), not the batch
    # a 422: a phone newer than the server still gets its other ops applied.
    entity: str = Field(
        description="One of: "
        + ", ".join(f"`{e}`" for e in svc.PUSH_ENTITIES)
        + ". Any other value makes this op `rejected` (`unsupported_entity`) on its own.",
        examples=list(svc.PUSH_ENTITIES),
        json_schema_extra={PER_OP_TEXT: True},
    )
    id: uuid.UUID
    base_version: StrictInt | None = Field(default=None, ge=0)
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="The entity's fields (those of its REST create; for `checkup_result` also "
        "`appointment_id`). Action entities, acting on the record `id`: `checkup_decline` "
        "`{reason}`, `checkup_exempt` `{reason, until?}`, `task_completion` `{note?}`, "
        "`migrant_close` `{closed_on, reason}` (a repeated `appointment_id`/`task_id`/`migrant_id` "
        "must equal `id`); `claim`: the fields of `POST /claims` (create) or `PATCH /claims/{id}` "
        "(with `base_version`), and `submit: true` to submit it in the same op. Invalid data makes "
        "this op `rejected` on its own (`validation_failed` with `errors`), never the batch",
    )


class PushIn(BaseModel):
    device_id: DeviceId
    # at most MAX_OPS, said in the document; the server's own check answers 422 ``too_many_ops``
    ops: list[PushOpIn] = Field(json_schema_extra={"maxItems": MAX_OPS})


class OpResult(BaseModel):
    op_id: str
    status: str = Field(description="applied | duplicate | conflict | rejected")
    id: str | None = None
    version: int | None = None
    error: dict[str, Any] | None = None
    current: dict[str, Any] | None = None
    fields: list[str] | None = None


class PushOut(BaseModel):
    results: list[OpResult]


class ReceiptsIn(BaseModel):
    device_id: DeviceId
    op_ids: list[str] = Field(max_length=MAX_OPS)


class Receipt(BaseModel):
    op_id: str
    held: bool
    status: str | None = None
    id: str | None = None
    version: int | None = None


class ReceiptsOut(BaseModel):
    receipts: list[Receipt]


class PullChange(BaseModel):
    entity: str
    id: str
    version: int
    deleted: bool
    data: dict[str, Any] | None


class PullOut(BaseModel):
    changes: list[PullChange]
    next_cursor: str
    has_more: bool


class ConflictOut(BaseModel):
    id: str
    entity: str
    entity_id: str
    op_id: str
    device_id: str
    actor_id: str
    base_version: int
    server_version: int
    client_values: dict[str, Any]
    fields: list[str]
    status: str
    village_code: str
    created_at: str
    resolved_by: str | None
    resolved_at: str | None


class ConflictItem(ConflictOut):
    """A conflict as the list shows it: the server's current values of the phone's fields
    beside them (masked alike; null once the record left your scope), and whom it concerns."""

    server_values: dict[str, Any] | None
    person: PersonSummary | None
    household: HouseholdSummary | None


class ConflictPage(BaseModel):
    items: list[ConflictItem]
    next_cursor: str | None


class ResolveIn(BaseModel):
    values: dict[str, Any]


class ResolveOut(BaseModel):
    conflict: ConflictOut
    record: dict[str, Any]


@router.post(
    "/push",
    response_model=PushOut,
    response_model_exclude_none=True,
    responses=error_responses(401, 403, 413, 422),
)
async def push(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    body: PushIn,
    refused_text: Annotated[dict[int, str], Depends(text_guard)],
) -> PushOut:
    """Apply up to 500 ops in order, each on its own; re-sent ops answer from the stored result.
    An op with NUL or control characters in its text is ``rejected`` alone (nothing stored)."""
    if len(body.ops) > MAX_OPS:
        raise ValidationFailed(f"At most {MAX_OPS} ops per push; split the batch", code="too_many_ops")
    ops = [svc.PushOp(**o.model_dump()) for o in body.ops]
    results = await svc.push(
        session, caller, svc.SyncContext(cipher), body.device_id, ops, refused_text=refused_text
    )
    return PushOut(results=[OpResult.model_validate(r) for r in results])


@router.get("/pull", response_model=PullOut, responses=error_responses(401, 403, 422))
async def pull(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> PullOut:
    """Everything in your scope that changed after the cursor, oldest first (no cursor: all)."""
    out = await svc.pull(session, caller, svc.SyncContext(cipher), cursor=cursor, limit=limit)
    return PullOut.model_validate(out)


@router.post(
    "/receipts",
    response_model=ReceiptsOut,
    response_model_exclude_none=True,
    responses=error_responses(401, 403, 422),
)
async def receipts(session: SessionDep, caller: Caller, body: ReceiptsIn) -> ReceiptsOut:
    """Which of these ops the server holds, and their results."""
    out = await svc.receipts(session, caller, body.device_id, body.op_ids)
    return ReceiptsOut(receipts=[Receipt.model_validate(r) for r in out])


@router.get("/conflicts", response_model=ConflictPage, responses=error_responses(401, 403, 422))
async def list_conflicts(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    status: Annotated[str | None, Query(pattern="^(open|resolved)$")] = "open",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ConflictPage:
    """Edits that overlapped a server change, waiting for the township: the phone's values beside
    the server's current ones, with the person and household concerned."""
    rows, nxt = await svc.list_conflicts(session, caller, status=status, limit=limit, cursor=cursor)
    items = await svc.conflict_items(session, caller, svc.SyncContext(cipher), rows)
    return ConflictPage(items=[ConflictItem.model_validate(c) for c in items], next_cursor=nxt)


@router.post(
    "/conflicts/{conflict_id:uuid}/resolve",
    response_model=ResolveOut,
    responses=error_responses(401, 403, 404, 409, 412, 422),
)
async def resolve(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    conflict_id: uuid.UUID,
    body: ResolveIn,
    request: Request,
) -> ResolveOut:
    """Township/county: apply the chosen values to the record; the conflict closes."""
    del request
    conflict, record = await svc.resolve_conflict(
        session, caller, svc.SyncContext(cipher), conflict_id, body.values
    )
    return ResolveOut(conflict=ConflictOut.model_validate(svc.conflict_view(conflict)), record=record)

"""Migrant records, partner notifications (machine-to-machine) and the notification inbox."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from app.core.errors import PROBLEM_JSON, error_responses
from app.core.openapi import replayed
from app.core.pagination import Cursor, Limit, Page
from app.deps import Caller, CipherDep, SessionDep
from app.models.migrants import (
    Direction,
    InboxStatus,
    MigrantClose,
    MigrantConfirm,
    MigrantCreate,
    MigrantDetail,
    MigrantItem,
    MigrantPublic,
    MigrantRefuse,
    MigrantStatus,
    NotificationAccept,
    NotificationDismiss,
    NotificationKind,
    NotificationPublic,
    NotificationReceipt,
    NotificationStatus,
    NotificationStatusPublic,
    PartnerNotification,
    PartnerNotificationIn,
)
from app.services import migrants as svc
from app.services import partner as partner_svc

router = APIRouter(prefix="/api/v1")


def _etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


# --- migrant records ----------------------------------------------------------------------------


@router.post(
    "/migrants",
    response_model=MigrantPublic,
    status_code=201,
    tags=["migrants"],
    responses={**error_responses(401, 403, 404, 409, 422), **replayed(MigrantPublic)},
)
async def create_migrant(
    session: SessionDep, caller: Caller, cipher: CipherDep, body: MigrantCreate, response: Response
) -> MigrantPublic:
    """Open an inflow or outflow record (a retry with the same id is 200)."""
    migrant, created = await svc.create_migrant(session, caller, cipher, body)
    if not created:
        response.status_code = 200
    _etag(response, migrant.version)
    return svc.migrant_public(migrant, cipher)


@router.get(
    "/migrants",
    response_model=Page[MigrantItem],
    tags=["migrants"],
    responses=error_responses(401, 403, 422),
)
async def list_migrants(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    direction: Direction | None = None,
    status: MigrantStatus | None = None,
    village_code: Annotated[str | None, Query(pattern=r"^[0-9]{12}$")] = None,
    person_id: uuid.UUID | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[MigrantItem]:
    """Migrant records in your scope, open and closed, latest movement first (phones masked)."""
    rows, nxt = await svc.list_migrants(
        session,
        caller,
        direction=direction,
        status=status,
        village_code=village_code,
        person_id=person_id,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=await svc.migrant_items(session, cipher, rows), next_cursor=nxt)


@router.get(
    "/migrants/{migrant_id:uuid}",
    response_model=MigrantDetail,
    tags=["migrants"],
    responses=error_responses(401, 403, 404),
)
async def get_migrant(
    session: SessionDep, caller: Caller, cipher: CipherDep, migrant_id: uuid.UUID, response: Response
) -> MigrantDetail:
    """One migrant record with the full phone (the read is written to the audit log); also, for
    the place holding her, a request waiting for her release."""
    migrant = await svc.read_migrant_in_full(session, caller, migrant_id)
    _etag(response, migrant.version)
    return svc.migrant_detail(migrant, cipher)


@router.post(
    "/migrants/{migrant_id:uuid}/close",
    response_model=MigrantPublic,
    tags=["migrants"],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def close_migrant(
    session: SessionDep, caller: Caller, cipher: CipherDep, migrant_id: uuid.UUID, body: MigrantClose
) -> MigrantPublic:
    """Close an open record with a reason (returned, moved on, settled, deceased)."""
    migrant = await svc.close_migrant(session, caller, migrant_id, body)
    return svc.migrant_public(migrant, cipher)


@router.post(
    "/migrants/{migrant_id:uuid}/confirm",
    response_model=MigrantPublic,
    tags=["migrants"],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def confirm_migrant(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    migrant_id: uuid.UUID,
    body: MigrantConfirm | None = None,
) -> MigrantPublic:
    """The person's current place releases her into a `pending_release` inflow (its id is the
    `source_id` of her `migrant_release` task): her register entry moves to the receiving village
    with her open work and (unless `children_stay`) her children under 16. The receiving side
    itself: 403 `forbidden`."""
    migrant = await svc.confirm_transfer(session, caller, migrant_id, body or MigrantConfirm())
    return svc.migrant_public(migrant, cipher)


@router.post(
    "/migrants/{migrant_id}/refuse",
    response_model=MigrantPublic,
    tags=["migrants"],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def refuse_migrant(
    session: SessionDep, caller: Caller, cipher: CipherDep, migrant_id: uuid.UUID, body: MigrantRefuse
) -> MigrantPublic:
    """The person's current place refuses a `pending_release` inflow: it becomes `refused` and
    the receiving village gets a task with the reason; nothing about her changes. The receiving
    side itself: 403 `forbidden`."""
    migrant = await svc.refuse_transfer(session, caller, migrant_id, body)
    return svc.migrant_public(migrant, cipher)


# --- partner notifications ----------------------------------------------------------------------


def _notification_schema() -> dict[str, Any]:
    schema = PartnerNotificationIn.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


@router.post(
    "/partner/notifications",
    response_model=NotificationReceipt,
    status_code=202,
    tags=["partner"],
    responses=error_responses(400, 401, 403, 409, 422),
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _notification_schema()}}}
    },
)
async def post_notification(
    request: Request,
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="Required. The same key and body again get the first answer.",
        ),
    ] = None,
) -> Response:
    """Partner systems: send a notification (body: ``PartnerNotificationIn``). Answered 202
    ``received``; its processed status is read with GET. ``area_code`` must be a village of
    your county (a township only for ``business_licensed``): another county's is 403
    ``out_of_scope``, a township for a residence 422. Only your county's records are matched."""
    raw = await request.body()
    answer = await partner_svc.receive(session, caller, cipher, key=idempotency_key, raw=raw)
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    media = PROBLEM_JSON if answer.status >= 400 else "application/json"
    return JSONResponse(answer.body, status_code=answer.status, media_type=media, headers=headers)


@router.get(
    "/partner/notifications",
    response_model=Page[NotificationStatusPublic],
    tags=["partner"],
    responses=error_responses(401, 403, 422),
)
async def list_own_notifications(
    session: SessionDep,
    caller: Caller,
    status: NotificationStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[NotificationStatusPublic]:
    """Partner systems: the notifications you sent, oldest first (``status=`` to filter); only
    yours. Other roles: 403 ``forbidden``."""
    rows, nxt = await partner_svc.list_own(session, caller, status=status, limit=limit, cursor=cursor)
    return Page(items=[_status_public(n) for n in rows], next_cursor=nxt)


def _status_public(n: PartnerNotification) -> NotificationStatusPublic:
    return NotificationStatusPublic(id=n.id, status=NotificationStatus(n.status), received_at=n.received_at)


@router.get(
    "/partner/notifications/{notification_id:uuid}",
    response_model=NotificationStatusPublic,
    tags=["partner"],
    responses=error_responses(401, 403, 404),
)
async def get_notification_status(
    session: SessionDep, caller: Caller, notification_id: uuid.UUID
) -> NotificationStatusPublic:
    """Partner systems: the status of a notification you sent."""
    n = await partner_svc.notification_status(session, caller, notification_id)
    return _status_public(n)


# --- the inbox ----------------------------------------------------------------------------------


@router.get(
    "/migrant-notifications",
    response_model=Page[NotificationPublic],
    tags=["migrants"],
    responses=error_responses(401, 403, 422),
)
async def list_notifications(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    status: InboxStatus | None = None,
    kind: NotificationKind | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[NotificationPublic]:
    """Partner notifications about your area (``status=pending``: waiting for a decision)."""
    rows, nxt = await partner_svc.list_inbox(
        session, caller, status=status, kind=kind, limit=limit, cursor=cursor
    )
    return Page(items=await partner_svc.notification_views(session, caller, cipher, rows), next_cursor=nxt)


@router.get(
    "/migrant-notifications/{notification_id:uuid}",
    response_model=NotificationPublic,
    tags=["migrants"],
    responses=error_responses(401, 403, 404),
)
async def get_notification(
    session: SessionDep, caller: Caller, cipher: CipherDep, notification_id: uuid.UUID
) -> NotificationPublic:
    """One notification about your area."""
    n = await partner_svc.get_notification(session, caller, notification_id)
    return (await partner_svc.notification_views(session, caller, cipher, [n]))[0]


@router.post(
    "/migrant-notifications/{notification_id:uuid}/accept",
    response_model=NotificationPublic,
    tags=["migrants"],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def accept_notification(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    notification_id: uuid.UUID,
    body: NotificationAccept | None = None,
) -> NotificationPublic:
    """Apply a pending notification: create or update the migrant record (and the person if
    new), or close it for a cancellation. Decided once; then 409."""
    n = await partner_svc.accept(session, caller, cipher, notification_id, body or NotificationAccept())
    return (await partner_svc.notification_views(session, caller, cipher, [n]))[0]


@router.post(
    "/migrant-notifications/{notification_id:uuid}/dismiss",
    response_model=NotificationPublic,
    tags=["migrants"],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def dismiss_notification(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    notification_id: uuid.UUID,
    body: NotificationDismiss,
) -> NotificationPublic:
    """Dismiss a pending notification with a reason. Decided once; then 409."""
    n = await partner_svc.dismiss(session, caller, notification_id, body)
    return (await partner_svc.notification_views(session, caller, cipher, [n]))[0]

"""Areas, users, machine clients and the audit log."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.core.errors import error_responses
from app.core.pagination import Cursor, Limit, Page
from app.deps import Caller, IfMatch, SessionDep
from app.models.areas import AreaCreate, AreaPublic
from app.models.audit import AuditEventPublic
from app.models.formats import TimestampFilter
from app.models.users import (
    ClientCreate,
    ClientCreated,
    ClientPublic,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from app.services import areas as areas_svc
from app.services import audit as audit_svc
from app.services import users as users_svc

router = APIRouter(prefix="/api/v1")


@router.get("/areas", response_model=Page[AreaPublic], tags=["areas"], responses=error_responses(401, 422))
async def list_areas(
    session: SessionDep,
    caller: Caller,
    parent_code: Annotated[str | None, Query(pattern=r"^[0-9]{12}$")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AreaPublic]:
    """Areas in your scope, optionally the children of one area."""
    rows, nxt = await areas_svc.list_areas(
        session, caller, parent_code=parent_code, limit=limit, cursor=cursor
    )
    return Page(items=[AreaPublic.model_validate(a, from_attributes=True) for a in rows], next_cursor=nxt)


@router.post(
    "/areas",
    response_model=AreaPublic,
    status_code=201,
    tags=["areas"],
    responses=error_responses(401, 403, 409, 422),
)
async def create_area(session: SessionDep, caller: Caller, body: AreaCreate) -> AreaPublic:
    """Add an area (admin); level and parent follow from the code."""
    area = await areas_svc.create_area(session, caller, body)
    return AreaPublic.model_validate(area, from_attributes=True)


@router.post(
    "/users",
    response_model=UserPublic,
    status_code=201,
    tags=["users"],
    responses=error_responses(401, 403, 409, 422),
)
async def create_user(session: SessionDep, caller: Caller, body: UserCreate) -> UserPublic:
    """Create a user of your county (admin)."""
    user = await users_svc.create_user(session, caller, body)
    return UserPublic.model_validate(user, from_attributes=True)


@router.get("/users", response_model=Page[UserPublic], tags=["users"], responses=error_responses(401, 403))
async def list_users(
    session: SessionDep, caller: Caller, limit: Limit = 50, cursor: Cursor = None
) -> Page[UserPublic]:
    """Users of your county (admin)."""
    rows, nxt = await users_svc.list_users(session, caller, limit=limit, cursor=cursor)
    return Page(items=[UserPublic.model_validate(u, from_attributes=True) for u in rows], next_cursor=nxt)


@router.patch(
    "/users/{user_id:uuid}",
    response_model=UserPublic,
    tags=["users"],
    responses=error_responses(401, 403, 404, 409, 412, 422, 428),
)
async def update_user(
    session: SessionDep, caller: Caller, user_id: uuid.UUID, body: UserUpdate, expected: IfMatch
) -> UserPublic:
    """Disable, re-role, move or reset the password of a user (admin, If-Match); ends their logins."""
    user = await users_svc.update_user(session, caller, user_id, body, expected)
    return UserPublic.model_validate(user, from_attributes=True)


@router.post(
    "/clients",
    response_model=ClientCreated,
    status_code=201,
    tags=["users"],
    responses=error_responses(401, 403, 422),
)
async def create_client(session: SessionDep, caller: Caller, body: ClientCreate) -> ClientCreated:
    """Register a partner or dashboard client (admin); the secret is shown only here."""
    client, secret = await users_svc.create_client(session, caller, body)
    public = ClientPublic.model_validate(client, from_attributes=True)
    return ClientCreated(**public.model_dump(), client_secret=secret)


@router.get(
    "/clients",
    response_model=Page[ClientPublic],
    tags=["users"],
    responses=error_responses(401, 403),
)
async def list_clients(
    session: SessionDep, caller: Caller, limit: Limit = 50, cursor: Cursor = None
) -> Page[ClientPublic]:
    """Machine clients of your county (admin)."""
    rows, nxt = await users_svc.list_clients(session, caller, limit=limit, cursor=cursor)
    return Page(items=[ClientPublic.model_validate(c, from_attributes=True) for c in rows], next_cursor=nxt)


@router.get(
    "/audit-events",
    response_model=Page[AuditEventPublic],
    tags=["audit"],
    responses=error_responses(401, 403, 422),
)
async def list_audit_events(
    session: SessionDep,
    caller: Caller,
    actor_id: uuid.UUID | None = None,
    entity: Annotated[str | None, Query(max_length=32)] = None,
    entity_id: Annotated[str | None, Query(max_length=64)] = None,
    from_: Annotated[TimestampFilter | None, Query(alias="from", description="at or after")] = None,
    to: Annotated[TimestampFilter | None, Query(description="before")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AuditEventPublic]:
    """The audit trail of your county, newest first (admin)."""
    rows, nxt = await audit_svc.list_events(
        session,
        caller,
        actor_id=actor_id,
        entity=entity,
        entity_id=entity_id,
        from_=from_,
        to=to,
        limit=limit,
        cursor=cursor,
    )
    return Page(
        items=[AuditEventPublic.model_validate(e, from_attributes=True) for e in rows],
        next_cursor=nxt,
    )

"""Auth endpoints: token (password and client-credentials grants), refresh, logout, me."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from app.core.context import client_ip_var
from app.core.errors import error_responses
from app.deps import AuthCtx, Caller, SessionDep
from app.models.auth import RefreshRequest, TokenPair
from app.models.users import Me
from app.services import auth as svc

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.post(
    "/auth/token",
    response_model=TokenPair,
    response_model_exclude_none=True,
    responses=error_responses(401, 422, 429),
)
async def token(
    session: SessionDep,
    ctx: AuthCtx,
    grant_type: Annotated[str, Form(max_length=32)],
    username: Annotated[str | None, Form(max_length=64)] = None,
    password: Annotated[str | None, Form(max_length=256)] = None,
    client_id: Annotated[str | None, Form(max_length=64)] = None,
    client_secret: Annotated[str | None, Form(max_length=256)] = None,
) -> TokenPair:
    """Log in: ``password`` grant for people, ``client_credentials`` for machine clients."""
    ip = client_ip_var.get()
    if grant_type == "password":
        if not username or password is None:
            raise svc.bad_grant("username and password are required")
        return await svc.password_login(session, ctx, username=username, password=password, ip=ip)
    if grant_type == "client_credentials":
        if not client_id or client_secret is None:
            raise svc.bad_grant("client_id and client_secret are required")
        return await svc.client_login(session, ctx, client_id=client_id, secret=client_secret, ip=ip)
    raise svc.bad_grant("grant_type must be password or client_credentials")


@router.post("/auth/refresh", response_model=TokenPair, responses=error_responses(401, 422))
async def refresh(session: SessionDep, ctx: AuthCtx, body: RefreshRequest) -> TokenPair:
    """Rotate a refresh token; a reuse within 60 s returns the same pair, later ends the login."""
    return await svc.refresh(session, ctx, body.refresh_token)


@router.post("/auth/logout", status_code=204, responses=error_responses(401, 422))
async def logout(session: SessionDep, ctx: AuthCtx, caller: Caller, body: RefreshRequest) -> Response:
    """End the login of this refresh token."""
    await svc.logout(session, ctx, caller, body.refresh_token)
    return Response(status_code=204)


@router.get("/me", response_model=Me, responses=error_responses(401))
async def me(request: Request, caller: Caller) -> Me:
    """Who am I: id, username, display name, role and area."""
    del request
    return Me(
        id=caller.id,
        username=caller.username,
        display_name=caller.display_name,
        role=caller.role,
        area_code=caller.area_code,
    )

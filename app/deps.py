"""FastAPI dependencies: the request's session (one transaction) and its caller."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.authz.actor import Actor
from app.core.db import session_scope
from app.core.errors import PreconditionRequired, Unauthorized, ValidationFailed
from app.core.security import FieldCipher
from app.services.auth import AuthContext, authenticate


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with session_scope(request.app.state.sessionmaker) as session:
        yield session


# scope="function": commit (or roll back) before the response is sent, so a failed commit
# becomes an error response and a client never sees success for something not stored.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_auth_context(request: Request) -> AuthContext:
    ctx: AuthContext = request.app.state.auth
    return ctx


AuthCtx = Annotated[AuthContext, Depends(get_auth_context)]


async def current_actor(request: Request, session: SessionDep, ctx: AuthCtx) -> Actor:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("A bearer access token is required", code="unauthorized")
    actor = await authenticate(session, ctx, token.strip())
    session.info["actor"] = actor
    request.state.actor = actor
    return actor


Caller = Annotated[Actor, Depends(current_actor)]


VERSION_RE = re.compile(r"[0-9]{1,9}")


async def if_match(if_match: Annotated[str | None, Header(alias="If-Match")] = None) -> int:
    """The version a PATCH was based on: 428 without the header; 422 ``invalid_if_match`` unless
    it is 1–9 ASCII digits (``str.isdigit`` also takes ``"²"``, which ``int`` refuses, and
    ``int`` takes other scripts' digits)."""
    if if_match is None:
        raise PreconditionRequired("Send If-Match with the version you read (its ETag)")
    value = if_match.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not VERSION_RE.fullmatch(value):
        raise ValidationFailed('If-Match must be a version ETag like "3"', code="invalid_if_match")
    return int(value)


IfMatch = Annotated[int, Depends(if_match)]


async def get_cipher(request: Request) -> FieldCipher:
    cipher: FieldCipher = request.app.state.cipher
    return cipher


CipherDep = Annotated[FieldCipher, Depends(get_cipher)]

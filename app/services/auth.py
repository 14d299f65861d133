"""Logins, token rotation with reuse detection, logout, and the caller of each request.

- Password grant (people) and client-credentials grant (machines) each open a ``LoginSession``.
- Refresh rotates: the old refresh token dies, the new pair is recorded (encrypted) on the old
  token's row. The same old token again within the grace period (a phone that lost the answer)
  returns that same pair; later, it is treated as stolen and the whole login is revoked.
- Every request re-reads the login and the principal, so a disabled user or a revoked login is
  refused at once, and role/area come from the database, not from a possibly stale token.
- Failed logins are counted per username (without regard to case) and per client address (the
  peer, or what a configured proxy forwarded: ``JIAHE_FORWARDED_ALLOW_IPS``): slowed after a
  few, refused with 429 after more (moving window, in process memory).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from sqlalchemy import and_, bindparam, func
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from app.authz.actor import Actor
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import InvalidCredentials, TooManyRequests, Unauthorized, ValidationFailed
from app.core.security import FieldCipher, TokenService, verify_password_async
from app.models.auth import LoginSession, RefreshToken, TokenPair
from app.models.users import MachineClient, Role, User
from app.services import audit


class LoginThrottle:
    def __init__(self, settings: Settings) -> None:
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        window = settings.login_window_seconds
        self.slow = RateLimitItemPerSecond(settings.login_slow_after, window)
        self.block = RateLimitItemPerSecond(settings.login_block_after, window)
        self.delay = settings.login_slow_seconds
        self.window = window

    def _keys(self, username: str, ip: str | None) -> list[str]:
        return [f"user:{username.lower()}", f"ip:{ip or '-'}"]

    async def before_attempt(self, username: str, ip: str | None) -> None:
        keys = self._keys(username, ip)
        for key in keys:
            if not await self.limiter.test(self.block, key):
                raise TooManyRequests(
                    "Too many failed logins; try again later",
                    code="too_many_attempts",
                    headers={"Retry-After": str(self.window)},
                )
        for key in keys:
            if not await self.limiter.test(self.slow, key):
                await asyncio.sleep(self.delay)
                return

    async def failed(self, username: str, ip: str | None) -> None:
        for key in self._keys(username, ip):
            await self.limiter.hit(self.slow, key)
            await self.limiter.hit(self.block, key)

    async def succeeded(self, username: str) -> None:
        key = self._keys(username, None)[0]
        await self.limiter.clear(self.slow, key)
        await self.limiter.clear(self.block, key)


@dataclass
class AuthContext:
    tokens: TokenService
    cipher: FieldCipher
    throttle: LoginThrottle
    grace_seconds: int


async def _issue(
    session: AsyncSession,
    ctx: AuthContext,
    login: LoginSession,
    *,
    role: str,
    area: str,
    with_refresh: bool,
) -> TokenPair:
    sub = str(login.principal_id)
    sid = str(login.id)
    access, _, _ = ctx.tokens.sign(
        sub=sub, typ="access", role=role, area=area, sid=sid, ttl=ctx.tokens.access_ttl
    )
    pair = TokenPair(access_token=access, expires_in=int(ctx.tokens.access_ttl.total_seconds()))
    if with_refresh:
        refresh, jti, exp = ctx.tokens.sign(
            sub=sub, typ="refresh", role=role, area=area, sid=sid, ttl=ctx.tokens.refresh_ttl
        )
        session.add(RefreshToken(jti=jti, session_id=login.id, issued_at=utcnow(), expires_at=exp))
        pair.refresh_token = refresh
    return pair


async def check_password(
    session: AsyncSession, ctx: AuthContext, *, username: str, password: str, ip: str | None
) -> User:
    """The user of a username and password, through the throttle (the API's password grant and
    the web sign-in both come here): 401 for a wrong pair or a disabled user, 429 when blocked."""
    await ctx.throttle.before_attempt(username, ip)
    # Usernames are unique without regard to case (a unique index on lower(username)), and a
    # login finds its user in any case: ``ADMIN`` is ``admin`` (the throttle keys likewise).
    stmt = select(User).where(func.lower(User.username) == username.lower())
    user = (await session.execute(stmt)).scalar_one_or_none()
    ok = await verify_password_async(password, user.password_hash if user else None)
    if user is None or not ok or user.disabled:
        await ctx.throttle.failed(username, ip)
        raise InvalidCredentials("Wrong username or password")
    await ctx.throttle.succeeded(username)
    return user


async def open_login(
    session: AsyncSession, user: User, *, channel: str | None = None
) -> tuple[LoginSession, Actor]:
    """A new login of a user (audited; ``channel`` "web" for a browser sign-in)."""
    login = LoginSession(principal_id=user.id, principal_kind="user")
    session.add(login)
    await session.flush()
    actor = Actor(
        id=user.id,
        kind="user",
        role=Role(user.role),
        area_code=user.area_code,
        session_id=login.id,
        username=user.username,
        display_name=user.display_name,
    )
    audit.record(session, actor, "login", "user", user.id, channel)
    return login, actor


async def password_login(
    session: AsyncSession, ctx: AuthContext, *, username: str, password: str, ip: str | None
) -> TokenPair:
    user = await check_password(session, ctx, username=username, password=password, ip=ip)
    login, _ = await open_login(session, user)
    return await _issue(session, ctx, login, role=str(user.role), area=user.area_code, with_refresh=True)


async def client_login(
    session: AsyncSession, ctx: AuthContext, *, client_id: str, secret: str, ip: str | None
) -> TokenPair:
    await ctx.throttle.before_attempt(client_id, ip)
    client = (
        await session.execute(select(MachineClient).where(MachineClient.client_id == client_id))
    ).scalar_one_or_none()
    ok = await verify_password_async(secret, client.secret_hash if client else None)
    if client is None or not ok or client.disabled:
        await ctx.throttle.failed(client_id, ip)
        raise InvalidCredentials("Wrong client id or secret")
    await ctx.throttle.succeeded(client_id)
    login = LoginSession(principal_id=client.id, principal_kind="client")
    session.add(login)
    await session.flush()
    actor = Actor(
        id=client.id, kind="client", role=Role(client.role), area_code=client.area_code, session_id=login.id
    )
    audit.record(session, actor, "login", "machine_client", client.id)
    return await _issue(session, ctx, login, role=str(client.role), area=client.area_code, with_refresh=False)


async def _principal(session: AsyncSession, login: LoginSession) -> tuple[Role, str, str, str, bool] | None:
    """(role, area, username, display name, disabled) of a login's principal."""
    if login.principal_kind == "user":
        user = await session.get(User, login.principal_id)
        if user is None:
            return None
        return Role(user.role), user.area_code, user.username, user.display_name, user.disabled
    client = await session.get(MachineClient, login.principal_id)
    if client is None:
        return None
    return Role(client.role), client.area_code, client.client_id, client.name, client.disabled


async def refresh(session: AsyncSession, ctx: AuthContext, token: str) -> TokenPair:
    claims = ctx.tokens.decode(token, typ="refresh")
    stmt = select(RefreshToken).where(RefreshToken.jti == claims.jti).with_for_update()
    row = (await session.execute(stmt)).scalar_one_or_none()
    dead = Unauthorized("Refresh token is not valid", code="invalid_token")
    if row is None:
        raise dead
    login = await session.get(LoginSession, row.session_id, with_for_update=True)
    if login is None or login.revoked_at is not None or str(login.principal_id) != claims.sub:
        raise dead
    principal = await _principal(session, login)
    if principal is None or principal[4]:
        raise dead
    now = utcnow()
    if row.rotated_at is not None:
        age = (now - row.rotated_at).total_seconds()
        if age <= ctx.grace_seconds and row.successor_pair:
            plain = ctx.cipher.decrypt(row.successor_pair, context=b"refresh")
            return TokenPair.model_validate(json.loads(plain))
        login.revoked_at = now
        login.revoked_reason = "refresh_reuse"
        audit.record(session, None, "revoke", "login_session", login.id, "refresh token reuse")
        dead.detail = "Refresh token was already used; this login has been ended"
        dead.commit_anyway = True
        raise dead
    role, area = principal[0], principal[1]
    pair = await _issue(session, ctx, login, role=role.value, area=area, with_refresh=True)
    row.rotated_at = now
    row.successor_pair = ctx.cipher.encrypt(pair.model_dump_json(), context=b"refresh")
    await session.flush()
    return pair


async def logout(session: AsyncSession, ctx: AuthContext, actor: Actor, token: str) -> None:
    """Ends the login the refresh token belongs to, if it is the caller's. Always 204."""
    try:
        claims = ctx.tokens.decode(token, typ="refresh")
    except Unauthorized:
        return
    if claims.sub != str(actor.id):
        return
    login = await session.get(LoginSession, uuid.UUID(claims.sid))
    if login is not None and login.revoked_at is None:
        login.revoked_at = utcnow()
        login.revoked_reason = "logout"
        audit.record(session, actor, "logout", "login_session", login.id)


def _principal_of_session() -> Any:
    """One round trip per request: the login and its principal (user or machine client)
    together. Built once: constructing it per request cost more than running it."""
    ls = LoginSession.__table__  # type: ignore[attr-defined]
    us = User.__table__  # type: ignore[attr-defined]
    mc = MachineClient.__table__  # type: ignore[attr-defined]
    return (
        sa_select(
            ls.c.principal_id,
            ls.c.principal_kind,
            ls.c.revoked_at,
            func.coalesce(us.c.role, mc.c.role).label("role"),
            func.coalesce(us.c.area_code, mc.c.area_code).label("area_code"),
            func.coalesce(us.c.username, mc.c.client_id).label("username"),
            func.coalesce(us.c.display_name, mc.c.name).label("display_name"),
            func.coalesce(us.c.disabled, mc.c.disabled).label("disabled"),
        )
        .select_from(ls)
        .outerjoin(us, and_(ls.c.principal_kind == "user", us.c.id == ls.c.principal_id))
        .outerjoin(mc, and_(ls.c.principal_kind == "client", mc.c.id == ls.c.principal_id))
        .where(ls.c.id == bindparam("sid"))
    )


_PRINCIPAL_OF_SESSION = _principal_of_session()


async def authenticate(session: AsyncSession, ctx: AuthContext, token: str) -> Actor:
    """The caller of a request, from its access token, checked against the database."""
    claims = ctx.tokens.decode(token, typ="access")
    try:
        sid = uuid.UUID(claims.sid)
    except ValueError:
        raise Unauthorized("Invalid token", code="invalid_token") from None
    row = (await session.execute(_PRINCIPAL_OF_SESSION, {"sid": sid})).one_or_none()
    if row is None or row.revoked_at is not None or str(row.principal_id) != claims.sub:
        raise Unauthorized("This login has ended", code="invalid_token")
    if row.role is None or row.disabled:
        raise Unauthorized("This account is disabled", code="invalid_token")
    return Actor(
        id=row.principal_id,
        kind=row.principal_kind,
        role=Role(row.role),
        area_code=row.area_code,
        session_id=sid,
        username=row.username,
        display_name=row.display_name,
    )


def bad_grant(detail: str) -> ValidationFailed:
    return ValidationFailed(detail, code="unsupported_grant_type")

"""Browser sign-in: a ``WebSession`` row per signed-in browser, tied to a ``LoginSession``.

The sign-in goes through the same password check and throttle as the API's password grant
(``auth.check_password``), so a blocked or disabled user is blocked here too; machine clients
have no password and never sign in here. A request's caller is re-read from the database each
time (one query: web session, login, user), exactly like a bearer token's: a revoked login or a
disabled user is refused at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.authz.actor import Actor
from app.core.config import Settings
from app.core.db import utcnow
from app.models.auth import LoginSession
from app.models.users import PERSON_ROLES, Role, User
from app.models.web import WebSession
from app.services import audit
from app.services.auth import AuthContext, check_password, open_login

COOKIE = "jiahe_session"
# Seen this recently: the idle clock is not written again (one UPDATE a minute, not per click).
TOUCH_AFTER = timedelta(seconds=60)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Signed:
    actor: Actor
    csrf_token: str


async def sign_in(
    session: AsyncSession,
    ctx: AuthContext,
    settings: Settings,
    *,
    username: str,
    password: str,
    ip: str | None,
) -> tuple[str, Signed]:
    """(cookie token, signed-in caller) for a right username and password; raises as the API's
    password grant does (401 wrong or disabled, 429 throttled)."""
    user: User = await check_password(session, ctx, username=username, password=password, ip=ip)
    login, actor = await open_login(session, user, channel="web")
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = WebSession(
        token_hash=_digest(token),
        login_id=login.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=settings.web_session_hours),
    )
    session.add(row)
    await session.flush()
    return token, Signed(actor=actor, csrf_token=row.csrf_token)


def _caller_query() -> Any:
    ws = WebSession.__table__  # type: ignore[attr-defined]
    ls = LoginSession.__table__  # type: ignore[attr-defined]
    us = User.__table__  # type: ignore[attr-defined]
    return (
        select(
            ws.c.token_hash,
            ws.c.csrf_token,
            ws.c.last_seen_at,
            ws.c.expires_at,
            ls.c.id.label("login_id"),
            ls.c.revoked_at,
            us.c.id.label("user_id"),
            us.c.role,
            us.c.area_code,
            us.c.username,
            us.c.display_name,
            us.c.disabled,
        )
        .select_from(ws)
        .join(ls, ls.c.id == ws.c.login_id)
        .join(us, and_(ls.c.principal_kind == "user", us.c.id == ls.c.principal_id))
        .where(ws.c.token_hash == bindparam("digest"))
    )


_CALLER = _caller_query()


async def signed_in(session: AsyncSession, settings: Settings, token: str | None) -> Signed | None:
    """The caller of a browser request from its cookie, or None (no cookie, unknown, idle too
    long, past its hours, login revoked, user disabled or not a person's role)."""
    if not token or len(token) > 128:
        return None
    digest = _digest(token)
    row = (await session.execute(_CALLER, {"digest": digest})).one_or_none()
    if row is None or row.revoked_at is not None or row.disabled:
        return None
    now = utcnow()
    idle = timedelta(minutes=settings.web_idle_minutes)
    if now >= row.expires_at or now - row.last_seen_at >= idle:
        return None
    role = Role(row.role)
    if role not in PERSON_ROLES:
        return None
    if now - row.last_seen_at >= TOUCH_AFTER:
        ws = WebSession.__table__  # type: ignore[attr-defined]
        await session.execute(update(ws).where(ws.c.token_hash == digest).values(last_seen_at=now))
    actor = Actor(
        id=row.user_id,
        kind="user",
        role=role,
        area_code=row.area_code,
        session_id=row.login_id,
        username=row.username,
        display_name=row.display_name,
    )
    return Signed(actor=actor, csrf_token=row.csrf_token)


async def sign_out(session: AsyncSession, signed: Signed, token: str) -> None:
    """End the browser's login (its row goes, the login is revoked: audited)."""
    login = await session.get(LoginSession, signed.actor.session_id)
    if login is not None and login.revoked_at is None:
        login.revoked_at = utcnow()
        login.revoked_reason = "logout"
        audit.record(session, signed.actor, "logout", "login_session", login.id, "web")
    ws = WebSession.__table__  # type: ignore[attr-defined]
    await session.execute(delete(ws).where(ws.c.token_hash == _digest(token)))


__all__ = ["COOKIE", "Signed", "sign_in", "sign_out", "signed_in"]

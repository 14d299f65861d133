"""Users (people) and machine clients, managed by county admins."""

from __future__ import annotations

import uuid

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from app.authz.actor import Actor
from app.authz.policies import ADMIN_ROLES, require_role
from app.core.db import utcnow
from app.core.errors import Conflict, NotFound, OutOfScope, ValidationFailed
from app.core.pagination import paginate
from app.core.security import hash_password_async, new_secret
from app.models.areas import AreaLevel
from app.models.auth import LoginSession
from app.models.users import ClientCreate, MachineClient, Role, User, UserCreate, UserPublic, UserUpdate
from app.services import areas as areas_svc
from app.services.records import check_version, touch

# Which area levels each role may be placed at.
ROLE_LEVELS = {
    Role.village: {AreaLevel.village},
    Role.township: {AreaLevel.township},
    Role.county: {AreaLevel.county},
    Role.admin: {AreaLevel.county},
    Role.partner: {AreaLevel.county},
    Role.dashboard: {AreaLevel.county, AreaLevel.township},
}


async def _check_placement(session: AsyncSession, actor: Actor | None, role: Role, area_code: str) -> None:
    if actor is not None and not area_code.startswith(actor.county_code):
        raise OutOfScope("That area is outside your county")
    area = await areas_svc.require_area(session, area_code)
    if area.level not in ROLE_LEVELS[role]:
        allowed = ", ".join(sorted(lv.value for lv in ROLE_LEVELS[role]))
        raise ValidationFailed(
            f"A {role.value} user belongs to a {allowed} area",
            code="role_area_mismatch",
        )


async def create_user(session: AsyncSession, actor: Actor | None, data: UserCreate) -> User:
    """Admins create users of their county; ``actor=None`` is the command line."""
    if actor is not None:
        require_role(actor, *ADMIN_ROLES)
    await _check_placement(session, actor, data.role, data.area_code)
    # Unique without regard to case: ``Admin`` is taken when ``admin`` exists (the index on
    # lower(username) decides a race the same way).
    exists = await session.execute(select(User.id).where(func.lower(User.username) == data.username.lower()))
    if exists.first() is not None:
        raise Conflict("That username is taken", code="username_taken")
    user = User(
        username=data.username,
        password_hash=await hash_password_async(data.password),
        role=data.role,
        area_code=data.area_code,
        county_code=data.area_code[:6],
        display_name=data.display_name,
    )
    try:
        # A savepoint: the check above races with a concurrent create of the same name; the
        # unique index decides, and the loser gets the same 409 instead of a 500.
        async with session.begin_nested():
            session.add(user)
            await session.flush()
    except IntegrityError:
        raise Conflict("That username is taken", code="username_taken") from None
    return user


async def list_users(
    session: AsyncSession, actor: Actor, *, limit: int, cursor: str | None
) -> tuple[list[User], str | None]:
    require_role(actor, *ADMIN_ROLES)
    stmt = select(User).where(User.county_code == actor.county_code)
    return await paginate(session, stmt, order=[User.username, User.id], limit=limit, cursor=cursor)


async def get_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> User:
    require_role(actor, *ADMIN_ROLES)
    user = (
        await session.execute(select(User).where(User.id == user_id, User.county_code == actor.county_code))
    ).scalar_one_or_none()
    if user is None:
        raise NotFound("No user with this id")
    return user


async def revoke_logins(session: AsyncSession, principal_id: uuid.UUID, reason: str) -> None:
    rows = await session.execute(
        select(LoginSession).where(
            LoginSession.principal_id == principal_id,
            LoginSession.revoked_at.is_(None),  # type: ignore[union-attr]
        )
    )
    for login in rows.scalars():
        login.revoked_at = utcnow()
        login.revoked_reason = reason


async def update_user(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, data: UserUpdate, expected: int
) -> User:
    """Disabling, re-roling, moving or re-passwording a user ends their logins at once."""
    user = await get_user(session, actor, user_id)
    check_version(
        user.version, expected, UserPublic.model_validate(user, from_attributes=True).model_dump(mode="json")
    )
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if user.id == actor.id and (changes.get("disabled") or "role" in changes):
        raise Conflict("You cannot disable or re-role yourself", code="self_change")
    role = Role(changes.get("role", user.role))
    area_code = changes.get("area_code", user.area_code)
    if "role" in changes or "area_code" in changes:
        await _check_placement(session, actor, role, area_code)
    if not changes:
        # Nothing to change (an empty body, or only nulls): no new version, logins kept.
        return user
    if set(changes) - {"display_name"}:
        await revoke_logins(session, user.id, "user_changed")
    if "password" in changes:
        user.password_hash = await hash_password_async(changes.pop("password"))
    for key, value in changes.items():
        setattr(user, key, value)
    user.county_code = user.area_code[:6]
    touch(user)
    await session.flush()
    return user


async def create_client(
    session: AsyncSession, actor: Actor | None, data: ClientCreate
) -> tuple[MachineClient, str]:
    """A machine client; its secret is returned once and stored hashed."""
    if actor is not None:
        require_role(actor, *ADMIN_ROLES)
    await _check_placement(session, actor, data.role, data.area_code)
    secret = new_secret()
    client = MachineClient(
        client_id="cl_" + uuid.uuid4().hex[:20],
        secret_hash=await hash_password_async(secret),
        name=data.name,
        role=data.role,
        agency=data.agency,
        area_code=data.area_code,
        county_code=data.area_code[:6],
    )
    session.add(client)
    await session.flush()
    return client, secret


async def list_clients(
    session: AsyncSession, actor: Actor, *, limit: int, cursor: str | None
) -> tuple[list[MachineClient], str | None]:
    require_role(actor, *ADMIN_ROLES)
    stmt = select(MachineClient).where(MachineClient.county_code == actor.county_code)
    return await paginate(
        session,
        stmt,
        order=[MachineClient.created_at, MachineClient.id],
        limit=limit,
        cursor=cursor,
    )


async def get_client(session: AsyncSession, actor: Actor, client_id: uuid.UUID) -> MachineClient:
    """One machine client of the admin's county (never its secret: only its hash is stored)."""
    require_role(actor, *ADMIN_ROLES)
    stmt = select(MachineClient).where(
        MachineClient.id == client_id, MachineClient.county_code == actor.county_code
    )
    client = (await session.execute(stmt)).scalar_one_or_none()
    if client is None:
        raise NotFound("No client with this id")
    return client

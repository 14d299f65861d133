"""Factories for arranging state directly in the database (valid generated data only)."""

from __future__ import annotations

import itertools
import secrets
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import hash_password
from app.models.users import Agency, MachineClient, Role, User

_seq = itertools.count(1)


async def make_user(
    session: AsyncSession,
    *,
    role: str = "village",
    area_code: str = "430122100201",
    password: str | None = None,
    **overrides: Any,
) -> tuple[User, str]:
    password = password or "pw-" + secrets.token_hex(8)
    n = next(_seq)
    user = User(
        username=overrides.pop("username", f"{role}{n}"),
        password_hash=hash_password(password),
        role=Role(role),
        area_code=area_code,
        county_code=area_code[:6],
        display_name=overrides.pop("display_name", f"测试用户{n}"),
        **overrides,
    )
    session.add(user)
    await session.flush()
    return user, password


async def make_client(
    session: AsyncSession,
    *,
    role: str = "partner",
    area_code: str = "430122000000",
    agency: str | None = "police",
) -> tuple[MachineClient, str]:
    secret = "sec-" + secrets.token_hex(12)
    n = next(_seq)
    client = MachineClient(
        client_id=f"client{n}",
        secret_hash=hash_password(secret),
        name=f"client {n}",
        role=Role(role),
        agency=Agency(agency) if agency else None,
        area_code=area_code,
        county_code=area_code[:6],
    )
    session.add(client)
    await session.flush()
    return client, secret


_id_seq = itertools.count(1)


def id_number(birth_date: date, sex: str, area_code: str = "430122") -> str:
    """A valid, never-before-used (in this run) generated ID number."""
    from app.services.idnumber import generate_id_number

    return generate_id_number(
        area_code=area_code, birth_date=birth_date, sex=sex, sequence=next(_id_seq) % 500
    )

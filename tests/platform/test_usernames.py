"""Usernames are unique without regard to case; logins find the user in any case, and the
failed-login throttle counts every spelling of a name together."""

from __future__ import annotations

import sqlite3
import uuid

import pytest
from alembic import command
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select

from app.core.migrations import alembic_config
from app.main import create_app
from app.models.users import User
from tests.factories import make_user
from tests.households.test_api import COUNTY, V1, problem

REVISION = "b14a00000005"


def user_body(username: str) -> dict:
    return {
        "username": username,
        "password": "long-enough-password",
        "role": "village",
        "area_code": V1,
        "display_name": "王丽",
    }


async def test_a_username_differing_only_in_case_is_409(client_as, db):
    admin = await client_as("admin", COUNTY)
    r = await admin.post("/api/v1/users", json=user_body("Wang.Li"))
    assert r.status_code == 201, r.text
    for spelling in ("wang.li", "WANG.LI", "wAnG.lI"):
        problem(await admin.post("/api/v1/users", json=user_body(spelling)), 409, "username_taken")
    await db.rollback()
    names = (await db.execute(select(User.username).where(func.lower(User.username) == "wang.li"))).scalars()
    assert list(names) == ["Wang.Li"]


async def test_the_database_refuses_a_case_duplicate_too(db, areas):
    """The unique index on lower(username) holds whatever path writes (a race, a script)."""
    from sqlalchemy.exc import IntegrityError

    await make_user(db, username="admin")
    await db.commit()
    with pytest.raises(IntegrityError):
        await make_user(db, username="ADMIN")
    await db.rollback()


async def test_login_is_case_insensitive(anon, db, areas):
    user, password = await make_user(db, username="Village.Chen")
    await db.commit()
    for spelling in ("Village.Chen", "village.chen", "VILLAGE.CHEN"):
        r = await anon.post(
            "/api/v1/auth/token", data={"grant_type": "password", "username": spelling, "password": password}
        )
        assert r.status_code == 200, r.text
        me = await anon.get("/api/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
        assert me.json()["id"] == str(user.id)
        assert me.json()["username"] == "Village.Chen"
    r = await anon.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": "VILLAGE.CHEN", "password": "wrong-pw-1"},
    )
    problem(r, 401, "invalid_credentials")


async def test_failed_logins_count_every_spelling_together(settings, engine, db, areas):
    user, password = await make_user(db, username="township.zhao")
    await db.commit()
    app = create_app(settings.model_copy(update={"login_block_after": 3, "login_slow_after": 100}), engine)
    spellings = ["township.zhao", "TOWNSHIP.ZHAO", "Township.Zhao"]
    # Each attempt from its own address: only the name's count can refuse.
    for i, spelling in enumerate(spellings):
        async with AsyncClient(
            transport=ASGITransport(app=app, client=(f"192.0.2.{i + 1}", 1)), base_url="http://t"
        ) as c:
            data = {"grant_type": "password", "username": spelling, "password": "wrong-pw-1"}
            problem(await c.post("/api/v1/auth/token", data=data), 401, "invalid_credentials")
    async with AsyncClient(
        transport=ASGITransport(app=app, client=("192.0.2.9", 1)), base_url="http://t"
    ) as c:
        data = {"grant_type": "password", "username": "tOwNsHiP.zHaO", "password": password}
        problem(await c.post("/api/v1/auth/token", data=data), 429, "too_many_attempts")
    del user


def test_the_migration_stops_on_existing_case_duplicates(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'u.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "b14a00000004")
    db = sqlite3.connect(tmp_path / "u.db")
    for name in ("admin", "Admin", "other"):
        db.execute(
            'INSERT INTO "user" (id, username, password_hash, role, area_code, county_code, display_name,'
            " disabled, version, created_at, updated_at) VALUES (?, ?, 'x', 'admin', '430122000000',"
            " '430122', 'n', 0, 1, '2026-11-01 00:00:00', '2026-11-01 00:00:00')",
            (uuid.uuid4().hex, name),
        )
    db.commit()
    with pytest.raises(RuntimeError, match=r"1 username\(s\) exist in more than one letter case"):
        command.upgrade(cfg, REVISION)
    db.execute("UPDATE \"user\" SET username = 'admin2' WHERE username = 'Admin'")
    db.commit()
    command.upgrade(cfg, REVISION)
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")]
    assert "uq_user_lower_username" in names
    command.downgrade(cfg, "b14a00000004")
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")]
    assert "uq_user_lower_username" not in names
    db.close()

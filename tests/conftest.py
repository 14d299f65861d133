"""Test harness: one real database per run (SQLite file, or a fresh PostgreSQL database when
JIAHE_TEST_DATABASE_URL points at PostgreSQL), migrations applied once, every table emptied
before each test so each test sees only its own committed rows. Requests go through the real
ASGI app over httpx."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="jiahe-test-"))


def _test_env() -> None:
    from app.core.config import new_ec_private_pem

    os.environ["JIAHE_ENV"] = "test"
    os.environ["JIAHE_DEV_SECRETS_FILE"] = str(_TMP / "secrets.json")
    os.environ["JIAHE_JWT_PRIVATE_KEYS"] = json.dumps(
        {"k1": new_ec_private_pem(), "k0": new_ec_private_pem()}
    )
    os.environ["JIAHE_JWT_ACTIVE_KID"] = "k1"
    os.environ["JIAHE_FIELD_KEYS"] = json.dumps({"f1": base64.b64encode(secrets.token_bytes(32)).decode()})
    os.environ["JIAHE_FIELD_ACTIVE_KEY_ID"] = "f1"
    os.environ["JIAHE_BLIND_INDEX_KEY"] = base64.b64encode(secrets.token_bytes(32)).decode()
    os.environ["JIAHE_LOGIN_SLOW_SECONDS"] = "0.05"
    os.environ["JIAHE_LOG_LEVEL"] = "WARNING"
    url = os.environ.get("JIAHE_TEST_DATABASE_URL") or f"sqlite+aiosqlite:///{_TMP / 'test.db'}"
    os.environ["JIAHE_DATABASE_URL"] = url


_test_env()

from argon2 import PasswordHasher  # noqa: E402
from httpx import ASGITransport, AsyncClient  # noqa: E402
from sqlalchemy import JSON, String, inspect, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession  # noqa: E402

import app.core.security as security  # noqa: E402
import app.models.registry  # noqa: E402,F401
from app.core.config import Settings, complete_secrets  # noqa: E402
from app.core.db import make_engine, make_sessionmaker, metadata  # noqa: E402
from app.core.migrations import upgrade  # noqa: E402

# Cheap argon2 parameters: the same algorithm and code path, a fraction of the cost.
security._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
security._DUMMY_HASH = security._hasher.hash("dummy-password")

DATABASE_URL = os.environ["JIAHE_DATABASE_URL"]
IS_PG = DATABASE_URL.startswith("postgresql")


def pytest_report_header() -> str:
    return f"jiahe test database: {DATABASE_URL.split('@')[-1]}"


async def _recreate_pg_database(url: str) -> None:
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    base, _, name = dsn.rpartition("/")
    conn = await asyncpg.connect(base + "/postgres")
    try:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def settings() -> Settings:
    return complete_secrets(Settings())


@pytest.fixture(scope="session")
def migrated(settings: Settings) -> str:
    if IS_PG:
        asyncio.run(_recreate_pg_database(settings.database_url))
    upgrade(settings.database_url)
    return settings.database_url


@pytest.fixture(scope="session")
async def engine(settings: Settings, migrated: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(settings)
    yield eng
    await eng.dispose()


TABLES = [t.name for t in reversed(metadata.sorted_tables)]
_EXISTING: list[str] | None = None


@pytest.fixture(autouse=True)
async def clean_db(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    if "engine" not in request.fixturenames:
        yield
        return
    eng: AsyncEngine = request.getfixturevalue("engine")
    global _EXISTING
    if _EXISTING is None:
        async with eng.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        # Only migrated tables (a model without its migration is caught by the migrations test).
        _EXISTING = [t for t in TABLES if t in names]
    async with eng.begin() as conn:
        if IS_PG:
            names = ", ".join(f'"{t}"' for t in _EXISTING)
            await conn.execute(text(f"TRUNCATE {names} CASCADE"))
        else:
            for t in _EXISTING:
                await conn.execute(text(f'DELETE FROM "{t}"'))
    yield
    if request.node.get_closest_marker("plaintext_at_rest") is None:
        found = await plaintext_at_rest(eng)
        assert not found, f"personal data in clear at rest (table.column: kind): {found}"


# --- nothing personal in clear at rest ----------------------------------------------------------

# An ID number (17 digits and a check character) or a mainland mobile number standing alone:
# not inside a longer run of letters or digits (hex digests, base64 cipher text, area codes).
_ID_NUMBER_RE = re.compile(r"(?<![0-9A-Za-z])([0-9]{17}[0-9Xx])(?![0-9A-Za-z])")
_MOBILE_RE = re.compile(r"(?<![0-9A-Za-z])1[3-9][0-9]{9}(?![0-9A-Za-z])")
_SCAN: str | None = None


def _scan_statement(conn) -> str:  # type: ignore[no-untyped-def]
    """One SELECT (UNION ALL) of every text, varchar and JSON value of every table that holds a
    run of 11 digits or more (the database filters; Python checks what it returns)."""
    insp = inspect(conn)
    pg = conn.dialect.name == "postgresql"
    parts = []
    for table in sorted(insp.get_table_names()):
        for column in insp.get_columns(table):
            if not isinstance(column["type"], String | JSON):
                continue
            name = column["name"]
            value = f'CAST("{name}" AS TEXT)'
            digits = f"{value} ~ '[0-9]{{11}}'" if pg else f"{value} GLOB '*{'[0-9]' * 11}*'"
            parts.append(
                f"SELECT '{table}.{name}' AS place, {value} AS value FROM \"{table}\" WHERE {digits}"
            )
    return " UNION ALL ".join(parts)


def plaintext_findings(rows: list[tuple[str, str]]) -> list[str]:
    """``table.column: kind`` for every value holding a valid ID number or a mobile number."""
    from app.services.idnumber import check_char

    found = set()
    for place, value in rows:
        for number in _ID_NUMBER_RE.findall(value):
            if check_char(number[:17]) == number[17].upper():
                found.add(f"{place}: id_number")
        if _MOBILE_RE.search(value):
            found.add(f"{place}: phone")
    return sorted(found)


async def plaintext_at_rest(eng: AsyncEngine, *, reflect: bool = False) -> list[str]:
    """Scan every text column of every table for a plaintext ID number or mobile number (the
    ``clean_db`` fixture runs it after each test on what the test stored, with the statement
    built once; ``reflect`` builds it for this database). A test that must store one on
    purpose is marked ``plaintext_at_rest``."""
    global _SCAN
    async with eng.connect() as conn:
        if reflect:
            scan = await conn.run_sync(_scan_statement)
        else:
            scan = _SCAN = _SCAN or await conn.run_sync(_scan_statement)
        rows = (await conn.execute(text(scan))).all()
    return plaintext_findings([(str(p), str(v)) for p, v in rows])


@pytest.fixture(scope="session")
async def inspect_engine(settings: Settings, migrated: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(settings, sqlite_immediate=False)
    yield eng
    await eng.dispose()


@pytest.fixture
async def db(engine: AsyncEngine, inspect_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session for arranging and inspecting stored state; commit what you arrange."""
    async with make_sessionmaker(inspect_engine)() as session:
        yield session


@pytest.fixture
async def app(settings: Settings, engine: AsyncEngine):  # type: ignore[no-untyped-def]
    from app.main import create_app

    return create_app(settings, engine)


@pytest.fixture
async def anon(app) -> AsyncIterator[AsyncClient]:  # type: ignore[no-untyped-def]
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as c:
        yield c


@pytest.fixture
async def areas(db: AsyncSession) -> None:
    """The demo county 430122: 3 townships × 3 villages (no users)."""
    from app.services.areas import build_area
    from app.services.demo import COUNTY, TOWNSHIPS

    rows = [COUNTY] + [(c, n) for c, n, _ in TOWNSHIPS] + [v for *_, vs in TOWNSHIPS for v in vs]
    # A second county, to prove nothing leaks across counties.
    rows += [("430181000000", "浏阳市"), ("430181100000", "淮川街道"), ("430181100201", "沙坪村")]
    for code, name in rows:
        area = build_area(code, name)
        if area.level.value == "county":
            area.parent_code = None
        db.add(area)
        await db.flush()
    await db.commit()


ClientAs = Callable[..., Awaitable[AsyncClient]]


@pytest.fixture
async def client_as(app, db: AsyncSession, areas: None) -> AsyncIterator[ClientAs]:  # type: ignore[no-untyped-def]
    """``await client_as("village", "430122100201")`` → a client logged in as a new user of
    that role and area (through the real token endpoint)."""
    from tests.factories import make_user

    clients: list[AsyncClient] = []

    async def _make(role: str, area_code: str, **kw: object) -> AsyncClient:
        user, password = await make_user(db, role=role, area_code=area_code, **kw)
        await db.commit()
        c = AsyncClient(transport=ASGITransport(app=app), base_url="http://test")
        clients.append(c)
        r = await c.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": user.username, "password": password},
        )
        assert r.status_code == 200, r.text
        tokens = r.json()
        c.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        c.user = user  # type: ignore[attr-defined]
        c.tokens = tokens  # type: ignore[attr-defined]
        return c

    yield _make
    for c in clients:
        await c.aclose()

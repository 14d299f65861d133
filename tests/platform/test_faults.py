"""Database faults as the API shows them (issue 9): an exhausted pool is a quick 503
``database_busy`` with Retry-After while ``/healthz`` stays up; a connection lost inside a
transaction is a 503 ``database_unavailable`` even when the code that met the first error
handled it; a PostgreSQL that refuses connections while it restarts, or says nothing at all,
is a 503 within the pool timeout. Restarting a real PostgreSQL under load and killing the
server mid-push are drilled by ``scripts/faults.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.core.db import make_engine
from app.deps import SessionDep
from app.main import create_app
from tests.conftest import IS_PG
from tests.households.test_api import V1, problem

POOL_TIMEOUT = 0.5


async def _timed(c: AsyncClient, path: str) -> tuple[Response, float]:
    t0 = time.perf_counter()
    r = await c.get(path)
    return r, time.perf_counter() - t0


async def test_exhausted_pool_is_a_quick_503_with_retry_after_while_healthz_stays_up(settings, client_as):
    c = await client_as("village", V1)  # a valid token, from the normal app
    tight = settings.model_copy(
        update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout": POOL_TIMEOUT}
    )
    engine = make_engine(tight)
    app = create_app(tight, engine)
    try:
        async with AsyncClient(
            transport=ASGITransport(app=app), base_url="http://t", headers=dict(c.headers)
        ) as api:
            assert (await api.get("/api/v1/me")).status_code == 200
            async with engine.connect():  # someone holds the only connection
                (busy, waited), (health, health_s) = await asyncio.gather(
                    _timed(api, "/api/v1/households"), _timed(api, "/healthz")
                )
                body = problem(busy, 503, "database_busy")
                assert busy.headers["retry-after"] == "2"
                assert body["request_id"] == busy.headers["x-request-id"]
                # it waited for the pool timeout, not for the 30 s of SQLAlchemy's default pool
                assert POOL_TIMEOUT * 0.9 <= waited < POOL_TIMEOUT + 1.5, waited
                assert health.status_code == 200 and health.json() == {"status": "ok"}
                assert health_s < POOL_TIMEOUT, health_s  # answered while the other one waited
            r = await api.get("/api/v1/households")  # the connection is back: served again
            assert r.status_code == 200, r.text
            assert engine.pool.checkedout() == 0  # the failed request leaked no connection
    finally:
        await engine.dispose()


async def _cut_connection(session) -> None:  # type: ignore[no-untyped-def]
    """The database loses this session's connection mid-transaction: on PostgreSQL its backend
    is terminated from outside, on SQLite (no server) the connection is invalidated."""
    if IS_PG:
        pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        dsn = str(session.bind.url.set(drivername="postgresql"))
        admin = await asyncpg.connect(dsn)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
    else:
        await (await session.connection()).invalidate()


async def test_connection_lost_under_a_handled_savepoint_error_is_503_not_500(settings, engine):
    """Sync push applies each op in a savepoint and turns an ``SQLAlchemyError`` into a rejected
    op; when the connection dies there, the next statement raises SQLAlchemy's
    PendingRollbackError, which must still be a 503 (the client re-sends), not a 500."""
    app = create_app(settings, engine)
    reached: list[str] = []

    @app.post("/test-only/lost-connection")
    async def lost_connection(session: SessionDep) -> dict[str, str]:
        await session.execute(text("SELECT 1"))
        try:
            async with session.begin_nested():
                await _cut_connection(session)
                await session.execute(text("SELECT 1"))
        except SQLAlchemyError:
            reached.append("savepoint error handled")
        await session.execute(text("SELECT 1"))
        reached.append("not reached")
        return {}

    @app.get("/test-only/select-1")
    async def select_1(session: SessionDep) -> dict[str, int]:
        return {"one": (await session.execute(text("SELECT 1"))).scalar_one()}

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/test-only/lost-connection")
        body = problem(r, 503, "database_unavailable")
        assert r.headers["retry-after"] == "5" and "request_id" in body
        assert reached == ["savepoint error handled"]
        ok = await c.get("/test-only/select-1")  # the pool replaced the dead connection
        assert ok.status_code == 200 and ok.json() == {"one": 1}, ok.text


# A stand-in for a PostgreSQL server in trouble, speaking just enough of the wire protocol to
# asyncpg (the real driver): these run whatever database the suite uses.
_NEGOTIATIONS = {(80877103).to_bytes(4, "big"), (80877104).to_bytes(4, "big")}  # SSL, GSS encryption


@asynccontextmanager
async def _fake_postgres(answer: bytes | None) -> AsyncIterator[tuple[str, list[int]]]:
    """Yields (database URL, connection counter). Each connection is told "no" to TLS and
    then, after the startup message, gets ``answer`` (an ErrorResponse) or nothing at all."""
    seen: list[int] = []
    held: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(1)
        held.append(writer)
        try:
            while True:
                n = int.from_bytes(await reader.readexactly(4), "big")
                body = await reader.readexactly(n - 4)
                if body[:4] in _NEGOTIATIONS:
                    writer.write(b"N")
                    await writer.drain()
                    continue
                if answer is not None:
                    writer.write(answer)
                    await writer.drain()
                    writer.close()
                return  # with no answer: keep the connection open and say nothing
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/none", seen
    finally:
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()


def _error_response(sqlstate: str, message: str) -> bytes:
    fields = b"".join(k + v.encode() + b"\0" for k, v in ((b"S", "FATAL"), (b"C", sqlstate), (b"M", message)))
    fields += b"\0"
    return b"E" + (len(fields) + 4).to_bytes(4, "big") + fields


async def _request_through(settings, url: str, headers: dict[str, str]) -> tuple[Response, float, int]:
    """GET /api/v1/households on an app whose database is at ``url``: the response, its
    seconds, and the status /healthz answered afterwards."""
    cfg = settings.model_copy(update={"database_url": url, "db_pool_timeout": POOL_TIMEOUT})
    engine = make_engine(cfg)
    app = create_app(cfg, engine)
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t", headers=headers) as api:
            r, waited = await asyncio.wait_for(_timed(api, "/api/v1/households"), timeout=20)
            health = (await api.get("/healthz")).status_code
    finally:
        await engine.dispose()
    return r, waited, health


async def test_a_database_that_accepts_but_never_answers_is_a_503_within_pool_timeout(settings, client_as):
    """A PostgreSQL host that takes the TCP connection and then says nothing (overloaded,
    half-dead, a network that drops the replies): opening a connection gives up after the pool
    timeout, not after asyncpg's own 60 s."""
    c = await client_as("village", V1)
    async with _fake_postgres(None) as (url, seen):
        r, waited, health = await _request_through(settings, url, dict(c.headers))
    problem(r, 503, "database_unavailable")
    assert r.headers["retry-after"] == "5"
    assert waited < POOL_TIMEOUT + 1.5, waited
    assert seen and health == 200


@pytest.mark.parametrize(
    ("sqlstate", "message", "code", "retry_after"),
    [
        ("57P03", "the database system is shutting down", "database_unavailable", "5"),
        ("57P03", "the database system is starting up", "database_unavailable", "5"),
        ("53300", "sorry, too many clients already", "database_busy", "2"),
    ],
)
async def test_postgres_refusing_connections_while_restarting_or_full_is_503(
    settings, client_as, sqlstate, message, code, retry_after
):
    """What a restarting PostgreSQL answers a new connection (seen by scripts/faults.py, where
    it was a 500): asyncpg's error reaches SQLAlchemy as a plain DBAPIError with the SQLSTATE."""
    c = await client_as("village", V1)
    async with _fake_postgres(_error_response(sqlstate, message)) as (url, seen):
        r, waited, health = await _request_through(settings, url, dict(c.headers))
    body = problem(r, 503, code)
    assert r.headers["retry-after"] == retry_after and "request_id" in body
    assert message not in r.text  # the database's words stay in the log
    assert seen and waited < POOL_TIMEOUT + 1.5 and health == 200  # no waiting at all, in fact


@pytest.mark.skipif(not IS_PG, reason="PostgreSQL backends are terminated")
async def test_a_pooled_connection_that_died_while_idle_is_replaced_without_an_error(
    settings, client_as, monkeypatch
):
    """Connections idle for a while are pinged before use (not every checkout: that cost three
    round trips per request); one whose backend died meanwhile is replaced, the request
    does not see it."""
    from app.core import db as db_module

    c = await client_as("village", V1)
    engine = make_engine(settings)
    app = create_app(settings, engine)
    try:
        async with AsyncClient(
            transport=ASGITransport(app=app), base_url="http://t", headers=dict(c.headers)
        ) as api:
            assert (await api.get("/api/v1/me")).status_code == 200
            async with engine.connect() as conn:
                pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            # the request's connection and this one are the same pooled connection
            monkeypatch.setattr(db_module, "IDLE_PING_AFTER_S", 0.0)
            killer = make_engine(settings)
            async with killer.connect() as k:
                await k.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            await killer.dispose()
            r = await api.get("/api/v1/households")
            assert r.status_code == 200, r.text
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() != pid
    finally:
        await engine.dispose()

"""A database error never writes the statement's values into the log: not the bound parameters
(``hide_parameters``), not the database's own message quoting them (PostgreSQL's ``DETAIL: Key
(username)=(…)``, asyncpg's "invalid input for query argument $1: '…'"). The traceback and the
SQL text stay, so the error can still be found."""

from __future__ import annotations

import logging
import uuid

from fastapi import APIRouter
from httpx import ASGITransport, AsyncClient
from sqlalchemy import Integer, bindparam, text

from app.deps import SessionDep
from app.main import create_app
from tests.conftest import IS_PG
from tests.households.test_api import problem

NAME = "秘密用户甲-13800138000"  # a unique key the database would quote back
NOTE = "住址：团头湖村机密12号"  # a plain parameter
NUMBER = "张三的身份证号码"  # a value asyncpg would quote when it cannot encode it

INSERT_USER = text(
    'INSERT INTO "user" (id, username, password_hash, role, area_code, county_code, display_name,'
    " disabled, version, created_at, updated_at) VALUES (:id, :username, 'x', 'village',"
    " '430122100201', '430122', :display_name, false, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
)


def _app(settings, engine):
    app = create_app(settings, engine)
    router = APIRouter()

    @router.post("/test/duplicate-user")
    async def duplicate_user(session: SessionDep) -> dict[str, str]:
        for _ in range(2):
            row = {"id": uuid.uuid4().hex, "username": NAME, "display_name": NOTE}
            await session.execute(INSERT_USER, row)
        return {}

    @router.post("/test/bad-parameter")
    async def bad_parameter(session: SessionDep) -> dict[str, str]:
        # asyncpg refuses a text for an integer parameter, quoting it; SQLite computes it.
        await session.execute(text("SELECT :n + 1").bindparams(bindparam("n", type_=Integer)), {"n": NUMBER})
        return {}

    app.include_router(router)
    return app


async def test_database_errors_never_log_parameters(settings, engine, areas, caplog):
    caplog.set_level(logging.INFO)
    app = _app(settings, engine)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/test/duplicate-user")
        problem(r, 500, "internal_error")
        assert NAME not in r.text and NOTE not in r.text
        r = await c.post("/test/bad-parameter")
        if IS_PG:
            assert r.status_code == 500
    logged = caplog.text
    # The error is in the log, with where it happened and what kind it is...
    assert "unhandled error" in logged
    assert "IntegrityError" in logged
    assert "duplicate_user" in logged  # the frame
    assert 'INSERT INTO "user"' in logged  # the SQL text (without values)
    if IS_PG:
        assert "sqlstate=23505" in logged
        assert "constraint_name=" in logged
    # ...and none of the values.
    for secret in (NAME, NOTE, NUMBER, "13800138000"):
        assert secret not in logged
        for record in caplog.records:
            assert secret not in record.getMessage()
            assert secret not in str(record.__dict__)

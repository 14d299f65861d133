"""One async engine per process; one session (= one transaction) per request.

Engines hide SQL parameters (``hide_parameters=True``): a database error's text — which reaches
tracebacks in the log — then names the statement but never the values bound to it (names,
notes, addresses, ID-number hashes); ``JIAHE_DB_ECHO`` likewise logs statements only.

SQLite (embedded default) gets WAL, foreign keys and a busy timeout on every connection;
both databases get a pool sized by settings (a request waits at most ``db_pool_timeout`` for a
connection). The request dependency commits after the handler returns and rolls back on any
exception; services only flush.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

from app.core import clock
from app.core.config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both databases (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        if value.tzinfo is UTC:  # asyncpg's timestamptz: already UTC (the common case, cheap)
            return value
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current instant, aware UTC: the one clock's ``now()`` (frozen with it in tests)."""
    return clock.now()


def as_utc(value: datetime | None) -> datetime | None:
    """A client's timestamp without offset is taken as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def today() -> date:
    """The business date (China Standard Time by default), not UTC's: ``clock.today()``."""
    return clock.today()


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def make_engine(settings: Settings, *, sqlite_immediate: bool = True) -> AsyncEngine:
    """The engine. ``sqlite_immediate=False`` (tests' inspection sessions only) keeps SQLite's
    deferred BEGIN so that a read held open does not block the app's writers."""
    url = settings.database_url
    if url.startswith("sqlite"):
        # A file database gets a queue pool like PostgreSQL's, so the pool settings (above all
        # db_pool_timeout: how long a request waits for a connection before its 503) hold on
        # both; SQLAlchemy's own default would wait 30 s. In-memory databases keep their pool.
        memory = make_url(url).database in (None, "", ":memory:") or "mode=memory" in url
        pool: dict[str, Any] = {} if memory else _pool_args(settings)
        engine = create_async_engine(
            url,
            echo=settings.db_echo,
            hide_parameters=True,
            connect_args={"timeout": 30},
            pool_pre_ping=False,
            **pool,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # BEGIN IMMEDIATE: take the write lock up front so concurrent writers queue on
            # busy_timeout instead of failing with "database is locked" at their first write.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if sqlite_immediate else "BEGIN")

        # pysqlite's own transaction handling must be off for the explicit BEGIN above.
        @event.listens_for(engine.sync_engine, "connect", insert=True)
        def _sqlite_autocommit(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        return engine
    # Opening a connection gives up after the pool timeout too (asyncpg would wait 60 s for a
    # server that accepts the TCP connection and then says nothing): a 503, not a hung request.
    connect = {"timeout": settings.db_pool_timeout} if make_url(url).get_driver_name() == "asyncpg" else {}
    engine = create_async_engine(
        url, echo=settings.db_echo, hide_parameters=True, connect_args=connect, **_pool_args(settings)
    )
    _ping_when_idle(engine)
    return engine


# A pooled connection idle longer than this is pinged before it is handed out. SQLAlchemy's
# pool_pre_ping pings on every checkout (three round trips with asyncpg: BEGIN, ";",
# ROLLBACK), which was the costliest part of authenticating a busy partner's request; a
# connection back in the pool within the last seconds was working then. A connection that breaks
# anyway (the server restarted meanwhile) fails its request with a 503 and the disconnect
# invalidates the whole pool, so the next requests get fresh connections.
IDLE_PING_AFTER_S = 2.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    target = engine.sync_engine

    @event.listens_for(target, "connect")
    def _fresh(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(target, "checkin")
    def _back(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(target, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since < IDLE_PING_AFTER_S:
            return
        try:
            dbapi_conn.ping()
        except Exception as exc:  # the pool discards this connection and checks out another
            raise DisconnectionError("pooled connection failed its ping") from exc


def _pool_args(settings: Settings) -> dict[str, Any]:
    return {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
    }


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


@asynccontextmanager
async def session_scope(
    maker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with maker() as session:
        try:
            yield session
            await session.commit()
        except BaseException as exc:
            if getattr(exc, "commit_anyway", False):
                await session.commit()
            else:
                await session.rollback()
            raise

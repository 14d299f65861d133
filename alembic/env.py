"""Async Alembic environment: the URL comes from the config (set by app.core.migrations) or
from JIAHE_DATABASE_URL."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

import app.models.registry  # noqa: F401  (every table on the metadata)
from app.core.config import Settings
from app.core.db import UTCDateTime, metadata

config = context.config
if config.config_file_name and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name)

url = config.get_main_option("sqlalchemy.url") or Settings().database_url


def _render_item(type_: str, obj: object, _autogen_context: object) -> str | bool:
    """Render our UTC timestamp type as the plain column type it stores."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection | None = None) -> None:
    context.configure(
        connection=connection,
        url=None if connection is not None else url,
        target_metadata=metadata,
        render_as_batch=url.startswith("sqlite"),
        compare_type=True,
        compare_server_default=True,
        render_item=_render_item,
    )


def run_offline() -> None:
    _configure()
    with context.begin_transaction():
        context.run_migrations()


# One migration at a time per database: every replica starting with ``serve --migrate`` (or
# ``jiahe migrate`` run twice) takes this transaction-level advisory lock before Alembic reads
# the schema's version; the others wait, then find nothing to do (without it two of three
# concurrent runs crashed on the alembic_version unique key).
MIGRATION_LOCK = 0x6A6961686500  # "jiahe" + 0


def _run_sync(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool, hide_parameters=True)
    async with engine.connect() as conn:
        await conn.run_sync(_run_sync)
        await conn.commit()
    await engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_sync(connection)
    else:
        asyncio.run(run_online())

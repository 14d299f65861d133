"""Alembic from code: upgrade to the latest revisions, and compare the database with them.

Works with several heads (branches merged later), so ``heads`` is compared as a set.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", os.environ.get("JIAHE_ALEMBIC_DIR", str(ROOT / "alembic")))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["configure_logging"] = False
    return cfg


@lru_cache
def head_revisions(database_url: str) -> frozenset[str]:
    return frozenset(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


def upgrade(database_url: str) -> None:
    """Upgrade to the latest revisions (runs its own event loop: call from sync code)."""
    command.upgrade(alembic_config(database_url), "heads")


async def current_revisions(engine: AsyncEngine) -> frozenset[str]:
    def _rev(conn: Connection) -> frozenset[str]:
        return frozenset(MigrationContext.configure(conn).get_current_heads())

    async with engine.connect() as conn:
        return await conn.run_sync(_rev)


async def schema_is_current(engine: AsyncEngine, database_url: str) -> bool:
    return await current_revisions(engine) == head_revisions(database_url)

"""Safe start-up: production refuses the embedded SQLite database unless told; development
secrets are created once however many processes start at the same moment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.config import ConfigError, Settings, complete_secrets
from tests.conftest import IS_PG

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ("jwt_private_keys", "jwt_active_kid", "field_keys", "field_active_key_id", "blind_index_key")


def test_production_refuses_sqlite_unless_allowed(settings) -> None:
    keys = {f: getattr(settings, f) for f in SECRETS}
    sqlite = Settings(env="production", database_url="sqlite+aiosqlite:///./jiahe.db", **keys)
    with pytest.raises(ConfigError, match="JIAHE_ALLOW_SQLITE=1"):
        complete_secrets(sqlite)
    allowed = Settings(
        env="production", database_url="sqlite+aiosqlite:///./jiahe.db", allow_sqlite=True, **keys
    )
    assert complete_secrets(allowed) is allowed
    pg = Settings(env="production", database_url="postgresql+asyncpg://jiahe@db:5432/jiahe", **keys)
    assert complete_secrets(pg) is pg


CHILD = """
import json, sys
from app.core.config import Settings, complete_secrets
blank = {f: None for f in %r}
s = complete_secrets(Settings(env="development", **blank))
print(json.dumps({"blind": s.blind_index_key, "jwt": s.jwt_private_keys}))
"""


@pytest.mark.parametrize("attempt", range(3))
def test_processes_starting_together_share_one_set_of_dev_secrets(tmp_path, attempt) -> None:
    path = tmp_path / "secrets.json"
    env = dict(os.environ, JIAHE_DEV_SECRETS_FILE=str(path), JIAHE_ENV="development")
    for name in SECRETS:
        env.pop("JIAHE_" + name.upper(), None)
    code = CHILD % (SECRETS,)
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    outs = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len({o["blind"] for o in outs}) == 1 and len({o["jwt"] for o in outs}) == 1
    stored = json.loads(path.read_text())
    assert stored["blind_index_key"] == outs[0]["blind"]
    assert oct(path.stat().st_mode)[-3:] == "600"
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.json"]  # no temporary file left


@pytest.mark.skipif(not IS_PG, reason="the advisory lock is PostgreSQL's (SQLite is one process)")
async def test_three_migrations_started_together_all_succeed(settings) -> None:
    import asyncio

    import asyncpg

    base, _, _ = settings.database_url.replace("postgresql+asyncpg://", "postgresql://").rpartition("/")
    name = f"jiahe_migrace_{os.getpid()}"
    admin = await asyncpg.connect(base + "/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = settings.database_url.rpartition("/")[0] + "/" + name
        env = dict(os.environ, JIAHE_DATABASE_URL=url)

        def migrate() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "app.cli", "migrate"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )

        runs = await asyncio.gather(*(asyncio.to_thread(migrate) for _ in range(3)))
        assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr[-500:] for r in runs]
        conn = await asyncpg.connect(base + "/" + name)
        try:
            versions = [r[0] for r in await conn.fetch("SELECT version_num FROM alembic_version")]
        finally:
            await conn.close()
        from app.core.migrations import head_revisions

        assert set(versions) == set(head_revisions(url))
    finally:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()

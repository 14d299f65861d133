"""The migration that stopped writing checkup-due task rows removes the old ones and leaves a
tombstone for each in the change log (phones drop them at their next pull)."""

from __future__ import annotations

import sqlite3
import uuid

from alembic import command

from app.core.migrations import alembic_config


def test_old_checkup_due_tasks_become_tombstones(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "ec81c03c2db8")
    due, follow_up = uuid.uuid4().hex, uuid.uuid4().hex
    db = sqlite3.connect(tmp_path / "m.db")
    for ident, kind in ((due, "checkup_due"), (follow_up, "follow_up")):
        db.execute(
            "INSERT INTO task (id, kind, title, due_on, status, county_code, township_code, village_code,"
            " version, created_at, updated_at) VALUES (?, ?, 't', '2026-12-01', 'open', '430122',"
            " '430122100', '430122100201', 2, '2026-11-01 00:00:00', '2026-11-01 00:00:00')",
            (ident, kind),
        )
    db.commit()
    command.upgrade(cfg, "heads")
    assert [r[0] for r in db.execute("SELECT id FROM task")] == [follow_up]
    tombstones = db.execute("SELECT entity, entity_id, version, deleted, village_code FROM change").fetchall()
    assert tombstones == [("task", due, 3, 1, "430122100201")]
    db.close()

"""Migration b15a00000003: rounds that overlap under the v1.1 rule (created under the old one)
leave no woman with two appointments due for one item (the later or the still-scheduled one is
cancelled as ``duplicate``, with a change-log row for the phones)."""

from __future__ import annotations

import json
import sqlite3
import uuid

from alembic import command

from app.core.migrations import alembic_config

ROUND = (
    "INSERT INTO checkup_round (id, name, area_code, area_prefix, county_code, opens_on, closes_on, items,"
    " version, created_at, updated_at) VALUES (?, 'r', ?, ?, '430122', ?, ?, ?, 1, ?, ?)"
)
APPT = (
    "INSERT INTO checkup_appointment (id, round_id, person_id, status, county_code, township_code,"
    " village_code, version, created_at, updated_at) VALUES (?, ?, ?, ?, '430122', '430122100',"
    " '430122100201', 2, '2026-11-01 00:00:00', '2026-11-01 00:00:00')"
)


def test_duplicate_appointments_of_overlapping_rounds_are_cancelled(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "b14a00000007")
    db = sqlite3.connect(tmp_path / "m.db")
    r1, r2, r3 = (uuid.uuid4().hex for _ in range(3))
    for rid, area, prefix, items, created in (
        (r1, "430122100000", "430122100", "iud,pregnancy", "2026-10-01 00:00:00"),
        (r2, "430122000000", "430122", "iud", "2026-10-02 00:00:00"),  # a county round over it
        (r3, "430122100000", "430122100", "gynecological", "2026-10-03 00:00:00"),  # disjoint items
    ):
        db.execute(ROUND, (rid, area, prefix, "2026-11-01", "2027-01-31", items, created, created))
    cases = {  # woman: (status in r1, status in r2 or r3, the other round)
        "p": ("done", "scheduled", r2),
        "q": ("scheduled", "scheduled", r2),
        "s": ("scheduled", "done", r2),
        "t": ("declined", "done", r2),
        "u": ("scheduled", "scheduled", r3),
        "v": ("scheduled", "cancelled", r2),
    }
    ids: dict[tuple[str, int], str] = {}
    for who, (first, second, other) in cases.items():
        person = uuid.uuid4().hex
        for n, (rid, status) in enumerate(((r1, first), (other, second)), start=1):
            ids[who, n] = uuid.uuid4().hex
            db.execute(APPT, (ids[who, n], rid, person, status))
    db.commit()
    command.upgrade(cfg, "heads")

    def row(key: tuple[str, int]) -> tuple:
        return db.execute(
            "SELECT status, cancel_reason, version, history FROM checkup_appointment WHERE id = ?",
            (ids[key],),
        ).fetchone()

    cancelled = {("p", 2), ("q", 2), ("s", 1)}
    for key in ids:
        status, reason, version, history = row(key)
        if key in cancelled:
            assert (status, reason, version) == ("cancelled", "duplicate", 3), key
            [event] = json.loads(history)
            assert (event["action"], event["from_status"], event["reason"], event["by"]) == (
                "cancelled",
                "scheduled",
                "duplicate",
                None,
            )
        else:
            assert version == 2 and history is None, key
    changes = db.execute("SELECT entity, entity_id, version, deleted FROM change").fetchall()
    assert sorted(changes) == sorted(("checkup_appointment", ids[k], 3, 0) for k in cancelled)
    db.close()

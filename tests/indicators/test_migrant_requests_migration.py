"""Revision b14a00000007: the kept figures of an existing database stop counting the migrant
requests that the code before counted (the movements requested before issue 14 that revision
b14a00000001 turned into ``pending_release`` by SQL, and any request made since, refused ones
with their exit): afterwards the state equals a rebuild from scratch; the downgrade restores
exactly the state before."""

from __future__ import annotations

from datetime import date
from typing import Any

from alembic import command
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from app.core.migrations import alembic_config
from app.models.households import Household, Person
from app.models.indicators import IndicatorInflowWoman, IndicatorTally
from app.models.migrants import Migrant
from app.services import indicator_upkeep

V = "430122100201"
PLACE = {"county_code": V[:6], "township_code": V[:9], "village_code": V}


def _state(engine: Any) -> tuple[dict[tuple[str, str, int, str], int], set[tuple[Any, ...]]]:
    with Session(engine) as s:
        tally = {
            (r.metric, r.area_code, r.bucket, r.parent_code): r.n
            for r in s.execute(select(IndicatorTally)).scalars()
            if r.n
        }
        women = {
            (str(r.migrant_id), r.village_code, r.moved_on, r.closed_on)
            for r in s.execute(select(IndicatorInflowWoman)).scalars()
        }
    return tally, women


def _versions(engine: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT COALESCE(SUM(n), 0) FROM data_version WHERE county_code = '430122'")
            ).scalar()
        )


def test_requests_counted_before_leave_the_kept_figures(tmp_path):
    path = tmp_path / "m.db"
    cfg = alembic_config(f"sqlite+aiosqlite:///{path}")
    command.upgrade(cfg, "b14a00000005")
    engine = create_engine(f"sqlite:///{path}")
    with Session(engine) as s:
        h = Household(address="测试地址", household_type="rural", **PLACE)
        s.add(h)
        s.flush()
        people = {}
        for name, sex in (("王芳", "female"), ("李娜", "female"), ("张伟", "male")):
            p = Person(
                household_id=h.id,
                name=name,
                sex=sex,
                birth_date=date(1990, 3, 3),
                relation_to_head="家人",
                marital_status="married",
                current_village_code=V,
                **PLACE,
            )
            s.add(p)
            s.flush()
            people[name] = p.id
        # As the code before counted them: every record, whatever its status.
        rows = {
            "waiting": Migrant(
                person_id=people["王芳"], direction="inflow", moved_on=date(2025, 3, 10), **PLACE
            ),
            "refused": Migrant(
                person_id=people["李娜"],
                direction="inflow",
                status="closed",
                moved_on=date(2025, 4, 1),
                closed_on=date(2025, 5, 2),
                **PLACE,
            ),
            "confirmed": Migrant(
                person_id=people["李娜"],
                direction="inflow",
                moved_on=date(2025, 6, 1),
                transfer="confirmed",
                **PLACE,
            ),
            "man": Migrant(person_id=people["张伟"], direction="inflow", moved_on=date(2025, 3, 20), **PLACE),
            "outflow": Migrant(
                person_id=people["王芳"],
                direction="outflow",
                status="closed",
                moved_on=date(2024, 1, 1),
                closed_on=date(2024, 12, 31),
                **PLACE,
            ),
        }
        s.add_all(rows.values())
        s.commit()
        ids = {k: m.id for k, m in rows.items()}
    with engine.begin() as conn:  # around the upkeep, as revision b14a00000001 did
        conn.execute(
            text("UPDATE migrant SET status = 'pending_release' WHERE id = :i"), {"i": ids["waiting"].hex}
        )
        conn.execute(text("UPDATE migrant SET status = 'refused' WHERE id = :i"), {"i": ids["refused"].hex})
    before, version = _state(engine), _versions(engine)
    assert before[0][("in_entry", V, 0, V[:9])] == 4
    assert len(before[1]) == 3

    command.upgrade(cfg, "heads")
    after = _state(engine)
    assert after[0][("in_entry", V, 0, V[:9])] == 2  # the confirmed one and the man's
    assert after[0][("in_entry", V[:9], 202503, V[:6])] == 1
    assert ("in_exit", V, 0, V[:9]) not in after[0]
    assert after[1] == {(str(ids["confirmed"]), V, date(2025, 6, 1), None)}
    assert _versions(engine) > version  # cached figures are not served
    with engine.begin() as conn:
        indicator_upkeep.rebuild(conn)
    assert _state(engine) == after

    command.downgrade(cfg, "b14a00000005")
    assert _state(engine) == before
    engine.dispose()

"""figures: a migrant request waiting for release or refused counts in no figure

From this revision the county figures ignore migrant records in status ``pending_release``
(an inflow waiting for the person's place to release her) and ``refused`` (her place refused):
no entry, exit, open or new movement, no inflow woman. The kept state was built by code that
counted every record whatever its status, and revision ``b14a00000001`` turned the movements
requested before issue 14 into ``pending_release`` records by SQL, around the per-transaction
upkeep: the tallies and the inflow-women rows of existing databases still count those records
(and any request made since). This revision takes out exactly what each of them contributed (an
entry in the month of ``moved_on`` and in the all-time bucket; when ``closed_on`` is set, an
exit in the month it ended, ``max(moved_on, closed_on)``, and in the all-time bucket; at its
village and at its township) and deletes their inflow-women rows; the data version of each
county concerned is bumped so that cached figures are not served. Nothing to do on a database
without such records. The downgrade puts the same contributions and rows back (the code before
this revision counts them).

Self-contained (no application code): the same numbers as ``indicator_upkeep.contributions``
of the code before and after this revision.

Revision ID: b14a00000007
Revises: b14a00000005
Create Date: 2026-12-07 19:40:00+00:00
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "b14a00000007"
down_revision: str | None = "b14a00000005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNCOUNTED = ("pending_release", "refused")

migrant = sa.table(
    "migrant",
    sa.column("id", sa.Uuid()),
    sa.column("person_id", sa.Uuid()),
    sa.column("direction", sa.String()),
    sa.column("status", sa.String()),
    sa.column("moved_on", sa.Date()),
    sa.column("closed_on", sa.Date()),
    sa.column("county_code", sa.String()),
    sa.column("township_code", sa.String()),
    sa.column("village_code", sa.String()),
)
person = sa.table(
    "person", sa.column("id", sa.Uuid()), sa.column("sex", sa.String()), sa.column("birth_date", sa.Date())
)
tally = sa.table(
    "indicator_tally",
    sa.column("metric", sa.String()),
    sa.column("area_code", sa.String()),
    sa.column("bucket", sa.Integer()),
    sa.column("parent_code", sa.String()),
    sa.column("n", sa.BigInteger()),
)
inflow_woman = sa.table(
    "indicator_inflow_woman",
    sa.column("migrant_id", sa.Uuid()),
    sa.column("person_id", sa.Uuid()),
    sa.column("county_code", sa.String()),
    sa.column("township_code", sa.String()),
    sa.column("village_code", sa.String()),
    sa.column("moved_on", sa.Date()),
    sa.column("closed_on", sa.Date()),
    sa.column("birth_date", sa.Date()),
)
data_version = sa.table(
    "data_version", sa.column("county_code", sa.String()), sa.column("shard", sa.Integer()), sa.column("n")
)

TallyKey = tuple[str, str, int, str]  # metric, area_code, bucket, parent_code


def _requests(bind: sa.Connection) -> list[Any]:
    return list(bind.execute(sa.select(migrant).where(migrant.c.status.in_(UNCOUNTED))).mappings())


def _contributions(rows: list[Any]) -> dict[TallyKey, int]:
    out: dict[TallyKey, int] = defaultdict(int)
    for r in rows:
        d = "in" if r["direction"] == "inflow" else "out"
        parts = [(f"{d}_entry", 0), (f"{d}_entry", r["moved_on"].year * 100 + r["moved_on"].month)]
        if r["closed_on"] is not None:
            gone = max(r["moved_on"], r["closed_on"])
            parts += [(f"{d}_exit", 0), (f"{d}_exit", gone.year * 100 + gone.month)]
        for metric, bucket in parts:
            out[(metric, r["village_code"], bucket, r["township_code"])] += 1
            out[(metric, r["township_code"], bucket, r["county_code"])] += 1
    return out


def _add(bind: sa.Connection, deltas: dict[TallyKey, int], sign: int) -> None:
    for (metric, area, bucket, parent), n in sorted(deltas.items()):
        where = sa.and_(tally.c.metric == metric, tally.c.area_code == area, tally.c.bucket == bucket)
        done = bind.execute(sa.update(tally).where(where).values(n=tally.c.n + sign * n))
        if done.rowcount == 0:
            bind.execute(
                sa.insert(tally).values(
                    metric=metric, area_code=area, bucket=bucket, parent_code=parent, n=sign * n
                )
            )


def _bump(bind: sa.Connection, counties: set[str]) -> None:
    for county in sorted(counties):
        where = sa.and_(data_version.c.county_code == county, data_version.c.shard == 0)
        done = bind.execute(sa.update(data_version).where(where).values(n=data_version.c.n + 1))
        if done.rowcount == 0:
            bind.execute(sa.insert(data_version).values(county_code=county, shard=0, n=1))


def upgrade() -> None:
    bind = op.get_bind()
    rows = _requests(bind)
    if not rows:
        return
    _add(bind, _contributions(rows), -1)
    ids = [r["id"] for r in rows]
    for i in range(0, len(ids), 500):
        bind.execute(sa.delete(inflow_woman).where(inflow_woman.c.migrant_id.in_(ids[i : i + 500])))
    _bump(bind, {r["county_code"] for r in rows})


def downgrade() -> None:
    bind = op.get_bind()
    rows = _requests(bind)
    if not rows:
        return
    _add(bind, _contributions(rows), +1)
    women = (
        sa.select(
            migrant.c.id,
            migrant.c.person_id,
            migrant.c.county_code,
            migrant.c.township_code,
            migrant.c.village_code,
            migrant.c.moved_on,
            migrant.c.closed_on,
            person.c.birth_date,
        )
        .select_from(migrant.join(person, person.c.id == migrant.c.person_id))
        .where(migrant.c.status.in_(UNCOUNTED), migrant.c.direction == "inflow", person.c.sex == "female")
    )
    bind.execute(
        sa.insert(inflow_woman).from_select(
            [
                "migrant_id",
                "person_id",
                "county_code",
                "township_code",
                "village_code",
                "moved_on",
                "closed_on",
                "birth_date",
            ],
            women,
        )
    )
    _bump(bind, {r["county_code"] for r in rows})

"""checkups: appointments carry a day, a place and their history

``scheduled_on`` (null: any day of the window) and ``scheduled_place`` (free text, null: any
place) are set by ``POST /checkup-appointments/{id}/reschedule``; ``history`` (JSON list, null:
nothing happened yet) keeps every decline, exemption, result, reschedule, cancellation and
reinstatement, so that a decline followed by a result stays visible. Nullable columns only:
existing appointments keep their meaning (any day, any place, no recorded history; their
``decline_reason`` and ``cancel_reason`` columns still tell what happened).

Rounds created before this revision may overlap under the new rule (the old one refused only the
same area with the same item list): a woman may hold two appointments due for one item, and one
of them turns ``overdue`` although she was checked. For every pair of rounds whose windows overlap
and that share an item, a woman holding an appointment (not cancelled) in both keeps one:
a scheduled one beside an outcome (done, declined, exempted) is cancelled; of two scheduled ones,
the later round's. Cancelled with reason ``duplicate`` (version + 1, a history entry, a change-log
row so that phones get it at their next pull). Nothing to do on a database without such rounds.
The downgrade does not bring them back (they were duplicates).

Revision ID: b15a00000003
Revises: b14a00000007
Create Date: 2026-12-07 21:40:00+00:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import combinations

import sqlalchemy as sa
from alembic import op

revision: str = "b15a00000003"
down_revision: str | None = "b15a00000004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


appt = sa.table(
    "checkup_appointment",
    sa.column("id", sa.Uuid()),
    sa.column("round_id", sa.Uuid()),
    sa.column("person_id", sa.Uuid()),
    sa.column("status", sa.String()),
    sa.column("cancel_reason", sa.String()),
    sa.column("version", sa.Integer()),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("history", sa.Text()),
    sa.column("county_code", sa.String()),
    sa.column("township_code", sa.String()),
    sa.column("village_code", sa.String()),
)
checkup_round = sa.table(
    "checkup_round",
    sa.column("id", sa.Uuid()),
    sa.column("opens_on", sa.Date()),
    sa.column("closes_on", sa.Date()),
    sa.column("items", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
change = sa.table(
    "change",
    sa.column("tx_id", sa.BigInteger()),
    sa.column("entity", sa.String()),
    sa.column("entity_id", sa.Uuid()),
    sa.column("version", sa.Integer()),
    sa.column("deleted", sa.Boolean()),
    sa.column("county_code", sa.String()),
    sa.column("township_code", sa.String()),
    sa.column("village_code", sa.String()),
    sa.column("at", sa.DateTime(timezone=True)),
)
CHUNK = 500


def upgrade() -> None:
    op.add_column("checkup_appointment", sa.Column("scheduled_on", sa.Date(), nullable=True))
    op.add_column("checkup_appointment", sa.Column("scheduled_place", sa.String(length=200), nullable=True))
    op.add_column("checkup_appointment", sa.Column("history", sa.Text(), nullable=True))
    _cancel_duplicates()


def _duplicates(bind: sa.Connection) -> set[object]:
    """Ids of the appointments to cancel (see the module docstring)."""
    rounds = bind.execute(
        sa.select(
            checkup_round.c.id, checkup_round.c.opens_on, checkup_round.c.closes_on, checkup_round.c["items"]
        ).order_by(checkup_round.c.created_at, checkup_round.c.id)
    ).all()
    cancelled: set[object] = set()
    for older, newer in combinations(rounds, 2):  # creation order: ``older`` first
        (old_id, old_opens, old_closes, old_items), (new_id, new_opens, new_closes, new_items) = older, newer
        shared = set(old_items.split(",")) & set(new_items.split(","))
        if not shared or old_opens > new_closes or new_opens > old_closes:
            continue
        a, b = appt.alias("a"), appt.alias("b")
        pairs = bind.execute(
            sa.select(a.c.id, a.c.status, b.c.id, b.c.status)
            .select_from(a.join(b, a.c.person_id == b.c.person_id))
            .where(
                a.c.round_id == old_id,
                b.c.round_id == new_id,
                a.c.status != "cancelled",
                b.c.status != "cancelled",
            )
        ).all()
        for a_id, a_status, b_id, b_status in pairs:
            if a_id in cancelled or b_id in cancelled:
                continue
            if b_status == "scheduled":
                cancelled.add(b_id)
            elif a_status == "scheduled":
                cancelled.add(a_id)
    return cancelled


def _cancel_duplicates() -> None:
    bind = op.get_bind()
    ids = sorted(_duplicates(bind), key=str)
    if not ids:
        return
    pg = bind.dialect.name == "postgresql"
    now = datetime.now(UTC)
    stamp = now if pg else now.replace(tzinfo=None)
    history = json.dumps(
        [
            {
                "at": now.isoformat().replace("+00:00", "Z"),
                "by": None,
                "action": "cancelled",
                "from_status": "scheduled",
                "to_status": "cancelled",
                "reason": "duplicate",
            }
        ]
    )
    txid = sa.literal_column("pg_current_xact_id()::text::bigint") if pg else sa.literal(0)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        bind.execute(
            appt.update()
            .where(appt.c.id.in_(chunk))
            .values(
                status="cancelled",
                cancel_reason="duplicate",
                version=appt.c.version + 1,
                updated_at=stamp,
                history=history,
            )
        )
        bind.execute(
            change.insert().from_select(
                [
                    "tx_id",
                    "entity",
                    "entity_id",
                    "version",
                    "deleted",
                    "county_code",
                    "township_code",
                    "village_code",
                    "at",
                ],
                sa.select(
                    txid,
                    sa.literal("checkup_appointment"),
                    appt.c.id,
                    appt.c.version,
                    sa.false(),
                    appt.c.county_code,
                    appt.c.township_code,
                    appt.c.village_code,
                    sa.literal(stamp, sa.DateTime(timezone=True)),
                ).where(appt.c.id.in_(chunk)),
            )
        )


def downgrade() -> None:
    op.drop_column("checkup_appointment", "history")
    op.drop_column("checkup_appointment", "scheduled_place")
    op.drop_column("checkup_appointment", "scheduled_on")

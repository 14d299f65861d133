"""migrants: an inflow of a person registered elsewhere waits for her place's release (issue 14)

``migrant.status`` widens to 16 characters (``pending_release``, ``refused``); a request keeps
the household she joins (``target_household_id``) and a refusal its reason (``refuse_reason``).

Movements requested before this revision (an inflow still ``open`` with ``transfer = 'pending'``
for a person whose register entry is in another village) become ``pending_release``: only her
place may now confirm them (its ``migrant_confirm`` task names the origin-side outflow, which
``POST /migrants/{id}/confirm`` accepts). The receiving village's confirmation tasks for them are
cancelled and no longer name her (``person_id``, ``household_id`` cleared); every changed row gets
a change-log entry so that phones pull the new state.

Revision ID: b14a00000001
Revises: 5c1f0e7a9b21
Create Date: 2026-12-07 18:17:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b14a00000001"
down_revision: str | None = "5c1f0e7a9b21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


LEGACY_REQUESTS = (
    "SELECT m.id FROM migrant m JOIN person p ON p.id = m.person_id"
    " WHERE m.direction = 'inflow' AND m.status = 'open' AND m.transfer = 'pending'"
    " AND p.village_code <> m.village_code"
)
TASKS = f"source_entity = 'migrant' AND source_id IN ({LEGACY_REQUESTS})"
REQUESTS = "id IN ({legacy})"
CANCEL_TASKS = (
    "UPDATE task SET person_id = NULL, household_id = NULL, version = version + 1,"
    " updated_at = CURRENT_TIMESTAMP,"
    " status = CASE WHEN status = 'open' THEN 'cancelled' ELSE status END WHERE {where}"
)
WAIT_FOR_RELEASE = (
    "UPDATE migrant SET status = 'pending_release', version = version + 1,"
    " updated_at = CURRENT_TIMESTAMP WHERE {where}"
)
CHANGES = (
    "INSERT INTO change (tx_id, entity, entity_id, version, deleted, county_code, township_code,"
    " village_code, at) SELECT {txid}, '{entity}', id, version + {bump}, false, county_code,"
    " township_code, village_code, CURRENT_TIMESTAMP FROM {table} WHERE {where}"
)


def _txid() -> str:
    return "pg_current_xact_id()::text::bigint" if op.get_bind().dialect.name == "postgresql" else "0"


def upgrade() -> None:
    with op.batch_alter_table("migrant", schema=None) as batch_op:
        batch_op.alter_column(
            "status", existing_type=sa.String(length=8), type_=sa.String(length=16), existing_nullable=False
        )
        batch_op.add_column(sa.Column("target_household_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("refuse_reason", sa.String(length=500), nullable=True))

    # Tasks first (their rows are found through the requests' current state), then the requests.
    op.execute(CANCEL_TASKS.format(where=TASKS))
    op.execute(CHANGES.format(txid=_txid(), entity="task", bump=0, table="task", where=TASKS))
    requests = REQUESTS.format(legacy=LEGACY_REQUESTS)
    op.execute(CHANGES.format(txid=_txid(), entity="migrant", bump=1, table="migrant", where=requests))
    op.execute(WAIT_FOR_RELEASE.format(where=requests))


def downgrade() -> None:
    # Requests go back to the old shape (an open inflow with a pending transfer); refused ones
    # are closed records; the new task kinds become the old confirmation kind.
    op.execute("UPDATE migrant SET status = 'open' WHERE status = 'pending_release'")
    op.execute("UPDATE migrant SET status = 'closed' WHERE status = 'refused'")
    op.execute("UPDATE migrant SET transfer = NULL WHERE transfer = 'refused'")
    op.execute(
        "UPDATE task SET kind = 'migrant_confirm' WHERE kind IN ('migrant_release', 'migrant_refused')"
    )
    with op.batch_alter_table("migrant", schema=None) as batch_op:
        batch_op.drop_column("refuse_reason")
        batch_op.drop_column("target_household_id")
        batch_op.alter_column(
            "status", existing_type=sa.String(length=16), type_=sa.String(length=8), existing_nullable=False
        )

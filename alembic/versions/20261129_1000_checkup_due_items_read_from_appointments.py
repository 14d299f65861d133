"""checkup-due inbox items read from the appointments

A round's appointments are their women's "checkup due" inbox items (``tasks.list_tasks``); the
task rows that duplicated them go, each with a tombstone in the change log so that phones
holding them drop them at their next pull (they build the items from the appointments).

Revision ID: 5c1f0e7a9b21
Revises: ec81c03c2db8
Create Date: 2026-11-29 10:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "5c1f0e7a9b21"
down_revision: str | None = "ec81c03c2db8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


TOMBSTONES = (
    "INSERT INTO change (tx_id, entity, entity_id, version, deleted, county_code, township_code,"
    " village_code, at) SELECT {txid}, 'task', id, version + 1, true, county_code, township_code,"
    " village_code, CURRENT_TIMESTAMP FROM task WHERE kind = 'checkup_due'"
)
TOMBSTONES_PG = TOMBSTONES.replace("{txid}", "pg_current_xact_id()::text::bigint")
TOMBSTONES_SQLITE = TOMBSTONES.replace("{txid}", "0")


def upgrade() -> None:
    op.execute(TOMBSTONES_PG if op.get_bind().dialect.name == "postgresql" else TOMBSTONES_SQLITE)
    op.execute("DELETE FROM task WHERE kind = 'checkup_due'")


def downgrade() -> None:
    # The deleted rows were copies of the appointments; they are not re-created.
    pass

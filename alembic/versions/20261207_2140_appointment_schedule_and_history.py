"""checkups: appointments carry a day, a place and their history

``scheduled_on`` (null: any day of the window) and ``scheduled_place`` (free text, null: any
place) are set by ``POST /checkup-appointments/{id}/reschedule``; ``history`` (JSON list, null:
nothing happened yet) keeps every decline, exemption, result, reschedule, cancellation and
reinstatement, so that a decline followed by a result stays visible. Nullable columns only:
existing appointments keep their meaning (any day, any place, no recorded history; their
``decline_reason`` and ``cancel_reason`` columns still tell what happened).

Revision ID: b15a00000003
Revises: b14a00000007
Create Date: 2026-12-07 21:40:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b15a00000003"
down_revision: str | None = "b14a00000007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("checkup_appointment", sa.Column("scheduled_on", sa.Date(), nullable=True))
    op.add_column("checkup_appointment", sa.Column("scheduled_place", sa.String(length=200), nullable=True))
    op.add_column("checkup_appointment", sa.Column("history", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("checkup_appointment", "history")
    op.drop_column("checkup_appointment", "scheduled_place")
    op.drop_column("checkup_appointment", "scheduled_on")

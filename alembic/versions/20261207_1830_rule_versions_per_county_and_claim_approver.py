"""rule versions per county; the claim's approver

- ``rule_version.area_code`` (nullable): null is a national version (every existing row stays
  national: they are the ones shipped with the migrations), else the county's 12-digit code. One
  version per programme, area and date: a unique constraint for the counties — its index
  ``(programme_code, area_code, effective_from)`` also serves the lookup of a county's candidates
  — and a partial unique index for the national ones (NULLs are distinct in a unique
  constraint). The old unique ``(programme_code, effective_from)`` goes: two counties may raise
  their amounts on the same day.
- ``claim.approved_by``: who approved the amount, so that the same user cannot pay it. Claims
  approved before this revision get it from their history (the last ``approve`` to
  ``approved``), so a claim posted today cannot be paid by its approver after the upgrade either.

Revision ID: b14a00000004
Revises: b14a00000003
Create Date: 2026-11-30 00:04:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b14a00000004"
down_revision: str | None = "b14a00000003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NATIONAL = sa.text("area_code IS NULL")

BACKFILL_APPROVER = sa.text(
    "UPDATE claim SET approved_by = ("
    " SELECT h.actor_id FROM claim_history h"
    " WHERE h.claim_id = claim.id AND h.action = 'approve' AND h.to_status = 'approved'"
    " ORDER BY h.at DESC, h.id DESC LIMIT 1"
    ") WHERE status IN ('approved', 'posted', 'paid')"
)


def upgrade() -> None:
    with op.batch_alter_table("rule_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("area_code", sa.String(length=12), nullable=True))
        batch_op.drop_constraint("uq_rule_version_programme_code_effective_from", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_rule_version_programme_code_area_code_effective_from"),
            ["programme_code", "area_code", "effective_from"],
        )
        batch_op.create_index(
            "uq_rule_version_national_programme_code_effective_from",
            ["programme_code", "effective_from"],
            unique=True,
            postgresql_where=NATIONAL,
            sqlite_where=NATIONAL,
        )
    with op.batch_alter_table("claim", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approved_by", sa.Uuid(), nullable=True))
    op.execute(BACKFILL_APPROVER)


def downgrade() -> None:
    with op.batch_alter_table("claim", schema=None) as batch_op:
        batch_op.drop_column("approved_by")
    # County versions cannot go back into a table without areas: claims stamped with one keep
    # pointing at it, so refuse rather than lose which county a version was for.
    bind = op.get_bind()
    counted = bind.execute(sa.text("SELECT COUNT(*) FROM rule_version WHERE area_code IS NOT NULL")).scalar()
    if counted:
        raise RuntimeError(
            f"{counted} county rule version(s) exist; a schema without rule_version.area_code would make "
            "them national. Remove them (and re-evaluate the claims stamped with them) first."
        )
    with op.batch_alter_table("rule_version", schema=None) as batch_op:
        batch_op.drop_index("uq_rule_version_national_programme_code_effective_from")
        batch_op.drop_constraint("uq_rule_version_programme_code_area_code_effective_from", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_rule_version_programme_code_effective_from"), ["programme_code", "effective_from"]
        )
        batch_op.drop_column("area_code")

"""merge without dead ends; data-quality dismissals

- ``checkup_appointment``: one *live* appointment per woman and round. The unique
  ``(round_id, person_id)`` becomes a partial unique index that leaves out appointments cancelled
  by a merge (``cancel_reason = 'merged'``): when both records of one woman hold an appointment of
  one round, the merge keeps one and cancels the other, and both move to the surviving record.
- ``claim``: one *live* claim per person, programme and year. The unique
  ``(person_id, programme, year)`` becomes a partial unique index that leaves out ``withdrawn``
  claims (a new status, ``String(10)`` already holds it): a merge withdraws a clashing draft.
- ``data_quality_dismissal``: faults set aside by a township or county, with a keyed hash of the
  fields each rests on (the fault comes back when they change).

The downgrade refuses while a woman holds two appointments of one round or a person two claims
of one programme and year (the old unique constraints could not hold them); nothing is deleted
automatically.

Revision ID: b15a00000004
Revises: b14a00000007
Create Date: 2026-12-07 22:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b15a00000004"
down_revision: str | None = "b15a00000007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_APPOINTMENT = sa.text("cancel_reason IS NULL OR cancel_reason <> 'merged'")
LIVE_CLAIM = sa.text("status <> 'withdrawn'")
TWIN_APPOINTMENTS = (
    "SELECT count(*) FROM (SELECT round_id, person_id FROM checkup_appointment"
    " GROUP BY round_id, person_id HAVING count(*) > 1) AS t"
)
TWIN_CLAIMS = (
    "SELECT count(*) FROM (SELECT person_id, programme, year FROM claim"
    " GROUP BY person_id, programme, year HAVING count(*) > 1) AS t"
)


def upgrade() -> None:
    with op.batch_alter_table("checkup_appointment", schema=None) as batch_op:
        batch_op.drop_constraint("uq_checkup_appointment_round_id_person_id", type_="unique")
        batch_op.create_index(
            "uq_checkup_appointment_live_round_id_person_id",
            ["round_id", "person_id"],
            unique=True,
            postgresql_where=LIVE_APPOINTMENT,
            sqlite_where=LIVE_APPOINTMENT,
        )
    with op.batch_alter_table("claim", schema=None) as batch_op:
        batch_op.drop_constraint("uq_claim_person_id_programme_year", type_="unique")
        batch_op.create_index(
            "uq_claim_live_person_id_programme_year",
            ["person_id", "programme", "year"],
            unique=True,
            postgresql_where=LIVE_CLAIM,
            sqlite_where=LIVE_CLAIM,
        )
    op.create_table(
        "data_quality_dismissal",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("county_code", sa.String(length=6), nullable=False),
        sa.Column("township_code", sa.String(length=9), nullable=False),
        sa.Column("village_code", sa.String(length=12), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("other_id", sa.Uuid(), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("dismissed_by", sa.Uuid(), nullable=True),
        sa.Column("dismissed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_quality_dismissal")),
    )
    with op.batch_alter_table("data_quality_dismissal", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_data_quality_dismissal_county_code"), ["county_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_data_quality_dismissal_township_code"), ["township_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_data_quality_dismissal_village_code"), ["village_code"], unique=False
        )
        batch_op.create_index("ix_data_quality_dismissal_entity_id_kind", ["entity_id", "kind"], unique=False)


def downgrade() -> None:
    bind = op.get_bind()
    twins = bind.execute(sa.text(TWIN_APPOINTMENTS)).scalar_one()
    claims = bind.execute(sa.text(TWIN_CLAIMS)).scalar_one()
    if twins or claims:
        raise RuntimeError(
            f"{twins} woman/round pair(s) hold two appointments and {claims} person/programme/year "
            "triple(s) two claims (one set aside by a merge); the old unique constraints cannot hold "
            "them. Review and remove the cancelled or withdrawn one of each first."
        )
    op.drop_table("data_quality_dismissal")
    with op.batch_alter_table("claim", schema=None) as batch_op:
        batch_op.drop_index("uq_claim_live_person_id_programme_year")
        batch_op.create_unique_constraint(
            batch_op.f("uq_claim_person_id_programme_year"), ["person_id", "programme", "year"]
        )
    with op.batch_alter_table("checkup_appointment", schema=None) as batch_op:
        batch_op.drop_index("uq_checkup_appointment_live_round_id_person_id")
        batch_op.create_unique_constraint(
            batch_op.f("uq_checkup_appointment_round_id_person_id"), ["round_id", "person_id"]
        )

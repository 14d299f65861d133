"""claims

Revision ID: 60863acc7832
Revises: ad0207d672c9
Create Date: 2026-11-29 03:00:33.434754+00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from uuid import UUID

import sqlalchemy as sa
from alembic import op

revision: str = "60863acc7832"
down_revision: str | None = "ad0207d672c9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The shipped programmes and national default rule versions (a copy of
# app.services.claim_rules.PROGRAMMES / NATIONAL_DEFAULTS as of this revision; a test keeps them
# equal). only_child_parent_reward ships without a version: amounts are provincial.
PROGRAMMES = [
    {"code": "rural_reward", "name": "农村部分计划生育家庭奖励扶助", "basis": "per_person_yearly"},
    {"code": "special_assistance", "name": "计划生育家庭特别扶助", "basis": "per_parent_monthly"},
    {"code": "childcare_subsidy", "name": "育儿补贴", "basis": "per_child_monthly"},
    {"code": "only_child_parent_reward", "name": "独生子女父母奖励", "basis": "per_parent_yearly"},
]
_RURAL = {"top_up": "0.00", "min_age": 60, "born_on_or_after": "1933-01-01", "policy_window": [1973, 2001]}
_SPECIAL = {
    "top_up_monthly": "0.00",
    "mother_min_age": 49,
    "born_on_or_after": "1933-01-01",
    "max_disability_grade": 3,
}
RULE_VERSIONS = [
    (
        "5f0c3a52-7b43-4d1e-9a51-000000002004",
        "rural_reward",
        date(2004, 1, 1),
        {"amount": "600.00", **_RURAL},
    ),
    (
        "5f0c3a52-7b43-4d1e-9a51-000000002009",
        "rural_reward",
        date(2009, 1, 1),
        {"amount": "720.00", **_RURAL},
    ),
    (
        "5f0c3a52-7b43-4d1e-9a51-000000002012",
        "rural_reward",
        date(2012, 1, 1),
        {"amount": "960.00", **_RURAL},
    ),
    (
        "5f0c3a52-7b43-4d1e-9a52-000000002008",
        "special_assistance",
        date(2008, 1, 1),
        {"death_monthly": "450.00", "disability_monthly": "350.00", **_SPECIAL},
    ),
    (
        "5f0c3a52-7b43-4d1e-9a52-000000202207",
        "special_assistance",
        date(2022, 7, 1),
        {"death_monthly": "590.00", "disability_monthly": "460.00", **_SPECIAL},
    ),
    (
        "5f0c3a52-7b43-4d1e-9a53-000000002025",
        "childcare_subsidy",
        date(2025, 1, 1),
        {"monthly": "300.00", "top_up_monthly": "0.00", "months": 36, "count_from": "2025-01-01"},
    ),
]


def _seed() -> None:
    programme = sa.table(
        "programme", sa.column("code", sa.String), sa.column("name", sa.String), sa.column("basis", sa.String)
    )
    rule_version = sa.table(
        "rule_version",
        sa.column("id", sa.Uuid),
        sa.column("programme_code", sa.String),
        sa.column("effective_from", sa.Date),
        sa.column("params", sa.JSON),
        sa.column("note", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    created = datetime(2026, 11, 29, tzinfo=UTC)
    if op.get_bind().dialect.name == "sqlite":
        created = created.replace(tzinfo=None)  # stored as UTC without offset, as UTCDateTime does
    op.bulk_insert(programme, PROGRAMMES)
    op.bulk_insert(
        rule_version,
        [
            {
                "id": UUID(ident),
                "programme_code": code,
                "effective_from": start,
                "params": params,
                "note": "national default",
                "created_at": created,
            }
            for ident, code, start, params in RULE_VERSIONS
        ],
    )


def upgrade() -> None:
    op.create_table(
        "programme",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("basis", sa.String(length=24), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_programme")),
    )
    op.create_table(
        "rule_version",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("programme_code", sa.String(length=32), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["programme_code"], ["programme.code"], name=op.f("fk_rule_version_programme_code_programme")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_version")),
        sa.UniqueConstraint(
            "programme_code", "effective_from", name=op.f("uq_rule_version_programme_code_effective_from")
        ),
    )
    op.create_table(
        "claim",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("county_code", sa.String(length=6), nullable=False),
        sa.Column("township_code", sa.String(length=9), nullable=False),
        sa.Column("village_code", sa.String(length=12), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("programme", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("applicant_id", sa.Uuid(), nullable=True),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("eligible", sa.Boolean(), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("rule_version_id", sa.Uuid(), nullable=False),
        sa.Column("evaluation", sa.JSON(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_amount_fen", sa.Integer(), nullable=True),
        sa.Column("payee_name", sa.String(length=50), nullable=True),
        sa.Column("payee_bank", sa.String(length=100), nullable=True),
        sa.Column("payee_account_enc", sa.Text(), nullable=True),
        sa.Column("payee_account_masked", sa.String(length=40), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("submitted_by", sa.Uuid(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by", sa.Uuid(), nullable=True),
        sa.Column("posted_on", sa.Date(), nullable=True),
        sa.Column("notice_until", sa.Date(), nullable=True),
        sa.Column("renewed_from_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(["applicant_id"], ["person.id"], name=op.f("fk_claim_applicant_id_person")),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"], name=op.f("fk_claim_person_id_person")),
        sa.ForeignKeyConstraint(["programme"], ["programme.code"], name=op.f("fk_claim_programme_programme")),
        sa.ForeignKeyConstraint(
            ["rule_version_id"], ["rule_version.id"], name=op.f("fk_claim_rule_version_id_rule_version")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim")),
        sa.UniqueConstraint("person_id", "programme", "year", name=op.f("uq_claim_person_id_programme_year")),
    )
    with op.batch_alter_table("claim", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_claim_applicant_id"), ["applicant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_claim_county_code"), ["county_code"], unique=False)
        batch_op.create_index(
            "ix_claim_county_code_programme_year_status",
            ["county_code", "programme", "year", "status"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_claim_township_code"), ["township_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_claim_village_code"), ["village_code"], unique=False)

    op.create_table(
        "claim_history",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("claim_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=10), nullable=True),
        sa.Column("to_status", sa.String(length=10), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_role", sa.String(length=16), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(["claim_id"], ["claim.id"], name=op.f("fk_claim_history_claim_id_claim")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_history")),
    )
    with op.batch_alter_table("claim_history", schema=None) as batch_op:
        batch_op.create_index("ix_claim_history_claim_id_at", ["claim_id", "at"], unique=False)

    op.create_table(
        "payment",
        sa.Column("county_code", sa.String(length=6), nullable=False),
        sa.Column("township_code", sa.String(length=9), nullable=False),
        sa.Column("village_code", sa.String(length=12), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("claim_id", sa.Uuid(), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("payee_name", sa.String(length=50), nullable=False),
        sa.Column("payee_bank", sa.String(length=100), nullable=False),
        sa.Column("payee_account_enc", sa.Text(), nullable=False),
        sa.Column("payee_account_masked", sa.String(length=40), nullable=False),
        sa.Column("recorded_by", sa.Uuid(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["claim_id"], ["claim.id"], name=op.f("fk_payment_claim_id_claim")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment")),
        sa.UniqueConstraint("claim_id", name=op.f("uq_payment_claim_id")),
    )
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_county_code"), ["county_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_payment_township_code"), ["township_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_payment_village_code"), ["village_code"], unique=False)

    _seed()


def downgrade() -> None:
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_village_code"))
        batch_op.drop_index(batch_op.f("ix_payment_township_code"))
        batch_op.drop_index(batch_op.f("ix_payment_county_code"))
    op.drop_table("payment")
    with op.batch_alter_table("claim_history", schema=None) as batch_op:
        batch_op.drop_index("ix_claim_history_claim_id_at")
    op.drop_table("claim_history")
    with op.batch_alter_table("claim", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_claim_village_code"))
        batch_op.drop_index(batch_op.f("ix_claim_township_code"))
        batch_op.drop_index("ix_claim_county_code_programme_year_status")
        batch_op.drop_index(batch_op.f("ix_claim_county_code"))
        batch_op.drop_index(batch_op.f("ix_claim_applicant_id"))
    op.drop_table("claim")
    op.drop_table("rule_version")
    op.drop_table("programme")

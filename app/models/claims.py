"""Benefit claims: programmes, their dated rule versions, claims, their history and payments.

- ``programme``: the four programmes (seeded by the migration); ``rule_version``: what a
  programme's rules were from a date on (JSON ``params``, validated per programme), nationally
  (``area_code`` null, shipped with the migrations) or in one county (``area_code`` the county's
  code, added by its admin). Versions are only ever added: a claim stamps the version it was
  evaluated with and keeps it once approved.
- ``claim``: one person, programme and year (a unique constraint, so a race cannot make two).
  Its place is the beneficiary's village. Money is integer fen; the API shows yuan strings.
- ``claim_history``: every step (who, when, from, to, comment); insert-only.
- ``payment``: the payment of one claim with a snapshot of the account paid to.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, StrictInt
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Index, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, utcnow
from app.models.common import AreaCode, IdMixin, ScopedMixin, VersionedMixin
from app.models.formats import Day
from app.models.households import CleanText, People


class ProgrammeCode(StrEnum):
    rural_reward = "rural_reward"
    special_assistance = "special_assistance"
    childcare_subsidy = "childcare_subsidy"
    only_child_parent_reward = "only_child_parent_reward"


class ClaimStatus(StrEnum):
    draft = "draft"
    submitted = "submitted"
    reviewed = "reviewed"
    returned = "returned"
    rejected = "rejected"
    approved = "approved"
    posted = "posted"
    paid = "paid"
    # A draft set aside when its person was merged into a record holding a claim of the same
    # programme and year (history action ``withdraw``, comment ``merged``); final.
    withdrawn = "withdrawn"


class Decision(StrEnum):
    approve = "approve"
    return_ = "return"
    reject = "reject"


# --- programmes and rule versions -------------------------------------------------------------


class Programme(SQLModel, table=True):
    code: str = Field(sa_type=String(32), primary_key=True)
    name: str = Field(sa_type=String(100), nullable=False)
    # what one claim pays for: per_person_yearly, per_parent_monthly, per_child_monthly, ...
    basis: str = Field(sa_type=String(24), nullable=False)


class RuleVersion(IdMixin, table=True):
    """A programme's rules from ``effective_from`` on, until a later version takes over, in the
    whole country (``area_code`` null) or in one county. One version per programme, area and
    date: the unique constraint for the counties (its index also serves the lookup
    ``programme_code = ? AND (area_code = ? OR area_code IS NULL)``), a partial unique index for
    the national ones (NULLs are distinct in a unique constraint)."""

    __tablename__ = "rule_version"
    __table_args__ = (
        UniqueConstraint("programme_code", "area_code", "effective_from"),
        Index(
            "uq_rule_version_national_programme_code_effective_from",
            "programme_code",
            "effective_from",
            unique=True,
            postgresql_where=text("area_code IS NULL"),
            sqlite_where=text("area_code IS NULL"),
        ),
    )

    programme_code: str = Field(sa_type=String(32), foreign_key="programme.code", nullable=False)
    # None: national; else a county's 12-digit area code (``430122000000``)
    area_code: str | None = Field(default=None, sa_type=String(12))
    effective_from: date = Field(nullable=False)
    params: dict[str, Any] = Field(sa_type=JSON, nullable=False)
    note: str | None = Field(default=None, sa_type=String(200))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    created_by: uuid.UUID | None = Field(default=None)


class RuleVersionCreate(SQLModel):
    """A new version for one county; ``params`` left out are carried over from the version in
    force there the day before ``effective_from`` (so a county can change only the amount)."""

    area_code: AreaCode | None = Field(
        default=None,
        description="The county the version applies in (default: yours). National versions ship "
        "with the migrations.",
    )
    effective_from: Day
    params: dict[str, Any] = Field(default_factory=dict)
    note: CleanText | None = Field(default=None, max_length=200)


class RuleVersionPublic(SQLModel):
    id: uuid.UUID
    area_code: str | None = Field(description="null: national; else the county it applies in")
    effective_from: date
    params: dict[str, Any]
    note: str | None
    created_at: datetime


class RuleVersionRef(SQLModel):
    id: uuid.UUID
    area_code: str | None = Field(default=None, description="null: national; else the county's code")
    effective_from: date


class ProgrammePublic(SQLModel):
    code: ProgrammeCode
    name: str
    basis: str
    versions: list[RuleVersionPublic]


# --- facts, payee, evaluation -----------------------------------------------------------------


class ClaimFacts(SQLModel):
    """What the register cannot know, declared by the family and checked by the cadre."""

    hukou_rural: bool | None = None
    births_within_policy_1973_2001: bool | None = None
    only_child_disability_grade: StrictInt | None = Field(default=None, ge=1, le=4)
    later_child_or_adoption: bool | None = None
    only_child_certificate: bool | None = None


_ACCOUNT_RE = re.compile(r"^[0-9]{8,32}$")


def _check_account(v: str) -> str:
    v = v.replace(" ", "").replace("-", "")
    if not _ACCOUNT_RE.match(v):
        raise ValueError("must be a bank account or card number of 8-32 digits")
    return v


ACCOUNT_PATTERN = "^[ -]*([0-9][ -]*){8,32}$"  # what _check_account takes (spaces and hyphens dropped)
AccountNumber = Annotated[
    str, AfterValidator(_check_account), PydanticField(json_schema_extra={"pattern": ACCOUNT_PATTERN})
]


class Payee(SQLModel):
    """The account a benefit is paid to: the beneficiary's own (for the childcare subsidy, the
    applicant parent's)."""

    name: CleanText = Field(max_length=50)
    bank: CleanText = Field(max_length=100)
    account: AccountNumber = Field(max_length=40)


class PayeePublic(SQLModel):
    name: str
    bank: str
    account_masked: str


class Reason(SQLModel):
    rule: str
    passed: bool
    detail: str


class CheckRequest(SQLModel):
    programme: ProgrammeCode
    person_id: uuid.UUID
    year: int = Field(ge=2000, le=2100)
    facts: ClaimFacts = Field(default_factory=ClaimFacts)
    applicant_id: uuid.UUID | None = None


class CheckResult(SQLModel):
    eligible: bool
    amount: str
    rule_version: RuleVersionRef
    reasons: list[Reason]
    months: list[str] = Field(default_factory=list, description="Paid months (monthly programmes)")
    category: str | None = None


# --- claims -----------------------------------------------------------------------------------


# One live claim per person, programme and year; withdrawn claims stand aside (a merge withdraws
# the clashing draft and moves it to the survivor with everything else).
LIVE_CLAIM = text("status <> 'withdrawn'")


class Claim(IdMixin, ScopedMixin, VersionedMixin, table=True):
    __table_args__ = (
        Index(
            "uq_claim_live_person_id_programme_year",
            "person_id",
            "programme",
            "year",
            unique=True,
            postgresql_where=LIVE_CLAIM,
            sqlite_where=LIVE_CLAIM,
        ),
        Index("ix_claim_county_code_programme_year_status", "county_code", "programme", "year", "status"),
    )

    programme: str = Field(sa_type=String(32), foreign_key="programme.code", nullable=False)
    person_id: uuid.UUID = Field(foreign_key="person.id", nullable=False)
    applicant_id: uuid.UUID | None = Field(default=None, foreign_key="person.id", index=True)
    year: int = Field(nullable=False)
    status: ClaimStatus = Field(default=ClaimStatus.draft, sa_type=String(10), nullable=False)
    facts: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=False)
    eligible: bool = Field(nullable=False)
    amount_fen: int = Field(nullable=False)
    rule_version_id: uuid.UUID = Field(foreign_key="rule_version.id", nullable=False)
    evaluation: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=False)
    evaluated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    approved_amount_fen: int | None = Field(default=None)
    payee_name: str | None = Field(default=None, sa_type=String(50))
    payee_bank: str | None = Field(default=None, sa_type=String(100))
    payee_account_enc: str | None = Field(default=None, sa_type=Text)
    payee_account_masked: str | None = Field(default=None, sa_type=String(40))
    created_by: uuid.UUID | None = Field(default=None)
    submitted_by: uuid.UUID | None = Field(default=None)
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reviewed_by: uuid.UUID | None = Field(default=None)
    approved_by: uuid.UUID | None = Field(default=None)
    posted_on: date | None = Field(default=None)
    notice_until: date | None = Field(default=None)
    renewed_from_id: uuid.UUID | None = Field(default=None)


class ClaimCreate(SQLModel):
    id: uuid.UUID | None = None
    programme: ProgrammeCode
    person_id: uuid.UUID
    year: int = Field(ge=2000, le=2100)
    facts: ClaimFacts = Field(default_factory=ClaimFacts)
    applicant_id: uuid.UUID | None = Field(
        default=None, description="Childcare subsidy: the parent applying (same household)"
    )
    payee: Payee | None = None


class ClaimUpdate(SQLModel):
    """The village's correction of a draft or returned claim; it is evaluated again."""

    facts: ClaimFacts | None = None
    applicant_id: uuid.UUID | None = None
    payee: Payee | None = None


class HistoryPublic(SQLModel):
    action: str
    from_status: ClaimStatus | None
    to_status: ClaimStatus
    actor_id: uuid.UUID | None
    actor_role: str | None
    at: datetime
    comment: str | None


class PaymentPublic(SQLModel):
    paid_on: date
    amount: str
    reference: str
    payee: PayeePublic
    recorded_by: uuid.UUID | None
    recorded_at: datetime


class ClaimPublic(SQLModel):
    id: uuid.UUID
    programme: ProgrammeCode
    person_id: uuid.UUID
    applicant_id: uuid.UUID | None
    year: int
    status: ClaimStatus
    village_code: str
    facts: ClaimFacts
    eligible: bool
    amount: str
    approved_amount: str | None
    rule_version: RuleVersionRef
    reasons: list[Reason]
    months: list[str]
    category: str | None
    payee: PayeePublic | None
    submitted_by: uuid.UUID | None
    submitted_at: datetime | None
    reviewed_by: uuid.UUID | None
    approved_by: uuid.UUID | None
    posted_on: date | None
    notice_until: date | None
    renewed_from_id: uuid.UUID | None
    version: int
    created_at: datetime
    updated_at: datetime


class ClaimItem(ClaimPublic, People):
    """A claim as lists show it: with its beneficiary and her household (contract v1.1)."""


class ClaimDetail(ClaimPublic):
    history: list[HistoryPublic]
    payment: PaymentPublic | None


class ClaimHistory(IdMixin, table=True):
    """One step of a claim. Insert-only: the ORM refuses updates and deletes."""

    __tablename__ = "claim_history"
    __table_args__ = (Index("ix_claim_history_claim_id_at", "claim_id", "at"),)

    claim_id: uuid.UUID = Field(foreign_key="claim.id", nullable=False)
    action: str = Field(sa_type=String(16), nullable=False)
    from_status: str | None = Field(default=None, sa_type=String(10))
    to_status: str = Field(sa_type=String(10), nullable=False)
    actor_id: uuid.UUID | None = Field(default=None)
    actor_role: str | None = Field(default=None, sa_type=String(16))
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    comment: str | None = Field(default=None, sa_type=String(1000))


class Payment(IdMixin, ScopedMixin, table=True):
    """The payment of one claim, with the account it went to as it was at that moment."""

    claim_id: uuid.UUID = Field(foreign_key="claim.id", unique=True, nullable=False)
    paid_on: date = Field(nullable=False)
    amount_fen: int = Field(nullable=False)
    reference: str = Field(sa_type=String(64), nullable=False)
    payee_name: str = Field(sa_type=String(50), nullable=False)
    payee_bank: str = Field(sa_type=String(100), nullable=False)
    payee_account_enc: str = Field(sa_type=Text, nullable=False)
    payee_account_masked: str = Field(sa_type=String(40), nullable=False)
    recorded_by: uuid.UUID | None = Field(default=None)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


# --- transition bodies ------------------------------------------------------------------------


class Comment(SQLModel):
    comment: str | None = Field(default=None, max_length=1000)


class DecisionBody(SQLModel):
    decision: Decision
    comment: str | None = Field(default=None, max_length=1000)


class PublishBody(SQLModel):
    notice_days: StrictInt | None = Field(default=None, ge=1, le=90)


class ObjectBody(SQLModel):
    comment: CleanText = Field(max_length=1000)


Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]


class PayBody(SQLModel):
    paid_on: Day
    amount: Money
    reference: CleanText = Field(max_length=64)


class PayeeChange(SQLModel):
    payee: Payee
    comment: str | None = Field(default=None, max_length=1000)


class RenewalRequest(SQLModel):
    programme: ProgrammeCode
    year: int = Field(
        ge=2000,
        le=2099,
        description="The year whose paid claims are renewed; the drafts are for the year after"
        " (`year` + 1, `for_year` in the answer)",
    )


class RenewalExit(SQLModel):
    person_id: uuid.UUID
    previous_claim_id: uuid.UUID
    reason: str
    detail: str


class RenewalResult(SQLModel):
    """``year`` means what it meant in the request (the year renewed); the drafts' year is
    ``for_year``, named in the answer so that nobody has to know the rule to read it."""

    programme: ProgrammeCode
    year: int = Field(description="The year whose paid claims were renewed (the request's `year`)")
    for_year: int = Field(description="The year of the drafted claims: the year after `year`")
    drafted: list[ClaimPublic]
    exits: list[RenewalExit]
    already_claimed: list[uuid.UUID] = Field(description="Persons who already have a claim that year")

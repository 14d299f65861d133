"""Home visits and the task inbox (follow-ups, referrals, confirmations, overdue checkups)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from pydantic import field_validator
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import Float, Index, String
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime
from app.models.common import IdMixin, ScopedMixin, VersionedMixin
from app.models.formats import Day, Timestamp, refuse_null
from app.models.households import People


class VisitPurpose(StrEnum):
    postnatal = "postnatal"
    elder_care = "elder_care"
    special_family_care = "special_family_care"
    checkup_reminder = "checkup_reminder"
    migrant_followup = "migrant_followup"
    claim_verification = "claim_verification"
    health_education = "health_education"
    other = "other"


class Location(SQLModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0, le=100_000)


class Visit(IdMixin, ScopedMixin, VersionedMixin, table=True):
    household_id: uuid.UUID = Field(foreign_key="household.id", index=True, nullable=False)
    person_id: uuid.UUID | None = Field(default=None, foreign_key="person.id", index=True)
    visited_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    purpose: VisitPurpose = Field(sa_type=String(24), nullable=False)
    notes: str | None = Field(default=None, sa_type=String(4000))
    lat: float | None = Field(default=None, sa_type=Float)
    lon: float | None = Field(default=None, sa_type=Float)
    accuracy_m: float | None = Field(default=None, sa_type=Float)
    follow_up_on: date | None = Field(default=None)
    follow_up_note: str | None = Field(default=None, sa_type=String(1000))
    visitor_id: uuid.UUID | None = Field(default=None, index=True)

    __table_args__ = (Index("ix_visit_village_code_visited_at_id", "village_code", "visited_at", "id"),)


class VisitCreate(SQLModel):
    id: uuid.UUID | None = None
    household_id: uuid.UUID
    person_id: uuid.UUID | None = None
    visited_at: Timestamp
    purpose: VisitPurpose
    notes: str | None = Field(default=None, max_length=4000)
    location: Location | None = None
    follow_up_on: Day | None = None
    follow_up_note: str | None = Field(default=None, max_length=1000)


class VisitUpdate(SQLModel):
    purpose: VisitPurpose | SkipJsonSchema[None] = None
    notes: str | None = Field(default=None, max_length=4000)
    follow_up_note: str | None = Field(default=None, max_length=1000)

    _not_null = field_validator("purpose", mode="before")(refuse_null)


class VisitPublic(SQLModel):
    id: uuid.UUID
    household_id: uuid.UUID
    person_id: uuid.UUID | None
    village_code: str
    visited_at: datetime
    purpose: VisitPurpose
    notes: str | None
    location: Location | None
    follow_up_on: date | None
    follow_up_note: str | None
    visitor_id: uuid.UUID | None
    version: int
    created_at: datetime
    updated_at: datetime


class TaskKind(StrEnum):
    follow_up = "follow_up"
    prenatal_care = "prenatal_care"
    referral = "referral"
    notification_confirm = "notification_confirm"
    checkup_overdue = "checkup_overdue"
    checkup_due = "checkup_due"
    migrant_confirm = "migrant_confirm"
    migrant_release = "migrant_release"  # the person's place: confirm or refuse her move away
    migrant_refused = "migrant_refused"  # the receiving village: her place refused the move
    claim_correction = "claim_correction"
    claim_review = "claim_review"
    other = "other"


class TaskStatus(StrEnum):
    open = "open"
    done = "done"
    cancelled = "cancelled"


class Task(IdMixin, ScopedMixin, VersionedMixin, table=True):
    """One piece of work for the cadres of a village: what, about whom, by when, from where."""

    # township and village are read through the (place, status, due_on, id) indexes below; no
    # single-column duplicates (every county-wide checkup round inserts 100,000+ tasks).
    township_code: str = Field(sa_type=String(9), nullable=False)
    village_code: str = Field(sa_type=String(12), nullable=False)
    kind: TaskKind = Field(sa_type=String(24), nullable=False)
    title: str = Field(sa_type=String(200), nullable=False)
    # the English title (``title`` is Chinese); null: ``title`` in both languages
    title_en: str | None = Field(default=None, sa_type=String(200), nullable=True)
    due_on: date = Field(nullable=False)
    status: TaskStatus = Field(default=TaskStatus.open, sa_type=String(10), nullable=False)
    household_id: uuid.UUID | None = Field(default=None, index=True)
    person_id: uuid.UUID | None = Field(default=None, index=True)
    source_entity: str | None = Field(default=None, sa_type=String(32))
    source_id: uuid.UUID | None = Field(default=None, index=True)
    assignee_user_id: uuid.UUID | None = Field(default=None)
    note: str | None = Field(default=None, sa_type=String(1000))
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_by: uuid.UUID | None = Field(default=None)

    __table_args__ = (
        Index("ix_task_village_code_status_due_on_id", "village_code", "status", "due_on", "id"),
        Index("ix_task_township_code_status_due_on_id", "township_code", "status", "due_on", "id"),
    )


class TaskPublic(SQLModel):
    id: uuid.UUID
    kind: TaskKind
    title: str
    due_on: date
    scheduled_on: date | None = Field(
        default=None, description="A checkup-due item: the day she is expected (null: any day of the window)"
    )
    overdue: bool
    status: TaskStatus
    village_code: str
    household_id: uuid.UUID | None
    person_id: uuid.UUID | None
    source_entity: str | None
    source_id: uuid.UUID | None
    assignee_user_id: uuid.UUID | None
    note: str | None
    completed_at: datetime | None
    completed_by: uuid.UUID | None
    version: int
    created_at: datetime
    updated_at: datetime


class TaskItem(TaskPublic, People):
    """A task as the inbox lists it: with whom it is about (contract v1.1)."""


class TaskComplete(SQLModel):
    note: str | None = Field(default=None, max_length=1000)

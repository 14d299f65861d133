"""Reproductive-health checkup rounds ("three checks", 三查) and their appointments."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import field_validator, model_validator
from sqlalchemy import Index, String, Text, text
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime
from app.models.common import AreaCode, IdMixin, ScopedMixin, VersionedMixin
from app.models.formats import Day
from app.models.households import CleanText, People

ITEMS = ("iud", "pregnancy", "gynecological")
CheckItem = Literal["iud", "pregnancy", "gynecological"]


class AppointmentStatus(StrEnum):
    scheduled = "scheduled"
    done = "done"
    declined = "declined"
    exempted = "exempted"
    overdue = "overdue"  # shown, never stored: scheduled after the window closed
    cancelled = "cancelled"


class ExemptReason(StrEnum):
    pregnant = "pregnant"
    postpartum = "postpartum"
    sterilised = "sterilised"
    hysterectomy = "hysterectomy"
    other = "other"


class Place(StrEnum):
    station = "station"
    mobile_clinic = "mobile_clinic"
    elsewhere_certificate = "elsewhere_certificate"


class CheckupRound(IdMixin, VersionedMixin, table=True):
    __tablename__ = "checkup_round"

    name: str = Field(sa_type=String(100), nullable=False)
    area_code: str = Field(sa_type=String(12), nullable=False)
    # The area's scope prefix (6, 9 or 12 digits): appointments' places start with it.
    area_prefix: str = Field(sa_type=String(12), nullable=False, index=True)
    county_code: str = Field(sa_type=String(6), nullable=False, index=True)
    opens_on: date = Field(nullable=False)
    closes_on: date = Field(nullable=False, index=True)
    items: str = Field(sa_type=String(64), nullable=False)  # comma-separated, canonical order
    created_by: uuid.UUID | None = Field(default=None)


class RoundCreate(SQLModel):
    area_code: AreaCode
    name: str = Field(min_length=1, max_length=100)
    opens_on: Day
    closes_on: Day = Field(description="Not before `opens_on`, nor before today (422)")
    items: list[CheckItem] = Field(min_length=1, max_length=3)

    @model_validator(mode="after")
    def _window(self) -> RoundCreate:
        if self.opens_on > self.closes_on:
            raise ValueError("opens_on must not be after closes_on")
        if len(set(self.items)) != len(self.items):
            raise ValueError("items must not repeat")
        return self


class RoundFigures(SQLModel):
    due: int
    done: int
    declined: int
    exempted: int
    overdue: int
    rate: float | None


class RoundPublic(SQLModel):
    id: uuid.UUID
    name: str
    area_code: str
    opens_on: date
    closes_on: date
    items: list[CheckItem]
    created_by: uuid.UUID | None
    version: int
    created_at: datetime


class RoundCreated(RoundPublic):
    appointments_created: int


class RoundDetail(RoundPublic, RoundFigures):
    pass


class AreaFigures(RoundFigures):
    area_code: str
    name: str | None


MERGED = "merged"  # the cancel reason of an appointment set aside by a merge
LIVE_APPOINTMENT = text("cancel_reason IS NULL OR cancel_reason <> 'merged'")


class CheckupAppointment(IdMixin, ScopedMixin, VersionedMixin, table=True):
    """One woman's place in one round. The place (scope columns) is where she lives now."""

    __tablename__ = "checkup_appointment"

    # Indexes cost every county-wide round 123,000 insertions each: the place columns are indexed
    # only where a query needs them alone (village lists); rounds are read through the
    # (round, village|township, status) indexes, a person's appointments through person_exempt.
    county_code: str = Field(sa_type=String(6), nullable=False)
    township_code: str = Field(sa_type=String(9), nullable=False)
    round_id: uuid.UUID = Field(foreign_key="checkup_round.id", nullable=False)
    person_id: uuid.UUID = Field(foreign_key="person.id", nullable=False)
    status: str = Field(default=AppointmentStatus.scheduled, sa_type=String(10), nullable=False)
    cancel_reason: str | None = Field(default=None, sa_type=String(32))
    result_id: uuid.UUID | None = Field(default=None)  # unique when set (partial index below)
    checked_on: date | None = Field(default=None)
    place: str | None = Field(default=None, sa_type=String(24))
    consent: bool | None = Field(default=None)
    results: str | None = Field(default=None, sa_type=Text)  # JSON {item: outcome}
    note: str | None = Field(default=None, sa_type=String(1000))
    decline_reason: str | None = Field(default=None, sa_type=String(200))
    exempt_reason: str | None = Field(default=None, sa_type=String(16))
    exempt_until: date | None = Field(default=None)
    recorded_by: uuid.UUID | None = Field(default=None)
    recorded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When and where she is expected (reschedule); null: any day of the window, any place.
    scheduled_on: date | None = Field(default=None)
    scheduled_place: str | None = Field(default=None, sa_type=String(200))
    history: str | None = Field(default=None, sa_type=Text)  # JSON list of AppointmentEvent

    __table_args__ = (
        # One live appointment per woman and round; one cancelled by a merge stands aside (it
        # moves to the surviving record with everything else, see ``settle_merge``).
        Index(
            "uq_checkup_appointment_live_round_id_person_id",
            "round_id",
            "person_id",
            unique=True,
            postgresql_where=LIVE_APPOINTMENT,
            sqlite_where=LIVE_APPOINTMENT,
        ),
        Index("ix_checkup_appointment_round_village", "round_id", "village_code", "status"),
        Index("ix_checkup_appointment_round_township", "round_id", "township_code", "status"),
        Index("ix_checkup_appointment_person_exempt", "person_id", "exempt_until"),
        Index(
            "uq_checkup_appointment_result_id",
            "result_id",
            unique=True,
            postgresql_where=text("result_id IS NOT NULL"),
            sqlite_where=text("result_id IS NOT NULL"),
        ),
    )


class ItemResults(SQLModel):
    iud: Literal["in_place", "absent", "not_applicable"] | None = None
    pregnancy: Literal["negative", "positive"] | None = None
    gynecological: Literal["normal", "abnormal"] | None = None


class ResultIn(SQLModel):
    id: uuid.UUID | None = None
    checked_on: Day
    place: Place
    consent: bool
    items: ItemResults
    note: str | None = Field(default=None, max_length=1000)


class ResultCorrection(SQLModel):
    checked_on: Day | None = None
    place: Place | None = None
    items: ItemResults | None = None
    note: str | None = Field(default=None, max_length=1000)


class DeclineIn(SQLModel):
    reason: str = Field(min_length=1, max_length=200)


class ExemptIn(SQLModel):
    reason: ExemptReason
    until: Day | None = None

    @field_validator("until")
    @classmethod
    def _future_ok(cls, v: date | None) -> date | None:
        return v


class RescheduleIn(SQLModel):
    scheduled_on: Day | None = Field(
        description="Within the round's window and not before today; null: any day of the window"
    )
    place: CleanText | None = Field(default=None, max_length=200, description="Where she is expected")


class CancelIn(SQLModel):
    reason: CleanText = Field(
        max_length=32, description="A short reason (at most 32 characters), kept as `cancel_reason`"
    )


class AppointmentAction(StrEnum):
    declined = "declined"
    exempted = "exempted"
    done = "done"
    rescheduled = "rescheduled"
    cancelled = "cancelled"
    reinstated = "reinstated"


class AppointmentEvent(SQLModel):
    """One step of an appointment's life, kept in its ``history`` (oldest first)."""

    at: datetime
    by: uuid.UUID | None = Field(
        default=None, description="The user; null when the register changed it (she moved, …)"
    )
    action: AppointmentAction
    from_status: str
    to_status: str
    reason: str | None = None
    scheduled_on: date | None = None
    place: str | None = None


class AppointmentPublic(SQLModel):
    id: uuid.UUID
    round_id: uuid.UUID
    person_id: uuid.UUID
    village_code: str
    status: AppointmentStatus
    cancel_reason: str | None
    result_id: uuid.UUID | None
    checked_on: date | None
    scheduled_on: date | None = Field(description="The day she is expected; null: any day of the window")
    place: str | None = Field(
        description="Where she is expected (free text, set by reschedule); once her result is "
        "recorded, where she was checked (station, mobile_clinic or elsewhere_certificate)"
    )
    consent: bool | None
    items: dict[str, str] | None
    note: str | None
    decline_reason: str | None
    exempt_reason: ExemptReason | None
    exempt_until: date | None
    history: list[AppointmentEvent] = Field(
        default_factory=list, description="Declines, results, reschedules, cancellations (oldest first)"
    )
    version: int
    updated_at: datetime


class AppointmentItem(AppointmentPublic, People):
    """An appointment as lists show it: with the woman and her household (contract v1.1)."""

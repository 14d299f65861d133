"""Migrant records (流动人口): inflow (lives here now, from elsewhere) and outflow (a resident who
left). Each movement is opened and later closed (returned, moved on, settled, deceased).

The record's place (scope columns) is the village that holds it: the receiving village for an
inflow, the home village for an outflow. Checkup rounds read this table: an open inflow makes a
woman due here, an open outflow excuses her (she may send a certificate).

A movement inside the deployment (an inflow naming a person registered in another village,
township or county) waits for the person's current place: the inflow is ``pending_release``
(``transfer: "pending"``) until a caller whose scope holds her register entry confirms it (it
becomes ``open``, ``transfer: "confirmed"``, and the origin keeps a closed outflow as history,
linked through ``counterpart_id`` both ways) or refuses it (``refused``, terminal,
``transfer: "refused"``). See ``app.services.migrants`` for the rules.

Partner notifications (police residence registrations, market-regulation business licences) are
stored as received (``body_enc``: the request body, AES-GCM encrypted like the register's ID
numbers, with a keyed digest of it) and processed in the same request; the ``idempotency_key``
table keeps each partner client's keys (a keyed hash of the key) with the keyed digest of the
body and the answer given, so a resend gets the first answer and nothing is stored twice.
Nothing a partner sends is kept in clear but the name and address (plain, as in the register),
its reference and the facts the inbox filters on.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import model_validator
from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, utcnow
from app.models.common import AreaCode, IdMixin, ScopedMixin, VersionedMixin, VillageCode
from app.models.formats import Day, IdNumberText
from app.models.households import CleanText, HouseholdType, MaritalStatus, People, Phone, Sex


class Direction(StrEnum):
    inflow = "inflow"
    outflow = "outflow"


class MigrantStatus(StrEnum):
    """``pending_release``: an inflow of a person registered elsewhere, waiting for her current
    place to confirm or refuse. ``refused``: that place refused (terminal; nothing moved)."""

    open = "open"
    closed = "closed"
    pending_release = "pending_release"
    refused = "refused"


# A record in these states names a person whose register entry the holder of the record may
# not see: its person is never shown to anyone through it.
HIDDEN_PERSON = (MigrantStatus.pending_release, MigrantStatus.refused)


class CloseReason(StrEnum):
    returned = "returned"
    moved_on = "moved_on"
    settled = "settled"
    deceased = "deceased"


class Transfer(StrEnum):
    """State of a movement between two villages of the deployment."""

    pending = "pending"
    confirmed = "confirmed"
    refused = "refused"


class Migrant(IdMixin, ScopedMixin, VersionedMixin, table=True):
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True, nullable=False)
    direction: Direction = Field(sa_type=String(8), nullable=False)
    status: MigrantStatus = Field(default=MigrantStatus.open, sa_type=String(16), nullable=False)
    moved_on: date = Field(nullable=False)
    origin_area_code: str | None = Field(default=None, sa_type=String(12))
    destination: str | None = Field(default=None, sa_type=String(200))
    address: str | None = Field(default=None, sa_type=String(200))
    employer: str | None = Field(default=None, sa_type=String(200))
    phone_enc: str | None = Field(default=None, sa_type=String(255))
    closed_on: date | None = Field(default=None)
    close_reason: CloseReason | None = Field(default=None, sa_type=String(10))
    # A movement inside the deployment: the other village's record, and whether the receiving
    # side has confirmed it (the person's register entry moves only then).
    counterpart_id: uuid.UUID | None = Field(default=None)
    transfer: Transfer | None = Field(default=None, sa_type=String(10))
    # A pending release: the receiving village's household she joins when it is confirmed
    # (named at inflow time; absent: a new household at ``address``).
    target_household_id: uuid.UUID | None = Field(default=None)
    refuse_reason: str | None = Field(default=None, sa_type=String(500))

    __table_args__ = (
        Index("ix_migrant_person_id_direction_status", "person_id", "direction", "status"),
        Index("ix_migrant_village_code_direction_status", "village_code", "direction", "status"),
    )


class MigrantPersonIn(SQLModel):
    """A person not (necessarily) known to the caller, named by ID number. A known number
    (anywhere in the deployment) names that person (registered in another village: the inflow
    waits for her place's release); an unknown one registers a new person in the receiving
    village. ``marital_status`` is required: the register never guesses it."""

    id_number: IdNumberText = Field(max_length=32)
    name: CleanText = Field(max_length=50)
    sex: Sex | None = None
    birth_date: Day | None = None
    marital_status: MaritalStatus


class MigrantCreate(SQLModel):
    id: uuid.UUID | None = None
    person_id: uuid.UUID | None = None
    person: MigrantPersonIn | None = None
    direction: Direction
    village_code: VillageCode
    moved_on: Day
    origin_area_code: AreaCode | None = None
    destination: CleanText | None = Field(default=None, max_length=200)
    address: CleanText | None = Field(default=None, max_length=200)
    employer: CleanText | None = Field(default=None, max_length=200)
    phone: Phone = None
    # Where the person lives in the receiving village: an existing household of the village,
    # or (absent) a new household at ``address`` of this type. For a person registered
    # elsewhere this is where she goes when her place confirms the move.
    household_id: uuid.UUID | None = None
    household_type: HouseholdType = HouseholdType.rural

    @model_validator(mode="after")
    def _shape(self) -> MigrantCreate:
        if (self.person_id is None) == (self.person is None):
            raise ValueError("give exactly one of person_id and person")
        if self.direction == Direction.outflow:
            if self.origin_area_code is not None:
                raise ValueError("origin_area_code is for inflows")
            if self.person is not None:
                raise ValueError("an outflow names a registered resident by person_id")
        if self.direction == Direction.inflow and self.destination is not None:
            raise ValueError("destination is for outflows")
        return self


class MigrantClose(SQLModel):
    closed_on: Day
    reason: CloseReason


class MigrantConfirm(SQLModel):
    """The person's current place releases her: she joins the household named at inflow time
    (or a new one at the inflow's address); her children under 16 in her household go with
    her unless ``children_stay``."""

    children_stay: bool = False


class MigrantRefuse(SQLModel):
    """The person's current place refuses the move; the receiving village is told why."""

    reason: CleanText = Field(min_length=1, max_length=500)


class MigrantPublic(SQLModel):
    """A migrant record as lists, pulls and write answers show it: the phone masked.
    ``person_id`` is null while the record is ``pending_release`` or ``refused``: its holder
    may not know whom the number names until her place releases her."""

    id: uuid.UUID
    person_id: uuid.UUID | None
    direction: Direction
    status: MigrantStatus
    village_code: str
    moved_on: date
    origin_area_code: str | None
    destination: str | None
    address: str | None
    employer: str | None
    phone_masked: str | None
    closed_on: date | None
    close_reason: CloseReason | None
    transfer: Transfer | None
    refuse_reason: str | None
    version: int
    created_at: datetime
    updated_at: datetime


class MigrantItem(MigrantPublic, People):
    """A migrant record as lists show it: with the person and her household (contract v1.1);
    both null while the record hides its person (``pending_release``, ``refused``)."""


class MigrantDetail(MigrantPublic):
    """One record opened by someone in scope: the full phone (the read is audited)."""

    phone: str | None


class MigrantFigures(SQLModel):
    """Aggregates for dashboards (no personal data)."""

    area_code: str
    open_inflow: int
    open_outflow: int
    new_inflow: int
    new_outflow: int
    open_inflow_women_15_49: int
    open_outflow_women_15_49: int
    new_inflow_women_15_49: int
    new_outflow_women_15_49: int


# --- partner notifications ------------------------------------------------------------------


class NotificationKind(StrEnum):
    residence_registered = "residence_registered"
    residence_cancelled = "residence_cancelled"
    business_licensed = "business_licensed"


class NotificationStatus(StrEnum):
    received = "received"
    matched = "matched"
    pending_confirmation = "pending_confirmation"
    applied = "applied"
    dismissed = "dismissed"


class InboxStatus(StrEnum):
    """Inbox filter: ``pending`` is ``pending_confirmation``."""

    pending = "pending"
    received = "received"
    matched = "matched"
    applied = "applied"
    dismissed = "dismissed"


class PartnerNotification(IdMixin, ScopedMixin, VersionedMixin, table=True):
    """One notification as a partner sent it. Place: its village, or for a township-level
    ``area_code`` the 12-digit township code (township staff see it, village cadres do not).

    Personal data at rest: the ID number as cipher text, blind index and mask (as ``person``);
    the body as received and the free-form ``details`` as cipher text only (a partner may put
    anything there: phones, other people's numbers); ``body_sha256`` is a keyed digest (HMAC
    with the blind-index key): a plain SHA-256 of a body whose other fields are stored in clear
    would give the ID number back to anyone trying the ~10^11 possible numbers."""

    __tablename__ = "partner_notification"

    client_id: uuid.UUID = Field(foreign_key="machine_client.id", nullable=False)
    agency: str | None = Field(default=None, sa_type=String(32))
    kind: NotificationKind = Field(sa_type=String(24), nullable=False)
    reference: str = Field(sa_type=String(100), nullable=False)
    id_number_enc: str = Field(sa_type=Text, nullable=False)
    id_number_hash: str = Field(sa_type=String(64), index=True, nullable=False)
    id_number_masked: str = Field(sa_type=String(18), nullable=False)
    name: str = Field(sa_type=String(50), nullable=False)
    address: str = Field(sa_type=String(200), nullable=False)
    area_code: str = Field(sa_type=String(12), nullable=False)
    occurred_on: date = Field(nullable=False)
    details_enc: str | None = Field(default=None, sa_type=Text)  # JSON object, encrypted
    body_enc: str = Field(sa_type=Text, nullable=False)  # the request body as received, encrypted
    body_sha256: str = Field(sa_type=String(64), nullable=False)  # keyed digest of the body
    status: NotificationStatus = Field(sa_type=String(24), nullable=False)
    person_id: uuid.UUID | None = Field(default=None, foreign_key="person.id", index=True)
    migrant_id: uuid.UUID | None = Field(default=None, foreign_key="migrant.id")
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decided_by: uuid.UUID | None = Field(default=None)
    dismiss_reason: str | None = Field(default=None, sa_type=String(500))

    __table_args__ = (
        # A resend under a new key (same partner, same reference, same body) is the same one.
        UniqueConstraint("client_id", "reference", "body_sha256"),
        Index("ix_partner_notification_village_inbox", "village_code", "status", "received_at", "id"),
        Index("ix_partner_notification_township_inbox", "township_code", "status", "received_at", "id"),
        # A partner's own list (GET /partner/notifications), keyset by (received_at, id).
        Index("ix_partner_notification_client_list", "client_id", "received_at", "id"),
    )


class IdempotencyKey(IdMixin, table=True):
    """A partner client's ``Idempotency-Key``: the keyed digest of the body it came with and the
    answer given (status and JSON body; codes and messages, never a field's value), kept at
    least ``KEEP_DAYS``. ``key`` holds a keyed hash of the key, not the key: partners build keys
    from their own records (an ID number and a date is a natural choice), and only equality
    is ever asked of it."""

    __tablename__ = "idempotency_key"

    client_id: uuid.UUID = Field(foreign_key="machine_client.id", nullable=False)
    key: str = Field(sa_type=String(255), nullable=False)  # keyed hash of the Idempotency-Key
    request_sha256: str = Field(sa_type=String(64), nullable=False)  # keyed digest of the body
    response_status: int = Field(nullable=False)  # 0 while processing
    response_body: str = Field(sa_type=Text, nullable=False)
    notification_id: uuid.UUID | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True, nullable=False)

    __table_args__ = (UniqueConstraint("client_id", "key"),)


class PartnerNotificationIn(SQLModel):
    """What a partner system sends. ``details`` is free-form; for ``business_licensed`` its
    ``business_name`` becomes the migrant record's employer; ``origin_area_code`` (12 digits),
    when sent, becomes an inflow's origin."""

    kind: NotificationKind
    id_number: IdNumberText = Field(max_length=32)
    name: CleanText = Field(max_length=50)
    address: CleanText = Field(max_length=200)
    area_code: AreaCode
    occurred_on: Day
    reference: CleanText = Field(max_length=100)
    details: dict[str, Any] | None = None


class NotificationReceipt(SQLModel):
    id: uuid.UUID
    status: NotificationStatus


class NotificationStatusPublic(SQLModel):
    """All a partner ever sees of what it sent."""

    id: uuid.UUID
    status: NotificationStatus
    received_at: datetime


class NotificationPublic(People):
    """A notification in the inbox of the village or township it concerns (ID number masked;
    ``person_id``, ``person`` and ``household`` only when the matched person is in the
    reader's scope)."""

    id: uuid.UUID
    kind: NotificationKind
    agency: str | None
    status: NotificationStatus
    name: str
    id_number_masked: str
    address: str
    area_code: str
    village_code: str
    occurred_on: date
    reference: str
    details: dict[str, Any] | None
    person_id: uuid.UUID | None
    migrant_id: uuid.UUID | None
    received_at: datetime
    decided_at: datetime | None
    decided_by: uuid.UUID | None
    dismiss_reason: str | None
    version: int


class NotificationAccept(SQLModel):
    """Accepting: for a township-level notification, the village it concerns; optionally the
    household a new person joins, and (cancellations) the close reason."""

    village_code: VillageCode | None = None
    household_id: uuid.UUID | None = None
    household_type: HouseholdType = HouseholdType.rural
    marital_status: MaritalStatus = MaritalStatus.single
    close_reason: CloseReason = CloseReason.moved_on


class NotificationDismiss(SQLModel):
    reason: CleanText = Field(max_length=500)

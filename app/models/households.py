"""The register: households, persons, births, deaths, and the history of moves and merges.

ID numbers are never stored in plain text: ``id_number_enc`` holds the AES-GCM cipher text (with
its key id), ``id_number_hash`` a keyed hash (blind index) for exact lookup and deployment-wide
uniqueness, and ``id_number_masked`` the form lists show. Phones are encrypted the same way.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, field_validator
from pydantic import Field as PydanticField
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import Index, String, Text
from sqlmodel import Field, SQLModel

from app.core import clock
from app.core.db import UTCDateTime, utcnow
from app.models.common import AreaCode, IdMixin, ScopedMixin, VersionedMixin, VillageCode
from app.models.formats import CLEAN_TEXT_PATTERN, Day, IdNumberText, refuse_null


class HouseholdType(StrEnum):
    rural = "rural"
    urban = "urban"


class Sex(StrEnum):
    male = "male"
    female = "female"


class MaritalStatus(StrEnum):
    single = "single"
    married = "married"
    divorced = "divorced"
    widowed = "widowed"


def _clean_text(v: str) -> str:
    v = v.strip()
    if not v:
        raise ValueError("must not be blank")
    if any(ord(c) < 32 for c in v):
        raise ValueError("must not contain control characters")
    return v


CleanText = Annotated[
    str, AfterValidator(_clean_text), PydanticField(json_schema_extra={"pattern": CLEAN_TEXT_PATTERN})
]


def _check_phone(v: str | None) -> str | None:
    if v is None:
        return None
    v = v.strip().replace(" ", "").replace("-", "")
    if not (v.isascii() and v.lstrip("+").isdigit() and 5 <= len(v) <= 20):
        raise ValueError("must be a phone number of 5-20 digits")
    return v


Phone = Annotated[str | None, AfterValidator(_check_phone)]


# --- households -------------------------------------------------------------------------------


class Household(IdMixin, ScopedMixin, VersionedMixin, table=True):
    address: str = Field(sa_type=String(200), nullable=False)
    household_type: HouseholdType = Field(sa_type=String(8), nullable=False)
    # No foreign key: a head is a member, checked by the service (avoids a cycle with person).
    head_person_id: uuid.UUID | None = Field(default=None)

    __table_args__ = (Index("ix_household_village_code_id", "village_code", "id"),)


class HouseholdCreate(SQLModel):
    id: uuid.UUID | None = None
    village_code: VillageCode
    address: CleanText = Field(max_length=200)
    household_type: HouseholdType


class HouseholdUpdate(SQLModel):
    """Fields left out stay; ``null`` only where a value can be removed (``SkipJsonSchema[None]``
    keeps null out of the document for the others, which the service refuses with 422)."""

    address: Annotated[CleanText, PydanticField(max_length=200)] | SkipJsonSchema[None] = None
    household_type: HouseholdType | SkipJsonSchema[None] = None
    head_person_id: uuid.UUID | None = None

    _not_null = field_validator("address", "household_type", mode="before")(refuse_null)


# --- persons ----------------------------------------------------------------------------------


class Person(IdMixin, ScopedMixin, VersionedMixin, table=True):
    """A person. Scope columns follow the household; ``current_village_code`` is where the
    person actually lives now (normally the household's village)."""

    household_id: uuid.UUID = Field(foreign_key="household.id", index=True, nullable=False)
    id_number_enc: str | None = Field(default=None, sa_type=Text)
    id_number_hash: str | None = Field(default=None, sa_type=String(64), unique=True)
    id_number_masked: str | None = Field(default=None, sa_type=String(18))
    name: str = Field(sa_type=String(50), nullable=False)
    sex: Sex = Field(sa_type=String(6), nullable=False)
    birth_date: date = Field(nullable=False)
    relation_to_head: str = Field(sa_type=String(20), nullable=False)
    marital_status: MaritalStatus = Field(sa_type=String(10), nullable=False)
    hukou_area_code: str | None = Field(default=None, sa_type=String(12))
    phone_enc: str | None = Field(default=None, sa_type=Text)
    mother_id: uuid.UUID | None = Field(default=None, foreign_key="person.id", index=True)
    father_id: uuid.UUID | None = Field(default=None, foreign_key="person.id", index=True)
    current_village_code: str = Field(sa_type=String(12), nullable=False)
    death_date: date | None = Field(default=None)
    merged_into_id: uuid.UUID | None = Field(default=None, foreign_key="person.id", index=True)

    __table_args__ = (
        Index("ix_person_village_code_name_id", "village_code", "name", "id"),
        Index("ix_person_county_code_name_birth_date", "county_code", "name", "birth_date"),
    )


class PersonCreate(SQLModel):
    id: uuid.UUID | None = None
    household_id: uuid.UUID
    id_number: IdNumberText | None = Field(default=None, max_length=32)
    name: CleanText = Field(max_length=50)
    sex: Sex | None = None
    birth_date: Day | None = None
    relation_to_head: CleanText = Field(max_length=20)
    marital_status: MaritalStatus
    hukou_area_code: AreaCode | None = None
    phone: Phone = None
    mother_id: uuid.UUID | None = None
    father_id: uuid.UUID | None = None
    current_village_code: VillageCode | None = None


class PersonUpdate(SQLModel):
    id_number: IdNumberText | None = Field(default=None, max_length=32)
    name: Annotated[CleanText, PydanticField(max_length=50)] | SkipJsonSchema[None] = None
    sex: Sex | SkipJsonSchema[None] = None
    birth_date: Day | SkipJsonSchema[None] = None
    relation_to_head: Annotated[CleanText, PydanticField(max_length=20)] | SkipJsonSchema[None] = None
    marital_status: MaritalStatus | SkipJsonSchema[None] = None
    hukou_area_code: AreaCode | None = None
    phone: Phone = None
    mother_id: uuid.UUID | None = None
    father_id: uuid.UUID | None = None
    current_village_code: VillageCode | SkipJsonSchema[None] = None

    _not_null = field_validator(
        "name",
        "sex",
        "birth_date",
        "relation_to_head",
        "marital_status",
        "current_village_code",
        mode="before",
    )(refuse_null)


class PersonPublic(SQLModel):
    """A person as lists, pulls and write answers show it: the ID number and the phone masked
    (``id_number_masked`` keeps the first and last character only, ``phone_masked`` the first 3
    and last 4 digits of a mobile), never in full."""

    id: uuid.UUID
    household_id: uuid.UUID
    village_code: str
    current_village_code: str
    id_number_masked: str | None
    name: str
    sex: Sex
    birth_date: date
    relation_to_head: str
    marital_status: MaritalStatus
    hukou_area_code: str | None
    phone_masked: str | None
    mother_id: uuid.UUID | None
    father_id: uuid.UUID | None
    alive: bool
    death_date: date | None
    merged_into_id: uuid.UUID | None
    version: int
    created_at: datetime
    updated_at: datetime


class PersonDetail(PersonPublic):
    """One person opened by someone in scope: the full ID number and phone (the read is
    audited)."""

    id_number: str | None
    phone: str | None


class HouseholdPublic(SQLModel):
    id: uuid.UUID
    village_code: str
    township_code: str
    address: str
    household_type: HouseholdType
    head_person_id: uuid.UUID | None
    version: int
    created_at: datetime
    updated_at: datetime


class HouseholdDetail(HouseholdPublic):
    members: list[PersonPublic]


class PersonSummary(SQLModel):
    """Who a list item is about, so a list reads as people and not ids: the ID number masked
    as stored (``id_number_masked``), and the village her register entry is in (the person's
    ``village_code``, with its name; null when the area table does not know the code)."""

    id: uuid.UUID
    name: str
    id_number_masked: str | None
    village_code: str
    village_name: str | None


class HouseholdSummary(SQLModel):
    id: uuid.UUID
    address: str


class People(SQLModel):
    """The ``person`` and ``household`` of a list item (null where none applies or the item
    may not name them); see ``app.services.summaries``."""

    person: PersonSummary | None
    household: HouseholdSummary | None


class MoveRequest(SQLModel):
    household_id: uuid.UUID


class MergeRequest(SQLModel):
    into_id: uuid.UUID


class PersonMove(IdMixin, table=True):
    """History of household moves."""

    __tablename__ = "person_move"

    person_id: uuid.UUID = Field(foreign_key="person.id", index=True, nullable=False)
    from_household_id: uuid.UUID = Field(nullable=False)
    to_household_id: uuid.UUID = Field(nullable=False)
    moved_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    actor_id: uuid.UUID | None = Field(default=None)


class PersonMerge(IdMixin, table=True):
    """A merge of a duplicate into the surviving record, with every reference it moved (JSON
    ``[{"table", "column", "id"}]``), so the act can be reviewed and reversed from history."""

    __tablename__ = "person_merge"

    merged_id: uuid.UUID = Field(foreign_key="person.id", index=True, nullable=False)
    into_id: uuid.UUID = Field(foreign_key="person.id", index=True, nullable=False)
    moved_refs: str = Field(sa_type=Text, nullable=False)
    merged_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    actor_id: uuid.UUID | None = Field(default=None)


class MergePublic(SQLModel):
    id: uuid.UUID
    merged_id: uuid.UUID
    into_id: uuid.UUID
    moved: int
    merged_at: datetime


# --- births and deaths ------------------------------------------------------------------------


class Birth(IdMixin, ScopedMixin, VersionedMixin, table=True):
    mother_id: uuid.UUID = Field(foreign_key="person.id", index=True, nullable=False)
    father_id: uuid.UUID | None = Field(default=None, foreign_key="person.id")
    child_person_id: uuid.UUID = Field(foreign_key="person.id", unique=True, nullable=False)
    birth_date: date = Field(nullable=False, index=True)
    sex: Sex = Field(sa_type=String(6), nullable=False)
    birth_order: int = Field(nullable=False)


class ChildIn(SQLModel):
    name: CleanText | None = Field(default=None, max_length=50)
    sex: Sex
    birth_date: Day
    id_number: IdNumberText | None = Field(default=None, max_length=32)


class BirthCreate(SQLModel):
    id: uuid.UUID | None = None
    mother_id: uuid.UUID
    father_id: uuid.UUID | None = None
    child: ChildIn


class BirthPublic(SQLModel):
    id: uuid.UUID
    child_person_id: uuid.UUID
    mother_id: uuid.UUID
    father_id: uuid.UUID | None
    birth_date: date
    sex: Sex
    birth_order: int
    village_code: str
    version: int
    created_at: datetime


class Death(IdMixin, ScopedMixin, VersionedMixin, table=True):
    person_id: uuid.UUID = Field(foreign_key="person.id", unique=True, nullable=False)
    death_date: date = Field(nullable=False, index=True)


class DeathCreate(SQLModel):
    id: uuid.UUID | None = None
    person_id: uuid.UUID
    death_date: Day

    @field_validator("death_date")
    @classmethod
    def _not_future(cls, v: date) -> date:
        if v > clock.today():
            raise ValueError("must not be in the future")
        return v


class DeathPublic(SQLModel):
    id: uuid.UUID
    person_id: uuid.UUID
    death_date: date
    village_code: str
    version: int
    created_at: datetime


class FaultDismissed(SQLModel):
    by: uuid.UUID | None
    at: datetime
    reason: str


class DataQualityFault(SQLModel):
    kind: str
    entity: str
    id: uuid.UUID
    detail: str
    # filled in for the list by ``data_quality.add_people`` (a person fault: her and her
    # household; a household fault: the household)
    person: PersonSummary | None = None
    household: HouseholdSummary | None = None
    dismissed: FaultDismissed | None = Field(
        default=None, description="Set only with include_dismissed=true: who set it aside, when, why"
    )


class DataQualityDismissal(IdMixin, ScopedMixin, table=True):
    """A fault a township or county set aside ("not a duplicate"). It holds while the keyed hash
    (``fingerprint``) of the fields the fault rests on stays the same; the place is the
    record's. For a likely duplicate it is one row per direction of the pair (``other_id``)."""

    __tablename__ = "data_quality_dismissal"
    __table_args__ = (Index("ix_data_quality_dismissal_entity_id_kind", "entity_id", "kind"),)

    kind: str = Field(sa_type=String(32), nullable=False)
    entity: str = Field(sa_type=String(16), nullable=False)
    entity_id: uuid.UUID = Field(nullable=False)
    other_id: uuid.UUID | None = Field(default=None)
    fingerprint: str = Field(sa_type=String(64), nullable=False)
    reason: str = Field(sa_type=String(200), nullable=False)
    dismissed_by: uuid.UUID | None = Field(default=None)
    dismissed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class FaultKind(StrEnum):
    likely_duplicate = "likely_duplicate"
    child_born_before_mother_15 = "child_born_before_mother_15"
    married_under_20 = "married_under_20"
    over_110_alive = "over_110_alive"
    household_without_head = "household_without_head"
    household_no_living_member = "household_no_living_member"
    village_mismatch = "village_mismatch"


class FaultEntity(StrEnum):
    person = "person"
    household = "household"


class DismissRequest(SQLModel):
    kind: FaultKind
    entity: FaultEntity
    id: uuid.UUID
    reason: CleanText = Field(min_length=1, max_length=200)
    other_id: uuid.UUID | None = Field(
        default=None,
        description="likely_duplicate only: dismiss the pair with this record only (default: every "
        "pair the record is in now)",
    )


class DismissalPublic(SQLModel):
    kind: FaultKind
    entity: FaultEntity
    id: uuid.UUID
    other_id: uuid.UUID | None
    reason: str
    dismissed_by: uuid.UUID | None
    dismissed_at: datetime

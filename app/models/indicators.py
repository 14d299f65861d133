"""State kept for the county figures (issue 8): maintained in the writing transaction by
``app.services.indicator_upkeep``, read by ``app.services.indicators`` and ``data_quality``.

- ``indicator_tally``: additive counts per area (a village row, and a township row that is the
  sum of its villages) and bucket (a year, a month ``YYYYMM`` or ``0`` for all time). A county's
  breakdown reads the township rows (``parent_code`` = county), a township's the village rows.
- ``data_quality_flag``: the open data-quality faults whose truth does not depend on today's date
  (one row per kind and record, placed where the record is).
- ``indicator_inflow_woman``: open-or-closed inflow records of women with the woman's birth date
  copied next to the movement dates, so "women 15-49 among open inflows" needs no join with the
  register.
- ``indicator_beneficiary``: who was paid under which programme in which year, where, and
  whether also the year before and after (benefit beneficiaries are counted per person, so they
  are not a sum of payments).
- ``data_version``: a counter per county bumped by every committing transaction that wrote
  something of that county (``""``: writes without a county); the figures' ETag validator.

The partial and covering indexes on the register and event tables below serve the exact edge
corrections of the figures (days of a partial month or year) and the two date-dependent
data-quality kinds; they are declared here so that the tables' own modules stay untouched.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import BigInteger, Index, String, text
from sqlmodel import Field, SQLModel

from app.models.households import Person
from app.models.migrants import Migrant
from app.models.visits import Visit


class IndicatorTally(SQLModel, table=True):
    __tablename__ = "indicator_tally"

    metric: str = Field(sa_type=String(40), primary_key=True)
    area_code: str = Field(sa_type=String(12), primary_key=True)  # village (12) or township (9)
    bucket: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    parent_code: str = Field(sa_type=String(9), nullable=False)  # township, or county (6)
    n: int = Field(default=0, sa_type=BigInteger, nullable=False)

    __table_args__ = (Index("ix_indicator_tally_parent", "parent_code", "metric", "bucket"),)


class DataQualityFlag(SQLModel, table=True):
    __tablename__ = "data_quality_flag"

    kind: str = Field(sa_type=String(32), primary_key=True)
    entity_id: uuid.UUID = Field(primary_key=True)
    county_code: str = Field(sa_type=String(6), nullable=False)
    township_code: str = Field(sa_type=String(9), nullable=False)
    village_code: str = Field(sa_type=String(12), nullable=False)

    __table_args__ = (
        Index("ix_data_quality_flag_county_code", "county_code", "township_code", "village_code"),
    )


class IndicatorInflowWoman(SQLModel, table=True):
    __tablename__ = "indicator_inflow_woman"

    migrant_id: uuid.UUID = Field(primary_key=True)
    person_id: uuid.UUID = Field(nullable=False, index=True)
    county_code: str = Field(sa_type=String(6), nullable=False)
    township_code: str = Field(sa_type=String(9), nullable=False)
    village_code: str = Field(sa_type=String(12), nullable=False)
    moved_on: date = Field(nullable=False)
    closed_on: date | None = Field(default=None)
    birth_date: date = Field(nullable=False)

    __table_args__ = (
        Index(
            "ix_indicator_inflow_woman_county_birth",
            "county_code",
            "birth_date",
            postgresql_include=["township_code", "village_code", "moved_on", "closed_on"],
        ),
    )


class IndicatorBeneficiary(SQLModel, table=True):
    """One person paid under one programme in one calendar year, per child area of the three
    kinds of request: ``level`` ``c`` (a township row of a county's breakdown), ``t`` (a village
    row of a township's) and ``v`` (a village on its own). ``continuing`` / ``stays``: the
    person was also paid the year before / after within the request's area (the county, the
    township, the village). Derived from payments and claims; feeds the claims tallies."""

    __tablename__ = "indicator_beneficiary"

    programme: str = Field(sa_type=String(32), primary_key=True)
    person_id: uuid.UUID = Field(primary_key=True)
    year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    level: str = Field(sa_type=String(1), primary_key=True)
    area_code: str = Field(sa_type=String(12), primary_key=True)
    parent_code: str = Field(sa_type=String(9), nullable=False)
    amount_fen: int = Field(sa_type=BigInteger, nullable=False)
    continuing: bool = Field(nullable=False)
    stays: bool = Field(nullable=False)


class DataVersion(SQLModel, table=True):
    __tablename__ = "data_version"

    county_code: str = Field(sa_type=String(6), primary_key=True)
    shard: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    n: int = Field(default=0, sa_type=BigInteger, nullable=False)


# --- indexes on the register and the event tables ----------------------------------------------

LIVING = "merged_into_id IS NULL AND death_date IS NULL"
LIVING_MARRIED_WOMEN = f"sex = 'female' AND marital_status = 'married' AND {LIVING}"
DEAD = "death_date IS NOT NULL AND merged_into_id IS NULL"

_person = Person.__table__  # type: ignore[attr-defined]
_visit = Visit.__table__  # type: ignore[attr-defined]
_migrant = Migrant.__table__  # type: ignore[attr-defined]

Index(
    "ix_person_living_birth",
    _person.c.county_code,
    _person.c.birth_date,
    postgresql_where=text(LIVING),
    sqlite_where=text(LIVING),
    postgresql_include=["township_code", "village_code"],
)
Index(
    "ix_person_living_married_women_birth",
    _person.c.county_code,
    _person.c.birth_date,
    postgresql_where=text(LIVING_MARRIED_WOMEN),
    sqlite_where=text(LIVING_MARRIED_WOMEN),
    postgresql_include=["township_code", "village_code"],
)
Index(
    "ix_person_dead_death",
    _person.c.county_code,
    _person.c.death_date,
    postgresql_where=text(DEAD),
    sqlite_where=text(DEAD),
    postgresql_include=["township_code", "village_code", "birth_date", "sex", "marital_status"],
)
Index(
    "ix_visit_county_visited_at",
    _visit.c.county_code,
    _visit.c.visited_at,
    postgresql_include=["township_code", "village_code"],
)
Index(
    "ix_migrant_county_moved_on",
    _migrant.c.county_code,
    _migrant.c.moved_on,
    postgresql_include=["township_code", "village_code", "direction", "closed_on"],
)
Index(
    "ix_migrant_county_closed_on",
    _migrant.c.county_code,
    _migrant.c.closed_on,
    postgresql_where=text("closed_on IS NOT NULL"),
    sqlite_where=text("closed_on IS NOT NULL"),
    postgresql_include=["township_code", "village_code", "direction", "moved_on"],
)

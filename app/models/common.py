"""Columns every table shares, and the place columns that make a table scoped."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, TypedDict

from pydantic import AfterValidator
from sqlalchemy import String
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, new_id, utcnow

AREA_CODE_RE = re.compile(r"^[0-9]{12}$")  # ASCII only: \d accepts full-width digits


def _check_area_code(v: str) -> str:
    if not AREA_CODE_RE.match(v):
        raise ValueError("must be a 12-digit area code")
    return v


def _check_village_code(v: str) -> str:
    _check_area_code(v)
    if v.endswith("000"):
        raise ValueError("must be a village code (12 digits, last 3 not 000)")
    return v


AreaCode = Annotated[str, AfterValidator(_check_area_code)]
VillageCode = Annotated[str, AfterValidator(_check_village_code)]


class IdMixin(SQLModel):
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)


class TimestampMixin(SQLModel):
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class VersionedMixin(TimestampMixin):
    version: int = Field(default=1, nullable=False)


class ScopedMixin(SQLModel):
    """A record's place. Scope filters compare exactly one of these with the caller's area.

    Always set through ``place_columns(village_code)``; never typed by clients.
    """

    county_code: str = Field(sa_type=String(6), index=True, nullable=False)
    township_code: str = Field(sa_type=String(9), index=True, nullable=False)
    village_code: str = Field(sa_type=String(12), index=True, nullable=False)


class Place(TypedDict):
    county_code: str
    township_code: str
    village_code: str


def place_columns(village_code: str) -> Place:
    return {
        "county_code": village_code[:6],
        "township_code": village_code[:9],
        "village_code": village_code,
    }

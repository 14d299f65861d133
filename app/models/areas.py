"""Administrative areas: the 12-digit statistical division codes (PP CC DD TTT VVV)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import String
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, utcnow
from app.models.common import AreaCode


class AreaLevel(StrEnum):
    province = "province"
    city = "city"
    county = "county"
    township = "township"
    village = "village"


class AreaBase(SQLModel):
    code: AreaCode = Field(sa_type=String(12), primary_key=True)
    name: str = Field(min_length=1, max_length=100)


class Area(AreaBase, table=True):
    level: AreaLevel = Field(sa_type=String(10), nullable=False)
    parent_code: str | None = Field(default=None, sa_type=String(12), foreign_key="area.code", index=True)
    # Scope columns (null above the level they describe): one equality filters by caller.
    county_code: str | None = Field(default=None, sa_type=String(6), index=True)
    township_code: str | None = Field(default=None, sa_type=String(9), index=True)
    village_code: str | None = Field(default=None, sa_type=String(12), index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class AreaCreate(AreaBase):
    pass


class AreaPublic(SQLModel):
    code: str
    name: str
    level: AreaLevel
    parent_code: str | None

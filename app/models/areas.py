"""Administrative areas: the 12-digit statistical division codes (PP CC DD TTT VVV)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import field_validator
from sqlalchemy import String
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, utcnow
from app.models.common import AreaCode


def area_code_problem(code: str) -> str | None:
    """Why a code cannot be an area code, or None. Twelve ASCII digits (``\\d`` alone would
    let full-width digits through), a province, and no village part under a "000" township
    part (its parent would be taken for the county itself)."""
    if len(code) != 12 or not code.isascii() or not code.isdigit():
        return "must be a 12-digit area code"
    if code[:2] == "00":
        return "the province part (first 2 digits) cannot be 00"
    if code[6:9] == "000" and code[9:] != "000":
        return "a village code needs a township part (digits 7-9 not 000)"
    return None


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
    @field_validator("code")
    @classmethod
    def _structure(cls, v: str) -> str:
        problem = area_code_problem(v)
        if problem:
            raise ValueError(problem)
        return v


class AreaPublic(SQLModel):
    code: str
    name: str
    level: AreaLevel
    parent_code: str | None

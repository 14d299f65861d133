"""Migrant records (流动人口): inflow (lives here now, from elsewhere) and outflow (a resident who
left). Each movement is opened and later closed (returned, moved on, settled, deceased).

The record's place (scope columns) is the village that holds it: the receiving village for an
inflow, the home village for an outflow. Checkup rounds read this table: an open inflow makes a
woman due here, an open outflow excuses her (she may send a certificate).
"""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum

from sqlalchemy import Index, String
from sqlmodel import Field

from app.models.common import IdMixin, ScopedMixin, VersionedMixin


class Direction(StrEnum):
    inflow = "inflow"
    outflow = "outflow"


class MigrantStatus(StrEnum):
    open = "open"
    closed = "closed"


class CloseReason(StrEnum):
    returned = "returned"
    moved_on = "moved_on"
    settled = "settled"
    deceased = "deceased"


class Migrant(IdMixin, ScopedMixin, VersionedMixin, table=True):
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True, nullable=False)
    direction: Direction = Field(sa_type=String(8), nullable=False)
    status: MigrantStatus = Field(default=MigrantStatus.open, sa_type=String(8), nullable=False)
    moved_on: date = Field(nullable=False)
    origin_area_code: str | None = Field(default=None, sa_type=String(12))
    destination: str | None = Field(default=None, sa_type=String(200))
    address: str | None = Field(default=None, sa_type=String(200))
    employer: str | None = Field(default=None, sa_type=String(200))
    phone_enc: str | None = Field(default=None, sa_type=String(255))
    closed_on: date | None = Field(default=None)
    close_reason: CloseReason | None = Field(default=None, sa_type=String(10))

    __table_args__ = (
        Index("ix_migrant_person_id_direction_status", "person_id", "direction", "status"),
        Index("ix_migrant_village_code_direction_status", "village_code", "direction", "status"),
    )

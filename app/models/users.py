"""People who log in (users) and machines that call us (partner and dashboard clients)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import field_validator
from sqlalchemy import Index, String, column, func
from sqlmodel import Field, SQLModel

from app.models.common import AreaCode, IdMixin, VersionedMixin


class Role(StrEnum):
    village = "village"
    township = "township"
    county = "county"
    admin = "admin"
    partner = "partner"
    dashboard = "dashboard"


PERSON_ROLES = (Role.village, Role.township, Role.county, Role.admin)


class Agency(StrEnum):
    police = "police"
    market_regulation = "market_regulation"
    other = "other"


class User(IdMixin, VersionedMixin, table=True):
    """A person who logs in. ``username`` is unique without regard to case (the index on
    ``lower(username)``, which the case-insensitive login also reads)."""

    username: str = Field(sa_type=String(64), unique=True, nullable=False)
    password_hash: str = Field(sa_type=String(255), nullable=False)
    role: Role = Field(sa_type=String(16), nullable=False)
    area_code: str = Field(sa_type=String(12), foreign_key="area.code", nullable=False)
    county_code: str = Field(sa_type=String(6), index=True, nullable=False)
    display_name: str = Field(sa_type=String(100), nullable=False)
    disabled: bool = Field(default=False, nullable=False)

    __table_args__ = (Index("uq_user_lower_username", func.lower(column("username")), unique=True),)


class UserCreate(SQLModel):
    username: str = Field(min_length=3, max_length=64, regex=r"^[A-Za-z0-9_.\-@]+$")
    password: str = Field(min_length=10, max_length=256)
    role: Role
    area_code: AreaCode
    display_name: str = Field(min_length=1, max_length=100)

    @field_validator("role")
    @classmethod
    def _person_role(cls, v: Role) -> Role:
        if v not in PERSON_ROLES:
            raise ValueError("machine roles are given to clients, not users")
        return v


class UserUpdate(SQLModel):
    disabled: bool | None = None
    role: Role | None = None
    area_code: AreaCode | None = None
    password: str | None = Field(default=None, min_length=10, max_length=256)
    display_name: str | None = Field(default=None, min_length=1, max_length=100)

    @field_validator("role")
    @classmethod
    def _person_role(cls, v: Role | None) -> Role | None:
        if v is not None and v not in PERSON_ROLES:
            raise ValueError("machine roles are given to clients, not users")
        return v


class UserPublic(SQLModel):
    id: uuid.UUID
    username: str
    display_name: str
    role: Role
    area_code: str
    disabled: bool
    version: int
    created_at: datetime
    updated_at: datetime


class Me(SQLModel):
    id: uuid.UUID
    username: str
    display_name: str
    role: Role
    area_code: str


class MachineClient(IdMixin, VersionedMixin, table=True):
    __tablename__ = "machine_client"

    client_id: str = Field(sa_type=String(64), unique=True, nullable=False)
    secret_hash: str = Field(sa_type=String(255), nullable=False)
    name: str = Field(sa_type=String(100), nullable=False)
    role: Role = Field(sa_type=String(16), nullable=False)
    agency: Agency | None = Field(default=None, sa_type=String(32))
    area_code: str = Field(sa_type=String(12), foreign_key="area.code", nullable=False)
    county_code: str = Field(sa_type=String(6), index=True, nullable=False)
    disabled: bool = Field(default=False, nullable=False)


class ClientCreate(SQLModel):
    name: str = Field(min_length=1, max_length=100)
    role: Role
    agency: Agency | None = None
    area_code: AreaCode

    @field_validator("role")
    @classmethod
    def _machine_role(cls, v: Role) -> Role:
        if v not in (Role.partner, Role.dashboard):
            raise ValueError("a machine client is a partner or a dashboard")
        return v


class ClientPublic(SQLModel):
    id: uuid.UUID
    client_id: str
    name: str
    role: Role
    agency: Agency | None
    area_code: str
    disabled: bool
    created_at: datetime


class ClientCreated(ClientPublic):
    client_secret: str

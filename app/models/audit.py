"""Append-only audit log: every write and every read of one personal record."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, utcnow
from app.models.common import IdMixin


class AuditEvent(IdMixin, table=True):
    __tablename__ = "audit_event"

    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    actor_id: uuid.UUID | None = Field(default=None, index=True)
    actor_role: str | None = Field(default=None, sa_type=String(16))
    county_code: str | None = Field(default=None, sa_type=String(6), index=True)
    action: str = Field(sa_type=String(32), nullable=False)
    entity: str = Field(sa_type=String(32), nullable=False, index=True)
    entity_id: str | None = Field(default=None, sa_type=String(64), index=True)
    request_id: str | None = Field(default=None, sa_type=String(64))
    client_ip: str | None = Field(default=None, sa_type=String(64))
    detail: str | None = Field(default=None, sa_type=String(255))


class AuditEventPublic(SQLModel):
    id: uuid.UUID
    at: datetime
    actor_id: uuid.UUID | None
    actor_role: str | None
    action: str
    entity: str
    entity_id: str | None
    request_id: str | None
    client_ip: str | None
    detail: str | None

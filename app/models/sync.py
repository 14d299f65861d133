"""Offline sync bookkeeping: the change log, per-record field history, pushed ops and conflicts.

``change``: one row per created/changed/left-scope record of a synced entity, ordered by
``(tx_id, seq)``. ``tx_id`` is the PostgreSQL transaction id of the writer (0 on SQLite, whose
writers are serialized); pulls only deliver changes of transactions older than the oldest one
still running, so a change can never be skipped when transactions commit out of order.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, utcnow
from app.models.common import IdMixin

SeqType = BigInteger().with_variant(Integer(), "sqlite")


class Change(SQLModel, table=True):
    seq: int | None = Field(default=None, sa_type=SeqType, primary_key=True)
    tx_id: int = Field(sa_type=BigInteger, nullable=False)
    entity: str = Field(sa_type=String(32), nullable=False)
    entity_id: uuid.UUID = Field(nullable=False)
    version: int = Field(nullable=False)
    deleted: bool = Field(default=False, nullable=False)
    county_code: str = Field(sa_type=String(6), nullable=False)
    township_code: str = Field(sa_type=String(9), nullable=False)
    village_code: str = Field(sa_type=String(12), nullable=False)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)

    __table_args__ = (
        Index("ix_change_county_pos", "county_code", "tx_id", "seq"),
        Index("ix_change_township_pos", "township_code", "tx_id", "seq"),
        Index("ix_change_village_pos", "village_code", "tx_id", "seq"),
    )


class RecordHistory(IdMixin, table=True):
    """Which fields each version of a synced record changed (for field-level merging)."""

    __tablename__ = "record_history"

    entity: str = Field(sa_type=String(32), nullable=False)
    entity_id: uuid.UUID = Field(nullable=False)
    version: int = Field(nullable=False)
    fields: str = Field(sa_type=Text, nullable=False)  # JSON list of API field names
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)

    __table_args__ = (Index("ix_record_history_entity_id_version", "entity_id", "version"),)


class OpStatus(StrEnum):
    applied = "applied"
    duplicate = "duplicate"
    conflict = "conflict"
    rejected = "rejected"


class SyncOp(IdMixin, table=True):
    """The answer given to one pushed op, kept so a re-sent op gets the same answer."""

    __tablename__ = "sync_op"

    device_id: str = Field(sa_type=String(64), nullable=False)
    op_id: str = Field(sa_type=String(64), nullable=False)
    actor_id: uuid.UUID = Field(nullable=False, index=True)
    status: str = Field(sa_type=String(10), nullable=False)
    result: str = Field(sa_type=Text, nullable=False)  # JSON of the op result
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)

    __table_args__ = (UniqueConstraint("device_id", "op_id"),)


class SyncConflict(IdMixin, table=True):
    """A stale edit that overlapped a server change: kept for the township to resolve."""

    __tablename__ = "sync_conflict"

    entity: str = Field(sa_type=String(32), nullable=False)
    entity_id: uuid.UUID = Field(nullable=False)
    op_id: str = Field(sa_type=String(64), nullable=False)
    device_id: str = Field(sa_type=String(64), nullable=False)
    actor_id: uuid.UUID = Field(nullable=False)
    base_version: int = Field(nullable=False)
    server_version: int = Field(nullable=False)
    client_values: str = Field(sa_type=Text, nullable=False)  # JSON
    fields: str = Field(sa_type=Text, nullable=False)  # JSON list of overlapping fields
    status: str = Field(default="open", sa_type=String(10), nullable=False)
    resolved_by: uuid.UUID | None = Field(default=None)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    county_code: str = Field(sa_type=String(6), index=True, nullable=False)
    township_code: str = Field(sa_type=String(9), index=True, nullable=False)
    village_code: str = Field(sa_type=String(12), index=True, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)

"""Logins (one per password or client grant) and their refresh-token chain."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String, Text
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime
from app.models.common import IdMixin, TimestampMixin


class LoginSession(IdMixin, TimestampMixin, table=True):
    """One login. Revoking it kills every access and refresh token it issued at once."""

    __tablename__ = "login_session"

    principal_id: uuid.UUID = Field(index=True, nullable=False)
    principal_kind: str = Field(sa_type=String(8), nullable=False)  # user | client
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_reason: str | None = Field(default=None, sa_type=String(32))


class RefreshToken(SQLModel, table=True):
    """A refresh token by its jti. Rotation records the successor pair (encrypted) so that a
    phone which lost the answer gets the same pair again within the grace period."""

    __tablename__ = "refresh_token"

    jti: str = Field(sa_type=String(64), primary_key=True)
    session_id: uuid.UUID = Field(foreign_key="login_session.id", index=True, nullable=False)
    issued_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    rotated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    successor_pair: str | None = Field(default=None, sa_type=Text)


class TokenPair(SQLModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 (OAuth2 token type, not a secret)
    expires_in: int
    refresh_token: str | None = None


class RefreshRequest(SQLModel):
    refresh_token: str = Field(min_length=1, max_length=4096)

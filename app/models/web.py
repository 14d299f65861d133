"""Browser sign-ins of the workbench (app/web/): one row per signed-in browser."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime


class WebSession(SQLModel, table=True):
    """A browser's sign-in. The cookie holds a random token; the row holds its SHA-256 (a copy
    of the table signs no one in). It belongs to a ``LoginSession``: revoking that login (logout,
    a disabled or re-roled user) ends the browser's session at once, as it ends the API tokens.
    Idle for ``JIAHE_WEB_IDLE_MINUTES`` or older than ``JIAHE_WEB_SESSION_HOURS``: signed out."""

    __tablename__ = "web_session"

    token_hash: str = Field(sa_type=String(64), primary_key=True)
    login_id: uuid.UUID = Field(foreign_key="login_session.id", index=True, nullable=False)
    csrf_token: str = Field(sa_type=String(64), nullable=False)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    last_seen_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)

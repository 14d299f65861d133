"""Imports of existing registers (issue 17): one row per uploaded file.

The validated rows a commit needs and the cells of the error rows (for ``errors.xlsx``) are
personal data: they are kept only as one AES-GCM blob (``payload_enc``, zlib-compressed JSON,
the same ``FieldCipher`` the register uses for ID numbers). ``errors`` holds row, column, code
and a Chinese message only, never a cell's value.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, String, Text
from sqlmodel import Field, SQLModel

from app.core.db import UTCDateTime, utcnow
from app.models.common import IdMixin


class ImportKind(StrEnum):
    register = "register"
    beneficiaries = "beneficiaries"
    migrants = "migrants"


class ImportStatus(StrEnum):
    validated = "validated"
    committed = "committed"


class ImportJob(IdMixin, table=True):
    """An uploaded file: who, for which county, its content hash, the report and the payload."""

    __tablename__ = "import_job"
    __table_args__ = (Index("ix_import_job_county_code_kind_file_hash", "county_code", "kind", "file_hash"),)

    kind: str = Field(sa_type=String(16), nullable=False)
    status: str = Field(sa_type=String(16), nullable=False)
    created_by: uuid.UUID | None = Field(default=None)
    area_code: str = Field(sa_type=String(12), nullable=False)
    county_code: str = Field(sa_type=String(6), index=True, nullable=False)
    file_name: str = Field(sa_type=String(200), nullable=False)
    file_hash: str = Field(sa_type=String(64), nullable=False)
    rows: int = Field(default=0, nullable=False)
    valid_rows: int = Field(default=0, nullable=False)
    created: int = Field(default=0, nullable=False)
    updated: int = Field(default=0, nullable=False)
    skipped: int = Field(default=0, nullable=False)
    errors: str = Field(default="[]", sa_type=Text, nullable=False)
    summary: str = Field(default="{}", sa_type=Text, nullable=False)
    payload_enc: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    committed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ImportError_(SQLModel):
    row: int = Field(description="Row number in the sheet (the header is row 1)")
    column: str = Field(description="The column's header (Chinese), or empty for the whole row")
    code: str
    message: str = Field(description="Chinese message")


class ImportReport(SQLModel):
    id: uuid.UUID
    kind: ImportKind
    status: ImportStatus
    file_name: str
    rows: int
    valid_rows: int
    errors: list[ImportError_]
    summary: dict[str, Any]
    created: int
    updated: int
    skipped: int
    created_at: datetime
    committed_at: datetime | None


class CommitRequest(SQLModel):
    require_all: bool = Field(
        default=False, description="Write nothing unless every row is valid (422 `import_has_errors`)"
    )


class CommitResult(SQLModel):
    id: uuid.UUID
    status: ImportStatus
    created: int
    updated: int
    skipped: int

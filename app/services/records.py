"""Shared record mechanics: idempotent create by client id, optimistic concurrency, versions."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import utcnow
from app.core.errors import IdConflict, VersionConflict

T = TypeVar("T")


async def existing_by_id(session: AsyncSession, model: type[T], ident: uuid.UUID | None) -> T | None:
    """The row a client-supplied id already names (any scope), or None."""
    if ident is None:
        return None
    return await session.get(model, ident)


def replay_or_conflict(same: bool) -> None:
    """Creating again with an existing id: identical content returns the record (caller answers
    200), different content — or a record the caller may not see — is 409 ``id_conflict``."""
    if not same:
        raise IdConflict("This id is already used by a different record")


def check_version(current_version: int, expected: int, current: dict[str, Any]) -> None:
    """412 ``version_conflict`` with the current record when the client's version is stale."""
    if current_version != expected:
        raise VersionConflict(
            f"The record is at version {current_version}, you sent {expected}",
            extra={"current": current},
        )


def touch(obj: Any) -> None:
    """Every change: version + 1 and a new ``updated_at``."""
    obj.version += 1
    obj.updated_at = utcnow()

"""Keyset pagination: ``limit`` and an opaque ``cursor`` holding the last row's sort key.

Stable under concurrent inserts, no OFFSET scans: the next page is ``WHERE (k1, …, id) > (…)``
ordered by the same key, which always ends in the primary key.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select, literal, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeDecorator

from app.core.db import as_utc
from app.core.errors import ValidationFailed
from app.core.text import FORBIDDEN

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (max 500)")]
Cursor = Annotated[str | None, Query(max_length=512, description="Opaque cursor from a page")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def _enc(v: Any) -> Any:
    if isinstance(v, uuid.UUID | datetime | date):
        return v.isoformat() if not isinstance(v, uuid.UUID) else str(v)
    return v


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps([_enc(v) for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _dec(v: Any, python_type: type) -> Any:
    """One decoded key value, or ValueError / OverflowError for anything a database could not
    take as a parameter of that column (a cursor is client input: huge numbers, timestamps that
    leave the calendar in UTC, NUL in text must be a 422, never a 500)."""
    if v is None:
        return None
    if python_type is uuid.UUID:
        return uuid.UUID(str(v))
    if python_type is datetime:
        return as_utc(datetime.fromisoformat(str(v)))
    if python_type is date:
        return date.fromisoformat(str(v))
    if python_type is int:
        n = int(v)
        if not INT64_MIN <= n <= INT64_MAX:
            raise ValueError("out of range")
        return n
    text = str(v)
    if FORBIDDEN.search(text):
        raise ValueError("control characters")
    return text


def _python_type(type_: Any) -> type:
    """The Python type of a column's values; a TypeDecorator (``UTCDateTime``) answers for its
    underlying type, whose ``python_type`` it does not pass on."""
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    try:
        pt: type = type_.python_type
    except NotImplementedError:
        pt = str
    return pt


def decode_cursor(cursor: str, columns: list[Any]) -> list[Any]:
    bad = ValidationFailed("The cursor is not valid", code="invalid_cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(columns):
            raise bad
        out = []
        for v, col in zip(values, columns, strict=True):
            out.append(_dec(v, _python_type(col.type)))
        return out
    except (ValueError, TypeError, OverflowError):
        raise bad from None


async def paginate(
    session: AsyncSession,
    stmt: Select[Any],
    *,
    order: list[Any],
    limit: int,
    cursor: str | None,
    descending: bool = False,
) -> tuple[list[Any], str | None]:
    """Rows of one page and the cursor of the next (None on the last page).

    ``order`` lists the sort columns, ending with a unique one (the id); columns must not be null.
    """
    if cursor:
        values = decode_cursor(cursor, order)
        key = tuple_(*order)
        bound = tuple_(*[literal(v, type_=c.type) for v, c in zip(values, order, strict=True)])
        stmt = stmt.where(key < bound if descending else key > bound)
    stmt = stmt.order_by(*[c.desc() if descending else c.asc() for c in order]).limit(limit + 1)
    rows = list((await session.execute(stmt)).scalars().all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor([getattr(last, c.key) for c in order])
    return rows, next_cursor

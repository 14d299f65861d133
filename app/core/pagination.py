"""Keyset pagination: ``limit`` and an opaque ``cursor`` holding the last row's sort key.

Stable under concurrent inserts, no OFFSET scans: the next page is ``WHERE (k1, …, id) > (…)``
ordered by the same key, which always ends in the primary key.

A cursor belongs to one list: it is signed (HMAC-SHA256, truncated to 128 bits) over the list's
key — the table and columns it is ordered by — and its values, with a key derived from the
deployment's secrets. A cursor of another list (a ``/migrants`` cursor on ``/claims``), an edited
or made-up one is 422 ``invalid_cursor`` before any value reaches the database; the values are
checked against the columns' types as well (a timestamp must carry its offset), so even a cursor
signed by a leaked key cannot turn into a database error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
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
# The largest integer a key column holds (BIGINT); a cursor value beyond it is not a position.
MAX_INT = 2**63 - 1

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (max 500)")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=512,
        description="Opaque cursor from the `next_cursor` of a page of this same list "
        "(any other value: 422 `invalid_cursor`)",
    ),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


# A process-local key until ``configure_cursor_key`` is called with the deployment's secrets
# (the app factory does): cursors then survive restarts and are valid on every worker.
_key: bytes = secrets.token_bytes(32)


def configure_cursor_key(secret: bytes) -> None:
    """Derive the cursor-signing key from a deployment secret (its own label, so a cursor MAC
    never equals anything else computed with that secret)."""
    global _key
    _key = hmac.new(secret, b"jiahe cursor signing v1", hashlib.sha256).digest()


def invalid_cursor() -> ValidationFailed:
    return ValidationFailed(
        "The cursor is not valid for this list; start again without one", code="invalid_cursor"
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(kind: str, payload: str) -> str:
    return _b64(hmac.new(_key, f"{kind}\n{payload}".encode(), hashlib.sha256).digest()[:16])


def sign_cursor(kind: str, obj: Any) -> str:
    """An opaque cursor of the list ``kind`` holding ``obj`` (JSON)."""
    payload = _b64(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{payload}.{_mac(kind, payload)}"


def open_cursor(kind: str, cursor: str) -> Any:
    """What ``sign_cursor(kind, …)`` put in, or 422 ``invalid_cursor`` for any other string."""
    payload, _, mac = cursor.partition(".")
    if not mac or not cursor.isascii() or not hmac.compare_digest(mac, _mac(kind, payload)):
        raise invalid_cursor()
    try:
        return json.loads(_unb64(payload))
    except ValueError:
        raise invalid_cursor() from None


def list_kind(columns: list[Any]) -> str:
    """The list a keyset belongs to: its table and sort columns (``claim:created_at,id``)."""
    table = getattr(columns[-1], "table", None)
    return f"{getattr(table, 'name', '?')}:" + ",".join(str(c.key) for c in columns)


def _enc(v: Any) -> Any:
    if isinstance(v, uuid.UUID | datetime | date):
        return v.isoformat() if not isinstance(v, uuid.UUID) else str(v)
    return v


def encode_cursor(values: list[Any], columns: list[Any]) -> str:
    return sign_cursor(list_kind(columns), [_enc(v) for v in values])


def _dec(v: Any, python_type: type) -> Any:
    """One decoded key value, or ValueError / OverflowError for anything a database could not
    take as a parameter of that column (a cursor is client input: huge numbers, timestamps that
    leave the calendar in UTC, NUL in text must be a 422, never a 500)."""
    if v is None:
        return None
    if python_type is uuid.UUID:
        if not isinstance(v, str):
            raise ValueError
        return uuid.UUID(v)
    if python_type is datetime:
        if not isinstance(v, str):
            raise ValueError
        out = datetime.fromisoformat(v)
        if out.tzinfo is None:  # every timestamp column is timezone-aware
            raise ValueError
        return as_utc(out)
    if python_type is date:
        if not isinstance(v, str) or len(v) != 10:
            raise ValueError
        return date.fromisoformat(v)
    if python_type is int:
        if type(v) is not int or abs(v) > MAX_INT:
            raise ValueError
        return v
    if not isinstance(v, str) or FORBIDDEN.search(v):
        raise ValueError
    return v


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
    """The sort key a cursor of this list holds (422 ``invalid_cursor`` for any other string)."""
    values = open_cursor(list_kind(columns), cursor)
    if not isinstance(values, list) or len(values) != len(columns):
        raise invalid_cursor()
    try:
        return [_dec(v, _python_type(col.type)) for v, col in zip(values, columns, strict=True)]
    except (ValueError, TypeError, OverflowError):
        raise invalid_cursor() from None


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
        next_cursor = encode_cursor([getattr(last, c.key) for c in order], order)
    return rows, next_cursor

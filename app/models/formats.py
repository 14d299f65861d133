"""Formats the API takes, stated once for the server and the OpenAPI document alike.

Dates and timestamps: strict ISO 8601 text inside 1900–2100.

Pydantic on its own takes ``0`` or ``"0.5"`` for a date or a timestamp (seconds since 1970) and
any year from 1 to 9999, which the database or the time-zone arithmetic then cannot hold (a
``0039-11-15`` opening day raised "year out of range"; a rule effective from ``0001-01-01``
overflowed a day before it). Every date and timestamp the API takes is one of these types: the
text must match the pattern the OpenAPI document shows (ASCII digits, a year from 1900 to
2100), else 422 ``validation_failed``. Nothing the register, a round or a rule holds needs a
year outside that range (the oldest person alive was born after 1900). Python callers (services,
the sync push after its own parsing) may pass ``date``/``datetime`` objects, which are bounded
the same way.

Text: the patterns the document shows for what the server refuses in text (control characters,
blank names) and for identifiers it checks (ID numbers, area codes), so that generated clients
refuse them before sending.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

DATE_MIN = date(1900, 1, 1)
DATE_MAX = date(2100, 12, 31)

_DAY = r"(19[0-9]{2}|20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
_OFFSET = r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
DATE_PATTERN = f"^{_DAY}$"
TIMESTAMP_PATTERN = f"^{_DAY}T{_TIME}{_OFFSET}$"
# Filters (``from``/``to`` of lists) also take a bare day, and a time without offset as UTC.
FILTER_PATTERN = f"^{_DAY}(T{_TIME}{_OFFSET}?)?$"

_RANGE = f"from {DATE_MIN.isoformat()} to {DATE_MAX.isoformat()}"


def _text(pattern: str, kind: type, what: str) -> Any:
    rx = re.compile(pattern)

    def check(v: Any) -> Any:
        if isinstance(v, kind):
            return v
        if not isinstance(v, str) or not rx.fullmatch(v):
            raise ValueError(f"must be {what} {_RANGE}")
        return v

    return BeforeValidator(check)


def _bounded(v: date) -> date:
    day = v.date() if isinstance(v, datetime) else v
    if not DATE_MIN <= day <= DATE_MAX:
        raise ValueError(f"must be {_RANGE}")
    return v


def _schema(pattern: str, fmt: str, what: str) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "type": "string",
            "format": fmt,
            "pattern": pattern,
            "formatMinimum": DATE_MIN.isoformat() if fmt == "date" else f"{DATE_MIN.isoformat()}T00:00:00Z",
            "formatMaximum": DATE_MAX.isoformat() if fmt == "date" else f"{DATE_MAX.isoformat()}T23:59:59Z",
            "description": f"{what}, {_RANGE}",
        }
    )


Day = Annotated[
    date,
    _text(DATE_PATTERN, date, "a date YYYY-MM-DD"),
    AfterValidator(_bounded),
    _schema(DATE_PATTERN, "date", "Date YYYY-MM-DD"),
]
"""A calendar date: ``YYYY-MM-DD`` text, 1900-01-01 to 2100-12-31."""

Timestamp = Annotated[
    datetime,
    _text(
        TIMESTAMP_PATTERN, datetime, "a timestamp YYYY-MM-DDThh:mm[:ss[.ffffff]] with offset (Z or ±hh:mm)"
    ),
    AfterValidator(_bounded),
    _schema(TIMESTAMP_PATTERN, "date-time", "Timestamp with offset (Z or ±hh:mm)"),
]
"""A moment: ISO 8601 with its offset, in 1900–2100 (so no offset can move it out of range)."""

_DAY_ONLY = re.compile(DATE_PATTERN)
_filter_text = _text(
    FILTER_PATTERN, datetime, "a date YYYY-MM-DD or a timestamp YYYY-MM-DDThh:mm[:ss][offset]"
)


def _filter_bound(v: Any) -> Any:
    """A bare day is the instant its business day begins (China Standard Time by default,
    ``app.core.clock``), not UTC midnight: the v1.1 "one clock"."""
    v = _filter_text.func(v)
    if isinstance(v, str) and _DAY_ONLY.fullmatch(v):
        from app.core import clock

        return clock.start_of_day(date.fromisoformat(v))
    return v


TimestampFilter = Annotated[
    datetime,
    BeforeValidator(_filter_bound),
    AfterValidator(_bounded),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": FILTER_PATTERN,
            "description": (
                f"A day (its start in China Standard Time) or a timestamp (without offset: UTC), {_RANGE}"
            ),
        }
    ),
]
"""A list's ``from``/``to`` bound: a day (its business start) or a timestamp, its offset
optional (UTC)."""


# Free text: no control characters except tab and newline (the v1.1 text rule).
TEXT_PATTERN = "^[^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*$"
# Names, addresses and the like (``CleanText``): no control character at all, not blank.
CLEAN_TEXT_PATTERN = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$"
# Resident identity numbers: 18 characters, 17 ASCII digits and a digit or X (the server also
# checks the area, the birth date and the check character: 422 ``id_number_invalid``).
ID_NUMBER_PATTERN = "^[0-9]{17}[0-9Xx]$"
IdNumberText = Annotated[
    str,
    Field(
        json_schema_extra={
            "pattern": ID_NUMBER_PATTERN,
            "description": "18-character resident ID number (area, birth date and check character checked)",
        }
    ),
]
AREA_CODE_PATTERN = "^[0-9]{12}$"
VILLAGE_CODE_PATTERN = "^[0-9]{9}([1-9][0-9]{2}|0[1-9][0-9]|00[1-9])$"


def refuse_null(v: Any) -> Any:
    """For an update field that can be left out but not emptied: an explicit ``null`` is 422
    before anything else is looked at (the document shows the field as not nullable)."""
    if v is None:
        raise ValueError("must not be null (leave the field out to keep its value)")
    return v

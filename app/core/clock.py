"""The one clock (issue 15, item 1): every "now", "today", day and month of the service.

Business dates are those of the configured zone (``JIAHE_TIMEZONE``, default ``Asia/Shanghai``,
China Standard Time), whatever the host's time zone: "today", default dates and periods, day and
month buckets, "not in the future" checks. A visit at 00:30 +08:00 on 8 December is
8 December's, on a host in UTC (where it is still the 7th) as in Los Angeles.

- ``now()``: the current instant, an aware UTC datetime. Technical timestamps (``updated_at``,
  audit, token rows) come from it too, through ``app.core.db.utcnow``, so that freezing moves them
  as well. Only JWT ``iat``/``exp`` use ``wall_now()``: the JWT library checks them against the
  host's real clock, so a frozen clock there would mint tokens that are already expired.
- ``today()``: the business date now; ``local_date(ts)`` / ``local_month(ts)`` of an instant;
  ``start_of_day(d)``: the instant the business day ``d`` begins (for ``>=``/``<`` filters on
  timestamp columns, which then use their indexes).
- SQL: ``sql_local_month(col, dialect)`` ('YYYY-MM') and ``sql_local_month_number(col, dialect)``
  (YYYYMM) of a UTC timestamp column, for grouping in the database. PostgreSQL computes
  ``timezone(zone, col)`` (exact, whatever the session's ``TimeZone``). SQLite stores naive UTC
  text and has no zone database, so it adds the zone's fixed UTC offset: exact for zones without
  daylight saving time, and China has had none since 1991 (``Asia/Shanghai`` is UTC+8 all
  year). A zone with daylight saving time is refused on SQLite at start-up
  (``check_zone_for_sqlite``) rather than answering wrong figures twice a year.
- SQL never reads the database's own clock (``CURRENT_DATE``, ``now()``): "today" is always
  passed in as a parameter from ``today()``, so that freezing covers the SQL side too.

Tests freeze the clock with ``with clock.freeze(datetime(..., tzinfo=...)):`` (or the
``frozen_clock`` fixture), which fixes ``now()`` — and so ``today()`` and ``utcnow()`` — at that
instant until the block ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, func

from app.core.config import get_settings

DEFAULT_ZONE = "Asia/Shanghai"

_frozen: datetime | None = None


@lru_cache
def _zone_named(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone_name() -> str:
    return get_settings().timezone


def zone() -> ZoneInfo:
    """The business time zone (``JIAHE_TIMEZONE``)."""
    return _zone_named(zone_name())


def wall_now() -> datetime:
    """The host's real current instant (aware UTC), never frozen: only for values checked
    against the host's clock by code outside the service (JWT ``iat``/``exp``)."""
    return datetime.now(UTC)


def now() -> datetime:
    """The current instant, aware UTC (frozen under ``freeze``)."""
    return _frozen if _frozen is not None else datetime.now(UTC)


def today() -> date:
    """The business date now (in ``zone()``)."""
    return now().astimezone(zone()).date()


def local_date(ts: datetime) -> date:
    """The business date of an instant; a naive timestamp is taken as UTC (how SQLite returns
    stored values)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(zone()).date()


def local_month(ts: datetime) -> int:
    """The business month of an instant as the number YYYYMM (the tallies' month bucket)."""
    d = local_date(ts)
    return d.year * 100 + d.month


def start_of_day(d: date) -> datetime:
    """The instant (aware UTC) at which the business day ``d`` begins."""
    return datetime.combine(d, time.min, tzinfo=zone()).astimezone(UTC)


def utc_offset(at: datetime | None = None) -> timedelta:
    """The zone's offset from UTC at an instant (now by default)."""
    offset = (at or now()).astimezone(zone()).utcoffset()
    assert offset is not None
    return offset


def has_fixed_offset(name: str) -> bool:
    """Whether a zone keeps one UTC offset all year (checked over this and the next year)."""
    z = _zone_named(name)
    year = datetime.now(UTC).year
    offsets = {
        datetime(y, m, 15, 12, tzinfo=UTC).astimezone(z).utcoffset()
        for y in (year, year + 1)
        for m in range(1, 13)
    }
    return len(offsets) == 1


def check_zone_for_sqlite(name: str) -> None:
    """SQLite buckets timestamps with a fixed offset: refuse a zone with daylight saving time."""
    if not has_fixed_offset(name):
        raise ValueError(f"time zone {name!r} changes its UTC offset; SQLite needs a zone with one offset")


def _sqlite_modifier() -> str:
    minutes = int(utc_offset().total_seconds() // 60)
    return f"{minutes:+d} minutes"


def sql_local(column: Any, dialect: str) -> Any:
    """A UTC timestamp column as the zone's local wall time (PostgreSQL: ``timestamp``;
    SQLite: text 'YYYY-MM-DD HH:MM:SS')."""
    if dialect == "postgresql":
        return func.timezone(zone_name(), column)
    return func.datetime(column, _sqlite_modifier())


def sql_local_month(column: Any, dialect: str) -> Any:
    """'YYYY-MM' of a UTC timestamp column in the business zone, computed in SQL."""
    if dialect == "postgresql":
        return func.to_char(func.timezone(zone_name(), column), "YYYY-MM")
    return func.strftime("%Y-%m", column, _sqlite_modifier())


def sql_local_month_number(column: Any, dialect: str) -> Any:
    """YYYYMM (an integer) of a UTC timestamp column in the business zone, computed in SQL."""
    if dialect == "postgresql":
        local = func.timezone(zone_name(), column)
        return func.cast(func.extract("year", local) * 100 + func.extract("month", local), Integer)
    return func.cast(func.strftime("%Y%m", column, _sqlite_modifier()), Integer)


@contextmanager
def freeze(at: datetime) -> Iterator[datetime]:
    """Fix ``now()`` (and so ``today()``, ``utcnow()``) at the aware instant ``at`` until the
    block ends. For tests; not thread-safe by design (one test at a time)."""
    global _frozen
    if at.tzinfo is None:
        raise ValueError("freeze needs an aware datetime")
    previous = _frozen
    _frozen = at.astimezone(UTC)
    try:
        yield _frozen
    finally:
        _frozen = previous

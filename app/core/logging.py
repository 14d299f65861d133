"""JSON logs, one object per line, with the request id of the request being served.

Personal data never goes into logs: log ids and codes, not names, ID numbers or phones. As a
second line of defence, ``RedactFilter`` masks anything shaped like an ID number or a mobile
number in the message and in the ``extra`` fields.

Database errors never bring the values of a statement into the log: the engines hide SQL
parameters (``hide_parameters=True``), and every log record of the process that carries a
database exception (ours, uvicorn's, SQLAlchemy's pool) has its traceback rewritten as it is
created (``install_db_error_scrubbing``): the frames and the SQL text stay, the drivers' messages
— which quote values (PostgreSQL's ``DETAIL: Key (username)=(…)``, asyncpg's "invalid input for
query argument $1: '…'") — are replaced by their SQLSTATE, error name and constraint/table/column.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from app.core.context import request_id_var

_ID_RE = re.compile(r"\b\d{17}[\dXx]\b|\b\d{15}\b")
_PHONE_RE = re.compile(r"\b1[3-9]\d{9}\b")
_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


def redact(text: str) -> str:
    return _PHONE_RE.sub("[phone]", _ID_RE.sub("[id_number]", text))


class RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        for key, value in list(record.__dict__.items()):
            if key not in _STD_ATTRS and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


_DRIVER_PACKAGES = ("asyncpg", "sqlite3", "aiosqlite", "psycopg", "psycopg2")
_DRIVER_FIELDS = ("sqlstate", "sqlite_errorname", "constraint_name", "table_name", "column_name")
MAX_SQL_CHARS = 2000


def _is_driver_error(exc: BaseException) -> bool:
    module = type(exc).__module__
    return module.split(".")[0] in _DRIVER_PACKAGES or module.startswith("sqlalchemy.dialects.")


def _safe_message(exc: BaseException) -> str | None:
    """What the log may say of a database exception; None for any other exception."""
    from sqlalchemy.exc import SQLAlchemyError, StatementError

    if isinstance(exc, StatementError):
        sql = " ".join(str(exc.statement or "").split())[:MAX_SQL_CHARS]
        return f"[SQL: {sql}] (parameters and database message withheld)"
    if isinstance(exc, SQLAlchemyError):
        # Its own words are safe, but some quote the error that caused them (a session's
        # PendingRollbackError: "Original exception was: …").
        text = str(exc)
        cut = text.find("Original exception was")
        return text if cut < 0 else text[:cut] + "(original database message withheld)"
    if _is_driver_error(exc):
        found = [(f, getattr(exc, f, None)) for f in _DRIVER_FIELDS]
        code = getattr(exc, "pgcode", None) or getattr(exc, "sqlstate", None)
        if code is None and exc.args and hasattr(exc.args[0], "sqlstate"):
            code = exc.args[0].sqlstate
        parts = [f"{k}={v}" for k, v in found if v is not None and k != "sqlstate"]
        if code:
            parts.insert(0, f"sqlstate={code}")
        return " ".join([*parts, "(database message withheld)"])
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in out):
        out.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return out


def scrubbed_traceback(exc: BaseException) -> str | None:
    """The traceback of ``exc`` with every database exception's message withheld; None when
    no exception of the chain comes from the database (the record is left alone)."""
    chain = _chain(exc)  # outermost first, then what caused it
    safe: list[str | None] = []
    below_database = False
    for e in chain:
        message = _safe_message(e)
        if message is None and below_database:
            # what a driver raised inside (a codec's ValueError may quote the value)
            message = "(message withheld: the cause of a database error)"
        below_database = below_database or message is not None
        safe.append(message)
    if not below_database:
        return None
    blocks = []
    for e, message in zip(reversed(chain), reversed(safe), strict=True):
        name = f"{type(e).__module__}.{type(e).__qualname__}"
        text = str(e) if message is None else message
        frames = "".join(traceback.format_tb(e.__traceback__))
        head = "Traceback (most recent call last):\n" if frames else ""
        blocks.append(f"{head}{frames}{name}: {text}")
    return "\n\nwhich led to:\n\n".join(blocks)


_scrubbing_installed = False


def install_db_error_scrubbing() -> None:
    """Every log record created from now on, by any logger, with a database exception in its
    ``exc_info`` carries the scrubbed traceback (as ``exc_text``) instead. Idempotent."""
    global _scrubbing_installed
    if _scrubbing_installed:
        return
    _scrubbing_installed = True
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        info = record.exc_info
        if info and info[1] is not None:
            text = scrubbed_traceback(info[1])
            if text is not None:
                record.exc_info = None
                record.exc_text = text
        return record

    logging.setLogRecordFactory(factory)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    fmt: Any = JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
    )
    handler.setFormatter(fmt)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactFilter())
    install_db_error_scrubbing()
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # uvicorn's access log prints full URLs (query strings may carry an ID number): our own
    # request log replaces it.
    logging.getLogger("uvicorn.access").disabled = True
    # /readyz compares the schema revision on every call; alembic would log that each time.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))

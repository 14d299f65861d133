"""JSON logs, one object per line, with the request id of the request being served.

Personal data never goes into logs: log ids and codes, not names, ID numbers or phones. As a
second line of defence, ``RedactFilter`` masks anything shaped like an ID number or a mobile
number in the message and in the ``extra`` fields.
"""

from __future__ import annotations

import logging
import re
import sys
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

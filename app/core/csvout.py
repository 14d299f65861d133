"""The one CSV writer of every export (``payments.csv``, ``indicators.csv``, any new one).

Files open in Excel / WPS as they are: UTF-8 with a byte-order mark, CRLF line ends. A text cell
that a spreadsheet would run as a formula — one starting with ``=``, ``+``, ``-``, ``@``, tab or
carriage return (CSV injection: ``=HYPERLINK(…)`` in a name typed by anyone who can write one)
— is written with a leading apostrophe, which spreadsheets show as text. Numbers stay numbers:
ints, floats and Decimals, and text that is a plain decimal number (money as ``"-12.50"``), are
written as they are.

The header row is in the request's language: a header cell that is a catalogued column name
(``csv.<name>`` in app/core/messages.py) is written as that column's title — Chinese by
default, the field name itself in English (what scripts reading the file key on).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal

from app.core.messages import column

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?\Z")


def cell(value: object) -> str | int | float | Decimal:
    """One cell: None is empty, numbers as they are, text defused."""
    if value is None:
        return ""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return value
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.match(text):
        return "'" + text
    return text


def csv_text(header: Sequence[object], rows: Iterable[Sequence[object]], lang: str | None = None) -> str:
    """The whole file, BOM first; every cell (header included) through ``cell``; header names
    in ``lang`` (default: the request's language; module docstring)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([cell(column(v, lang) if isinstance(v, str) else v) for v in header])
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return out.getvalue()

"""One check for every text a request carries: no NUL, no control characters.

Every text input — JSON body (every string and every object key, at any depth, whatever the
model types the field as), form field, query parameter, path and header — is refused with 422
``validation_failed`` when it holds a character that no field of ours may store:

- C0 controls other than tab and newline (so NUL and carriage return are refused: clients send
  ``\\n`` line ends; a ``\\r`` in stored text would come back on other phones and in CSV files),
- DEL and the C1 controls (U+007F–U+009F),
- lone surrogates (U+D800–U+DFFF: not text; PostgreSQL cannot store them).

Tab and newline stay allowed here, for notes; single-line fields (names, addresses) refuse them
as well through their own type (``CleanText``).

Why one request-level check instead of a validator per field: PostgreSQL refuses NUL in text
(a 500 before this check), SQLite stores it, and a field typed plain ``str`` — or a query
parameter, a form field, a header — was easy to forget. ``text_guard`` is a dependency of the
whole application (``create_app``), so a new route or field cannot miss it.

Cost: the raw JSON body is scanned for what could decode to a refused character (an escape like
``\\u0000``, ``\\b``, ``\\f``, ``\\r``, ``\\ud800``; a raw DEL or C1 byte; raw C0 bytes cannot
pass the strict JSON parser). Only when something is found is the parsed body walked to name the
field; a false alarm (an escaped backslash before a ``b``) only costs that walk.

Sync push answers each op on its own (``ITEMWISE``): an op whose text is refused is ``rejected``
alone (the route receives the op indexes), the rest of the batch is applied.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request

from app.core.errors import FieldError, ValidationFailed

MESSAGE = "must not contain NUL or control characters (only tab and newline are allowed)"

# What a decoded string may not hold.
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# Raw JSON bytes that may decode to a forbidden character (a superset; see the module docstring).
_JSON_ESCAPES = re.compile(rb"\\(?:[bfr]|u00[01789]|u[dD][89a-fA-F])")
_JSON_C1 = re.compile(rb"\xc2[\x80-\x9f]")
# Header bytes (latin-1 on the wire): controls other than tab, and DEL.
_HEADER_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

# Routes whose JSON body is a list of items answered one by one: {route path: list key}.
ITEMWISE: dict[str, str] = {"/api/v1/sync/push": "ops"}


def find(value: Any) -> tuple[str | int, ...] | None:
    """The path of the first string (or object key), in document order, in ``value`` holding a
    forbidden character. Iterative: a deeply nested body cannot exhaust the stack."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if FORBIDDEN.search(item):
                return path
        elif isinstance(item, dict):
            for k in item:
                if isinstance(k, str) and FORBIDDEN.search(k):
                    return (*path, k)
            stack.extend(((v, (*path, k)) for k, v in reversed(item.items())))
        elif isinstance(item, list):
            stack.extend(((v, (*path, i)) for i, v in reversed(list(enumerate(item)))))
    return None


def refusal(field: str) -> ValidationFailed:
    return ValidationFailed(
        "The request has text with NUL or control characters",
        errors=[FieldError(field=field, message=MESSAGE)],
    )


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path) or "body"


async def _json_findings(request: Request, raw: bytes, itemwise: str | None) -> dict[int, str]:
    if not (_JSON_ESCAPES.search(raw) or _JSON_C1.search(raw) or b"\x7f" in raw):
        return {}
    try:
        body = await request.json()  # parsed once: FastAPI has read it already for its model
    except ValueError:
        return {}  # not JSON: FastAPI refuses it (or the route takes no body)
    items: dict[int, str] = {}
    if itemwise is not None and isinstance(body, dict) and isinstance(body.get(itemwise), list):
        rest = {k: v for k, v in body.items() if k != itemwise}
        found = find(rest)
        if found is not None:
            raise refusal(_dotted(found))
        for i, item in enumerate(body[itemwise]):
            hit = find(item)
            if hit is not None:
                items[i] = _dotted(hit)
        return items
    found = find(body)
    if found is not None:
        raise refusal(_dotted(found))
    return {}


async def text_guard(request: Request) -> dict[int, str]:
    """Refuse (422) a request with a forbidden character in any text it carries.

    Returns, for an ``ITEMWISE`` route, ``{item index: field within the item}`` of the items to
    reject one by one (``refusal(field)`` is their error); ``{}`` everywhere else."""
    for name, value in request.headers.raw:
        if _HEADER_BAD.search(name):
            raise refusal("header")
        if _HEADER_BAD.search(value):
            raise refusal(name.decode("latin-1"))
    if FORBIDDEN.search(request.scope.get("path", "")):
        raise refusal("path")
    for param, text in request.query_params.multi_items():
        if FORBIDDEN.search(param):
            raise refusal("query")
        if FORBIDDEN.search(text):
            raise refusal(param)
    if request.method in ("GET", "HEAD"):
        return {}
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # cached: FastAPI parsed it for the route's form fields
        for key, item in form.multi_items():
            if FORBIDDEN.search(key):
                raise refusal("form")
            # A browser sends a textarea's line ends as CRLF (the HTML form encoding says so):
            # a CR right before a newline is a line end there; the web pages store it as "\n".
            if isinstance(item, str) and FORBIDDEN.search(item.replace("\r\n", "\n")):
                raise refusal(key)
        return {}
    raw = await request.body()
    if not raw:
        return {}
    route = request.scope.get("route")
    itemwise = ITEMWISE.get(getattr(route, "path", ""))
    return await _json_findings(request, raw, itemwise)

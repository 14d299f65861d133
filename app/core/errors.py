"""Typed errors and their problem+json rendering (RFC 9457 shape with a stable ``code``).

Services raise ``AppError`` subclasses; one set of handlers renders every failure, including
unknown routes, wrong methods, validation errors and unexpected exceptions (which log the
traceback with the request id and tell the client only that id).

Raise sites write ``title``, ``detail`` and ``errors[].message`` in English; ``body()`` renders
them in the request's language (``Accept-Language``; Chinese by default) through the message
catalogue (app/core/messages.py). ``code``, ``field`` and every other member stay as they are.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.context import request_id_var
from app.core.messages import translate

log = logging.getLogger("jiahe.errors")

PROBLEM_JSON = "application/problem+json"


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """Error body of every failed request."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] | None = None
    request_id: str | None = None


class AppError(Exception):
    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"
    # An error that records a fact (a revoked login after token reuse) keeps the transaction.
    commit_anyway: bool = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        errors: list[FieldError] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        self.detail = detail or self.title
        self.errors = errors
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        """The problem object, its texts in the request's language."""
        out: dict[str, Any] = {
            "type": f"https://jiahe.example/problems/{self.code}",
            "title": translate(self.title),
            "status": self.status,
            "detail": translate(self.detail),
            "code": self.code,
        }
        if self.errors is not None:
            out["errors"] = [{"field": e.field, "message": translate(e.message)} for e in self.errors]
        out.update(self.extra)
        rid = request_id_var.get()
        if rid:
            out["request_id"] = rid
        return out


class BadRequest(AppError):
    status, code, title = 400, "bad_request", "Bad request"


class Unauthorized(AppError):
    status, code, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class InvalidCredentials(Unauthorized):
    code, title = "invalid_credentials", "Invalid credentials"


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "Forbidden"


class OutOfScope(AppError):
    status, code, title = 403, "out_of_scope", "Outside your area"


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(AppError):
    status, code, title = 409, "conflict", "Conflict"


class IdConflict(Conflict):
    code, title = "id_conflict", "Id already used with different content"


class InvalidTransition(Conflict):
    code, title = "invalid_transition", "Transition not allowed"


class VersionConflict(AppError):
    status, code, title = 412, "version_conflict", "Record changed since you read it"


class PreconditionRequired(AppError):
    status, code, title = 428, "precondition_required", "If-Match header required"


class ValidationFailed(AppError):
    status, code, title = 422, "validation_failed", "Validation failed"


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class TooManyRequests(AppError):
    status, code, title = 429, "too_many_requests", "Too many requests"


class ServiceUnavailable(AppError):
    status, code, title = 503, "unavailable", "Service unavailable"


def problem_response(err: AppError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, media_type=PROBLEM_JSON, headers=err.headers)


_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "form"):
        parts = parts[1:] if len(parts) > 1 else parts
    return ".".join(parts)


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """Every method the request's path is served with, for the ``Allow`` of a 405. The router
    names only the methods of the first route that matched the path, while one path is often
    served by several routes (``GET`` and ``PATCH /claims/{id}``)."""
    from starlette.routing import Match

    found = []
    for method in METHODS:
        probe = {
            "type": "http",
            "path": request.scope["path"],
            "root_path": request.scope.get("root_path", ""),
            "method": method,
            "headers": [],
        }
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            found.append(method)
    return ", ".join(found)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            msg = str(e.get("msg", "invalid"))
            errors.append(FieldError(field=_loc_to_field(e.get("loc", ())), message=msg))
        return problem_response(ValidationFailed("The request has invalid fields", errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        err = AppError(str(exc.detail) if exc.detail else title, code=code)
        err.status = exc.status_code
        err.title = title
        if exc.headers:
            err.headers = dict(exc.headers)
        if exc.status_code == 405:
            err.headers["Allow"] = allowed_methods(request)
        return problem_response(err)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return unexpected_error_response(exc)


def _database_down(exc: BaseException) -> AppError | None:
    """A database that is unreachable, restarting or out of connections is a 503 with
    Retry-After (the client retries), not a 500."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.TimeoutError):
        return ServiceUnavailable(
            "All database connections are busy; retry shortly",
            code="database_busy",
            headers={"Retry-After": "2"},
        )
    if isinstance(exc, sa_exc.IntegrityError | sa_exc.DataError | sa_exc.ProgrammingError):
        return None
    # PostgreSQL's own word, which asyncpg's errors reach SQLAlchemy as a plain DBAPIError with:
    # 08… connection exception, 57P… shutting down / starting up / crashed, 53300 too many
    # connections (a server restarting answers "the database system is shutting down").
    sqlstate = str(getattr(getattr(exc, "orig", None), "sqlstate", None) or "")
    if isinstance(exc, sa_exc.DBAPIError) and sqlstate == "53300":
        return ServiceUnavailable(
            "The database has no free connections; retry shortly",
            code="database_busy",
            headers={"Retry-After": "2"},
        )
    if (
        isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
        or (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated)
        or (isinstance(exc, sa_exc.DBAPIError) and (sqlstate[:2] == "08" or sqlstate[:3] == "57P"))
        or isinstance(exc, ConnectionError | OSError)
        # The connection was lost inside the transaction and the error saying so was handled
        # (a savepoint's ``except``, as in sync push): the next statement meets the invalidated
        # connection. (The session's own PendingRollbackError after a failed flush stays a 500.)
        or (isinstance(exc, sa_exc.PendingRollbackError) and "Can't reconnect until invalid" in str(exc))
    ):
        return ServiceUnavailable(
            "The database is unavailable; retry shortly",
            code="database_unavailable",
            headers={"Retry-After": "5"},
        )
    return None


def unexpected_error_response(exc: BaseException) -> JSONResponse:
    """500: the traceback goes to the log with the request id; the client gets only the id.
    Database outages are 503 with Retry-After instead."""
    down = _database_down(exc)
    if down is not None:
        log.warning("database unavailable", extra={"error": type(exc).__name__})
        return problem_response(down)
    log.error("unhandled error", exc_info=exc)
    err = AppError("Unexpected error; quote the request id when reporting it", code="internal_error")
    err.status = 500
    err.title = "Internal server error"
    return problem_response(err)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the problem+json errors a route can give."""
    out: dict[int | str, dict[str, Any]] = {}
    for s in statuses:
        out[s] = {"model": Problem, "content": {PROBLEM_JSON: {}}}
    return out

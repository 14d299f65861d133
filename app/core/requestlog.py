"""The outermost middleware: request id, client address, metrics and the structured request log.

Pure ASGI (not ``BaseHTTPMiddleware``): that one runs the app in a task of its own and wraps
``receive`` per message, which cost a partner notification more than its own validation did.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.context import client_ip_var, request_id_var
from app.core.errors import unexpected_error_response
from app.core.metrics import LATENCY, REQUESTS

log = logging.getLogger("jiahe.http")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        rid = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        rid_header = (b"x-request-id", rid.encode())
        client = scope.get("client")
        rid_token = request_id_var.set(rid)
        ip_token = client_ip_var.set(client[0] if client else None)
        start = time.perf_counter()
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = [h for h in message.get("headers", ()) if h[0].lower() != b"x-request-id"]
                headers.append(rid_header)
                message = {**message, "headers": headers}
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:  # rendered here so the body carries the request id
                if started:
                    log.error("error after the response started", exc_info=exc)
                    return
                response = unexpected_error_response(exc)
                await response(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - start)
            request_id_var.reset(rid_token)
            client_ip_var.reset(ip_token)

    @staticmethod
    def _record(scope: Scope, status: int, elapsed: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"]
        REQUESTS.labels(method, template, str(status)).inc()
        LATENCY.labels(method, template).observe(elapsed)
        state: Any = scope.get("state") or {}
        actor = state.get("actor") if isinstance(state, dict) else getattr(state, "actor", None)
        # Route template, never the raw URL: paths and queries may carry personal data.
        log.info(
            "request",
            extra={
                "method": method,
                "route": template,
                "status": status,
                "ms": round(elapsed * 1000, 1),
                "actor_id": str(actor.id) if actor else None,
                "role": actor.role.value if actor else None,
            },
        )

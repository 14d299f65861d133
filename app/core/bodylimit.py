"""Refuse request bodies over a size limit (413 problem+json) before they are read whole."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.context import request_id_var


class BodyTooLarge(StarletteHTTPException):
    """Raised while the body streams in; FastAPI re-raises HTTP exceptions from body reading,
    so the error handler renders it as a 413 problem."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is over {limit} bytes; send smaller batches")


def _problem(limit: int) -> bytes:
    body = {
        "type": "https://jiahe.example/problems/payload_too_large",
        "title": "Payload too large",
        "status": 413,
        "detail": f"The request body is over {limit} bytes; send smaller batches",
        "code": "payload_too_large",
    }
    rid = request_id_var.get()
    if rid:
        body["request_id"] = rid
    return json.dumps(body).encode()


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send)
                return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, send: Send) -> None:
        body = _problem(self.max_bytes)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

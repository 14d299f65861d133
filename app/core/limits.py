"""Edge protections, applied before a request reaches a route:

- request bodies over ``max_body_bytes`` (1 MiB; sync push: ``sync_max_body_bytes``) → 413,
  checked on Content-Length and while the body streams in;
- request headers over ``max_header_bytes`` (8 KiB in total) → 431;
- rate limits per login and per client address (moving windows, configurable) → 429 with
  ``Retry-After``. The per-login bucket is keyed by the subject (user or machine client id) of
  a bearer token whose signature verifies — not by the header's text, which a client can vary
  at will (``bearer``/``BEARER``, spacing, a fresh login per burst). A token that does not verify
  gets no bucket of its own: such a request counts against its address only (and is refused
  401 by the route). The address is the one ``RequestContextMiddleware`` decided (trusted
  proxies only, ``JIAHE_FORWARDED_ALLOW_IPS``);
- response headers: ``Cache-Control: no-store`` on everything that does not set its own cache
  policy (personal data must not sit in caches), and the usual security headers.

Slow clients (slowloris) are handled by uvicorn's ``--timeout-keep-alive`` and h11's limits and,
in production, by the reverse proxy in front (see README, Deploying).
"""

from __future__ import annotations

import json
import time

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings
from app.core.context import request_id_var
from app.core.errors import Unauthorized
from app.core.messages import translate
from app.core.security import TokenService

SYNC_PUSH_PATH = "/api/v1/sync/push"
IMPORT_PATH = "/api/v1/imports"
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


class BodyTooLarge(StarletteHTTPException):
    """Raised while the body streams in; FastAPI re-raises HTTP exceptions from body reading,
    so the error handler renders it as a 413 problem."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is over {limit} bytes; send smaller batches")


def _problem(status: int, code: str, title: str, detail: str) -> bytes:
    body = {
        "type": f"https://jiahe.example/problems/{code}",
        "title": translate(title),
        "status": status,
        "detail": translate(detail),
        "code": code,
    }
    rid = request_id_var.get()
    if rid:
        body["request_id"] = rid
    return json.dumps(body).encode()


class EdgeLimitsMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, tokens: TokenService) -> None:
        self.app = app
        self.tokens = tokens
        self.max_body = settings.max_body_bytes
        self.max_sync_body = settings.sync_max_body_bytes
        self.max_import_body = settings.import_max_body_bytes
        self.max_headers = settings.max_header_bytes
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_token = RateLimitItemPerMinute(settings.rate_limit_per_token_per_minute)
        self.per_address = RateLimitItemPerMinute(settings.rate_limit_per_address_per_minute)
        self.rate_limits_on = settings.rate_limit_per_token_per_minute > 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        if sum(len(k) + len(v) + 4 for k, v in headers) > self.max_headers:
            await self._refuse(
                send,
                431,
                "headers_too_large",
                "Request header fields too large",
                f"Request headers are over {self.max_headers} bytes",
            )
            return
        path: str = scope.get("path", "")
        if path == SYNC_PUSH_PATH:
            limit = self.max_sync_body
        elif path == IMPORT_PATH:
            limit = self.max_import_body
        else:
            limit = self.max_body
        auth = b""
        for name, value in headers:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._refuse(
                    send,
                    413,
                    "payload_too_large",
                    "Payload too large",
                    f"The request body is over {limit} bytes; send smaller batches",
                )
                return
            if name == b"authorization":
                auth = value
        if self.rate_limits_on and path.startswith("/api/"):
            client = scope.get("client")
            key = f"addr:{client[0] if client else '-'}"
            if not await self.limiter.hit(self.per_address, key):
                await self._too_many(send, self.per_address, key)
                return
            login = self._login(auth) if auth else None
            if login is not None:
                key = "login:" + login
                if not await self.limiter.hit(self.per_token, key):
                    await self._too_many(send, self.per_token, key)
                    return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        docs = path.startswith(("/docs", "/redoc"))

        async def secured_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = list(message.get("headers", []))
                names = {k.lower() for k, _ in out}
                if b"cache-control" not in names:
                    out.append((b"cache-control", b"no-store"))
                out.extend(h for h in SECURITY_HEADERS if h[0] not in names)
                if not docs and API_CSP[0] not in names:
                    out.append(API_CSP)
                message = {**message, "headers": out}
            await send(message)

        await self.app(scope, limited_receive, secured_send)

    def _login(self, authorization: bytes) -> str | None:
        """The subject of a bearer access token whose signature verifies (the scheme in any
        case, any spacing); None for anything else. Verified tokens are remembered by the
        token service, so the route's own authentication does not verify again."""
        scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            return self.tokens.decode(token, typ="access").sub
        except Unauthorized:
            return None

    async def _too_many(self, send: Send, item: RateLimitItemPerMinute, key: str) -> None:
        stats = await self.limiter.get_window_stats(item, key)
        retry = max(1, int(stats.reset_time - time.time()))
        await self._refuse(
            send,
            429,
            "rate_limited",
            "Too many requests",
            "Too many requests; slow down",
            retry_after=retry,
        )

    async def _refuse(
        self, send: Send, status: int, code: str, title: str, detail: str, retry_after: int | None = None
    ) -> None:
        body = _problem(status, code, title, detail)
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if retry_after is not None:
            headers.append((b"retry-after", str(retry_after).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

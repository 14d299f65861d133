"""The outermost middleware: request id, client address, metrics and the structured request log.

Pure ASGI (not ``BaseHTTPMiddleware``): that one runs the app in a task of its own and wraps
``receive`` per message, which cost a partner notification more than its own validation did.

The client address is decided here, once, for everything after: the rate limits, the login
throttle, the audit log. It is the TCP peer, unless the peer is one of the configured proxies
(``JIAHE_FORWARDED_ALLOW_IPS``, none by default): then ``X-Forwarded-For`` is read from the
right, skipping the configured proxies, and the first other address is the client (what a
client writes at the left of the header itself is never believed). ``jiahe serve`` turns off
uvicorn's own proxy-header handling, which would otherwise believe any loopback peer.

The language of the answer is decided here too (``Accept-Language``, app/core/messages.py):
every response says it in ``Content-Language`` and carries ``Vary: Accept-Language``, since
any answer's texts (a problem's detail, if nothing else) follow that header.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.context import client_ip_var, request_id_var
from app.core.errors import unexpected_error_response
from app.core.messages import CONTENT_LANGUAGE, negotiate, reset_language, set_language
from app.core.metrics import LATENCY, REQUESTS

log = logging.getLogger("jiahe.http")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(
    peer: str | None, headers: list[tuple[bytes, bytes]], proxies: tuple[Network, ...]
) -> str | None:
    """The client of a request: the peer, or — from a configured proxy — the right-most
    ``X-Forwarded-For`` hop that is not a configured proxy (see the module docstring)."""
    if peer is None or not proxies or not _trusted(peer, proxies):
        return peer
    hops: list[str] = []
    for name, value in headers:
        if name == b"x-forwarded-for":
            hops.extend(h.strip() for h in value.decode("latin-1").split(","))
    client = peer
    for hop in reversed(hops):
        try:
            ip = ipaddress.ip_address(hop)
        except ValueError:
            return client  # a hop no proxy of ours wrote: stop at the last one believed
        client = str(ip)
        if not any(ip in net for net in proxies):
            return client
    return client


def _with_language(
    headers: list[tuple[bytes, bytes]], language: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """``Content-Language`` (unless the app set one) and ``Accept-Language`` added to ``Vary``."""
    out: list[tuple[bytes, bytes]] = []
    vary: list[bytes] = []
    has_language = False
    for name, value in headers:
        lower = name.lower()
        if lower == b"vary":
            vary.extend(v.strip() for v in value.split(b",") if v.strip())
            continue
        has_language = has_language or lower == b"content-language"
        out.append((name, value))
    if not has_language:
        out.extend(language)
    if not any(v.lower() in (b"accept-language", b"*") for v in vary):
        vary.append(b"Accept-Language")
    out.append((b"vary", b", ".join(vary)))
    return out


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, trusted_proxies: tuple[Network, ...] = ()) -> None:
        self.app = app
        self.proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        accept_language: str | None = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id" and not incoming:
                incoming = value.decode("latin-1")
            elif name == b"accept-language" and accept_language is None:
                accept_language = value.decode("latin-1")
        # The workbench (/web/) is a Chinese interface: its messages are Chinese whatever the
        # browser asks for (the API follows Accept-Language).
        path = scope.get("path", "")
        lang = "zh" if path == "/web" or path.startswith("/web/") else negotiate(accept_language)
        language_headers = [(b"content-language", CONTENT_LANGUAGE[lang].encode())]
        rid = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        rid_header = (b"x-request-id", rid.encode())
        client = scope.get("client")
        peer = client[0] if client else None
        address = client_address(peer, scope.get("headers", []), self.proxies) if self.proxies else peer
        if address != peer and address is not None:
            scope = {**scope, "client": (address, 0)}
        rid_token = request_id_var.set(rid)
        lang_token = set_language(lang)
        ip_token = client_ip_var.set(address)
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
                headers = _with_language(headers, language_headers)
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
            reset_language(lang_token)
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

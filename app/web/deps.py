"""The caller of a workbench request and its CSRF check.

``WebCaller`` is to the pages what ``Caller`` is to the API: the same ``Actor`` (role, area,
login), put on the database session the same way, so every service applies the same scope and
rules. A page can never see or do what the API would refuse: it calls the same service.

Every request that changes something (POST) carries the session's CSRF token, in the form field
``csrf_token`` or the header ``X-CSRF-Token`` (htmx sends it from ``hx-headers`` on ``<body>``);
without it, 403 ``csrf_failed`` and nothing is done. The cookie is ``SameSite=Strict`` as well.
"""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request

from app.authz.actor import Actor
from app.core.errors import Forbidden
from app.deps import SessionDep
from app.web import sessions

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class SignInRequired(Exception):
    """No valid sign-in: the page redirects to the sign-in form (and back after it)."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url
        super().__init__(next_url)


def csrf_failed() -> Forbidden:
    return Forbidden(
        "The form has expired or did not come from this site; reload the page", code="csrf_failed"
    )


async def check_csrf(request: Request, expected: str) -> None:
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        ctype = request.headers.get("content-type", "").lower()
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get("csrf_token")
            sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise csrf_failed()


async def web_caller(request: Request, session: SessionDep) -> Actor:
    settings = request.app.state.settings
    signed = await sessions.signed_in(session, settings, request.cookies.get(sessions.COOKIE))
    if signed is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(quote(target, safe="/?=&"))
    request.state.csrf_token = signed.csrf_token
    if request.method not in SAFE_METHODS:
        await check_csrf(request, signed.csrf_token)
    session.info["actor"] = signed.actor
    request.state.actor = signed.actor
    return signed.actor


WebCaller = Annotated[Actor, Depends(web_caller)]

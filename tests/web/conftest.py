"""Workbench test harness: a browser-like client signed in through the real sign-in form.

``await web_as("township", "430122100000")`` → a ``WebClient`` (httpx, cookies kept) signed in
as a new user of that role and area. ``client.csrf`` is the session's CSRF token (read from the
page, as a browser has it); ``await client.submit(url, {...})`` posts a form with it, ``client.hx``
are the headers htmx sends. Tests that must forge a request use ``client.post`` without it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient, Response

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


class WebClient(AsyncClient):
    csrf: str = ""
    user: Any = None
    password: str = ""

    async def submit(self, url: str, data: dict[str, Any] | None = None, **kw: Any) -> Response:
        """POST a form as the page would (with the CSRF field)."""
        return await self.post(url, data={**(data or {}), "csrf_token": self.csrf}, **kw)

    @property
    def hx(self) -> dict[str, str]:
        """The headers of an htmx request from a page (CSRF header included)."""
        return {"HX-Request": "true", "X-CSRF-Token": self.csrf}


async def sign_in(client: WebClient, username: str, password: str) -> Response:
    form = await client.get("/web/login")
    assert form.status_code == 200, form.text
    return await client.post(
        "/web/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(form.text), "next": "/web/"},
    )


WebAs = Callable[..., Awaitable[WebClient]]


@pytest.fixture
async def web_as(app, db, areas: None) -> AsyncIterator[WebAs]:  # type: ignore[no-untyped-def]
    from tests.factories import make_user

    clients: list[WebClient] = []

    async def _make(role: str, area_code: str, **kw: object) -> WebClient:
        user, password = await make_user(db, role=role, area_code=area_code, **kw)
        await db.commit()
        c = WebClient(transport=ASGITransport(app=app), base_url="http://test")
        clients.append(c)
        r = await sign_in(c, user.username, password)
        assert r.status_code == 303, r.text
        home = await c.get("/web/")
        assert home.status_code == 200, home.text
        c.csrf = csrf_of(home.text)
        c.user = user
        c.password = password
        return c

    yield _make
    for c in clients:
        await c.aclose()


@pytest.fixture
async def browser_anon(app) -> AsyncIterator[WebClient]:  # type: ignore[no-untyped-def]
    async with WebClient(transport=ASGITransport(app=app), base_url="http://test") as c:
        yield c

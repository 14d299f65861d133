"""工作台: the caller's queues with their counts, each linking to its list.

Each page module that owns a queue answers ``cards(session, caller)``; ``SOURCES`` lists them in
the order of the work. The counts come from the same services (and scope) as the lists they
link to, so the number on the card is the number of rows the list shows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.authz.actor import Actor
from app.deps import SessionDep
from app.web.cards import Card
from app.web.deps import WebCaller
from app.web.render import page
from app.web.routes import checkups, claims, conflicts, migrants, quality

router = APIRouter(prefix="/web", include_in_schema=False)

CardSource = Callable[[AsyncSession, Actor], Awaitable[list[Card]]]
SOURCES: tuple[CardSource, ...] = (
    claims.cards,
    checkups.cards,
    conflicts.cards,
    quality.cards,
    migrants.cards,
)


@router.get("")
async def web_root() -> Response:
    return RedirectResponse("/web/", status_code=307)


@router.get("/")
async def home(request: Request, session: SessionDep, caller: WebCaller) -> Response:
    cards: list[Card] = []
    for source in SOURCES:
        cards.extend(await source(session, caller))
    return page(request, "home.html", {"cards": cards}, active="home")

"""The one scope mechanism: caller → area prefix → a WHERE clause on one indexed column.

Every scoped table carries ``county_code``, ``township_code`` and ``village_code``. A county
caller filters ``county_code = …``, a township caller ``township_code = …``, a village cadre
``village_code = …``. Machine clients (partners, dashboards) see no personal rows at all unless
a service explicitly asks for aggregate access. Services read scoped tables only through
``scoped(select(Model), actor)``; fetching by id goes through ``get_scoped`` which answers 404
for anything out of scope, so existence never leaks.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, false
from sqlalchemy.ext.asyncio import AsyncSession

from app.authz.actor import Actor
from app.core.errors import NotFound, OutOfScope

T = TypeVar("T")
S = TypeVar("S", bound=Select[Any])


def scope_clause(model: Any, actor: Actor, *, allow_machine: bool = False) -> ColumnElement[bool]:
    if actor.is_machine and not allow_machine:
        return false()
    prefix = actor.prefix
    column = {6: "county_code", 9: "township_code", 12: "village_code"}.get(len(prefix))
    if column is None or not hasattr(model, column):
        return false()
    clause: ColumnElement[bool] = getattr(model, column) == prefix
    return clause


def scoped(stmt: S, actor: Actor, model: Any | None = None, *, allow_machine: bool = False) -> S:
    """Add the caller's scope to a SELECT of a scoped table (the first entity unless given)."""
    if model is None:
        model = stmt.column_descriptions[0]["entity"]
    return stmt.where(scope_clause(model, actor, allow_machine=allow_machine))


async def get_scoped(session: AsyncSession, model: type[T], ident: uuid.UUID | str, actor: Actor) -> T:
    """The row with this id if the caller may see it; otherwise 404 ``not_found``."""
    from sqlalchemy import select

    pk = model.id  # type: ignore[attr-defined]
    stmt = scoped(select(model).where(pk == ident), actor, model)
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"No {model.__name__.lower()} with this id")
    return row


async def get_many_scoped(
    session: AsyncSession, model: type[T], ids: set[uuid.UUID], actor: Actor
) -> dict[uuid.UUID, T]:
    """The rows with these ids the caller may see, by id (one query; missing ids are absent,
    callers answer them 404 like ``get_scoped``)."""
    from sqlalchemy import select

    if not ids:
        return {}
    pk = model.id  # type: ignore[attr-defined]
    stmt = scoped(select(model).where(pk.in_(ids)), actor, model)
    return {row.id: row for row in (await session.execute(stmt)).scalars()}  # type: ignore[attr-defined]


def ensure_can_place(actor: Actor, village_code: str) -> None:
    """Creating a record in a village outside the caller's scope is 403 ``out_of_scope``."""
    if actor.is_machine or not actor.covers(village_code):
        raise OutOfScope("That village is outside your area")


def area_clause(model: Any, area_code: str) -> ColumnElement[bool]:
    """Narrow to one area (county, township or village) by its 12-digit code."""
    from app.authz.actor import scope_prefix

    prefix = scope_prefix(area_code)
    column = {6: "county_code", 9: "township_code", 12: "village_code"}[len(prefix)]
    clause: ColumnElement[bool] = getattr(model, column) == prefix
    return clause


def ensure_area_in_scope(actor: Actor, area_code: str) -> None:
    """An area filter outside the caller's scope finds nothing: 404, like any record."""
    from app.authz.actor import scope_prefix

    if not scope_prefix(area_code).startswith(actor.prefix):
        raise NotFound("No such area in your scope")

"""One check for every query string: no parameter the route does not take, none given twice.

A query parameter a route does not declare used to be dropped without a word, so a filter that
does not exist looked like one that matched everything (``GET /persons?sex=female`` answered
everyone). Now, on every API route:

- a parameter the route does not take → 422 ``unknown_parameter``, every such name in
  ``errors[]`` (``field``: the name as sent; ``message``: the names the route takes). Names are
  exact: ``Limit``, ``status[]`` (the PHP array form) or ``sex `` are unknown, like ``sex`` on a
  route without that filter;
- a parameter that takes one value given more than once (``?year=2025&year=2026``: which one did
  the caller mean?) → 422 ``validation_failed`` naming it. A parameter declared as a list takes
  repeats (``?x=1&x=2``), none does today.

What a route takes is read from FastAPI's own record of it (the query parameters of the route's
dependant and of every dependency below it, under their aliases, a parameter model's fields
included), which is also what the OpenAPI document is built from: the check and the document
cannot disagree (``tests/platform/test_unknown_params.py`` compares them for every operation).
The result is computed once per route and kept in the application's state.

``query_guard`` is a dependency of the whole application (``create_app``), next to the text
guard, so a new route cannot miss it. It runs before authentication: which names a route takes
is public (``/openapi.json``), so the answer reveals nothing to a caller without a token. It
covers every API route, ``/healthz``, ``/readyz`` and ``/metrics`` included (they take no
parameters). ``/docs`` and ``/openapi.json`` are FastAPI's own pages, not API operations, and are
left as FastAPI serves them.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.core.errors import AppError, FieldError, ValidationFailed


class UnknownParameter(AppError):
    status, code, title = 422, "unknown_parameter", "Unknown query parameter"


_SEQUENCES = (list, set, frozenset, tuple, collections.abc.Sequence, collections.abc.Set)


def _takes_many(annotation: Any) -> bool:
    """A list-like annotation (``list[str] | None``, ``Annotated[set[int], …]``): repeats allowed."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _takes_many(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_takes_many(a) for a in typing.get_args(annotation) if a is not type(None))
    return annotation in _SEQUENCES or origin in _SEQUENCES


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model of a parameter model (``Annotated[Filters, Query()]``), else None."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _model_of(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [m for a in typing.get_args(annotation) if (m := _model_of(a)) is not None]
        return models[0] if len(models) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def query_names(dependant: Dependant) -> dict[str, bool]:
    """Every query parameter the dependant (with its dependencies) takes: name → takes repeats."""
    names: dict[str, bool] = {}
    stack = [dependant]
    while stack:
        current = stack.pop()
        for field in current.query_params:
            annotation = field.field_info.annotation
            model = _model_of(annotation)
            if model is None:
                names[field.alias] = _takes_many(annotation)
                continue
            for name, info in model.model_fields.items():
                names[info.alias or name] = _takes_many(info.annotation)
        stack.extend(current.dependencies)
    return names


def route_dependant(scope: Any) -> Dependant | None:
    """What FastAPI solves the request's parameters with: the route as included (its router's
    and the application's dependencies added: FastAPI keeps that in the request's ``fastapi``
    scope since included routers became lazy), else the route's own."""
    effective = scope.get("fastapi", {}).get("effective_route_context")
    dependant = getattr(effective, "dependant", None)
    if isinstance(dependant, Dependant):
        return dependant
    route = scope.get("route")
    return route.dependant if isinstance(route, APIRoute) else None


def _known(request: Request, dependant: Dependant) -> dict[str, bool]:
    """``query_names`` of the dependant, computed once per route of this application (the cache
    lives in the application's state, so it goes with the application)."""
    cache: dict[int, tuple[Dependant, dict[str, bool]]] | None = getattr(
        request.app.state, "query_names", None
    )
    if cache is None:
        cache = request.app.state.query_names = {}
    hit = cache.get(id(dependant))
    if hit is None or hit[0] is not dependant:
        hit = (dependant, query_names(dependant))
        cache[id(dependant)] = hit
    return hit[1]


def _unknown_message(known: dict[str, bool]) -> str:
    if not known:
        return "unknown query parameter; this route takes no query parameters"
    return f"unknown query parameter; this route takes {', '.join(sorted(known))}"


async def query_guard(request: Request) -> None:
    """Refuse (422) a query parameter the route does not take, or a one-value one given twice."""
    if not request.scope.get("query_string"):
        return
    dependant = route_dependant(request.scope)
    if dependant is None:
        return
    known = _known(request, dependant)
    counts: dict[str, int] = {}
    for name, _value in request.query_params.multi_items():
        counts[name] = counts.get(name, 0) + 1
    unknown = [name for name in counts if name not in known]
    if unknown:
        raise UnknownParameter(
            "Unknown query parameter: " + ", ".join(unknown),
            errors=[FieldError(field=name, message=_unknown_message(known)) for name in unknown],
        )
    repeated = [name for name, n in counts.items() if n > 1 and not known[name]]
    if repeated:
        raise ValidationFailed(
            "A query parameter that takes one value was given more than once",
            errors=[
                FieldError(field=name, message=f"given {counts[name]} times; this parameter takes one value")
                for name in repeated
            ],
        )

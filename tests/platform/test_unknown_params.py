"""Nothing silent: a query parameter a route does not take is 422 ``unknown_parameter`` (it used
to be dropped, so ``GET /persons?sex=female`` answered everyone); one that takes one value given
twice is 422 ``validation_failed``. One check for every route (app/core/params.py), agreeing with
the OpenAPI document."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.routing import APIRoute, iter_route_contexts
from httpx import ASGITransport, AsyncClient
from pydantic import BaseModel
from sqlalchemy import func, select

from app.core.errors import install_error_handlers
from app.core.params import query_guard, query_names
from app.models.households import Household
from tests.factories import id_number

V1 = "430122100201"
COUNTY = "430122000000"


def problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == code, body
    return body


def unknown(r, *names: str) -> dict:
    body = problem(r, 422, "unknown_parameter")
    assert [e["field"] for e in body["errors"]] == list(names)
    return body


@pytest.fixture
async def cadre(client_as):
    return await client_as("village", V1)


async def mk_household(c) -> dict:
    body = {"village_code": V1, "address": "团头湖村3组12号", "household_type": "rural"}
    r = await c.post("/api/v1/households", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def mk_person(c, household_id: str) -> dict:
    body = {
        "household_id": household_id,
        "name": "李秀英",
        "relation_to_head": "户主",
        "marital_status": "married",
        "id_number": id_number(date(1990, 5, 17), "female"),
    }
    r = await c.post("/api/v1/persons", json=body)
    assert r.status_code == 201, r.text
    return r.json()


# --- the rule on lists, single records and writes ---------------------------------------------


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/api/v1/households", "sex=female"),
        ("/api/v1/visits", "q=%E7%8E%8B"),
        ("/api/v1/tasks", "assignee=me"),
        ("/api/v1/migrants", "name=x"),
        ("/api/v1/checkup-rounds", "year=2026"),
        ("/api/v1/sync/pull", "since=0"),
        ("/api/v1/me", "verbose=1"),
    ],
)
async def test_an_unknown_parameter_on_a_list_or_read_is_422_naming_it(cadre, path, param):
    assert (await cadre.get(path)).status_code == 200  # the route itself answers
    body = unknown(await cadre.get(f"{path}?{param}"), param.split("=")[0])
    assert body["status"] == 422
    assert "unknown_parameter" in body["type"]


async def test_the_message_names_what_the_route_takes(cadre):
    body = unknown(await cadre.get("/api/v1/households?sex=female"), "sex")
    message = body["errors"][0]["message"]
    for name in ("village_code", "q", "limit", "cursor"):
        assert name in message


async def test_an_unknown_parameter_on_a_single_record_get(cadre):
    hh = await mk_household(cadre)
    person = await mk_person(cadre, hh["id"])
    unknown(await cadre.get(f"/api/v1/households/{hh['id']}?fields=address"), "fields")
    unknown(await cadre.get(f"/api/v1/persons/{person['id']}?expand=household"), "expand")
    assert (await cadre.get(f"/api/v1/persons/{person['id']}")).status_code == 200


async def test_a_post_with_a_query_string_stores_nothing(cadre, db):
    body = {"village_code": V1, "address": "团头湖村3组12号", "household_type": "rural"}
    unknown(await cadre.post("/api/v1/households?dry_run=true", json=body), "dry_run")
    assert (await db.execute(select(func.count()).select_from(Household))).scalar_one() == 0
    # and a PATCH: the record is not changed
    hh = await mk_household(cadre)
    r = await cadre.patch(
        f"/api/v1/households/{hh['id']}?force=1", json={"address": "别处1号"}, headers={"If-Match": '"1"'}
    )
    unknown(r, "force")
    await db.rollback()  # a fresh read, not the snapshot of the count above
    assert (await db.get(Household, uuid.UUID(hh["id"]))).address == "团头湖村3组12号"


async def test_every_unknown_name_is_listed_once_in_order(cadre):
    r = await cadre.get("/api/v1/households?b=1&limit=5&a=2&b=3&village_code=" + V1)
    body = unknown(r, "b", "a")
    assert body["detail"].count("b") >= 1


@pytest.mark.parametrize(
    "query",
    [
        "status[]=draft",  # the PHP array form is not the parameter
        "status%5B%5D=draft",  # the same, encoded
        "Status=draft",  # names are exact
        "status%20=draft",
        "=draft",  # a value without a name
    ],
)
async def test_near_names_are_unknown(client_as, query):
    county = await client_as("county", COUNTY)
    r = await county.get(f"/api/v1/claims?{query}")
    body = problem(r, 422, "unknown_parameter")
    assert len(body["errors"]) == 1
    assert body["errors"][0]["field"] != "status"


async def test_a_one_value_parameter_given_twice_is_422(cadre):
    body = problem(await cadre.get("/api/v1/households?limit=1&limit=2"), 422, "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["limit"]
    body = problem(
        await cadre.get(f"/api/v1/persons?sex=male&sex=female&village_code={V1}"), 422, "validation_failed"
    )
    assert [e["field"] for e in body["errors"]] == ["sex"]


async def test_known_parameters_still_work(cadre):
    hh = await mk_household(cadre)
    await mk_person(cadre, hh["id"])
    r = await cadre.get(f"/api/v1/households?village_code={V1}&q=%E5%9B%A2&limit=1")
    assert r.status_code == 200, r.text
    assert [h["id"] for h in r.json()["items"]] == [hh["id"]]
    r = await cadre.get(f"/api/v1/persons?household_id={hh['id']}&sex=female&marital_status=married")
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 1
    # an empty query string, and a bare "?", are no parameters at all
    assert (await cadre.get("/api/v1/households?")).status_code == 200


async def test_checked_before_the_token_as_the_names_are_public(anon):
    problem(await anon.get("/api/v1/persons"), 401, "unauthorized")
    unknown(await anon.get("/api/v1/persons?sex=female&foo=1"), "foo")


# --- operations routes and the documentation pages ----------------------------------------------


async def test_health_metrics_and_docs_keep_working(anon):
    assert (await anon.get("/healthz")).json() == {"status": "ok"}
    unknown(await anon.get("/healthz?verbose=1"), "verbose")
    r = await anon.get("/metrics")
    assert r.status_code == 200
    assert "jiahe" in r.text or "# HELP" in r.text
    unknown(await anon.get("/metrics?name[]=x"), "name[]")
    assert (await anon.get("/openapi.json")).status_code == 200
    assert (await anon.get("/docs")).status_code == 200


# --- the check and the document agree ---------------------------------------------------------


async def test_the_check_takes_exactly_what_the_document_lists(app):
    """For every operation, the names the check accepts are the query parameters the OpenAPI
    document lists (both come from FastAPI's record of the route as included)."""
    spec = app.openapi()
    checked = 0
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        effective = getattr(ctx, "_route_context", None)
        dependant = effective.dependant if effective is not None else route.dependant
        for method in route.methods:
            op = spec["paths"][ctx.path_format].get(method.lower())
            assert op is not None, (method, ctx.path_format)
            documented = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            assert set(query_names(dependant)) == documented, (method, ctx.path_format)
            checked += 1
    assert checked > 80


async def test_every_operation_documents_the_422(app):
    spec = app.openapi()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            described = op["responses"]["422"]["description"]
            assert "unknown_parameter" in described, (method, path)
            assert op["responses"]["422"]["content"]["application/problem+json"]


# --- the guard itself: list parameters and parameter models -----------------------------------


class Filters(BaseModel):
    colour: str | None = None
    size: int | None = None


def _small_app() -> FastAPI:
    small = FastAPI(dependencies=[Depends(query_guard)])
    install_error_handlers(small)

    def paging(page: int = 1) -> int:
        return page

    @small.get("/tags")
    async def tags(
        tag: Annotated[list[str] | None, Query()] = None,
        page: int = Depends(paging),  # noqa: B008 (a sub-dependency's parameter counts too)
    ) -> dict[str, object]:
        return {"tag": tag, "page": page}

    @small.get("/items")
    async def items(filters: Annotated[Filters, Query()]) -> dict[str, object]:
        return filters.model_dump()

    @small.get("/aliased")
    async def aliased(from_: Annotated[str | None, Query(alias="from")] = None) -> dict[str, object]:
        return {"from": from_}

    def lang(lang: str = "zh") -> str:
        return lang

    # a router-level dependency's parameter: FastAPI adds it when the router is included
    sub = APIRouter(prefix="/sub", dependencies=[Depends(lang)])

    @sub.get("/x")
    async def x(n: int = 0) -> dict[str, object]:
        return {"n": n}

    small.include_router(sub)
    return small


async def test_list_parameters_take_repeats_and_models_and_aliases_their_names():
    async with AsyncClient(transport=ASGITransport(app=_small_app()), base_url="http://t") as c:
        r = await c.get("/tags?tag=a&tag=b&page=2")
        assert r.json() == {"tag": ["a", "b"], "page": 2}
        unknown(await c.get("/tags?tags=a"), "tags")
        problem(await c.get("/tags?page=1&page=2"), 422, "validation_failed")
        assert (await c.get("/items?colour=red&size=3")).json() == {"colour": "red", "size": 3}
        unknown(await c.get("/items?filters=x"), "filters")
        assert (await c.get("/aliased?from=x")).json() == {"from": "x"}
        unknown(await c.get("/aliased?from_=x"), "from_")
        assert (await c.get("/sub/x?n=2&lang=en")).json() == {"n": 2}
        unknown(await c.get("/sub/x?n=2&lang=en&page=1"), "page")

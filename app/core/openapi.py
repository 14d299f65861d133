"""The OpenAPI document, completed: every error answer of every operation is documented as
``application/problem+json`` with the ``Problem`` schema, including the errors any request can
meet before reaching its route (bad body encoding, size and rate limits, database outages)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.core.errors import PROBLEM_JSON

GENERIC = {
    "400": "Malformed request (e.g. a body that is not UTF-8 JSON)",
    "413": "Request body too large",
    "422": "Validation failed; any request carrying NUL or control characters (other than tab and"
    " newline) in its path, query, headers or body gets this (code validation_failed)",
    "429": "Rate limited (see Retry-After)",
    "431": "Request headers too large",
    "503": "Database unavailable or busy (see Retry-After)",
}
PUBLIC_PATHS = {"/healthz", "/readyz", "/metrics"}


def complete_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    if "Problem" not in components:
        from app.core.errors import Problem

        components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(components["Problem"].pop("$defs", {}))
    for path, ops in spec.get("paths", {}).items():
        for op in ops.values():
            responses = op.setdefault("responses", {})
            for code, text in GENERIC.items():
                if path in PUBLIC_PATHS and code not in ("422", "503"):
                    continue
                responses.setdefault(code, {"description": text})
            for code, resp in responses.items():
                if code.startswith(("4", "5")):
                    resp["content"] = {PROBLEM_JSON: {"schema": problem_ref}}
                    resp.setdefault("description", "Problem")
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    app.openapi_schema = spec
    return spec

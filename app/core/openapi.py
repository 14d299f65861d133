"""The OpenAPI document, completed: every error answer of every operation is documented as
``application/problem+json`` with the ``Problem`` schema, including the errors any request can
meet before reaching its route (bad body encoding, size and rate limits, database outages).

It also says what the server enforces beyond the types, so that generated clients refuse a
request before sending it (``tighten``): the text rule (no control characters but tab and
newline) on every free-text string a request carries, ``If-Match`` as a required version
header, ``Idempotency-Key`` as required, and the token grant's fields per ``grant_type``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.core.errors import PROBLEM_JSON
from app.models.formats import TEXT_PATTERN

GENERIC = {
    "400": "Malformed request (e.g. a body that is not UTF-8 JSON)",
    "413": "Request body too large",
    "429": "Rate limited (see Retry-After)",
    "431": "Request headers too large",
    "503": "Database unavailable or busy (see Retry-After)",
}
PUBLIC_PATHS = {"/healthz", "/readyz", "/metrics"}


def replayed(model: type[Any]) -> dict[int | str, dict[str, Any]]:
    """The ``200`` of a create whose client-supplied id may be sent again (a phone retrying): the
    same id and content answer the stored record with 200 instead of 201, nothing written."""
    return {
        200: {"model": model, "description": "Sent again with the same id and content: the stored record"}
    }


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
                if path in PUBLIC_PATHS and code != "503":
                    continue
                responses.setdefault(code, {"description": text})
            for code, resp in responses.items():
                if code.startswith(("4", "5")):
                    resp["content"] = {PROBLEM_JSON: {"schema": problem_ref}}
                    resp.setdefault("description", "Problem")
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    tighten(spec)
    app.openapi_schema = spec
    return spec


IF_MATCH = {
    "type": "string",
    "pattern": '^(W/)?"?[0-9]{1,9}"?$',
    "description": 'The version you read, as its ETag (`"3"`): missing → 428 `precondition_required`, '
    "stale → 412 `version_conflict`",
}
NON_EMPTY = {"type": "string", "minLength": 1}
IDEMPOTENCY_KEY = {"type": "string", "minLength": 1, "maxLength": 255}
# Which fields each grant of POST /auth/token needs (400 `invalid_request` without them).
GRANTS = {"password": ("username", "password"), "client_credentials": ("client_id", "client_secret")}


def _free_text(schema: dict[str, Any], comps: dict[str, Any], seen: set[str]) -> None:
    """Give every plain string (no format, enum, const or pattern of its own) the text pattern."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen and name in comps:
            seen.add(name)
            _free_text(comps[name], comps, seen)
        return
    if schema.get("type") == "string" and not {"format", "enum", "const", "pattern"} & schema.keys():
        schema["pattern"] = TEXT_PATTERN
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for sub in schema.get(key, []):
            _free_text(sub, comps, seen)
    for sub in schema.get("properties", {}).values():
        _free_text(sub, comps, seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _free_text(schema[key], comps, seen)


def tighten(spec: dict[str, Any]) -> None:
    comps = spec.get("components", {}).get("schemas", {})
    seen: set[str] = set()
    for path, ops in spec.get("paths", {}).items():
        for op in ops.values():
            for param in op.get("parameters", []):
                if param["in"] == "header" and param["name"].lower() == "if-match":
                    param["required"] = True
                    param["schema"] = dict(IF_MATCH)
                elif param["in"] == "header" and param["name"].lower() == "idempotency-key":
                    param["required"] = True
                    param["schema"] = dict(IDEMPOTENCY_KEY)
                elif param["in"] in ("query", "header"):
                    _free_text(param.get("schema", {}), comps, seen)
            for media, content in op.get("requestBody", {}).get("content", {}).items():
                schema = content.get("schema", {})
                if path == "/api/v1/auth/token" and media == "application/x-www-form-urlencoded":
                    _grants(schema, comps)
                _free_text(schema, comps, seen)


def _grants(schema: dict[str, Any], comps: dict[str, Any]) -> None:
    body = comps[schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else schema
    body["properties"]["grant_type"] = {"type": "string", "enum": list(GRANTS)}
    body["oneOf"] = [
        {
            "properties": {
                "grant_type": {"const": grant},
                **{f: {"type": "string", "minLength": 1} for f in fields},
            },
            "required": ["grant_type", *fields],
        }
        for grant, fields in GRANTS.items()
    ]

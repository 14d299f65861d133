"""The OpenAPI document, completed: every error answer of every operation is documented as
``application/problem+json`` with the ``Problem`` schema, including the errors any request can
meet before reaching its route (bad body encoding, size and rate limits, database outages).

It also says what the server enforces beyond the types, so that generated clients refuse a
request before sending it (``tighten``): the text rule (no control characters but tab and
newline) on every free-text string a request carries, ``If-Match`` as a required version
header where its absence is 428 (optional where an action takes one optionally),
``Idempotency-Key`` as required, and the token grant's fields per ``grant_type``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.core.errors import PROBLEM_JSON
from app.models.formats import TEXT_PATTERN

GENERIC = {
    "400": "Malformed request (e.g. a body that is not UTF-8 JSON)",
    "413": "Request body too large",
    "422": "Validation failed; any request carrying NUL or control characters (other than tab and"
    " newline) in its path, query, headers or body gets this (code validation_failed), as does a"
    " query parameter that takes one value given twice; a query parameter the operation does not"
    " list is code unknown_parameter, named in errors[]",
    "429": "Rate limited (see Retry-After)",
    "431": "Request headers too large",
    "503": "Database unavailable or busy (see Retry-After)",
}
PUBLIC_PATHS = {"/healthz", "/readyz", "/metrics"}
# The 422 descriptions FastAPI writes (its own, and the HTTP reason of ``error_responses``).
UNSAID = {"Validation Error", "Unprocessable Entity", "Problem"}


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
                if path in PUBLIC_PATHS and code not in ("422", "503"):
                    continue
                responses.setdefault(code, {"description": text})
            if responses["422"].get("description") in UNSAID:  # every operation says the rules
                responses["422"]["description"] = GENERIC["422"]
            for code, resp in responses.items():
                if code.startswith(("4", "5")):
                    resp["content"] = {PROBLEM_JSON: {"schema": problem_ref}}
                    resp.setdefault("description", "Problem")
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    tighten(spec)
    add_links(spec)
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


# A string whose text rule is applied per sync op (a bad one makes its op ``rejected`` in a
# 200 answer, not the request a 422): the document must not call such a request invalid.
PER_OP_TEXT = "x-text-rule-per-op"


def _free_text(schema: dict[str, Any], comps: dict[str, Any], seen: set[str]) -> None:
    """Give every plain string (no format, enum, const or pattern of its own) the text pattern."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen and name in comps:
            seen.add(name)
            _free_text(comps[name], comps, seen)
        return
    own_rule = {"format", "enum", "const", "pattern", PER_OP_TEXT} & schema.keys()
    if schema.get("type") == "string" and not own_rule:
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
                    # required where a missing one is 428 (PATCH); the checkup actions take an
                    # optional one (their dependency says "Optional: …")
                    optional = str(param.get("description", "")).startswith("Optional")
                    param["required"] = not optional
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


# OpenAPI links of the main resources: what a client (and the fuzzer's stateful phase) can do
# next with the record an answer holds — create → read → correct (If-Match: its version) →
# act on it. (source path, method, status) → {link name: (target path, method, parameters)}.
V1 = "/api/v1"
_ID = "$response.body#/id"
_VERSION = "$response.body#/version"
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]] = {
    (f"{V1}/households", "post", "201"): {
        "GetHousehold": (f"{V1}/households/{{household_id}}", "get", {"path.household_id": _ID}),
        "UpdateHousehold": (
            f"{V1}/households/{{household_id}}",
            "patch",
            {"path.household_id": _ID, "header.If-Match": _VERSION},
        ),
    },
    (f"{V1}/persons", "post", "201"): {
        "GetPerson": (f"{V1}/persons/{{person_id}}", "get", {"path.person_id": _ID}),
        "UpdatePerson": (
            f"{V1}/persons/{{person_id}}",
            "patch",
            {"path.person_id": _ID, "header.If-Match": _VERSION},
        ),
        "MovePerson": (f"{V1}/persons/{{person_id}}/move", "post", {"path.person_id": _ID}),
        "GetHouseholdOfPerson": (
            f"{V1}/households/{{household_id}}",
            "get",
            {"path.household_id": "$response.body#/household_id"},
        ),
    },
    (f"{V1}/visits", "post", "201"): {
        "GetVisit": (f"{V1}/visits/{{visit_id}}", "get", {"path.visit_id": _ID}),
        "UpdateVisit": (
            f"{V1}/visits/{{visit_id}}",
            "patch",
            {"path.visit_id": _ID, "header.If-Match": _VERSION},
        ),
    },
    (f"{V1}/claims", "post", "201"): {
        "GetClaim": (f"{V1}/claims/{{claim_id}}", "get", {"path.claim_id": _ID}),
        "UpdateClaim": (
            f"{V1}/claims/{{claim_id}}",
            "patch",
            {"path.claim_id": _ID, "header.If-Match": _VERSION},
        ),
        "SubmitClaim": (f"{V1}/claims/{{claim_id}}/submit", "post", {"path.claim_id": _ID}),
    },
    (f"{V1}/claims/{{claim_id}}/submit", "post", "200"): {
        "ReviewClaim": (f"{V1}/claims/{{claim_id}}/review", "post", {"path.claim_id": _ID}),
    },
    (f"{V1}/claims/{{claim_id}}/review", "post", "200"): {
        "ApproveClaim": (f"{V1}/claims/{{claim_id}}/approve", "post", {"path.claim_id": _ID}),
    },
    (f"{V1}/claims/{{claim_id}}/approve", "post", "200"): {
        "PublishClaim": (f"{V1}/claims/{{claim_id}}/publish", "post", {"path.claim_id": _ID}),
    },
    (f"{V1}/migrants", "post", "201"): {
        "GetMigrant": (f"{V1}/migrants/{{migrant_id}}", "get", {"path.migrant_id": _ID}),
        "CloseMigrant": (f"{V1}/migrants/{{migrant_id}}/close", "post", {"path.migrant_id": _ID}),
        "ConfirmMigrant": (f"{V1}/migrants/{{migrant_id}}/confirm", "post", {"path.migrant_id": _ID}),
    },
    (f"{V1}/checkup-rounds", "post", "201"): {
        "GetRound": (f"{V1}/checkup-rounds/{{round_id}}", "get", {"path.round_id": _ID}),
        "RefreshRound": (f"{V1}/checkup-rounds/{{round_id}}/refresh", "post", {"path.round_id": _ID}),
        "RoundAppointments": (f"{V1}/checkup-appointments", "get", {"query.round_id": _ID}),
    },
    (f"{V1}/users", "post", "201"): {
        "UpdateUser": (
            f"{V1}/users/{{user_id}}",
            "patch",
            {"path.user_id": _ID, "header.If-Match": _VERSION},
        ),
    },
    (f"{V1}/partner/notifications", "post", "202"): {
        "GetNotificationStatus": (
            f"{V1}/partner/notifications/{{notification_id}}",
            "get",
            {"path.notification_id": _ID},
        ),
    },
}


def _operation_ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def add_links(spec: dict[str, Any]) -> None:
    paths = spec.get("paths", {})
    for (path, method, status), links in LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        response["links"] = {
            name: {"operationRef": _operation_ref(target, verb), "parameters": params}
            for name, (target, verb, params) in links.items()
            if verb in paths.get(target, {})
        }

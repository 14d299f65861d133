"""Schemathesis hooks for ``scripts/fuzz.py``: real values where a generator has none, and the
line between "the schema cannot say this" and a real finding.

Loaded by schemathesis through ``SCHEMATHESIS_HOOKS=fuzz_hooks``; reads the pool that fuzz.py
wrote (``JIAHE_FUZZ_POOL``: real ids, versions and cursors of the role being fuzzed). Ids and
area codes come in through schemathesis' dictionaries (bound in the generated config, so they
never turn a negative case positive); this module adds what depends on the case itself:

- ``If-Match``: the current version of the record a PATCH names (tracked from every ``ETag``
  the server sends), so updates get past the version check and reach the rules behind it;
- ``cursor``: a cursor the same list gave (captured from every ``next_cursor``), or, for one
  case in four, another list's — which must be 422 ``invalid_cursor``.

Choices derive from the generated case (a hash), never from a random source of their own, so
``--seed`` replays a run exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

import schemathesis
from schemathesis.core.parameters import ParameterLocation

POOL: dict[str, Any] = json.loads(open(os.environ["JIAHE_FUZZ_POOL"]).read())  # noqa: SIM115
VERSIONS: dict[str, int] = dict(POOL.get("versions", {}))
CURSORS: dict[str, list[str]] = {k: list(v) for k, v in POOL.get("cursors", {}).items()}

UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

# Answers to schema-valid requests that no OpenAPI document can rule out: each rests on stored
# state (a version, a rule in force, who submitted a claim) or on an opaque token, not on the
# shape of the request. ``validation_failed`` is NOT here: a schema-valid request refused for
# its shape means the document is looser than the server, which is a finding.
STATEFUL_CODES = {
    "invalid_cursor",  # a well-formed cursor the server did not sign for this list
    "version_conflict",  # If-Match of a version since changed
    "id_number_invalid",  # checksum and birth date of an ID number
    "id_number_mismatch",
    "not_eligible",
    "no_rule_version",
    "invalid_transition",
    "consent_required",
    "idempotency_key_reused",
    "out_of_scope",
    "forbidden",
    "round_overlaps",
    "separation_of_duties",
    "person_deceased",
    "invalid_credentials",
    "invalid_period",  # a period over ten years
    "invalid_range",  # age_min above age_max (no document can relate two parameters)
    "item_not_in_round",
    "area_level",
    "area_exists",
    "role_area_mismatch",
    "parent_missing",
    "payee_mismatch",
    "different_id_numbers",
    "invalid_base_version",
    "self_change",
    "person_merged",
    "already_member",
    "already_deceased",
    "notice_period_running",
    "not_updatable",
    "record_checkup_instead",
    "merge_conflict",
    "unsupported_entity",
}


def _choose(options: list[Any], *key: Any) -> Any:
    digest = hashlib.sha256(repr(key).encode()).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


def _positive(case: Any, location: ParameterLocation) -> bool:
    meta = case.meta
    return meta is None or not meta.is_negative_at(location)


def _path_id(case: Any) -> str | None:
    for value in (case.path_parameters or {}).values():
        if isinstance(value, str) and UUID.fullmatch(value):
            return value.lower()
    return None


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:  # noqa: ARG001
    if case.method.upper() == "PATCH" and _positive(case, ParameterLocation.HEADER):
        ident = _path_id(case)
        if ident in VERSIONS and "If-Match" in (case.headers or {}):
            case.headers["If-Match"] = f'"{VERSIONS[ident]}"'
    query = case.query or {}
    if "cursor" in query and _positive(case, ParameterLocation.QUERY):
        own = CURSORS.get(case.path, [])
        others = [c for path, cs in CURSORS.items() if path != case.path for c in cs]
        if own and _choose([0, 1, 2, 3], case.path, query.get("cursor")) != 0:
            query["cursor"] = _choose(own, case.path, query.get("cursor"), "own")
        elif others:
            query["cursor"] = _choose(others, case.path, query.get("cursor"), "other")
    return case


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:  # noqa: ARG001
    """Keep versions and cursors current from what the server answers."""
    etag = response.headers.get("etag") or response.headers.get("ETag")
    if isinstance(etag, list):
        etag = etag[0] if etag else None
    if etag and etag.strip('"').isdigit():
        ident = _path_id(case)
        if ident is None and response.status_code in (200, 201):
            try:
                ident = str(response.json().get("id", "")).lower() or None
            except Exception:  # noqa: BLE001 (not JSON: nothing to learn)
                ident = None
        if ident:
            VERSIONS[ident] = int(etag.strip('"'))
    if response.status_code == 200 and case.method.upper() == "GET":
        try:
            body = response.json()
        except Exception:  # noqa: BLE001
            return
        if isinstance(body, dict) and isinstance(body.get("next_cursor"), str):
            seen = CURSORS.setdefault(case.path, [])
            if len(seen) < 20:
                seen.append(body["next_cursor"])


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:  # noqa: ARG001
    """Keep every failure except a schema-valid request refused for stored state (above)."""
    if type(failure).__name__ != "RejectedPositiveData":
        return True
    try:
        code = response.json().get("code")
    except Exception:  # noqa: BLE001
        return True
    if code not in STATEFUL_CODES:
        return True
    if os.environ.get("JIAHE_FUZZ_FILTERED"):
        with open(os.environ["JIAHE_FUZZ_FILTERED"], "a") as out:
            out.write(f"{case.method} {case.path} -> {response.status_code} {code}\n")
    return False

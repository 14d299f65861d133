"""Cross-cutting platform guarantees: every route needs a token, problem+json everywhere,
models and migrations agree, operations endpoints, configuration refusals."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import APIRouter
from httpx import ASGITransport, AsyncClient

from app.core.config import ConfigError, Settings, complete_secrets
from app.core.db import metadata

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/refresh"),
}


def _check_problem(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status
    assert isinstance(body["code"], str)
    assert re.fullmatch(r"[a-z_]+", body["code"])
    assert body["type"].endswith(body["code"])
    assert body["title"]
    assert body["detail"]
    if code:
        assert body["code"] == code
    return body


async def test_every_route_requires_a_token(app, anon):
    """Walks the OpenAPI document: a new endpoint cannot forget authentication."""
    spec = app.openapi()
    checked = 0
    for path, methods in spec["paths"].items():
        for method in methods:
            if (method.upper(), path) in PUBLIC:
                continue
            url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
            r = await anon.request(method.upper(), url, json={})
            _check_problem(r, 401)
            checked += 1
    assert checked >= 8


async def test_public_routes_are_exactly_the_documented_ones(app):
    spec = app.openapi()
    routes = {(m.upper(), p) for p, ms in spec["paths"].items() for m in ms}
    assert PUBLIC <= routes


async def test_problem_json_for_404_405_422(client_as):
    c = await client_as("admin", "430122000000")
    _check_problem(await c.get("/api/v1/no-such-thing"), 404, "not_found")
    _check_problem(await c.delete("/api/v1/me"), 405, "method_not_allowed")
    body = _check_problem(await c.post("/api/v1/users", json={"username": "x"}), 422, "validation_failed")
    fields = {e["field"] for e in body["errors"]}
    assert {"password", "role", "area_code", "display_name"} <= fields
    _check_problem(
        await c.post("/api/v1/users", content=b"{not json", headers={"content-type": "application/json"}), 422
    )


async def test_problem_json_for_403(client_as):
    c = await client_as("village", "430122100201")
    _check_problem(await c.get("/api/v1/users"), 403, "forbidden")


async def test_500_hides_the_error_and_gives_the_request_id(settings, engine, caplog):
    from app.main import create_app

    app = create_app(settings, engine)
    boom = APIRouter()

    @boom.get("/boom")
    async def _boom() -> None:
        raise RuntimeError("secret internals: SELECT * FROM person")

    app.include_router(boom)
    async with AsyncClient(
        transport=ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    ) as c:
        r = await c.get("/boom", headers={"X-Request-ID": "req-500-test"})
    body = _check_problem(r, 500, "internal_error")
    assert "SELECT" not in r.text
    assert "secret" not in r.text
    assert "Traceback" not in r.text
    assert body["request_id"] == "req-500-test"
    assert r.headers["x-request-id"] == "req-500-test"
    assert any("req-500-test" == getattr(rec, "request_id", None) or rec.exc_info for rec in caplog.records)


async def test_request_id_is_honoured_or_made(anon):
    r = await anon.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await anon.get("/healthz", headers={"X-Request-ID": "bad id with spaces\n"})
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


async def test_health_ready_and_metrics(anon):
    assert (await anon.get("/healthz")).json() == {"status": "ok"}
    r = await anon.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"
    assert r.json()["schema_revision"]
    await anon.get("/api/v1/me")
    m = await anon.get("/metrics")
    assert m.status_code == 200
    assert 'jiahe_http_requests_total{method="GET",route="/api/v1/me",status="401"}' in m.text
    assert "jiahe_http_request_duration_seconds_bucket" in m.text


async def test_models_and_migrations_agree(engine):
    """Autogenerate against the migrated database finds nothing to do."""

    def _diff(conn):
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(ctx, metadata)

    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []


def test_production_refuses_missing_secrets(monkeypatch):
    s = Settings(env="production", jwt_private_keys=None, field_keys=None)
    with pytest.raises(ConfigError, match="JIAHE_JWT_PRIVATE_KEYS"):
        complete_secrets(s)


def test_development_generates_and_keeps_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("JIAHE_DEV_SECRETS_FILE", str(tmp_path / "s.json"))
    blank = {
        "jwt_private_keys": None,
        "jwt_active_kid": None,
        "field_keys": None,
        "field_active_key_id": None,
        "blind_index_key": None,
    }
    a = complete_secrets(Settings(env="development", **blank))
    b = complete_secrets(Settings(env="development", **blank))
    assert a.jwt_private_keys
    assert a.jwt_private_keys == b.jwt_private_keys
    assert a.blind_index_key == b.blind_index_key
    assert oct((tmp_path / "s.json").stat().st_mode)[-3:] == "600"


def test_serve_refuses_an_outdated_schema(tmp_path):
    env = dict(os.environ, JIAHE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    r = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", "8999"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 3
    assert "schema is not current" in r.stderr

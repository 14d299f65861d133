"""Edge limits: body and header sizes, rate limits, cache and security headers, docs switch."""

from __future__ import annotations

from httpx import ASGITransport, AsyncClient

from app.main import create_app
from tests.households.test_api import V1, mk_household, problem


async def test_body_over_1_mib_is_413_but_sync_push_has_its_own_limit(client_as):
    c = await client_as("village", V1)
    big = (
        b'{"village_code":"430122100201","address":"' + b"x" * (1024 * 1024) + b'","household_type":"rural"}'
    )
    problem(
        await c.post("/api/v1/households", content=big, headers={"content-type": "application/json"}),
        413,
        "payload_too_large",
    )

    # Streaming without Content-Length is cut off too.
    async def chunks():
        for _ in range(20):
            yield b"x" * 65536

    r = await c.post("/api/v1/households", content=chunks(), headers={"content-type": "application/json"})
    problem(r, 413, "payload_too_large")
    push = b'{"device_id":"d","ops":[],"pad":"' + b"x" * (2 * 1024 * 1024) + b'"}'
    r = await c.post("/api/v1/sync/push", content=push, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text  # 2 MiB is within the sync push limit


async def test_headers_over_8_kib_are_431(anon):
    r = await anon.get("/healthz", headers={"X-Padding": "a" * 9000})
    problem(r, 431, "headers_too_large")


async def test_rate_limit_per_token_gives_429_with_retry_after(settings, engine, client_as):
    c = await client_as("village", V1)
    strict = create_app(settings.model_copy(update={"rate_limit_per_token_per_minute": 5}), engine)
    async with AsyncClient(
        transport=ASGITransport(app=strict), base_url="http://t", headers=dict(c.headers)
    ) as tight:
        codes = [(await tight.get("/api/v1/me")).status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
        r = await tight.get("/api/v1/me")
        problem(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1


async def test_personal_data_is_never_cached_and_security_headers(client_as):
    c = await client_as("village", V1)
    h = await mk_household(c)
    r = await c.get(f"/api/v1/households/{h['id']}")
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    err = await c.get("/api/v1/persons/not-a-uuid")
    assert err.headers["cache-control"] == "no-store"


async def test_docs_can_be_switched_off(settings, engine):
    app = create_app(settings.model_copy(update={"docs_enabled": False}), engine)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/docs")).status_code == 404
        assert (await c.get("/openapi.json")).status_code == 404
        assert (await c.get("/healthz")).status_code == 200


async def test_database_down_is_503_with_retry_after_and_health_stays_up(settings, client_as):
    from app.core.db import make_engine
    from tests.conftest import IS_PG

    c = await client_as("village", V1)  # a valid token, issued while the database was up
    url = (
        "postgresql+asyncpg://postgres@127.0.0.1:1/none"
        if IS_PG
        else "sqlite+aiosqlite:////nonexistent-dir/x.db"
    )
    down = settings.model_copy(update={"database_url": url, "db_pool_timeout": 0.5})
    engine = make_engine(down)
    app = create_app(down, engine)
    try:
        async with AsyncClient(
            transport=ASGITransport(app=app), base_url="http://t", headers=dict(c.headers)
        ) as dead:
            r = await dead.get("/api/v1/households")
            body = problem(r, 503, "database_unavailable")
            assert r.headers["retry-after"] == "5" and "request_id" in body
            assert (await dead.get("/healthz")).status_code == 200
            problem(await dead.get("/readyz"), 503, "database_unreachable")
    finally:
        await engine.dispose()

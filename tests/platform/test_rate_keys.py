"""Rate limits and the login throttle that cannot be dodged: the per-login bucket follows the
verified token's subject (not the header's text), and the client address comes from
``X-Forwarded-For`` only when the peer is a configured proxy (``JIAHE_FORWARDED_ALLOW_IPS``)."""

from __future__ import annotations

import uvicorn
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select

from app.main import create_app
from app.models.audit import AuditEvent
from tests.factories import make_user
from tests.households.test_api import V1, problem

PROXY = "10.0.0.7"


def _client(app, peer: str = "127.0.0.1", **kw) -> AsyncClient:
    return AsyncClient(transport=ASGITransport(app=app, client=(peer, 50000)), base_url="http://t", **kw)


async def _login(c: AsyncClient, username: str, password: str) -> str:
    r = await c.post(
        "/api/v1/auth/token", data={"grant_type": "password", "username": username, "password": password}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def test_bearer_spellings_and_new_logins_share_one_bucket(settings, engine, db, areas, anon):
    """``bearer``/``BEARER``/``bEaReR``, extra spaces, or a fresh login of the same user: one
    bucket, because the key is the verified token's subject."""
    user, password = await make_user(db, role="village", area_code=V1)
    other, other_password = await make_user(db, role="village", area_code=V1)
    await db.commit()
    token = await _login(anon, user.username, password)
    second_login = await _login(anon, user.username, password)
    other_token = await _login(anon, other.username, other_password)
    strict = create_app(settings.model_copy(update={"rate_limit_per_token_per_minute": 5}), engine)
    spellings = [
        f"Bearer {token}",
        f"bearer {token}",
        f"BEARER {token}",
        f"bEaReR  {token}",
        f"Bearer {token} ",
    ]
    async with _client(strict) as tight:
        codes = [(await tight.get("/api/v1/me", headers={"Authorization": a})).status_code for a in spellings]
        assert codes == [200] * 5
        r = await tight.get("/api/v1/me", headers={"Authorization": f"BeArEr {token}"})
        problem(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        # A second login of the same user is the same subject: still limited.
        problem(
            await tight.get("/api/v1/me", headers={"Authorization": f"Bearer {second_login}"}),
            429,
            "rate_limited",
        )
        # Another user is not affected.
        r = await tight.get("/api/v1/me", headers={"Authorization": f"Bearer {other_token}"})
        assert r.status_code == 200


async def test_tokens_that_do_not_verify_count_against_the_address_only(settings, engine, areas):
    """Garbage tokens get no bucket of their own (each would be a fresh one): the address limit
    holds them, and the route answers 401."""
    strict = create_app(
        settings.model_copy(
            update={"rate_limit_per_token_per_minute": 100, "rate_limit_per_address_per_minute": 3}
        ),
        engine,
    )
    async with _client(strict, peer="192.0.2.10") as c:
        codes = [
            (await c.get("/api/v1/me", headers={"Authorization": f"Bearer garbage-{i}"})).status_code
            for i in range(4)
        ]
    assert codes == [401, 401, 401, 429]


def _per_address(settings, engine, limit: int, proxies: str = ""):
    return create_app(
        settings.model_copy(
            update={
                "rate_limit_per_address_per_minute": limit,
                "forwarded_allow_ips": proxies,
                "login_block_after": 3,
                "login_slow_after": 100,
            }
        ),
        engine,
    )


async def test_forwarded_for_from_an_unconfigured_peer_gets_no_fresh_bucket(settings, engine, areas):
    """A loopback peer is not a proxy unless configured: rotating X-Forwarded-For changes
    nothing, in the app and in the server ``jiahe serve`` runs (uvicorn's own proxy handling,
    which trusts loopback, is off)."""
    from app.cli import uvicorn_options

    app = _per_address(settings, engine, 3)
    config = uvicorn.Config(app, **uvicorn_options(host="127.0.0.1", port=8000, workers=1))
    config.load()
    async with _client(config.loaded_app, peer="127.0.0.1") as c:
        codes = [
            (await c.get("/api/v1/me", headers={"X-Forwarded-For": f"203.0.113.{i}"})).status_code
            for i in range(4)
        ]
    assert codes == [401, 401, 401, 429]


async def test_forwarded_for_from_a_configured_proxy_is_the_client(settings, engine, areas, db):
    """Behind a configured proxy each client has its own bucket and throttle, and the audit log
    records the client; what a client writes at the left of the header is not believed."""
    app = _per_address(settings, engine, 3, proxies=f"{PROXY}, 10.1.0.0/16")
    async with _client(app, peer=PROXY) as c:
        for _ in range(3):
            r = await c.get("/api/v1/me", headers={"X-Forwarded-For": "203.0.113.1"})
            assert r.status_code == 401
        problem(await c.get("/api/v1/me", headers={"X-Forwarded-For": "203.0.113.1"}), 429, "rate_limited")
        # Another client behind the same proxy, and one whose own header claims the first one's
        # address to its left (the proxy appended the real one, through a second proxy hop).
        r = await c.get("/api/v1/me", headers={"X-Forwarded-For": "203.0.113.2"})
        assert r.status_code == 401
        r = await c.get("/api/v1/me", headers={"X-Forwarded-For": "203.0.113.1, 203.0.113.3, 10.1.2.3"})
        assert r.status_code == 401
        problem(
            await c.get("/api/v1/me", headers={"X-Forwarded-For": "203.0.113.9, 203.0.113.1"}),
            429,
            "rate_limited",
        )
    # An unconfigured peer that sends the same header is just itself.
    async with _client(app, peer="10.2.0.1") as direct:
        r = await direct.get("/api/v1/me", headers={"X-Forwarded-For": "203.0.113.77"})
        assert r.status_code == 401


async def test_login_throttle_uses_the_forwarded_client_only_from_a_proxy(settings, engine, db, areas):
    """Failed logins (3 refuse the address here) from one client behind the proxy do not lock
    out the others; from an unconfigured peer, rotating the header does not reset the count."""
    user, password = await make_user(db, role="village", area_code=V1)
    await db.commit()
    app = _per_address(settings, engine, 1000, proxies=PROXY)

    async def attempt(c: AsyncClient, username: str, forwarded: str, secret: str = "wrong-password-1"):
        return await c.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": username, "password": secret},
            headers={"X-Forwarded-For": forwarded},
        )

    async with _client(app, peer=PROXY) as c:
        for i in range(3):
            assert (await attempt(c, f"nobody{i}", "198.51.100.1")).status_code == 401
        problem(await attempt(c, "nobody9", "198.51.100.1"), 429, "too_many_attempts")
        r = await attempt(c, user.username, "198.51.100.2", secret=password)
        assert r.status_code == 200, r.text
    await db.rollback()
    ips = set((await db.execute(select(AuditEvent.client_ip).where(AuditEvent.action == "login"))).scalars())
    assert ips == {"198.51.100.2"}

    async with _client(app, peer="192.0.2.50") as c:
        for i in range(3):
            assert (await attempt(c, f"nobody{i}x", f"198.51.100.{10 + i}")).status_code == 401
        problem(await attempt(c, "nobodyz", "198.51.100.99"), 429, "too_many_attempts")

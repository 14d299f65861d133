"""Tokens signed with our own key but minted wrong — issued in the future, or living longer than
we ever sign — are refused (401), for access and refresh tokens alike. Forged with the test
keys of the settings, on a real login (the same sub, sid and jti), so only the times differ."""

from __future__ import annotations

import time
import uuid

import pytest
from jose import jwt
from sqlalchemy import select

from app.models.auth import RefreshToken
from tests.households.test_api import V1, problem


def forge(settings, claims: dict) -> str:
    kid, private, _public = settings.signing_keys()
    return jwt.encode(claims, private[kid], algorithm="ES256", headers={"kid": kid, "typ": "JWT"})


@pytest.fixture
async def cadre(client_as):
    return await client_as("village", V1)


def access_claims(c) -> dict:
    claims = jwt.get_unverified_claims(c.tokens["access_token"])
    return {**claims, "jti": uuid.uuid4().hex}


async def me(c, token: str):
    return await c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


async def test_a_well_minted_forgery_passes(cadre, settings):
    """The control: same claims, our lifetime, issued now — accepted (so the refusals below are
    about the times alone)."""
    ttl = settings.access_token_minutes * 60
    now = int(time.time())
    r = await me(cadre, forge(settings, {**access_claims(cadre), "iat": now, "exp": now + ttl}))
    assert r.status_code == 200, r.text
    r = await me(cadre, forge(settings, {**access_claims(cadre), "iat": now + 5, "exp": now + 5 + ttl}))
    assert r.status_code == 200, r.text  # within the leeway (clock skew between servers)


async def test_access_token_issued_in_the_future_is_401(cadre, settings):
    now = int(time.time())
    ahead = settings.jwt_leeway_seconds + 60
    token = forge(settings, {**access_claims(cadre), "iat": now + ahead, "exp": now + ahead + 300})
    problem(await me(cadre, token), 401, "invalid_token")


@pytest.mark.parametrize("extra", [1, 3600, 365 * 86400])
async def test_access_token_living_longer_than_configured_is_401(cadre, settings, extra):
    now = int(time.time())
    ttl = settings.access_token_minutes * 60
    token = forge(settings, {**access_claims(cadre), "iat": now, "exp": now + ttl + extra})
    problem(await me(cadre, token), 401, "invalid_token")


@pytest.mark.parametrize("when", ["future", "long"])
async def test_refresh_token_minted_wrong_is_401_and_rotates_nothing(cadre, settings, db, when):
    real = jwt.get_unverified_claims(cadre.tokens["refresh_token"])
    now = int(time.time())
    ttl = settings.refresh_token_days * 86400
    if when == "future":
        claims = {**real, "iat": now + 3600, "exp": now + 3600 + 60}
    else:
        claims = {**real, "iat": now, "exp": now + ttl + 86400}
    r = await cadre.post("/api/v1/auth/refresh", json={"refresh_token": forge(settings, claims)})
    problem(r, 401, "invalid_token")
    await db.rollback()
    row = (await db.execute(select(RefreshToken).where(RefreshToken.jti == real["jti"]))).scalar_one()
    assert row.rotated_at is None
    # The real one still works.
    r = await cadre.post("/api/v1/auth/refresh", json={"refresh_token": cadre.tokens["refresh_token"]})
    assert r.status_code == 200, r.text

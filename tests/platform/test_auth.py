"""Auth: grants, token validation edge cases, refresh rotation, reuse detection, throttling."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import timedelta

import pytest
from httpx import AsyncClient
from jose import jwt
from sqlalchemy import select, update

from app.core.db import utcnow
from app.models.auth import LoginSession, RefreshToken
from app.models.users import User
from tests.factories import make_client, make_user

pytestmark = pytest.mark.usefixtures("areas")

TOKEN = "/api/v1/auth/token"


async def login(c: AsyncClient, username: str, password: str):
    return await c.post(TOKEN, data={"grant_type": "password", "username": username, "password": password})


def problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == code
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def _keys(settings):
    active, private, public = settings.signing_keys()
    return active, private, public


def _claims(settings, **over):
    now = int(time.time())
    c = {
        "sub": str(uuid.uuid4()),
        "typ": "access",
        "role": "admin",
        "area": "430122000000",
        "sid": str(uuid.uuid4()),
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 600,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


async def test_login_right_gives_tokens_with_required_claims(anon, db, settings):
    user, pw = await make_user(db, role="township", area_code="430122100000")
    await db.commit()
    r = await login(anon, user.username, pw)
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert 0 < body["expires_in"] <= 900
    assert body["refresh_token"]
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "ES256"
    assert header["kid"] == "k1"
    claims = jwt.get_unverified_claims(body["access_token"])
    assert {"sub", "role", "area", "exp", "iat", "iss", "aud", "jti"} <= claims.keys()
    assert claims["sub"] == str(user.id)
    assert claims["role"] == "township"
    assert claims["area"] == "430122100000"
    me = await anon.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json() == {
        "id": str(user.id),
        "username": user.username,
        "display_name": user.display_name,
        "role": "township",
        "area_code": "430122100000",
    }


async def test_wrong_password_and_unknown_user_answer_the_same(anon, db):
    user, _ = await make_user(db)
    await db.commit()
    a = problem(await login(anon, user.username, "wrong-password"), 401, "invalid_credentials")
    b = problem(await login(anon, "nobody-here", "wrong-password"), 401, "invalid_credentials")
    a.pop("request_id"), b.pop("request_id")
    assert a == b


async def test_disabled_user_cannot_log_in(anon, db):
    user, pw = await make_user(db, disabled=True)
    await db.commit()
    problem(await login(anon, user.username, pw), 401, "invalid_credentials")


async def test_unknown_grant_is_rejected(anon):
    r = await anon.post(TOKEN, data={"grant_type": "implicit"})
    problem(r, 422, "unsupported_grant_type")


async def test_client_credentials_grant(anon, db):
    client, secret = await make_client(db)
    await db.commit()
    r = await anon.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": secret,
        },
    )
    assert r.status_code == 200
    assert "refresh_token" not in r.json()
    claims = jwt.get_unverified_claims(r.json()["access_token"])
    assert claims["role"] == "partner"
    bad = await anon.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": "x",
        },
    )
    problem(bad, 401, "invalid_credentials")


async def test_refresh_rotates_and_old_token_dies_after_grace(anon, db):
    user, pw = await make_user(db)
    await db.commit()
    first = (await login(anon, user.username, pw)).json()
    r = await anon.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    # A phone that lost the answer retries within 60 s: the same new pair.
    again = await anon.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert again.status_code == 200
    assert again.json() == second
    # The new refresh token works once.
    third = await anon.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200
    # Later than the grace period, the old token again is theft: the whole login is revoked.
    await db.execute(
        update(RefreshToken)
        .where(RefreshToken.rotated_at.is_not(None))
        .values(rotated_at=utcnow() - timedelta(seconds=120))
    )
    await db.commit()
    r = await anon.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    problem(r, 401, "invalid_token")
    login_row = (
        await db.execute(select(LoginSession).where(LoginSession.principal_id == user.id))
    ).scalar_one()
    await db.refresh(login_row)
    assert login_row.revoked_at is not None
    assert login_row.revoked_reason == "refresh_reuse"
    access = third.json()["access_token"]
    problem(
        await anon.get("/api/v1/me", headers={"Authorization": f"Bearer {access}"}),
        401,
        "invalid_token",
    )
    r = await anon.post("/api/v1/auth/refresh", json={"refresh_token": third.json()["refresh_token"]})
    problem(r, 401, "invalid_token")


async def test_refresh_and_access_tokens_cannot_be_swapped(anon, db):
    user, pw = await make_user(db)
    await db.commit()
    t = (await login(anon, user.username, pw)).json()
    r = await anon.get("/api/v1/me", headers={"Authorization": f"Bearer {t['refresh_token']}"})
    problem(r, 401, "invalid_token")
    r = await anon.post("/api/v1/auth/refresh", json={"refresh_token": t["access_token"]})
    problem(r, 401, "invalid_token")


async def test_logout_ends_the_login(anon, db):
    user, pw = await make_user(db)
    await db.commit()
    t = (await login(anon, user.username, pw)).json()
    h = {"Authorization": f"Bearer {t['access_token']}"}
    r = await anon.post("/api/v1/auth/logout", json={"refresh_token": t["refresh_token"]}, headers=h)
    assert r.status_code == 204
    problem(await anon.get("/api/v1/me", headers=h), 401, "invalid_token")
    r = await anon.post("/api/v1/auth/refresh", json={"refresh_token": t["refresh_token"]})
    problem(r, 401, "invalid_token")


async def test_disabled_user_mid_session_is_refused_at_once(client_as, db):
    c = await client_as("village", "430122100201")
    assert (await c.get("/api/v1/me")).status_code == 200
    await db.execute(update(User).where(User.id == c.user.id).values(disabled=True))
    await db.commit()
    problem(await c.get("/api/v1/me"), 401, "invalid_token")


async def test_admin_disabling_a_user_ends_their_session(client_as):
    admin = await client_as("admin", "430122000000")
    cadre = await client_as("village", "430122100201")
    ver = 1
    r = await admin.patch(
        f"/api/v1/users/{cadre.user.id}", json={"disabled": True}, headers={"If-Match": '"1"'}
    )
    assert r.status_code == 200
    assert r.json()["disabled"] is True
    assert r.json()["version"] == ver + 1
    problem(await cadre.get("/api/v1/me"), 401, "invalid_token")


@pytest.mark.parametrize(
    "variant",
    [
        "expired",
        "other_key",
        "alg_none",
        "hs256_with_public_key",
        "missing_aud",
        "wrong_iss",
        "wrong_aud",
        "garbage_kid",
        "huge_kid",
        "unknown_kid",
        "no_kid",
        "missing_jti",
        "garbage",
        "huge_token",
    ],
)
async def test_forged_or_broken_tokens_are_401(anon, db, settings, variant):
    user, pw = await make_user(db)
    await db.commit()
    good = (await login(anon, user.username, pw)).json()["access_token"]
    real = jwt.get_unverified_claims(good)
    active, private, public = _keys(settings)
    base = dict(real)

    def es(claims, kid="k1", key=None):
        return jwt.encode(claims, key or private[active], algorithm="ES256", headers={"kid": kid})

    if variant == "expired":
        tok = es({**base, "iat": int(time.time()) - 3600, "exp": int(time.time()) - 1800})
    elif variant == "other_key":
        from app.core.config import new_ec_private_pem

        tok = es(base, key=new_ec_private_pem())
    elif variant == "alg_none":
        head = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": "k1"}).encode()).rstrip(b"=")
        body = base64.urlsafe_b64encode(json.dumps(base).encode()).rstrip(b"=")
        tok = (head + b"." + body + b".").decode()
    elif variant == "hs256_with_public_key":
        import hashlib
        import hmac

        head = base64.urlsafe_b64encode(
            json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode()
        ).rstrip(b"=")
        body = base64.urlsafe_b64encode(json.dumps(base).encode()).rstrip(b"=")
        sig = hmac.new(public["k1"].encode(), head + b"." + body, hashlib.sha256).digest()
        tok = (head + b"." + body + b"." + base64.urlsafe_b64encode(sig).rstrip(b"=")).decode()
    elif variant == "missing_aud":
        tok = es({k: v for k, v in base.items() if k != "aud"})
    elif variant == "wrong_iss":
        tok = es({**base, "iss": "someone-else"})
    elif variant == "wrong_aud":
        tok = es({**base, "aud": "other-api"})
    elif variant == "garbage_kid":
        tok = es(base, kid="../../etc/passwd\x00")
    elif variant == "huge_kid":
        tok = es(base, kid="k" * 5000)
    elif variant == "unknown_kid":
        tok = es(base, kid="k9")
    elif variant == "no_kid":
        tok = jwt.encode(base, private[active], algorithm="ES256")
    elif variant == "missing_jti":
        tok = es({k: v for k, v in base.items() if k != "jti"})
    elif variant == "garbage":
        tok = "not.a.token"
    else:
        tok = "a" * 6000  # over our token limit, under the 8 KiB header limit
    r = await anon.get("/api/v1/me", headers={"Authorization": f"Bearer {tok}"})
    problem(r, 401, "invalid_token" if variant != "huge_token" else "invalid_token")


async def test_token_of_a_retired_key_still_verifies(anon, db, settings):
    """Keys rotate by kid: a token signed with k0 (not the active key) stays valid."""
    user, pw = await make_user(db)
    await db.commit()
    good = (await login(anon, user.username, pw)).json()["access_token"]
    claims = jwt.get_unverified_claims(good)
    _, private, _ = _keys(settings)
    tok = jwt.encode(claims, private["k0"], algorithm="ES256", headers={"kid": "k0"})
    r = await anon.get("/api/v1/me", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200
    assert r.json()["id"] == str(user.id)


async def test_missing_or_malformed_authorization_header(anon):
    problem(await anon.get("/api/v1/me"), 401, "unauthorized")
    problem(await anon.get("/api/v1/me", headers={"Authorization": "Basic abc"}), 401, "unauthorized")


async def test_failed_logins_are_slowed_then_refused(anon, db, settings):
    user, pw = await make_user(db)
    await db.commit()
    for _ in range(settings.login_block_after):
        problem(await login(anon, user.username, "wrong"), 401, "invalid_credentials")
    start = time.perf_counter()
    r = await login(anon, user.username, pw)
    body = problem(r, 429, "too_many_attempts")
    assert r.headers["retry-after"]
    assert body["status"] == 429
    assert time.perf_counter() - start < 5
    # Per client address too: another username from the same address is refused.
    other, opw = await make_user(db)
    await db.commit()
    problem(await login(anon, other.username, opw), 429, "too_many_attempts")


async def test_slowdown_applies_before_refusal(anon, db, settings):
    user, _ = await make_user(db)
    await db.commit()
    for _ in range(settings.login_slow_after):
        await login(anon, user.username, "wrong")
    start = time.perf_counter()
    problem(await login(anon, user.username, "wrong"), 401, "invalid_credentials")
    assert time.perf_counter() - start >= settings.login_slow_seconds


def test_a_remembered_token_is_refused_once_it_expires(settings, monkeypatch):
    """Verified tokens are remembered per process; expiry is still checked on every use, and a
    remembered token is not accepted as another type."""
    from app.core import security
    from app.core.errors import Unauthorized

    tokens = security.TokenService(settings.model_copy(update={"jwt_leeway_seconds": 0}))
    token, _jti, _exp = tokens.sign(
        sub=str(uuid.uuid4()),
        typ="access",
        role="village",
        area="430122100201",
        sid=str(uuid.uuid4()),
        ttl=timedelta(seconds=60),
    )
    first = tokens.decode(token, typ="access")
    assert tokens.decode(token, typ="access") is first  # remembered: no second signature check
    with pytest.raises(Unauthorized):
        tokens.decode(token, typ="refresh")
    later = time.time() + 61
    monkeypatch.setattr(security.time, "time", lambda: later)
    with pytest.raises(Unauthorized):
        tokens.decode(token, typ="access")

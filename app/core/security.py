"""Password hashing, JWT signing/verification, field encryption and blind indexes.

JWT: python-jose's defaults are unsafe (no claim is required; ``algorithms=None`` trusts the
header; a token without ``aud`` passes), so every token is decoded by ``decode_token`` only:
ES256 is the one allowed algorithm, ``kid`` must name a key of our local key map (anything else,
garbage or huge, is a 401, never a 500), ``exp iat iss aud sub jti`` are required, and the ``typ``
claim separates access from refresh tokens. ``iat`` may not lie in the future (beyond the leeway)
and ``exp - iat`` may not exceed the lifetime we sign that type of token with
(``JIAHE_ACCESS_TOKEN_MINUTES`` / ``JIAHE_REFRESH_TOKEN_DAYS``): lowering either ends the longer
tokens signed before.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from jose import jwt
from jose.exceptions import JOSEError

from app.core import clock
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import Unauthorized

ALGORITHM = "ES256"
MAX_TOKEN_LENGTH = 4096
VERIFIED_CACHE_SIZE = 4096  # verified tokens remembered per process (each ~1 KB)
MAX_KID_LENGTH = 64

_hasher = PasswordHasher()
# A hash to verify against when the user does not exist, so both answers take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, hashed: str | None) -> bool:
    try:
        return _hasher.verify(hashed or _DUMMY_HASH, password) and hashed is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# Argon2 is built to be slow (≈0.1–0.5 s, 64 MiB): run it off the event loop so a login does not
# stall every other request of the worker, on at most two threads so a burst of logins cannot
# take the machine's memory or starve requests of CPU (the rest wait their turn).
_HASH_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


async def verify_password_async(password: str, hashed: str | None) -> bool:
    return await asyncio.get_running_loop().run_in_executor(_HASH_POOL, verify_password, password, hashed)


async def hash_password_async(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_HASH_POOL, hash_password, password)


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


@dataclass(frozen=True)
class TokenClaims:
    sub: str
    typ: str
    role: str
    area: str
    sid: str
    jti: str
    exp: datetime
    iat: datetime


class TokenService:
    """Signs with the active key, verifies with any key of the map (so keys rotate)."""

    def __init__(self, settings: Settings) -> None:
        self.active_kid, self.private, self.public = settings.signing_keys()
        self._verified: dict[str, TokenClaims] = {}
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.leeway = settings.jwt_leeway_seconds
        self.access_ttl = timedelta(minutes=settings.access_token_minutes)
        self.refresh_ttl = timedelta(days=settings.refresh_token_days)

    def sign(
        self, *, sub: str, typ: str, role: str, area: str, sid: str, ttl: timedelta
    ) -> tuple[str, str, datetime]:
        now = clock.wall_now()  # checked against the host's clock by the JWT library: never frozen
        jti = uuid.uuid4().hex
        exp = now + ttl
        claims: dict[str, Any] = {
            "sub": sub,
            "typ": typ,
            "role": role,
            "area": area,
            "sid": sid,
            "jti": jti,
            "iat": int(now.timestamp()),
            "exp": int(exp.timestamp()),
            "iss": self.issuer,
            "aud": self.audience,
        }
        token = jwt.encode(
            claims,
            self.private[self.active_kid],
            algorithm=ALGORITHM,
            headers={"kid": self.active_kid, "typ": "JWT"},
        )
        return token, jti, exp

    def decode(self, token: str, *, typ: str) -> TokenClaims:
        """The verified claims of a token of type ``typ``.

        A token that verified once is remembered (keyed by its exact text) until it expires:
        the signature check is the costliest step of a request's authentication, and a phone or
        partner sends the same access token hundreds of times. Expiry is checked on every use."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached.typ == typ and cached.exp.timestamp() + self.leeway > time.time():
                return cached
            raise Unauthorized("Invalid or expired token", code="invalid_token")
        claims = self._verify(token, typ=typ)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # oldest first (insertion order)
        self._verified[token] = claims
        return claims

    def _verify(self, token: str, *, typ: str) -> TokenClaims:
        bad = Unauthorized("Invalid or expired token", code="invalid_token")
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise bad
        try:
            header = jwt.get_unverified_header(token)
        except (JOSEError, ValueError, TypeError, UnicodeDecodeError):
            raise bad from None
        if not isinstance(header, dict) or header.get("alg") != ALGORITHM:
            raise bad
        kid = header.get("kid")
        if not isinstance(kid, str) or len(kid) > MAX_KID_LENGTH or kid not in self.public:
            raise bad
        try:
            claims = jwt.decode(
                token,
                self.public[kid],
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "verify_signature": True,
                    "verify_aud": True,
                    "verify_iat": True,
                    "verify_exp": True,
                    "verify_iss": True,
                    "verify_sub": True,
                    "verify_jti": True,
                    "require_aud": True,
                    "require_iat": True,
                    "require_exp": True,
                    "require_iss": True,
                    "require_sub": True,
                    "require_jti": True,
                    "leeway": self.leeway,
                },
            )
        except (JOSEError, ValueError, TypeError, KeyError):
            raise bad from None
        if claims.get("typ") != typ:
            raise bad
        # python-jose checks only that ``iat`` is a number: a token issued "in the future" or
        # living longer than we ever sign (a forged or mis-minted one) is refused here.
        try:
            iat, exp = int(claims["iat"]), int(claims["exp"])
        except (KeyError, ValueError, TypeError, OverflowError):
            raise bad from None
        max_lifetime = self.access_ttl if typ == "access" else self.refresh_ttl
        if iat > time.time() + self.leeway or exp - iat > max_lifetime.total_seconds():
            raise bad
        try:
            return TokenClaims(
                sub=str(claims["sub"]),
                typ=str(claims["typ"]),
                role=str(claims["role"]),
                area=str(claims["area"]),
                sid=str(claims["sid"]),
                jti=str(claims["jti"]),
                exp=datetime.fromtimestamp(int(claims["exp"]), tz=utcnow().tzinfo),
                iat=datetime.fromtimestamp(int(claims["iat"]), tz=utcnow().tzinfo),
            )
        except (KeyError, ValueError, TypeError):
            raise bad from None


class FieldCipher:
    """AES-GCM encryption of sensitive fields; the key id travels with the cipher text.

    Stored form: ``<key_id>:<base64(nonce | ciphertext+tag)>``. Decryption picks the key by id,
    so new writes use the active key while old rows stay readable until re-encrypted.
    """

    def __init__(self, settings: Settings) -> None:
        self.active_id, self.keys = settings.field_key_map()
        self.blind_key = settings.blind_key()
        self._aead = {key_id: AESGCM(key) for key_id, key in self.keys.items()}

    def encrypt(self, plain: str, *, context: bytes = b"") -> str:
        nonce = os.urandom(12)
        ct = self._aead[self.active_id].encrypt(nonce, plain.encode(), context)
        return f"{self.active_id}:{base64.b64encode(nonce + ct).decode()}"

    def decrypt(self, stored: str, *, context: bytes = b"") -> str:
        key_id, _, blob = stored.partition(":")
        raw = base64.b64decode(blob)
        return self._aead[key_id].decrypt(raw[:12], raw[12:], context).decode()

    def blind_index(self, value: str, *, purpose: str = "id_number") -> str:
        """Keyed hash for exact lookup and uniqueness without storing the value."""
        msg = purpose.encode() + b"\x00" + value.encode()
        return hmac.new(self.blind_key, msg, hashlib.sha256).hexdigest()

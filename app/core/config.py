"""Settings from environment variables (prefix ``JIAHE_``).

In development, missing secrets (JWT signing key, field-encryption keys) are generated once and
kept in ``.jiahe-dev-secrets.json`` in the working folder so that a restart does not log everybody
out; a warning says so. With ``JIAHE_ENV=production`` the service refuses to start without them.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("jiahe.config")

DEV_SECRETS_FILE = ".jiahe-dev-secrets.json"


class ConfigError(RuntimeError):
    """The configuration cannot run (raised at start-up, never during a request)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JIAHE_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./jiahe.db"
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    db_echo: bool = False

    # JSON object {kid: PEM private key (EC P-256)}; the active kid signs, every kid verifies.
    jwt_private_keys: str | None = None
    jwt_active_kid: str | None = None
    # JSON object {kid: PEM public key}: retired keys that still verify until their tokens expire.
    jwt_public_keys: str | None = None
    jwt_issuer: str = "jiahe"
    jwt_audience: str = "jiahe-api"
    jwt_leeway_seconds: int = Field(default=10, ge=0, le=120)
    access_token_minutes: int = Field(default=15, ge=1, le=15)
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    refresh_reuse_grace_seconds: int = Field(default=60, ge=0, le=600)

    # Field encryption for sensitive values: JSON object {key_id: base64 32-byte key}
    field_keys: str | None = None
    field_active_key_id: str | None = None
    # Key for the keyed hash (blind index) of ID numbers, base64 32 bytes. Never rotated casually:
    # every stored index depends on it.
    blind_index_key: str | None = None

    cors_origins: list[str] = Field(default_factory=list)
    log_level: str = "INFO"
    metrics_public: bool = True
    # Largest accepted request body; sync push has its own (500 ops with notes fit in 8 MiB).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    sync_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # An import upload (POST /api/v1/imports): a 100,000-row register workbook is about 6 MiB.
    import_max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_header_bytes: int = Field(default=8 * 1024, ge=1024)
    # Reverse proxies whose X-Forwarded-For names the client (comma-separated IPs or CIDRs).
    # Empty (the default): the peer address is the client, whatever headers it sends.
    forwarded_allow_ips: str = ""
    # Requests per minute per login (the verified token's subject) and per client address
    # (0 turns both off).
    rate_limit_per_token_per_minute: int = Field(default=6000, ge=0)
    rate_limit_per_address_per_minute: int = Field(default=12000, ge=1)
    # /docs and /openapi.json (switch off in production if the API should not describe itself).
    docs_enabled: bool = True
    # Seconds a request waits for a database connection before a 503 with Retry-After.
    db_pool_timeout: float = Field(default=5.0, gt=0, le=60)

    # Failed-login throttling (per username and per client address, in a moving window)
    login_window_seconds: int = 900
    login_slow_after: int = 5
    login_block_after: int = 10
    login_slow_seconds: float = 1.0

    # The workbench (app/web/): a browser is signed out after this many idle minutes, and after
    # this many hours whatever it does.
    web_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    web_session_hours: int = Field(default=12, ge=1, le=24 * 7)

    # Days a benefit decision is publicly posted (公示) before it may be paid.
    claim_notice_days: int = Field(default=7, ge=1, le=90)

    # Production refuses the embedded SQLite database unless this is set (one process only).
    allow_sqlite: bool = False

    # The zone of business dates (every "today", period, day and month bucket): app/core/clock.py.
    timezone: str = "Asia/Shanghai"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip().startswith("["):
            return [o.strip() for o in v.split(",") if o.strip()]
        return v

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not a time zone (e.g. Asia/Shanghai)") from None
        return v

    @model_validator(mode="after")
    def _zone_fits_database(self) -> Settings:
        if self.is_sqlite:
            from app.core.clock import check_zone_for_sqlite

            check_zone_for_sqlite(self.timezone)
        return self

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _check_proxies(cls, v: str) -> str:
        for entry in (e.strip() for e in v.split(",")):
            if entry:
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(f"{entry!r} is not an IP address or CIDR") from None
        return v

    def trusted_proxies(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The networks of ``JIAHE_FORWARDED_ALLOW_IPS`` (empty: trust no forwarded header)."""
        entries = (e.strip() for e in self.forwarded_allow_ips.split(","))
        return tuple(ipaddress.ip_network(e, strict=False) for e in entries if e)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def signing_keys(self) -> tuple[str, dict[str, str], dict[str, str]]:
        """(active kid, {kid: private PEM}, {kid: public PEM}) for every verifying key."""
        assert self.jwt_private_keys is not None
        assert self.jwt_active_kid is not None
        private: dict[str, str] = json.loads(self.jwt_private_keys)
        public: dict[str, str] = {}
        for kid, pem in private.items():
            key = serialization.load_pem_private_key(pem.encode(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ConfigError(f"JWT key {kid!r} is not an EC private key")
            public[kid] = (
                key.public_key()
                .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                .decode()
            )
        if self.jwt_public_keys:
            for kid, pem in json.loads(self.jwt_public_keys).items():
                public.setdefault(kid, pem)
        if self.jwt_active_kid not in private:
            raise ConfigError("JIAHE_JWT_ACTIVE_KID names no key in JIAHE_JWT_PRIVATE_KEYS")
        return self.jwt_active_kid, private, public

    def field_key_map(self) -> tuple[str, dict[str, bytes]]:
        assert self.field_keys is not None
        assert self.field_active_key_id is not None
        keys = {k: base64.b64decode(v) for k, v in json.loads(self.field_keys).items()}
        if any(len(k) != 32 for k in keys.values()):
            raise ConfigError("JIAHE_FIELD_KEYS must hold base64 32-byte keys")
        if self.field_active_key_id not in keys:
            raise ConfigError("JIAHE_FIELD_ACTIVE_KEY_ID names no key in JIAHE_FIELD_KEYS")
        return self.field_active_key_id, keys

    def blind_key(self) -> bytes:
        assert self.blind_index_key is not None
        return base64.b64decode(self.blind_index_key)


def new_ec_private_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _generate_dev_secrets() -> dict[str, str]:
    return {
        "jwt_private_keys": json.dumps({"dev-1": new_ec_private_pem()}),
        "jwt_active_kid": "dev-1",
        "field_keys": json.dumps({"f1": base64.b64encode(secrets.token_bytes(32)).decode()}),
        "field_active_key_id": "f1",
        "blind_index_key": base64.b64encode(secrets.token_bytes(32)).decode(),
    }


SECRET_FIELDS = (
    "jwt_private_keys",
    "jwt_active_kid",
    "field_keys",
    "field_active_key_id",
    "blind_index_key",
)


def complete_secrets(settings: Settings) -> Settings:
    """Fill missing secrets in development; refuse in production (and refuse there the
    embedded SQLite database unless ``JIAHE_ALLOW_SQLITE=1``: one file cannot serve replicas,
    and a production start that silently fell back to the default URL would lose its data)."""
    missing = [f for f in SECRET_FIELDS if not getattr(settings, f)]
    if settings.env == "production":
        if missing:
            names = ", ".join("JIAHE_" + f.upper() for f in missing)
            raise ConfigError(f"production refuses to start without: {names}")
        if settings.is_sqlite and not settings.allow_sqlite:
            raise ConfigError(
                "production refuses the SQLite database "
                f"({settings.database_url.split('///')[-1] or 'in memory'}): set JIAHE_DATABASE_URL to "
                "PostgreSQL, or JIAHE_ALLOW_SQLITE=1 for a single-process installation"
            )
        return settings
    if not missing:
        return settings
    path = Path(os.environ.get("JIAHE_DEV_SECRETS_FILE", DEV_SECRETS_FILE))
    stored = _dev_secrets(path, missing)
    return settings.model_copy(update={f: stored[f] for f in missing})


def _dev_secrets(path: Path, missing: list[str]) -> dict[str, str]:
    """The development secrets file's secrets, created once whatever starts at the same moment.

    Two processes starting together (two replicas, a server and a CLI) must end with the same
    keys, or one signs tokens the other refuses and stores ID numbers under another blind-index
    key. The file is written whole into a temporary name and linked into place (``os.link``
    fails if the name exists): exactly one writer wins, every process then reads the winner's
    file, and no reader ever sees a half-written one."""
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if all(stored.get(f) for f in missing):
        return stored
    fresh = {**_generate_dev_secrets(), **{k: v for k, v in stored.items() if v}}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(fresh, out)
        os.chmod(tmp, 0o600)
        if stored:
            os.replace(tmp, path)  # an older file lacking fields: completed, its keys kept
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process created it first: use its keys
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    result: dict[str, str] = json.loads(path.read_text())
    log.warning("generated development secrets", extra={"file": str(path), "fields": missing})
    return result


@lru_cache
def get_settings() -> Settings:
    return complete_secrets(Settings())

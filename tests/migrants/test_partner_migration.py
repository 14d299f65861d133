"""Revision b14a00000002 re-encrypts what partner intake stored in clear before it (the body as
received, ``details``), re-keys the digests and hashes the idempotency keys; its downgrade
gives the bodies back. On a database of its own (SQLite file, or a PostgreSQL database next to
the test database)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.migrations import alembic_config
from app.core.security import FieldCipher
from app.services import partner as partner_svc
from tests.conftest import DATABASE_URL, IS_PG, _recreate_pg_database, plaintext_at_rest
from tests.factories import id_number

BEFORE, AFTER = "b14a00000001", "b14a00000002"

area = sa.table(
    "area",
    sa.column("code", sa.String()),
    sa.column("name", sa.String()),
    sa.column("level", sa.String()),
    sa.column("county_code", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
machine_client = sa.table(
    "machine_client",
    *(
        sa.column(c, t)
        for c, t in (("id", sa.Uuid()), ("client_id", sa.String()), ("secret_hash", sa.String()))
    ),
    *(sa.column(c, sa.String()) for c in ("name", "role", "agency", "area_code", "county_code")),
    sa.column("disabled", sa.Boolean()),
    sa.column("version", sa.Integer()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
_TEXT = (
    "county_code township_code village_code kind reference id_number_enc id_number_hash id_number_masked"
    " name address area_code body body_sha256 details status body_enc details_enc"
)
notification = sa.table(
    "partner_notification",
    sa.column("id", sa.Uuid()),
    sa.column("client_id", sa.Uuid()),
    *(sa.column(c, sa.String()) for c in _TEXT.split()),
    sa.column("version", sa.Integer()),
    sa.column("occurred_on", sa.Date()),
    *(sa.column(c, sa.DateTime(timezone=True)) for c in ("created_at", "updated_at", "received_at")),
)
idempotency_key = sa.table(
    "idempotency_key",
    sa.column("id", sa.Uuid()),
    sa.column("client_id", sa.Uuid()),
    sa.column("notification_id", sa.Uuid()),
    *(sa.column(c, sa.String()) for c in ("key", "request_sha256", "response_body")),
    sa.column("response_status", sa.Integer()),
    *(sa.column(c, sa.DateTime(timezone=True)) for c in ("created_at", "expires_at")),
)


@pytest.fixture
async def scratch(tmp_path) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """The URL of an empty database of its own."""
    if IS_PG:
        url = DATABASE_URL + "_migration"
        await _recreate_pg_database(url)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    yield url
    if IS_PG:
        import asyncpg

        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        base, _, name = dsn.rpartition("/")
        conn = await asyncpg.connect(base + "/postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def _migrate(url: str, revision: str, *, down: bool = False, eng: AsyncEngine | None = None) -> None:
    run = command.downgrade if down else command.upgrade
    await asyncio.to_thread(run, alembic_config(url), revision)
    if eng is not None:
        await eng.dispose()  # no statement prepared against the old schema


def _canonical_sha256(body: str) -> str:
    """The digest intake stored before this revision (plain SHA-256 of the canonical body)."""
    canonical = json.dumps(json.loads(body), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _rows(eng: AsyncEngine, table: str) -> list[dict[str, object]]:
    async with eng.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(sa.text(f'SELECT * FROM "{table}"'))]  # noqa: S608


async def test_stored_bodies_are_encrypted_and_digests_keyed_and_back(scratch, settings):
    cipher = FieldCipher(settings)
    await _migrate(scratch, BEFORE)
    now = datetime.now(UTC)
    client_id, nid, linked, refused = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    number = id_number(date(1990, 4, 5), "female", "440305")
    details = {"business_name": "桂兰小吃店", "landlord_phone": "13912345678"}
    body = json.dumps(
        {
            "kind": "residence_registered",
            "id_number": number,
            "name": "王桂兰",
            "address": "团头湖村5组12号",
            "area_code": "430122100201",
            "occurred_on": "2026-11-20",
            "reference": "GA-1",
            "details": details,
        },
        ensure_ascii=False,
        indent=1,
    )
    old_digest = _canonical_sha256(body)
    refused_digest = hashlib.sha256(b"{}").hexdigest()
    eng = create_async_engine(scratch)
    try:
        async with eng.begin() as conn:
            await conn.execute(
                area.insert().values(
                    code="430122000000", name="望城区", level="county", county_code="430122", created_at=now
                )
            )
            await conn.execute(
                machine_client.insert().values(
                    id=client_id,
                    client_id="police",
                    secret_hash="x",
                    name="police",
                    role="partner",
                    agency="police",
                    area_code="430122000000",
                    county_code="430122",
                    disabled=False,
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
            await conn.execute(
                notification.insert().values(
                    id=nid,
                    client_id=client_id,
                    county_code="430122",
                    township_code="430122100",
                    village_code="430122100201",
                    kind="residence_registered",
                    reference="GA-1",
                    id_number_enc=cipher.encrypt(number, context=b"id_number"),
                    id_number_hash=cipher.blind_index(number),
                    id_number_masked="*" * 18,
                    name="王桂兰",
                    address="团头湖村5组12号",
                    area_code="430122100201",
                    occurred_on=date(2026, 11, 20),
                    details=json.dumps(details, ensure_ascii=False),
                    body=body,
                    body_sha256=old_digest,
                    status="pending_confirmation",
                    version=1,
                    created_at=now,
                    updated_at=now,
                    received_at=now,
                )
            )
            for ident, key, digest, status, answer, ref in (
                (linked, f"GA-{number}", old_digest, 202, {"id": str(nid), "status": "received"}, nid),
                (refused, "bad-1", refused_digest, 422, {"code": "validation_failed"}, None),
            ):
                await conn.execute(
                    idempotency_key.insert().values(
                        id=ident,
                        client_id=client_id,
                        notification_id=ref,
                        key=key,
                        request_sha256=digest,
                        response_status=status,
                        response_body=json.dumps(answer),
                        created_at=now,
                        expires_at=now + timedelta(days=30),
                    )
                )
        assert await plaintext_at_rest(eng, reflect=True)  # what the scan finds before the migration

        await _migrate(scratch, AFTER, eng=eng)
        assert await plaintext_at_rest(eng, reflect=True) == []
        (row,) = await _rows(eng, "partner_notification")
        assert "body" not in row and "details" not in row
        assert cipher.decrypt(str(row["body_enc"]), context=partner_svc.BODY_CONTEXT) == body
        stored_details = cipher.decrypt(str(row["details_enc"]), context=partner_svc.DETAILS_CONTEXT)
        assert json.loads(stored_details) == details
        assert str(row["body_enc"]).startswith("f1:")  # the key id travels with the cipher text
        assert row["body_sha256"] == partner_svc.body_digest(cipher, body.encode()) != old_digest
        keys = {str(r["id"]).replace("-", ""): r for r in await _rows(eng, "idempotency_key")}
        assert keys[linked.hex]["key"] == partner_svc.key_digest(cipher, f"GA-{number}")
        assert keys[linked.hex]["request_sha256"] == row["body_sha256"]
        # an error answer has no body to re-key from: the old digest stays (accepted on replay)
        assert keys[refused.hex]["key"] == partner_svc.key_digest(cipher, "bad-1")
        assert keys[refused.hex]["request_sha256"] == refused_digest

        await _migrate(scratch, BEFORE, down=True, eng=eng)
        (row,) = await _rows(eng, "partner_notification")
        assert (row["body"], row["body_sha256"]) == (body, old_digest)
        assert json.loads(str(row["details"])) == details
        assert "body_enc" not in row and "details_enc" not in row
        assert await _rows(eng, "idempotency_key") == []
    finally:
        await eng.dispose()


async def test_an_empty_database_migrates_without_reading_keys(scratch, monkeypatch):
    """A fresh deployment's migration needs no field keys (they are read only for rows)."""
    from app.core import config

    def refuse(_settings: object) -> object:
        raise AssertionError("keys read without rows to convert")

    monkeypatch.setattr(config, "complete_secrets", refuse)
    await _migrate(scratch, AFTER)
    await _migrate(scratch, BEFORE, down=True)

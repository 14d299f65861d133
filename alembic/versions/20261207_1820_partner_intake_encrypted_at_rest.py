"""partner intake: nothing personal in clear at rest

``partner_notification.body`` and ``.details`` (the body as received, with the ID number, name
and address; the partner's free-form details) become ``body_enc`` / ``details_enc``: AES-GCM
with the register's field keys, key id in the cipher text (``FieldCipher``). Digests that were a
plain SHA-256 of the body (``partner_notification.body_sha256``,
``idempotency_key.request_sha256``) become keyed (HMAC-SHA256 with the blind-index key), and
``idempotency_key.key`` a keyed hash of the key: with the other fields of a body stored, a plain
SHA-256 gives the ID number back to anyone trying the possible numbers. Key rows answered with
an error have no stored body to re-key their digest from: they keep the old one, which the
service still accepts on a replay, until they expire (30 days). And an index for a partner's
own list of notifications.

Keys: read from the same settings as the application (``JIAHE_FIELD_KEYS``,
``JIAHE_FIELD_ACTIVE_KEY_ID``, ``JIAHE_BLIND_INDEX_KEY``; generated development secrets through
``complete_secrets``), and only when there are rows to convert: run ``jiahe migrate`` with the
application's environment.

Downgrade decrypts the bodies back. Idempotency keys cannot be un-hashed, so their rows are
deleted: a partner's resend of a body already stored is still the same notification (unique
client, reference and body), answered as before.

Revision ID: b14a00000002
Revises: b14a00000001
Create Date: 2026-12-07 18:20:00+00:00
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "b14a00000002"
down_revision: str | None = "b14a00000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500
BODY_CONTEXT = b"partner_notification.body"
DETAILS_CONTEXT = b"partner_notification.details"

notification = sa.table(
    "partner_notification",
    sa.column("id", sa.Uuid()),
    sa.column("body", sa.Text()),
    sa.column("details", sa.Text()),
    sa.column("body_enc", sa.Text()),
    sa.column("details_enc", sa.Text()),
    sa.column("body_sha256", sa.String(64)),
)
idempotency_key = sa.table(
    "idempotency_key",
    sa.column("id", sa.Uuid()),
    sa.column("key", sa.String(255)),
)


@cache
def _cipher() -> Any:
    from app.core.config import Settings, complete_secrets
    from app.core.security import FieldCipher

    return FieldCipher(complete_secrets(Settings()))


def _canonical(raw: bytes) -> bytes:
    try:
        return json.dumps(json.loads(raw), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    except ValueError:
        return raw


def _keyed_digest(body: str) -> str:
    """``app.services.partner.body_digest`` as of this revision."""
    canonical = _canonical(body.encode())
    return hmac.new(_cipher().blind_key, b"partner_body\x00" + canonical, hashlib.sha256).hexdigest()


def _batches(conn: sa.Connection, table: Any, *columns: str) -> Iterator[list[sa.Row[Any]]]:
    """The rows of ``table`` in batches, keyset on the id."""
    last = None
    while True:
        stmt = sa.select(table.c.id, *(table.c[c] for c in columns)).order_by(table.c.id).limit(BATCH)
        if last is not None:
            stmt = stmt.where(table.c.id > last)
        rows = list(conn.execute(stmt))
        if not rows:
            return
        yield rows
        last = rows[-1].id


def upgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table("partner_notification", schema=None) as batch_op:
        batch_op.add_column(sa.Column("details_enc", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("body_enc", sa.Text(), nullable=True))
        batch_op.create_index(
            "ix_partner_notification_client_list", ["client_id", "received_at", "id"], unique=False
        )

    encrypt = (
        notification.update()
        .where(notification.c.id == sa.bindparam("b_id"))
        .values(
            body_enc=sa.bindparam("b_body_enc"),
            details_enc=sa.bindparam("b_details_enc"),
            body_sha256=sa.bindparam("b_digest"),
        )
    )
    for rows in _batches(conn, notification, "body", "details"):
        cipher = _cipher()
        conn.execute(
            encrypt,
            [
                {
                    "b_id": r.id,
                    "b_body_enc": cipher.encrypt(r.body, context=BODY_CONTEXT),
                    "b_details_enc": (
                        cipher.encrypt(r.details, context=DETAILS_CONTEXT) if r.details is not None else None
                    ),
                    "b_digest": _keyed_digest(r.body),
                }
                for r in rows
            ],
        )
    # A key that led to a notification came with that notification's body (same canonical form).
    op.execute(
        "UPDATE idempotency_key SET request_sha256 = (SELECT n.body_sha256 FROM partner_notification n"
        " WHERE n.id = idempotency_key.notification_id) WHERE notification_id IS NOT NULL"
    )
    rekey = (
        idempotency_key.update()
        .where(idempotency_key.c.id == sa.bindparam("b_id"))
        .values(key=sa.bindparam("b_key"))
    )
    for rows in _batches(conn, idempotency_key, "key"):
        cipher = _cipher()
        conn.execute(
            rekey,
            [{"b_id": r.id, "b_key": cipher.blind_index(r.key, purpose="idempotency_key")} for r in rows],
        )

    with op.batch_alter_table("partner_notification", schema=None) as batch_op:
        batch_op.alter_column("body_enc", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("body")
        batch_op.drop_column("details")


def downgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table("partner_notification", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("details", sa.Text(), nullable=True))
        batch_op.drop_index("ix_partner_notification_client_list")

    decrypt = (
        notification.update()
        .where(notification.c.id == sa.bindparam("b_id"))
        .values(
            body=sa.bindparam("b_body"),
            details=sa.bindparam("b_details"),
            body_sha256=sa.bindparam("b_digest"),
        )
    )
    for rows in _batches(conn, notification, "body_enc", "details_enc"):
        cipher = _cipher()
        values = []
        for r in rows:
            body = cipher.decrypt(r.body_enc, context=BODY_CONTEXT)
            details = cipher.decrypt(r.details_enc, context=DETAILS_CONTEXT) if r.details_enc else None
            digest = hashlib.sha256(_canonical(body.encode())).hexdigest()
            values.append({"b_id": r.id, "b_body": body, "b_details": details, "b_digest": digest})
        conn.execute(decrypt, values)
    op.execute("DELETE FROM idempotency_key")

    with op.batch_alter_table("partner_notification", schema=None) as batch_op:
        batch_op.alter_column("body", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("body_enc")
        batch_op.drop_column("details_enc")

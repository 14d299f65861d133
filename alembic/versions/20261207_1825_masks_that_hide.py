"""masks that hide: ID numbers masked to their first and last character, phones masked in answers kept

The old mask kept the first 6 and the last 4 characters (``AAAAAA********SSSC``): beside the
birth date that the same list item shows, that is the whole number. The new mask keeps the
first and the last character only (``A****************C``). Both masks keep the number's first
and last character, so the new one is derived from the stored one in SQL, without the keys:
``person.id_number_masked`` and ``partner_notification.id_number_masked``.

Answers kept for replay (``sync_op.result`` of a ``conflict``) hold the server's record as it
was shown then, with the old mask and the full phone: their ``current`` is re-masked the same
way, and its ``phone`` becomes ``phone_masked``, so a re-sent op never gets them back.

What a phone sent in a conflict (``sync_conflict.client_values``) was kept as sent, full ID
number and phone included, and only masked when shown: it is now kept masked
(``id_number_masked``, ``phone_masked``), the only form it is ever shown in.

Downgrade changes nothing: the old mask cannot be rebuilt without decrypting every number, and
it is the leak this revision closes; the code before this revision reads the new masks as they
are (same column, same length).

Revision ID: b14a00000003
Revises: b14a00000002
Create Date: 2026-12-07 18:15:00+00:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from app.services.idnumber import mask_id_number
from app.services.masking import mask_phone

revision: str = "b14a00000003"
down_revision: str | None = "b14a00000002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STARS = "*" * 16
TABLES = ("person", "partner_notification")


def remask_id(masked: str) -> str:
    """The new mask of a number from its old mask (first and last character kept by both)."""
    if len(masked) < 8:
        return "*" * len(masked)
    return masked[0] + "*" * (len(masked) - 2) + masked[-1]


def remask_view(view: dict[str, Any]) -> bool:
    """Re-mask a record view in place; True if it changed."""
    changed = False
    masked = view.get("id_number_masked")
    if isinstance(masked, str) and remask_id(masked) != masked:
        view["id_number_masked"] = remask_id(masked)
        changed = True
    if "phone" in view:
        phone = view.pop("phone")
        view["phone_masked"] = mask_phone(phone) if isinstance(phone, str) and phone else None
        changed = True
    return changed


def upgrade() -> None:
    for name in TABLES:
        # Only masks of the old shape (18 characters, not already first-and-last): running it
        # twice, or over rows written by the new code, changes nothing.
        masked = sa.column("id_number_masked", sa.String)
        op.execute(
            sa.table(name, masked)
            .update()
            .where(masked.is_not(None), sa.func.length(masked) == 18, masked.not_like("_" + STARS + "_"))
            .values(
                id_number_masked=sa.func.substr(masked, 1, 1, type_=sa.String)
                + STARS
                + sa.func.substr(masked, 18, 1, type_=sa.String)
            )
        )
    conn = op.get_bind()
    sync_op = sa.table("sync_op", sa.column("id", sa.Uuid), sa.column("status"), sa.column("result", sa.Text))
    rows = conn.execute(sa.select(sync_op.c.id, sync_op.c.result).where(sync_op.c.status == "conflict"))
    updates = []
    for ident, result in rows.all():
        try:
            answer = json.loads(result)
        except ValueError:
            continue
        current = answer.get("current") if isinstance(answer, dict) else None
        if isinstance(current, dict) and remask_view(current):
            updates.append({"b_id": ident, "b_result": json.dumps(answer, ensure_ascii=False)})
    if updates:
        conn.execute(
            sync_op.update()
            .where(sync_op.c.id == sa.bindparam("b_id"))
            .values(result=sa.bindparam("b_result")),
            updates,
        )

    _mask_conflict_values(conn)


def _mask_conflict_values(conn: sa.Connection) -> None:
    conflict = sa.table("sync_conflict", sa.column("id", sa.Uuid), sa.column("client_values", sa.Text))
    updates = []
    for ident, raw in conn.execute(sa.select(conflict.c.id, conflict.c.client_values)).all():
        try:
            values = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(values, dict) or not ({"id_number", "phone"} & values.keys()):
            continue
        for key, mask in (("id_number", mask_id_number), ("phone", mask_phone)):
            if key in values:
                value = values.pop(key)
                values[f"{key}_masked"] = mask(value) if isinstance(value, str) and value else None
        updates.append({"b_id": ident, "b_values": json.dumps(values, ensure_ascii=False)})
    if updates:
        conn.execute(
            conflict.update()
            .where(conflict.c.id == sa.bindparam("b_id"))
            .values(client_values=sa.bindparam("b_values")),
            updates,
        )


def downgrade() -> None:
    # See the module docstring: the narrower masks stay.
    pass

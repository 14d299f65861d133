"""Audit log writing and reading.

Writes are recorded automatically: a ``before_flush`` hook on every session turns each new,
changed or deleted row of an audited table into an audit row (so no endpoint can forget).
Reads of one personal record are recorded explicitly with ``record``. No API changes or
deletes an audit event: the table has no update path in the code, and tests assert so.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Table, event, insert, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlmodel import col, select

from app.authz.actor import Actor
from app.authz.policies import ADMIN_ROLES, require_role
from app.core.context import client_ip_var, request_id_var
from app.core.db import as_utc, new_id, utcnow
from app.core.pagination import paginate
from app.models.audit import AuditEvent
from app.services.bookkeeping import add_rows

# Tables whose writes are bookkeeping, not acts of a person (logins are audited explicitly).
NOT_AUDITED = {"audit_event", "refresh_token", "login_session", "change", "record_history", "sync_op"}


def _event(
    actor: Actor | None,
    action: str,
    entity: str,
    entity_id: Any,
    detail: str | None,
    county: str | None = None,
) -> AuditEvent:
    """An event; writes without a caller (command line, seeding) are filed under the record's
    county so its admins still see them."""
    return AuditEvent(
        actor_id=actor.id if actor else None,
        actor_role=str(actor.role) if actor else None,
        county_code=actor.county_code if actor else county,
        action=action,
        entity=entity,
        entity_id=str(entity_id) if entity_id is not None else None,
        request_id=request_id_var.get(),
        client_ip=client_ip_var.get(),
        detail=detail[:255] if detail else None,
    )


def record(
    session: AsyncSession,
    actor: Actor | None,
    action: str,
    entity: str,
    entity_id: Any = None,
    detail: str | None = None,
) -> None:
    session.add(_event(actor, action, entity, entity_id, detail))


def _pk(obj: Any) -> Any:
    ident = inspect(obj).identity
    if ident:
        return ident[0] if len(ident) == 1 else ",".join(map(str, ident))
    return getattr(obj, "id", None) or getattr(obj, "code", None) or getattr(obj, "jti", None)


AUDIT_TABLE: Table = AuditEvent.__table__  # type: ignore[attr-defined]


def create_row(
    actor: Actor | None, table: str, ident: Any, county: str | None, action: str = "create"
) -> dict[str, Any]:
    """The audit row of one written record (the hook's, and ``records.insert_new``'s)."""
    return {
        "id": new_id(),
        "at": utcnow(),
        "actor_id": actor.id if actor else None,
        "actor_role": str(actor.role) if actor else None,
        "county_code": actor.county_code if actor else county,
        "action": action,
        "entity": table,
        "entity_id": str(ident) if ident is not None else None,
        "request_id": request_id_var.get(),
        "client_ip": client_ip_var.get(),
        "detail": None,
    }


_INSERT_AUDIT = insert(AUDIT_TABLE)


async def record_now(
    session: AsyncSession, actor: Actor | None, action: str, entity: str, entity_id: Any
) -> None:
    """``record``, written at once by a prepared Core INSERT (no ORM object): for hot paths
    whose record is itself written with Core. Inside the caller's transaction or savepoint."""
    await session.execute(_INSERT_AUDIT, create_row(actor, entity, entity_id, None, action))


@event.listens_for(Session, "before_flush")
def _audit_writes(session: Session, flush_context: Any, _instances: Any) -> None:
    """One audit row per written record, inserted at the end of the flush (``bookkeeping``)."""
    actor: Actor | None = session.info.get("actor")
    rows: list[dict[str, Any]] = []
    for action, objs in (
        ("create", session.new),
        ("update", session.dirty),
        ("delete", session.deleted),
    ):
        for obj in objs:
            table = getattr(obj, "__tablename__", None)
            if not table or table in NOT_AUDITED:
                continue
            if action == "update" and not session.is_modified(obj, include_collections=False):
                continue
            county = getattr(obj, "county_code", None) or (getattr(obj, "code", "") or "")[:6] or None
            rows.append(create_row(actor, table, _pk(obj), county, action))
    add_rows(flush_context, AUDIT_TABLE, rows)


async def list_events(
    session: AsyncSession,
    actor: Actor,
    *,
    actor_id: uuid.UUID | None,
    entity: str | None,
    entity_id: str | None,
    from_: datetime | None,
    to: datetime | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[AuditEvent], str | None]:
    """Admins read the audit trail of their own county, newest first."""
    require_role(actor, *ADMIN_ROLES)
    from_, to = (as_utc(d) for d in (from_, to))
    stmt = select(AuditEvent).where(col(AuditEvent.county_code) == actor.county_code)
    if actor_id:
        stmt = stmt.where(col(AuditEvent.actor_id) == actor_id)
    if entity:
        stmt = stmt.where(col(AuditEvent.entity) == entity)
    if entity_id:
        stmt = stmt.where(col(AuditEvent.entity_id) == entity_id)
    if from_:
        stmt = stmt.where(col(AuditEvent.at) >= from_)
    if to:
        stmt = stmt.where(col(AuditEvent.at) < to)
    return await paginate(
        session,
        stmt,
        order=[AuditEvent.at, AuditEvent.id],
        limit=limit,
        cursor=cursor,
        descending=True,
    )

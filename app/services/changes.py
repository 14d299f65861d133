"""The change log behind sync pull, written by a ``before_flush`` hook (no service can forget).

For every created or changed row of a synced table the hook appends a change row (with the
record's place), and for a change of place a second, ``deleted`` change at the old place, so the
phones of the old village drop the record. For updates it also records which API fields the new
version changed (``RecordHistory``), which sync push uses to merge stale edits field by field.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Table, event, inspect, literal, literal_column
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import get_history

from app.core.db import new_id, utcnow
from app.models.sync import Change, RecordHistory
from app.services.bookkeeping import add_rows

CHANGE_TABLE: Table = Change.__table__  # type: ignore[attr-defined]
_RECORD_HISTORY: Table = RecordHistory.__table__  # type: ignore[attr-defined]

# table name → sync entity name; domains register their tables.
SYNCED_TABLES: dict[str, str] = {}

# model attribute → API field (encrypted and derived columns map to the field clients edit).
FIELD_ALIASES = {
    "id_number_enc": "id_number",
    "id_number_hash": "id_number",
    "id_number_masked": "id_number",
    "phone_enc": "phone",
    "county_code": "household_id",
    "township_code": "household_id",
    "village_code": "household_id",
    "lat": "location",
    "lon": "location",
    "accuracy_m": "location",
}
_IGNORED = {"version", "updated_at", "created_at"}


def register_synced(table: str, entity: str) -> None:
    SYNCED_TABLES[table] = entity


def txid_expr(dialect: str) -> Any:
    """The writer's PostgreSQL transaction id as computed by the INSERT of change rows itself
    (0 on SQLite, where writers are serialized)."""
    if dialect == "postgresql":
        return literal_column("pg_current_xact_id()::text::bigint")
    return literal(0)


def change_row(
    entity: str, ident: Any, version: int, *, deleted: bool, place: tuple[str, str, str], at: Any
) -> dict[str, Any]:
    """A change-log row (without ``seq`` and ``tx_id``, which the INSERT computes)."""
    return {
        "entity": entity,
        "entity_id": ident,
        "version": version,
        "deleted": deleted,
        "county_code": place[0],
        "township_code": place[1],
        "village_code": place[2],
        "at": at,
    }


def _place(obj: Any) -> tuple[str, str, str]:
    return obj.county_code, obj.township_code, obj.village_code


@event.listens_for(Session, "before_flush")
def _log_changes(session: Session, flush_context: Any, _instances: Any) -> None:
    now = utcnow()
    changes: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for obj in list(session.new):
        entity = SYNCED_TABLES.get(getattr(obj, "__tablename__", ""))
        if entity:
            changes.append(change_row(entity, obj.id, obj.version, deleted=False, place=_place(obj), at=now))
    for obj in list(session.dirty):
        entity = SYNCED_TABLES.get(getattr(obj, "__tablename__", ""))
        if not entity:
            continue
        state = inspect(obj)
        # only the attributes set since the last flush (``committed_state``), not every column;
        # ``get_history`` per key, not ``state.attrs`` (which builds a view of every attribute of
        # every dirty record: a sixth of a 200-result push) nor ``session.is_modified``
        columns = state.mapper.attrs
        changed = [
            k
            for k in state.committed_state
            if k not in _IGNORED and k in columns and get_history(obj, k).has_changes()
        ]
        if not changed:
            continue
        fields = sorted({FIELD_ALIASES.get(k, k) for k in changed})
        # A flush in the middle of a change (autoflush before a query, the version not bumped
        # yet) records fields of the version the change is making, not of the one the phone saw:
        # otherwise a stale edit would not see them and be merged over them.
        bumped = "version" in state.committed_state
        history.append(
            {
                "id": new_id(),
                "entity": entity,
                "entity_id": obj.id,
                "version": obj.version if bumped else obj.version + 1,
                "fields": json.dumps(fields),
                "at": now,
            }
        )
        old_village = get_history(obj, "village_code").deleted
        if old_village and old_village[0] != obj.village_code:
            v = old_village[0]
            changes.append(
                change_row(entity, obj.id, obj.version, deleted=True, place=(v[:6], v[:9], v), at=now)
            )
        changes.append(change_row(entity, obj.id, obj.version, deleted=False, place=_place(obj), at=now))
    for obj in list(session.deleted):
        entity = SYNCED_TABLES.get(getattr(obj, "__tablename__", ""))
        if entity:
            changes.append(change_row(entity, obj.id, obj.version, deleted=True, place=_place(obj), at=now))
    add_rows(flush_context, _RECORD_HISTORY, history)
    add_rows(flush_context, CHANGE_TABLE, changes, {"tx_id": txid_expr(session.get_bind().dialect.name)})

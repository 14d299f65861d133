"""Bookkeeping rows written at the end of a flush by Core ``executemany``, not as ORM objects.

The change log, record history and audit hooks derive a row from every object a flush writes.
Building those rows as ORM objects cost more than the writes they describe (a batch of 200
synced visits made ~700 objects); they are plain dicts instead, collected in ``before_flush``
on the flush's own context and inserted in ``after_flush`` on the same connection, inside the
same transaction (or savepoint). A flush that fails takes its pending rows with it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, event, insert
from sqlalchemy.orm import Session

_KEY = "jiahe_bookkeeping_rows"


def add_rows(
    flush_context: Any, table: Table, rows: list[dict[str, Any]], fixed: dict[str, Any] | None = None
) -> None:
    """Queue rows for ``table`` to be inserted when this flush has written its objects;
    ``fixed`` gives columns computed by the same SQL expression for every row (e.g. the
    writer's transaction id, read by the INSERT itself instead of a query of its own)."""
    if rows:
        pending: dict[Table, tuple[list[dict[str, Any]], dict[str, Any]]] = (
            flush_context.attributes.setdefault(_KEY, {})
        )
        pending.setdefault(table, ([], fixed or {}))[0].extend(rows)


@event.listens_for(Session, "after_flush")
def _insert_pending(session: Session, flush_context: Any) -> None:
    pending: dict[Table, tuple[list[dict[str, Any]], dict[str, Any]]] | None = flush_context.attributes.pop(
        _KEY, None
    )
    if not pending:
        return
    conn = session.connection()
    for table, (rows, fixed) in pending.items():
        stmt = insert(table).values(**fixed) if fixed else insert(table)
        conn.execute(stmt, rows)

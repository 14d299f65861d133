"""Offline sync: push (ordered ops, each in its own savepoint, answers kept per op id), pull
(first a snapshot of everything in scope, then the change log), receipts and conflicts.

Push guarantees: a re-sent op (same device and op id) is answered from the stored result and
writes nothing; ops apply in order so an op may use a record created earlier in the same batch;
a failing op is rolled back to its savepoint alone. The op is *claimed* (its row inserted) before
it is applied, so two requests carrying the same op cannot both apply it: the second waits on the
unique index and then answers ``duplicate``.

Stale updates merge field by field: the fields changed on the server since ``base_version``
(kept per version in ``record_history``) are compared with the fields the op changes; only the
same field changed on both sides to different values is a ``conflict``, which is stored for the
township to resolve.

Pull never skips a change: on PostgreSQL the log is ordered by ``(tx_id, seq)`` and only changes
of transactions older than the oldest transaction still running (the snapshot's ``xmin``) are
delivered, so a transaction that took its sequence number early but commits late still lands
after the cursor. On SQLite writers are serialized, so ``seq`` alone is the commit order.
"""

from __future__ import annotations

import base64
import functools
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import bindparam, func, literal, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.authz.actor import Actor
from app.authz.policies import FIELD_ROLES, SUPERVISOR_ROLES, require_role
from app.authz.scope import get_scoped, scoped
from app.core.db import utcnow
from app.core.errors import AppError, Conflict, FieldError, NotFound, ValidationFailed
from app.core.pagination import MAX_INT, invalid_cursor, open_cursor, paginate, sign_cursor
from app.core.security import FieldCipher
from app.core.text import refusal as text_refusal
from app.models.households import (
    Birth,
    BirthCreate,
    Death,
    DeathCreate,
    Household,
    HouseholdCreate,
    HouseholdUpdate,
    Person,
    PersonCreate,
    PersonUpdate,
)
from app.models.sync import Change, OpStatus, RecordHistory, SyncConflict, SyncOp
from app.models.users import User
from app.models.visits import Task, Visit, VisitCreate, VisitUpdate
from app.services import households as hh
from app.services import tasks as tasks_svc
from app.services import visits as visits_svc
from app.services import vital_events
from app.services.changes import SYNCED_TABLES
from app.services.idnumber import mask_id_number
from app.services.masking import mask_phone
from app.services.summaries import load_people

MAX_SEQ = 2**62


@dataclass
class SyncContext:
    cipher: FieldCipher


async def _build_visit(session: AsyncSession, actor: Actor, data: Any, refs: Any) -> tuple[Any, bool]:
    """``visits.build_visit`` as a batch builder (builders may await: a checkup result's
    follow-up task reads her name)."""
    return visits_svc.build_visit(session, actor, data, refs)


# --- entity registries --------------------------------------------------------------------------

CreateFn = Callable[[AsyncSession, Actor, SyncContext, uuid.UUID, dict[str, Any]], Awaitable[Any]]
UpdateFn = Callable[[AsyncSession, Actor, SyncContext, uuid.UUID, dict[str, Any], int], Awaitable[Any]]
ViewFn = Callable[[Any, SyncContext], dict[str, Any]]
# an action on an existing record (decline, exempt, complete, close): (session, actor, ctx,
# the op's id = the record acted on, data) → the record after the action
ActionFn = Callable[[AsyncSession, Actor, SyncContext, uuid.UUID, dict[str, Any]], Awaitable[Any]]


@dataclass
class BatchCreate:
    """Creates of one entity checked in memory and written by one flush: ``load`` reads what a
    list of validated creates refers to (a few queries for the whole run), ``build`` applies one
    create's rules to that and adds its rows to the session — raising the op's API error before
    adding anything — and returns (record, created)."""

    schema: type[BaseModel]
    load: Callable[[AsyncSession, Actor, list[Any]], Awaitable[Any]]
    build: Callable[[AsyncSession, Actor, Any, Any], Awaitable[tuple[Any, bool]]]


@dataclass
class PushHandler:
    model: Any
    create: CreateFn
    update: UpdateFn | None = None
    update_schema: type[BaseModel] | None = None
    # current values of editable fields, JSON-mode, for overlap detection (may hold full values)
    values: ViewFn | None = None
    view: ViewFn | None = None
    # how an op's id finds the record (default: the model's primary key, in scope)
    load: Callable[[AsyncSession, Actor, uuid.UUID], Awaitable[Any]] | None = None
    # consecutive new-record ops of this entity may be applied together (see ``_apply_run``)
    batch: BatchCreate | None = None
    # an action entity: the op acts on the record ``id`` (``create``/``update`` unused; see
    # ``_apply_action``)
    action: ActionFn | None = None


@dataclass
class PullEntity:
    model: Any
    view: ViewFn
    gone: Callable[[Any], bool] = lambda _r: False
    # reads once, for a page of records, what ``view`` needs besides the record (e.g. claims'
    # rule versions), so that a page stays a few queries
    prepare: Callable[[AsyncSession, list[Any]], Awaitable[None]] | None = None


PUSH: dict[str, PushHandler] = {}
PULL: dict[str, PullEntity] = {}


def register_push(entity: str, handler: PushHandler) -> None:
    PUSH[entity] = handler


def register_pull(entity: str, handler: PullEntity) -> None:
    PULL[entity] = handler


# The column an op's id is matched on when it is not the model's primary key (a handler with
# its own ``load``): the conflict list reads the current records of a whole page by it.
LOOKUP: dict[str, Any] = {}


def register_lookup(entity: str, column: Any) -> None:
    LOOKUP[entity] = column


@functools.cache
def _adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def _schema(model: type[BaseModel], data: dict[str, Any], **extra: Any) -> Any:
    """An op's data validated as ``model`` (an input model, never a table model): through a
    ``TypeAdapter``, the model's own pydantic schema without SQLModel's ``model_validate`` path
    (a third of the cost of a batch of checkup results' validation)."""
    try:
        return _adapter(model).validate_python({**data, **extra})
    except ValidationError as exc:
        raise ValidationFailed(
            "The op's data has invalid fields",
            errors=[FieldError(field=".".join(map(str, e["loc"])), message=e["msg"]) for e in exc.errors()],
        ) from None


# register entities


async def _create_household(
    s: AsyncSession, a: Actor, _c: SyncContext, i: uuid.UUID, d: dict[str, Any]
) -> Any:
    return (await hh.create_household(s, a, _schema(HouseholdCreate, d, id=i)))[0]


async def _update_household(
    s: AsyncSession, a: Actor, _c: SyncContext, i: uuid.UUID, d: dict[str, Any], v: int
) -> Any:
    return await hh.update_household(s, a, i, _schema(HouseholdUpdate, d), v)


def _household_view(h: Any, _c: SyncContext) -> dict[str, Any]:
    return hh.household_public(h).model_dump(mode="json")


async def _create_person(s: AsyncSession, a: Actor, c: SyncContext, i: uuid.UUID, d: dict[str, Any]) -> Any:
    return (await hh.create_person(s, a, c.cipher, _schema(PersonCreate, d, id=i)))[0]


async def _update_person(
    s: AsyncSession, a: Actor, c: SyncContext, i: uuid.UUID, d: dict[str, Any], v: int
) -> Any:
    return await hh.update_person(s, a, c.cipher, i, _schema(PersonUpdate, d), v)


def _person_view(p: Any, c: SyncContext) -> dict[str, Any]:
    return hh.person_public(p, c.cipher).model_dump(mode="json")


def _person_values(p: Any, c: SyncContext) -> dict[str, Any]:
    """Full values, compared with an op's (never sent: answers use ``_person_view``)."""
    return {
        **_person_view(p, c),
        "id_number": hh.full_id_number(p, c.cipher),
        "phone": hh.full_phone(p, c.cipher),
    }


async def _create_visit(s: AsyncSession, a: Actor, _c: SyncContext, i: uuid.UUID, d: dict[str, Any]) -> Any:
    return (await visits_svc.create_visit(s, a, _schema(VisitCreate, d, id=i)))[0]


async def _update_visit(
    s: AsyncSession, a: Actor, _c: SyncContext, i: uuid.UUID, d: dict[str, Any], v: int
) -> Any:
    return await visits_svc.update_visit(s, a, i, _schema(VisitUpdate, d), v)


def _visit_view(v: Any, _c: SyncContext) -> dict[str, Any]:
    return visits_svc.visit_public(v).model_dump(mode="json")


async def _create_birth(s: AsyncSession, a: Actor, c: SyncContext, i: uuid.UUID, d: dict[str, Any]) -> Any:
    return (await vital_events.create_birth(s, a, c.cipher, _schema(BirthCreate, d, id=i)))[0]


async def _create_death(s: AsyncSession, a: Actor, _c: SyncContext, i: uuid.UUID, d: dict[str, Any]) -> Any:
    return (await vital_events.create_death(s, a, _schema(DeathCreate, d, id=i)))[0]


def _task_view(t: Any, _c: SyncContext) -> dict[str, Any]:
    return tasks_svc.task_public(t).model_dump(mode="json")


register_push(
    "household",
    PushHandler(
        Household, _create_household, _update_household, HouseholdUpdate, _household_view, _household_view
    ),
)
register_push(
    "person", PushHandler(Person, _create_person, _update_person, PersonUpdate, _person_values, _person_view)
)
register_push(
    "visit",
    PushHandler(
        Visit,
        _create_visit,
        _update_visit,
        VisitUpdate,
        _visit_view,
        _visit_view,
        batch=BatchCreate(VisitCreate, visits_svc.load_refs, _build_visit),
    ),
)
register_push("birth", PushHandler(Birth, _create_birth))
register_push("death", PushHandler(Death, _create_death))

register_pull("household", PullEntity(Household, _household_view))
register_pull("person", PullEntity(Person, _person_view, lambda p: p.merged_into_id is not None))
register_pull("visit", PullEntity(Visit, _visit_view))
register_pull("task", PullEntity(Task, _task_view))

PUSH_ENTITIES = (
    "household",
    "person",
    "visit",
    "birth",
    "death",
    "checkup_result",
    "migrant",
    "checkup_decline",
    "checkup_exempt",
    "task_completion",
    "migrant_close",
    "claim",
)


# --- push ---------------------------------------------------------------------------------------


class PushOp(BaseModel):
    op_id: str
    entity: str
    id: uuid.UUID
    base_version: int | None
    data: dict[str, Any]


def _result(op: PushOp, status: OpStatus, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"op_id": op.op_id, "status": status.value, "id": str(op.id), "version": None}
    out.update(kw)
    return out


def _rejected(op: PushOp, err: AppError) -> dict[str, Any]:
    body = err.body()
    body.pop("request_id", None)
    return _result(op, OpStatus.rejected, error=body)


async def _server_changed_fields(
    session: AsyncSession, entity: str, entity_id: uuid.UUID, since: int
) -> set[str]:
    rows = await session.execute(
        select(RecordHistory.fields).where(
            RecordHistory.entity_id == entity_id,
            RecordHistory.entity == entity,
            col(RecordHistory.version) > since,
        )
    )
    out: set[str] = set()
    for (fields,) in rows:
        out.update(json.loads(fields))
    return out


async def _apply(
    session: AsyncSession, actor: Actor, ctx: SyncContext, op: PushOp, device_id: str
) -> dict[str, Any]:
    handler = PUSH.get(op.entity)
    if handler is None:
        raise ValidationFailed(
            f"Ops on {op.entity!r} are not supported", code="unsupported_entity", errors=[_ENTITY_ERROR]
        )
    if handler.action is not None:
        return await _apply_action(session, actor, ctx, handler, handler.action, op)
    if op.base_version is None:
        record = await handler.create(session, actor, ctx, op.id, op.data)
        return _result(op, OpStatus.applied, version=record.version)
    if handler.update is None or handler.update_schema is None or handler.values is None:
        raise ValidationFailed(f"{op.entity} records cannot be updated", code="not_updatable")
    if handler.load is not None:
        current = await handler.load(session, actor, op.id)
    else:
        current = await get_scoped(session, handler.model, op.id, actor)
    if op.base_version < 1 or op.base_version > current.version:
        raise ValidationFailed("base_version is not a version of this record", code="invalid_base_version")
    if op.base_version < current.version:
        changed = _schema(handler.update_schema, op.data).model_dump(mode="json", exclude_unset=True)
        history_entity = SYNCED_TABLES.get(getattr(current, "__tablename__", ""), op.entity)
        server_fields = await _server_changed_fields(session, history_entity, current.id, op.base_version)
        now = handler.values(current, ctx)
        overlap = sorted(f for f in changed if f in server_fields and now.get(f) != changed[f])
        if overlap:
            session.add(
                SyncConflict(
                    entity=op.entity,
                    entity_id=op.id,
                    op_id=op.op_id,
                    device_id=device_id,
                    actor_id=actor.id,
                    base_version=op.base_version,
                    server_version=current.version,
                    client_values=json.dumps(masked_values(changed), ensure_ascii=False),
                    fields=json.dumps(overlap),
                    county_code=current.county_code,
                    township_code=current.township_code,
                    village_code=current.village_code,
                )
            )
            view = handler.view or handler.values
            return _result(
                op, OpStatus.conflict, version=current.version, current=view(current, ctx), fields=overlap
            )
    record = await handler.update(session, actor, ctx, op.id, op.data, current.version)
    return _result(op, OpStatus.applied, version=record.version)


_ENTITY_ERROR = FieldError(field="entity", message="one of: " + ", ".join(PUSH_ENTITIES))


async def _apply_action(
    session: AsyncSession, actor: Actor, ctx: SyncContext, handler: PushHandler, action: ActionFn, op: PushOp
) -> dict[str, Any]:
    """An action on the record ``op.id``, through its REST service function (same scope, rules
    and errors). ``base_version`` null acts on the current version; a version must be the
    current one, else the op is a ``conflict`` holding the current record and nothing is
    written. No conflict is stored for the township: an action has no fields to merge, and the
    phone decides again on what it pulls (its cadre may still want the action)."""
    if op.base_version is not None:
        if handler.load is not None:
            current = await handler.load(session, actor, op.id)
        else:
            current = await get_scoped(session, handler.model, op.id, actor)
        if op.base_version < 1 or op.base_version > current.version:
            raise ValidationFailed(
                "base_version is not a version of this record", code="invalid_base_version"
            )
        if op.base_version < current.version:
            view = handler.view or handler.values
            assert view is not None
            return _result(op, OpStatus.conflict, version=current.version, current=view(current, ctx))
    record = await action(session, actor, ctx, op.id, op.data)
    return _result(op, OpStatus.applied, version=record.version)


async def push(
    session: AsyncSession,
    actor: Actor,
    ctx: SyncContext,
    device_id: str,
    ops: list[PushOp],
    *,
    refused_text: Mapping[int, str] | None = None,
) -> list[dict[str, Any]]:
    """Answers in op order. Stored answers are read and new ops claimed for the whole batch at
    once (one SELECT, one INSERT … ON CONFLICT DO NOTHING); each new op is then applied in its
    own savepoint and the answers are written back in one executemany.

    ``refused_text`` ({op index: field}, from the request's text check) names the ops holding
    NUL or control characters: each is ``rejected`` alone and nothing of it is stored (not even
    its answer: its op id may be the offending text), so a corrected re-send is applied."""
    require_role(actor, *FIELD_ROLES)
    refused = refused_text or {}
    ids = list(dict.fromkeys(op.op_id for k, op in enumerate(ops) if k not in refused))
    stored = await _stored_many(session, device_id, ids)
    claimed = await _claim(session, device_id, actor, [i for i in ids if i not in stored])
    missing = [i for i in ids if i not in stored and i not in claimed]
    if missing:  # claimed by a concurrent request that has committed since: replay its answers
        stored.update(await _stored_many(session, device_id, missing))
    answered: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    at = 0
    while at < len(ops):
        op = ops[at]
        at += 1
        if at - 1 in refused:
            results.append(_rejected(op, text_refusal(refused[at - 1])))
            continue
        if op.op_id in answered:  # the same op twice in one batch
            results.append(_as_duplicate(answered[op.op_id]))
            continue
        if op.op_id in stored:
            results.append(_replay(stored[op.op_id], actor))
            continue
        if op.op_id not in claimed:
            results.append(_rejected(op, Conflict("Op in flight", code="op_in_flight")))
            continue
        run = _batchable_run(ops, at - 1, claimed, answered, refused)
        if len(run) > 1:
            for run_op, result in zip(
                run, await _apply_run(session, actor, ctx, run, device_id), strict=True
            ):
                answered[run_op.op_id] = result
                results.append(result)
            at += len(run) - 1
            continue
        result = await _apply_one(session, actor, ctx, op, device_id)
        answered[op.op_id] = result
        results.append(result)
    if answered:
        table = SyncOp.__table__  # type: ignore[attr-defined]
        await session.execute(
            update(table)
            .where(table.c.device_id == device_id, table.c.op_id == bindparam("b_op"))
            .values(status=bindparam("b_status"), result=bindparam("b_result")),
            [
                {"b_op": k, "b_status": v["status"], "b_result": json.dumps(v, ensure_ascii=False)}
                for k, v in answered.items()
            ],
        )
    return results


async def _apply_one(
    session: AsyncSession, actor: Actor, ctx: SyncContext, op: PushOp, device_id: str
) -> dict[str, Any]:
    """One op in its own savepoint: its writes land whole or not at all. A clash with stored
    data (integrity, bad data) is that op's rejection; any other database error (lost
    connection, deadlock, timeout) fails the whole request, which stores nothing, so the phone
    re-sends instead of being told a transient failure for good."""
    try:
        async with session.begin_nested():
            return await _apply(session, actor, ctx, op, device_id)
    except AppError as err:
        return _rejected(op, err)
    except (IntegrityError, DataError):
        return _rejected(op, Conflict("The op clashes with stored data", code="integrity_error"))


MAX_RUN = 500


def _batchable_run(
    ops: list[PushOp],
    start: int,
    claimed: set[str],
    answered: dict[str, dict[str, Any]],
    refused: Mapping[int, str],
) -> list[PushOp]:
    """The consecutive new-record ops of one batchable entity from ``start`` (each claimed by
    this request, none repeated): they depend on nothing among themselves."""
    first = ops[start]
    handler = PUSH.get(first.entity)
    if handler is None or handler.batch is None or first.base_version is not None:
        return [first]
    run: list[PushOp] = []
    seen: set[str] = set()
    for k, op in enumerate(ops[start : start + MAX_RUN], start):
        if (
            k in refused
            or op.entity != first.entity
            or op.base_version is not None
            or op.op_id not in claimed
            or op.op_id in answered
            or op.op_id in seen
        ):
            break
        seen.add(op.op_id)
        run.append(op)
    return run


async def _apply_run(
    session: AsyncSession, actor: Actor, ctx: SyncContext, run: list[PushOp], device_id: str
) -> list[dict[str, Any]]:
    """Creates of one entity together: validated and checked in memory against what they refer
    to (read once), written by one flush in one savepoint. The answers are those each op would
    get alone — an op the rules refuse is ``rejected`` and writes nothing, the others are
    unaffected. If the flush itself fails (a clash with stored data, e.g. a concurrent create
    of the same id) the savepoint is rolled back and the run is applied op by op instead."""
    handler = PUSH[run[0].entity]
    assert handler.batch is not None
    batch = handler.batch
    results: list[dict[str, Any] | None] = [None] * len(run)
    parsed: list[tuple[int, Any]] = []
    for k, op in enumerate(run):
        try:
            parsed.append((k, _schema(batch.schema, op.data, id=op.id)))
        except AppError as err:
            results[k] = _rejected(op, err)
    try:
        async with session.begin_nested():
            refs = await batch.load(session, actor, [d for _k, d in parsed])
            for k, data in parsed:
                try:
                    record, _created = await batch.build(session, actor, data, refs)
                except AppError as err:
                    results[k] = _rejected(run[k], err)
                else:
                    results[k] = _result(run[k], OpStatus.applied, version=record.version)
            await session.flush()
    except (IntegrityError, DataError):
        checked = {k for k, _d in parsed}
        out: list[dict[str, Any]] = []
        for k, op in enumerate(run):
            prior = results[k]
            if k in checked or prior is None:
                out.append(await _apply_one(session, actor, ctx, op, device_id))
            else:
                out.append(prior)
        return out
    return [r for r in results if r is not None]


def _as_duplicate(result: dict[str, Any]) -> dict[str, Any]:
    out = dict(result)
    if out.get("status") == OpStatus.applied.value:
        out["status"] = OpStatus.duplicate.value
    return out


async def _stored_many(session: AsyncSession, device_id: str, op_ids: list[str]) -> dict[str, SyncOp]:
    if not op_ids:
        return {}
    stmt = select(SyncOp).where(SyncOp.device_id == device_id, col(SyncOp.op_id).in_(op_ids))
    return {r.op_id: r for r in (await session.execute(stmt)).scalars() if r.status != "pending"}


async def _claim(session: AsyncSession, device_id: str, actor: Actor, op_ids: list[str]) -> set[str]:
    """Insert a pending row per new op; a concurrent request holding the same op makes this wait
    on the unique index and then skip it (it is answered from that request's stored result)."""
    if not op_ids:
        return set()
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert_fn = pg_insert if dialect == "postgresql" else sqlite_insert
    table = SyncOp.__table__  # type: ignore[attr-defined]
    now = utcnow()
    stmt = (
        insert_fn(table)
        .on_conflict_do_nothing(index_elements=["device_id", "op_id"])
        .returning(table.c.op_id)
    )
    rows = [
        {
            "id": uuid.uuid4(),
            "device_id": device_id,
            "op_id": i,
            "actor_id": actor.id,
            "status": "pending",
            "result": "{}",
            "at": now,
        }
        for i in op_ids
    ]
    # executemany with RETURNING: one cached statement sent as multi-row INSERTs (SQLAlchemy's
    # insertmanyvalues), not a new 200-row VALUES statement compiled per request
    return {r[0] for r in (await session.execute(stmt, rows)).all()}


def _replay(prior: SyncOp | None, actor: Actor) -> dict[str, Any]:
    """The answer given the first time; an applied op answers ``duplicate``."""
    assert prior is not None
    out: dict[str, Any] = json.loads(prior.result)
    if prior.actor_id != actor.id:
        # Another login's op with the same device and op id: do not reveal its result.
        return {
            "op_id": prior.op_id,
            "status": "rejected",
            "id": None,
            "version": None,
            "error": Conflict("This op id was used by someone else", code="op_id_taken").body(),
        }
    if out.get("status") == OpStatus.applied.value:
        out["status"] = OpStatus.duplicate.value
    return out


async def receipts(
    session: AsyncSession, actor: Actor, device_id: str, op_ids: list[str]
) -> list[dict[str, Any]]:
    """Which of these ops the server holds (pushed by this user), with their results."""
    require_role(actor, *FIELD_ROLES)
    rows = await session.execute(
        select(SyncOp).where(
            SyncOp.device_id == device_id, SyncOp.actor_id == actor.id, col(SyncOp.op_id).in_(op_ids)
        )
    )
    held = {r.op_id: r for r in rows.scalars()}
    out = []
    for op_id in op_ids:
        r = held.get(op_id)
        if r is None or r.status == "pending":
            out.append({"op_id": op_id, "held": False})
        else:
            res = json.loads(r.result)
            out.append(
                {
                    "op_id": op_id,
                    "held": True,
                    "status": res["status"],
                    "id": res.get("id"),
                    "version": res.get("version"),
                }
            )
    return out


# --- pull ---------------------------------------------------------------------------------------


PULL_CURSOR = "sync:pull"


def _enc(obj: dict[str, Any]) -> str:
    return sign_cursor(PULL_CURSOR, obj)


def _dec(cursor: str) -> dict[str, Any]:
    """The position a pull cursor holds: signed for this feed (``sign_cursor``), or an unsigned
    one of the form phones were given before cursors were signed (its base64 has no ``.``), which
    is still taken so that no phone has to start over; both are checked field by field, so a
    made-up position is 422 ``invalid_cursor``, never a database error."""
    if "." in cursor:
        out = open_cursor(PULL_CURSOR, cursor)
    else:
        try:
            out = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        except ValueError:
            raise invalid_cursor() from None

    def count(v: Any, top: int = MAX_INT) -> int:
        if type(v) is not int or not 0 <= v <= top:
            raise invalid_cursor()
        return v

    if not isinstance(out, dict) or out.get("p") not in ("s", "l"):
        raise invalid_cursor()
    state: dict[str, Any] = {"p": out["p"], "tx": count(out.get("tx")), "seq": count(out.get("seq"))}
    if out["p"] == "s":
        state["e"] = count(out.get("e"), len(_pull_order()))
        last = out.get("last")
        if last is not None and not isinstance(last, str):
            raise invalid_cursor()
        try:
            state["last"] = str(uuid.UUID(last)) if last is not None else None
        except ValueError:
            raise invalid_cursor() from None
    return state


async def _log_start(session: AsyncSession) -> tuple[int, int]:
    """A log position such that every change before it is visible to reads made from now on."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        xmin = (
            await session.execute(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
        ).scalar_one()
        return int(xmin) - 1, MAX_SEQ
    last = (await session.execute(select(func.max(Change.seq)))).scalar_one()
    return 0, int(last or 0)


async def _visible_horizon(session: AsyncSession) -> int | None:
    """Changes of transactions at or after this id may still be in flight (PostgreSQL)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return int(
            (
                await session.execute(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
            ).scalar_one()
        )
    return None


ENTITY_ORDER = ["household", "person", "visit", "task", "checkup_appointment", "migrant", "claim"]


def _pull_order() -> list[str]:
    return [e for e in ENTITY_ORDER if e in PULL] + [e for e in PULL if e not in ENTITY_ORDER]


def _emit(
    entity: str, record: Any, actor: Actor, ctx: SyncContext, ident: uuid.UUID, version: int
) -> dict[str, Any]:
    puller = PULL[entity]
    if record is None or not actor.covers(record.village_code) or puller.gone(record):
        return {
            "entity": entity,
            "id": str(ident),
            "version": record.version if record is not None else version,
            "deleted": True,
            "data": None,
        }
    return {
        "entity": entity,
        "id": str(record.id),
        "version": record.version,
        "deleted": False,
        "data": puller.view(record, ctx),
    }


async def pull(
    session: AsyncSession, actor: Actor, ctx: SyncContext, *, cursor: str | None, limit: int
) -> dict[str, Any]:
    """Everything in scope that changed after the cursor, oldest first. Without a cursor: a
    snapshot of all current records in scope (paged by entity and id), then the log."""
    require_role(actor, *FIELD_ROLES)
    state = _dec(cursor) if cursor else None
    if state is None:
        tx, seq = await _log_start(session)
        state = {"p": "s", "e": 0, "last": None, "tx": tx, "seq": seq}
    changes: list[dict[str, Any]] = []
    order = _pull_order()
    while state["p"] == "s" and len(changes) < limit:
        if state["e"] >= len(order):
            state = {"p": "l", "tx": state["tx"], "seq": state["seq"]}
            break
        entity = order[state["e"]]
        model = PULL[entity].model
        stmt = scoped(select(model), actor)
        if state["last"]:
            stmt = stmt.where(model.id > uuid.UUID(state["last"]))
        want = limit - len(changes)
        rows = list((await session.execute(stmt.order_by(model.id).limit(want))).scalars())
        if PULL[entity].prepare is not None and rows:
            await PULL[entity].prepare(session, rows)  # type: ignore[misc]
        for r in rows:
            if not PULL[entity].gone(r):
                changes.append(_emit(entity, r, actor, ctx, r.id, r.version))
        if len(rows) < want:
            state = {**state, "e": state["e"] + 1, "last": None}
        else:
            state = {**state, "last": str(rows[-1].id)}
    has_more = True
    if state["p"] == "l" and len(changes) < limit:
        want = limit - len(changes)
        stmt = scoped(select(Change), actor, Change).where(
            tuple_(Change.tx_id, Change.seq) > tuple_(literal(int(state["tx"])), literal(int(state["seq"])))
        )
        horizon = await _visible_horizon(session)
        if horizon is not None:
            stmt = stmt.where(col(Change.tx_id) < horizon)
        rows = list(
            (
                await session.execute(stmt.order_by(col(Change.tx_id), col(Change.seq)).limit(want + 1))
            ).scalars()
        )
        has_more = len(rows) > want
        rows = rows[:want]
        by_entity: dict[str, set[uuid.UUID]] = {}
        for c in rows:
            if c.entity in PULL:
                by_entity.setdefault(c.entity, set()).add(c.entity_id)
        records: dict[tuple[str, uuid.UUID], Any] = {}
        for entity, ids in by_entity.items():
            model = PULL[entity].model
            found = list((await session.execute(select(model).where(col(model.id).in_(ids)))).scalars())
            if PULL[entity].prepare is not None and found:
                await PULL[entity].prepare(session, found)  # type: ignore[misc]
            for r in found:
                records[(entity, r.id)] = r
        last_index = {(c.entity, c.entity_id): i for i, c in enumerate(rows)}
        for i, c in enumerate(rows):
            if c.entity in PULL and last_index[(c.entity, c.entity_id)] == i:
                changes.append(
                    _emit(c.entity, records.get((c.entity, c.entity_id)), actor, ctx, c.entity_id, c.version)
                )
        if rows:
            state = {"p": "l", "tx": rows[-1].tx_id, "seq": rows[-1].seq}
    return {"changes": changes, "next_cursor": _enc(state), "has_more": has_more}


# --- conflicts ----------------------------------------------------------------------------------

# What a phone sent for these fields is kept and shown masked (under ``<field>_masked``, like
# every list): the full values are read from the record itself, with an audited GET. Nothing
# personal is kept in clear at rest (the suite scans every text column after each test).
_MASKED_VALUES: dict[str, Callable[[str], str]] = {"id_number": mask_id_number, "phone": mask_phone}


def masked_values(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        mask = _MASKED_VALUES.get(key)
        if key == "payee" and isinstance(value, dict) and "account" in value:
            # a claim's bank account is stored encrypted; a conflict keeps it as lists show it
            account = value["account"]
            shown = {k: v for k, v in value.items() if k != "account"}
            shown["account_masked"] = (
                "*" * (len(account) - 4) + account[-4:] if isinstance(account, str) else None
            )
            out[key] = shown
        elif mask is None:
            out[key] = value
        else:
            out[f"{key}_masked"] = mask(value) if isinstance(value, str) and value else None
    return out


def conflict_view(c: SyncConflict) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "entity": c.entity,
        "entity_id": str(c.entity_id),
        "op_id": c.op_id,
        "device_id": c.device_id,
        "actor_id": str(c.actor_id),
        "base_version": c.base_version,
        "server_version": c.server_version,
        "client_values": masked_values(json.loads(c.client_values)),
        "fields": json.loads(c.fields),
        "status": c.status,
        "village_code": c.village_code,
        "created_at": c.created_at.isoformat(),
        "resolved_by": str(c.resolved_by) if c.resolved_by else None,
        "resolved_at": c.resolved_at.isoformat() if c.resolved_at else None,
    }


async def _current_records(
    session: AsyncSession, actor: Actor, rows: list[SyncConflict]
) -> dict[tuple[str, uuid.UUID], Any]:
    """The current record of each conflict still in the caller's scope, by (entity, op id):
    one query per entity on the page (an entity addressed by its own ``load`` and no
    registered lookup column is read record by record)."""
    wanted: dict[str, set[uuid.UUID]] = {}
    for c in rows:
        wanted.setdefault(c.entity, set()).add(c.entity_id)
    out: dict[tuple[str, uuid.UUID], Any] = {}
    for entity, ids in wanted.items():
        handler = PUSH.get(entity)
        if handler is None:
            continue
        key = LOOKUP.get(entity)
        if key is None and handler.load is not None:
            for ident in ids:
                try:
                    out[(entity, ident)] = await handler.load(session, actor, ident)
                except NotFound:
                    pass
            continue
        key = key if key is not None else handler.model.id
        found = await session.execute(scoped(select(handler.model).where(key.in_(ids)), actor, handler.model))
        for record in found.scalars():
            out[(entity, getattr(record, key.key))] = record
    return out


async def conflict_items(
    session: AsyncSession, actor: Actor, ctx: SyncContext, rows: list[SyncConflict]
) -> list[dict[str, Any]]:
    """Conflicts as the list shows them: beside the phone's values (``client_values``), the
    server's current values of the same fields (``server_values``, masked the same way: the
    record's list view), and the ``person`` and ``household`` the record concerns. A record
    gone from the caller's scope (moved away, merged) shows none of these (null)."""
    records = await _current_records(session, actor, rows)

    def refs(entity: str, record: Any) -> tuple[uuid.UUID | None, uuid.UUID | None]:
        person = record.id if entity == "person" else getattr(record, "person_id", None)
        household = record.id if entity == "household" else getattr(record, "household_id", None)
        return person, household

    pairs = [
        refs(c.entity, records[(c.entity, c.entity_id)]) for c in rows if (c.entity, c.entity_id) in records
    ]
    people = await load_people(session, person_ids=(p for p, _ in pairs), household_ids=(h for _, h in pairs))
    out = []
    for c in rows:
        item = conflict_view(c)
        record = records.get((c.entity, c.entity_id))
        if record is None:
            item.update(server_values=None, person=None, household=None)
        else:
            handler = PUSH[c.entity]
            view = handler.view or handler.values
            assert view is not None
            now = view(record, ctx)
            person, household = refs(c.entity, record)
            item.update(
                server_values={k: now.get(k) for k in item["client_values"]},
                person=people.person(person),
                household=people.household(household, person),
            )
        out.append(item)
    return out


async def list_conflicts(
    session: AsyncSession, actor: Actor, *, status: str | None, limit: int, cursor: str | None
) -> tuple[list[SyncConflict], str | None]:
    require_role(actor, *FIELD_ROLES)
    stmt = scoped(select(SyncConflict), actor)
    if status:
        stmt = stmt.where(SyncConflict.status == status)
    return await paginate(
        session, stmt, order=[SyncConflict.created_at, SyncConflict.id], limit=limit, cursor=cursor
    )


async def count_conflicts(session: AsyncSession, actor: Actor, *, status: str | None = "open") -> int:
    """How many rows ``list_conflicts`` holds (all its pages)."""
    require_role(actor, *FIELD_ROLES)
    stmt = scoped(select(func.count()).select_from(SyncConflict), actor, SyncConflict)
    if status:
        stmt = stmt.where(SyncConflict.status == status)
    return int((await session.execute(stmt)).scalar_one())


async def get_conflict(session: AsyncSession, actor: Actor, conflict_id: uuid.UUID) -> SyncConflict:
    """One conflict in the caller's scope (404 otherwise)."""
    require_role(actor, *FIELD_ROLES)
    return await get_scoped(session, SyncConflict, conflict_id, actor)


async def conflict_for_resolving(session: AsyncSession, actor: Actor, conflict_id: uuid.UUID) -> SyncConflict:
    """The conflict a township (or county) user is about to resolve: the role first (403), then
    the scope (404), as ``resolve_conflict`` checks them."""
    require_role(actor, *SUPERVISOR_ROLES)
    return await get_scoped(session, SyncConflict, conflict_id, actor)


async def user_names(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The display names of these users (who pushed a conflict, who resolved it), one query."""
    if not ids:
        return {}
    rows = await session.execute(select(col(User.id), col(User.display_name)).where(col(User.id).in_(ids)))
    return {r[0]: r[1] for r in rows}


async def resolve_conflict(
    session: AsyncSession, actor: Actor, ctx: SyncContext, conflict_id: uuid.UUID, values: dict[str, Any]
) -> tuple[SyncConflict, dict[str, Any]]:
    """Township (or county): apply the chosen values to the current record; the conflict closes."""
    require_role(actor, *SUPERVISOR_ROLES)
    conflict = await get_scoped(session, SyncConflict, conflict_id, actor)
    if conflict.status != "open":
        raise Conflict("This conflict is already resolved", code="invalid_transition")
    handler = PUSH[conflict.entity]
    assert handler.update is not None
    if handler.load is not None:
        current = await handler.load(session, actor, conflict.entity_id)
    else:
        current = await get_scoped(session, handler.model, conflict.entity_id, actor)
    record = current
    if values:
        record = await handler.update(session, actor, ctx, conflict.entity_id, values, current.version)
    conflict.status = "resolved"
    conflict.resolved_by = actor.id
    conflict.resolved_at = utcnow()
    await session.flush()
    view = handler.view or handler.values
    assert view is not None
    return conflict, view(record, ctx)


def not_found() -> NotFound:
    return NotFound("No such record")

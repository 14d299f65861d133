"""Partner notifications: machine-to-machine intake with idempotency keys, matching, the inbox.

Partner systems (police residence registration, market-regulation business licences) retry,
resend and send typos. The rules:

- **Idempotency.** Every POST carries an ``Idempotency-Key`` (per partner client). The key is
  stored with the SHA-256 of the body (canonical JSON, so key order and spacing do not matter)
  and the answer given, success or client error, and kept at least ``KEEP_DAYS``. The same key
  with the same body gets the stored answer again (nothing is stored twice); with another body
  ``422 idempotency_key_reused``.
- **Concurrency (the design choice).** The key row is inserted *first*, in the request's own
  transaction, before anything else is done (``INSERT … ON CONFLICT DO NOTHING``), and its
  answer is written at the end of the same transaction. A committed "processing" claim is not
  possible inside one request transaction, so the unique index on ``(client_id, key)`` does the
  work: on PostgreSQL an identical request arriving meanwhile waits on that index entry until
  the first transaction ends, then inserts nothing, reads the committed row and replays its
  answer — two identical requests at the same moment store one notification and get the same
  answer. The wait is bounded by ``lock_timeout`` (``IN_FLIGHT_WAIT``); a request still waiting
  then answers ``409 idempotency_key_in_flight`` (the partner retries later). On SQLite writers
  are serialized (``BEGIN IMMEDIATE``), so the second request simply runs after the first and
  replays. A row found with ``response_status = 0`` (processing) also answers 409; with the
  single-transaction design no other request can see one, the check is a guard. No savepoints:
  every refusal is decided before the first write (``_validate``), so the hot path stays short.
- **Stored as received, nothing personal in clear.** A valid notification is stored with its
  raw body (auditable: ``received_body``) and its free-form ``details`` AES-GCM encrypted with
  the register's field keys (key id in the cipher text), the ID number as cipher text, blind
  index and mask like ``person``; name and address stay readable as in the register. Body
  digests and idempotency keys are keyed hashes (HMAC with the blind-index key, each with its
  own purpose): equality is all they are used for, and a plain SHA-256 of a body whose other
  fields are stored would give the ID number back to a brute force. A resend of the same partner
  reference and body under a new key is the same notification (unique ``(client_id,
  reference, body_sha256)``). Invalid ones are answered (422/403) and that answer is kept with
  the key, but no notification is stored.
- **Its own county only.** A partner places notifications in its own county (another county's
  ``area_code`` → 403 ``out_of_scope``), in a village; a township-level ``area_code`` only for
  ``business_licensed`` (a licence names the township of the business; a residence is always in
  a village) → 422 otherwise. Matching looks only at the person's open inflows *in the
  partner's county*: a person registered in another county (and without an open inflow here) is
  handled exactly like an unknown number — ``pending_confirmation``, no person linked, a task
  for the place named, nothing read or changed in the other county — and found by the same one
  query (``_lookup``), so neither the answer, the stored row nor the work done tells the
  partner that the number exists elsewhere.
- **Processed in the same request** (status visible through GET, the 202 says ``received``):
  ``residence_registered`` — the person (blind index of the ID number) with an open inflow in
  that area → ``matched`` (address updated); otherwise ``pending_confirmation`` and a task for
  the village. ``residence_cancelled`` — an open inflow there → ``pending_confirmation`` with a
  task to close it; none → ``dismissed`` (nothing to cancel, reason recorded).
  ``business_licensed`` — the person's open inflow in the area, else elsewhere in the county,
  gets the employer (``details.business_name``) → ``matched``; otherwise
  ``pending_confirmation`` and a task (township staff when ``area_code`` is a township: the
  task's place is the 12-digit township code, they pick the village on accept).
- **Isolation.** A partner sees only its own notifications (one by id, others' → 404; its list)
  and no other endpoint (403, by role).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import String, and_, bindparam, delete, func, insert, literal_column, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.authz.actor import Actor, scope_prefix
from app.authz.policies import FIELD_ROLES, require_role
from app.authz.scope import ensure_can_place, get_scoped, scoped
from app.core.db import metadata, utcnow
from app.core.errors import (
    AppError,
    BadRequest,
    Conflict,
    FieldError,
    InvalidTransition,
    NotFound,
    OutOfScope,
    ValidationFailed,
)
from app.core.messages import both
from app.core.pagination import paginate
from app.core.security import FieldCipher
from app.models.areas import AreaLevel
from app.models.common import Place
from app.models.households import Person
from app.models.migrants import (
    Direction,
    IdempotencyKey,
    InboxStatus,
    Migrant,
    MigrantPersonIn,
    MigrantStatus,
    NotificationAccept,
    NotificationDismiss,
    NotificationKind,
    NotificationPublic,
    NotificationStatus,
    PartnerNotification,
    PartnerNotificationIn,
)
from app.models.users import MachineClient, Role
from app.models.visits import Task, TaskKind
from app.services import areas as areas_svc
from app.services import audit
from app.services import households as hh
from app.services import indicator_upkeep as upkeep
from app.services import migrants as migrants_svc
from app.services import tasks as tasks_svc
from app.services.changes import change_row
from app.services.idnumber import IdNumberError, mask_id_number, parse_id_number
from app.services.records import touch
from app.services.summaries import load_people

KEEP_DAYS = 30
IN_FLIGHT_WAIT = "5s"  # PostgreSQL lock_timeout while waiting on a concurrent identical request
CONFIRM_WITHIN = timedelta(days=7)
PROCESSING = 0
SOURCE = "migrant_notification"
_AREA_RE = re.compile(r"^[0-9]{12}$")

# Key rows are bookkeeping (the notification itself is audited as written by the partner).
audit.NOT_AUDITED.add("idempotency_key")
hh.register_person_ref(PartnerNotification, "person_id")


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    replayed: bool = False


# Cipher contexts (AES-GCM associated data) of what a notification stores encrypted.
BODY_CONTEXT = b"partner_notification.body"
DETAILS_CONTEXT = b"partner_notification.details"
_BODY_DIGEST_PURPOSE = b"partner_body\x00"


def canonical_body(raw: bytes) -> bytes:
    """The body as canonical JSON (sorted keys, no spaces); the bytes if the body is not JSON."""
    try:
        return json.dumps(json.loads(raw), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    except ValueError:
        return raw


def body_digest(cipher: FieldCipher, raw: bytes) -> str:
    """Keyed digest of the canonical body: HMAC-SHA256 with the blind-index key (a purpose of
    its own), so the stored digest cannot be tested against guessed bodies."""
    return hmac.new(cipher.blind_key, _BODY_DIGEST_PURPOSE + canonical_body(raw), hashlib.sha256).hexdigest()


def _unkeyed_digest(raw: bytes) -> str:
    """The digest key rows written before revision b14a00000002 hold when their answer was an
    error (no stored body to re-key them from); they expire within ``KEEP_DAYS``."""
    return hashlib.sha256(canonical_body(raw)).hexdigest()


def key_digest(cipher: FieldCipher, key: str) -> str:
    """What the ``idempotency_key.key`` column holds for an ``Idempotency-Key``."""
    return cipher.blind_index(key, purpose="idempotency_key")


def received_body(cipher: FieldCipher, n: PartnerNotification) -> str:
    """The body exactly as the partner sent it (for audit)."""
    return cipher.decrypt(n.body_enc, context=BODY_CONTEXT)


def _details(cipher: FieldCipher, n: PartnerNotification) -> dict[str, Any] | None:
    if n.details_enc is None:
        return None
    value: dict[str, Any] = json.loads(cipher.decrypt(n.details_enc, context=DETAILS_CONTEXT))
    return value


# --- intake -------------------------------------------------------------------------------------


async def _stored_key(session: AsyncSession, client_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    stmt = select(IdempotencyKey).where(IdempotencyKey.client_id == client_id, IdempotencyKey.key == key)
    return (await session.execute(stmt)).scalar_one_or_none()


def _is_lock_timeout(exc: DBAPIError) -> bool:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code == "55P03" or "lock timeout" in str(orig)


def _in_flight() -> Conflict:
    return Conflict(
        "A request with this Idempotency-Key is still being processed; retry later",
        code="idempotency_key_in_flight",
    )


# The hot path's statements, built once: building an INSERT with ``.values(**row)`` and its
# cache key per request cost more Python time than the database spent running it.
_KEYS = metadata.tables[IdempotencyKey.__tablename__]
_NOTIFICATIONS = metadata.tables[PartnerNotification.__tablename__]
_KEY_COLUMNS = [
    "id",
    "client_id",
    "key",
    "request_sha256",
    "response_status",
    "response_body",
    "created_at",
    "expires_at",
]


def _claim_pg() -> Any:
    """The key row's INSERT, with ``lock_timeout`` set for this transaction by the same statement
    (a CTE the INSERT reads its row from, so it runs first): one round trip, not two."""
    wait = bindparam("wait", type_=String())
    cfg = sa_select(func.set_config("lock_timeout", wait, True).label("v")).cte("cfg")
    row = sa_select(*(bindparam(c, type_=_KEYS.c[c].type) for c in _KEY_COLUMNS)).select_from(cfg)
    return pg_insert(_KEYS).from_select(_KEY_COLUMNS, row).on_conflict_do_nothing().returning(_KEYS.c.id)


_CLAIM = {
    "postgresql": _claim_pg(),
    "sqlite": sqlite_insert(_KEYS).on_conflict_do_nothing().returning(_KEYS.c.id),
}
_STORE_SQLITE = (
    sqlite_insert(_NOTIFICATIONS)
    .on_conflict_do_nothing(index_elements=["client_id", "reference", "body_sha256"])
    .returning(_NOTIFICATIONS.c.id)
)
_ANSWER = (
    update(_KEYS)
    .where(_KEYS.c.id == bindparam("claim_id"))
    .values(
        response_status=bindparam("status"),
        response_body=bindparam("body"),
        notification_id=bindparam("notification_id"),
    )
)


_TASKS = metadata.tables["task"]
_AUDITS = metadata.tables["audit_event"]
_CHANGES = metadata.tables["change"]
_CHANGE_COLUMNS = [c.name for c in _CHANGES.c if c.name not in ("seq", "tx_id")]


def _from_row(
    table: Any, prefix: str, source: Any, columns: list[str], extra: dict[str, Any] | None = None
) -> Any:
    """INSERT INTO table SELECT <bound values> FROM source: one row when ``source`` has one."""
    extra = extra or {}
    values = [bindparam(f"{prefix}{c}", type_=table.c[c].type) for c in columns]
    row = sa_select(*extra.values(), *values).select_from(source)
    return insert(table).from_select([*extra, *columns], row)


def _store_pg(with_task: bool) -> Any:
    """PostgreSQL: the notification, its audit row and, when it opens one, the inbox task with its
    audit and change-log rows, in one statement (data-modifying CTEs that insert only when the
    notification was new). The ORM path did this in five round trips and an ORM flush."""
    stored = (
        pg_insert(_NOTIFICATIONS)
        .values({c.name: bindparam(f"n_{c.name}", type_=c.type) for c in _NOTIFICATIONS.c})
        .on_conflict_do_nothing(index_elements=["client_id", "reference", "body_sha256"])
        .returning(_NOTIFICATIONS.c.id)
        .cte("n")
    )
    audits = [c.name for c in _AUDITS.c]
    ctes = [_from_row(_AUDITS, "a_", stored, audits).cte("a")]
    if with_task:
        ctes += [
            _from_row(_TASKS, "t_", stored, [c.name for c in _TASKS.c]).cte("t"),
            _from_row(_AUDITS, "ta_", stored, audits).cte("ta"),
            _from_row(
                _CHANGES,
                "tc_",
                stored,
                _CHANGE_COLUMNS,
                {"tx_id": literal_column("pg_current_xact_id()::text::bigint")},
            ).cte("tc"),
        ]
    return sa_select(stored.c.id).add_cte(*ctes)


_STORE_PG = {False: _store_pg(False), True: _store_pg(True)}


async def _claim(session: AsyncSession, client_id: uuid.UUID, key: str, digest: str) -> uuid.UUID | None:
    """Insert the key row (``ON CONFLICT DO NOTHING``): its id, or None when the key is taken.

    On PostgreSQL a concurrent uncommitted insert of the same key makes this wait (at most
    ``IN_FLIGHT_WAIT``) for that transaction to end; a timeout aborts this request with 409."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    now = utcnow()
    values = {
        "id": uuid.uuid4(),
        "client_id": client_id,
        "key": key,
        "request_sha256": digest,
        "response_status": PROCESSING,
        "response_body": "{}",
        "created_at": now,
        "expires_at": now + timedelta(days=KEEP_DAYS),
    }
    if dialect == "postgresql":
        values["wait"] = IN_FLIGHT_WAIT
    stmt = _CLAIM[dialect]
    try:
        inserted = (await session.execute(stmt, values)).scalar_one_or_none()
    except DBAPIError as exc:
        if _is_lock_timeout(exc):
            raise _in_flight() from None
        raise
    return uuid.UUID(str(inserted)) if inserted is not None else None


def _replay(stored: IdempotencyKey, raw: bytes, digest: str) -> Answer:
    if stored.request_sha256 != digest and stored.request_sha256 != _unkeyed_digest(raw):
        raise ValidationFailed(
            "This Idempotency-Key was used with a different body",
            code="idempotency_key_reused",
            errors=[FieldError(field="Idempotency-Key", message="already used with a different body")],
        )
    if stored.response_status == PROCESSING:
        raise _in_flight()
    return Answer(stored.response_status, json.loads(stored.response_body), replayed=True)


async def receive(
    session: AsyncSession, actor: Actor, cipher: FieldCipher, *, key: str | None, raw: bytes
) -> Answer:
    """A partner's POST: answer a known key from storage, else store and process the body."""
    require_role(actor, Role.partner)
    if key is None or not key.strip():
        raise BadRequest("Send an Idempotency-Key header (≤ 255 characters)", code="idempotency_key_required")
    digest = body_digest(cipher, raw)
    hashed_key = key_digest(cipher, key)
    claim_id = await _claim(session, actor.id, hashed_key, digest)
    if claim_id is None:  # the key is known (stored, or just committed by a concurrent request)
        stored = await _stored_key(session, actor.id, hashed_key)
        if stored is None:
            raise _in_flight()
        return _replay(stored, raw, digest)
    notification_id: uuid.UUID | None = None
    try:
        valid = await _validate(session, actor, raw)
    except AppError as err:  # a client error is an answer, kept with the key; nothing stored
        body = err.body()
        body.pop("request_id", None)
        answer = Answer(err.status, body)
    else:
        notification_id = await _store_and_process(session, actor, cipher, valid, raw, digest)
        answer = Answer(202, {"id": str(notification_id), "status": NotificationStatus.received.value})
    await session.execute(
        _ANSWER,
        {
            "claim_id": claim_id,
            "status": answer.status,
            "body": json.dumps(answer.body, ensure_ascii=False),
            "notification_id": notification_id,
        },
    )
    return answer


def _parse(raw: bytes) -> PartnerNotificationIn:
    try:
        return PartnerNotificationIn.model_validate_json(raw)
    except ValidationError as exc:
        errors = [
            FieldError(field=".".join(str(p) for p in e["loc"]) or "body", message=e["msg"])
            for e in exc.errors()
        ]
        raise ValidationFailed("The notification has invalid fields", errors=errors) from None


@dataclass
class Valid:
    data: PartnerNotificationIn
    number: str


# Levels of area codes known to be a village or township (areas are added, never removed or
# re-levelled).
_NOTIFIABLE_AREAS: dict[str, AreaLevel] = {}


async def _validate(session: AsyncSession, actor: Actor, raw: bytes) -> Valid:
    """Every check that can refuse a notification, before anything is written."""
    data = _parse(raw)
    try:
        number = parse_id_number(data.id_number).number
    except IdNumberError as exc:
        raise hh.invalid("id_number", exc.reason, "id_number_invalid") from None
    if not data.area_code.startswith(actor.county_code):
        raise OutOfScope("That area is outside your county")
    level = _NOTIFIABLE_AREAS.get(data.area_code)
    if level is None:
        area = await areas_svc.get_area(session, data.area_code)
        if area is None or area.level not in (AreaLevel.village, AreaLevel.township):
            raise hh.invalid("area_code", "no such village or township")
        level = _NOTIFIABLE_AREAS[data.area_code] = AreaLevel(area.level)
    if level != AreaLevel.village and data.kind != NotificationKind.business_licensed:
        raise hh.invalid("area_code", "must be a village (a township only for business_licensed)")
    migrants_svc.check_not_future(data.occurred_on, "occurred_on")
    return Valid(data, number)


def _lookup_stmt(by_hash: bool) -> Any:
    """The person with this blind index (or id) and her open inflows in one county, in one
    statement: a row per inflow there, one row with no inflow when she has none there, no row
    for an unknown number."""
    key = col(Person.id_number_hash) == bindparam("hash") if by_hash else col(Person.id) == bindparam("id")
    inflow_here = and_(
        col(Migrant.person_id) == col(Person.id),
        col(Migrant.county_code) == bindparam("county"),
        col(Migrant.direction) == Direction.inflow.value,
        col(Migrant.status) == MigrantStatus.open.value,
    )
    return (
        select(col(Person.id), col(Person.merged_into_id), col(Person.county_code), Migrant)
        .select_from(Person)
        .outerjoin(Migrant, inflow_here)
        .where(key)
        .order_by(col(Migrant.created_at))
    )


_LOOKUP_BY_HASH = _lookup_stmt(by_hash=True)
_LOOKUP_BY_ID = _lookup_stmt(by_hash=False)


async def _lookup(
    session: AsyncSession, cipher: FieldCipher, number: str, county: str
) -> tuple[uuid.UUID | None, list[Migrant]]:
    """The person a notification names, as far as the partner's county goes: her id when she is
    registered in that county or has an open inflow there (else None: another county's person
    is an unknown number), and her open inflows there, oldest first. A merged record is
    followed to the surviving one."""
    params: dict[str, Any] = {"hash": cipher.blind_index(number), "county": county}
    rows = (await session.execute(_LOOKUP_BY_HASH, params)).all()
    for _ in range(5):
        if not rows or rows[0].merged_into_id is None:
            break
        rows = (await session.execute(_LOOKUP_BY_ID, {"id": rows[0].merged_into_id, "county": county})).all()
    if not rows:
        return None, []
    inflows = [row.Migrant for row in rows if row.Migrant is not None]
    in_county = rows[0].county_code == county or bool(inflows)
    return (rows[0].id if in_county else None), inflows


async def _store_and_process(
    session: AsyncSession, actor: Actor, cipher: FieldCipher, valid: Valid, raw: bytes, digest: str
) -> uuid.UUID:
    """Store the notification as received, matched in the same step; its id.

    The same reference and body sent earlier under another key is that notification (the
    unique ``(client_id, reference, body_sha256)`` with ``ON CONFLICT DO NOTHING``; a concurrent
    one waits for the first to commit). On PostgreSQL the notification, its audit row and the
    confirming task (with its audit and change rows) are one statement (``_store_pg``); SQLite
    inserts the notification and its audit row with Core and the task through the ORM."""
    data, number = valid.data, valid.number
    person_id, inflows = await _lookup(session, cipher, number, actor.county_code)
    now = utcnow()
    n: dict[str, Any] = {
        "id": uuid.uuid4(),
        "created_at": now,
        "updated_at": now,
        "version": 1,
        "client_id": actor.id,
        "agency": await _agency(session, actor),
        "kind": data.kind.value,
        "reference": data.reference,
        "id_number_enc": cipher.encrypt(number, context=b"id_number"),
        "id_number_hash": cipher.blind_index(number),
        "id_number_masked": mask_id_number(number),
        "name": data.name,
        "address": data.address,
        "area_code": data.area_code,
        "occurred_on": data.occurred_on,
        "details_enc": (
            cipher.encrypt(json.dumps(data.details, ensure_ascii=False), context=DETAILS_CONTEXT)
            if data.details is not None
            else None
        ),
        "body_enc": cipher.encrypt(raw.decode("utf-8", errors="replace"), context=BODY_CONTEXT),
        "body_sha256": digest,
        "status": NotificationStatus.received.value,
        "person_id": person_id,
        "migrant_id": None,
        "received_at": now,
        "decided_at": None,
        "decided_by": None,
        "dismiss_reason": None,
        **_place(data.area_code),
    }
    outcome = _match(n, inflows, data)
    task = (
        tasks_svc.task_row(
            kind=TaskKind.notification_confirm,
            title=outcome.task_title,
            due_on=migrants_svc.local_today() + CONFIRM_WITHIN,
            village_code=n["village_code"],
            source_entity=SOURCE,
            source_id=n["id"],
        )
        if outcome.task_title is not None
        else None
    )
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    if dialect == "postgresql":
        params = {f"n_{k}": v for k, v in n.items()}
        params.update(_prefixed("a_", audit.create_row(actor, "partner_notification", n["id"], None)))
        if task is not None:
            params.update(_prefixed("t_", task))
            params.update(_prefixed("ta_", audit.create_row(actor, "task", task["id"], None)))
            place = (task["county_code"], task["township_code"], task["village_code"])
            change = change_row("task", task["id"], 1, deleted=False, place=place, at=now)
            params.update(_prefixed("tc_", change))
        stored = (await session.execute(_STORE_PG[task is not None], params)).scalar_one_or_none()
    else:
        stored = (await session.execute(_STORE_SQLITE, n)).scalar_one_or_none()
    if stored is None:
        earlier = select(PartnerNotification.id).where(
            PartnerNotification.client_id == actor.id,
            PartnerNotification.reference == data.reference,
            PartnerNotification.body_sha256 == digest,
        )
        return (await session.execute(earlier)).scalar_one()
    if dialect != "postgresql":
        await audit.record_now(session, actor, "create", "partner_notification", n["id"])
        if task is not None:
            session.add(Task(**task))
    elif task is not None:
        upkeep.wrote_in(session, task["county_code"])
    if outcome.record is not None and outcome.changes:
        for key, value in outcome.changes.items():
            setattr(outcome.record, key, value)
        touch(outcome.record)
    return uuid.UUID(str(n["id"]))


def _prefixed(prefix: str, row: dict[str, Any]) -> dict[str, Any]:
    return {prefix + k: v for k, v in row.items()}


_AGENCIES: dict[uuid.UUID, str | None] = {}


async def _agency(session: AsyncSession, actor: Actor) -> str | None:
    """The client's agency (fixed when the client is created; cached per process)."""
    if actor.id not in _AGENCIES:
        client = await session.get(MachineClient, actor.id)
        _AGENCIES[actor.id] = str(client.agency) if client is not None and client.agency else None
    return _AGENCIES[actor.id]


def _place(area_code: str) -> Place:
    """A village's place, or for a township the 12-digit township code as the village column
    (township staff see it; no village cadre does)."""
    return {"county_code": area_code[:6], "township_code": area_code[:9], "village_code": area_code}


def _employer(details: dict[str, Any] | None, reference: str) -> str:
    details = details or {}
    for key in ("business_name", "employer", "enterprise_name"):
        value = details.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:200]
    return f"营业执照 {reference}"[:200]


def _in_area(m: Migrant, area_code: str) -> bool:
    return m.village_code.startswith(scope_prefix(area_code))


@dataclass
class Outcome:
    """What processing a notification changes besides storing it."""

    record: Migrant | None = None
    changes: dict[str, str] = field(default_factory=dict)
    task_title: tuple[str, str] | None = None


def _match(n: dict[str, Any], inflows: list[Migrant], data: PartnerNotificationIn) -> Outcome:
    """Decide the notification's status (set in the row ``n``) from the person's open inflows
    (see module docstring)."""
    here = [m for m in inflows if _in_area(m, n["area_code"])]
    if data.kind == NotificationKind.residence_registered:
        if here:
            n["migrant_id"], n["status"] = here[0].id, NotificationStatus.matched.value
            changes = {"address": data.address} if here[0].address != data.address else {}
            return Outcome(here[0], changes)
        n["status"] = NotificationStatus.pending_confirmation.value
        return Outcome(task_title=both("task.residence_registered", name=data.name, address=data.address))
    if data.kind == NotificationKind.residence_cancelled:
        if here:
            n["migrant_id"], n["status"] = here[0].id, NotificationStatus.pending_confirmation.value
            return Outcome(task_title=both("task.residence_cancelled", name=data.name))
        n["status"] = NotificationStatus.dismissed.value
        n["dismiss_reason"] = "nothing to cancel: no open inflow record there"
        n["decided_at"] = utcnow()
        return Outcome()
    target = here[0] if here else (inflows[0] if inflows else None)
    if target is not None:
        n["migrant_id"], n["status"] = target.id, NotificationStatus.matched.value
        employer = _employer(data.details, data.reference)
        return Outcome(target, {"employer": employer} if target.employer != employer else {})
    n["status"] = NotificationStatus.pending_confirmation.value
    return Outcome(task_title=both("task.business_licensed", name=data.name, address=data.address))


async def notification_status(
    session: AsyncSession, actor: Actor, notification_id: uuid.UUID
) -> PartnerNotification:
    """A partner reads the status of a notification it sent; anyone else's is 404."""
    require_role(actor, Role.partner)
    stmt = select(PartnerNotification).where(
        PartnerNotification.id == notification_id, PartnerNotification.client_id == actor.id
    )
    n = (await session.execute(stmt)).scalar_one_or_none()
    if n is None:
        raise NotFound("No notification with this id")
    return n


async def list_own(
    session: AsyncSession,
    actor: Actor,
    *,
    status: NotificationStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[PartnerNotification], str | None]:
    """A partner's own notifications, oldest first (keyset on ``(received_at, id)``: a partner
    walking the list to reconcile also reaches the ones sent meanwhile); never another
    client's, whatever the county."""
    require_role(actor, Role.partner)
    stmt = select(PartnerNotification).where(PartnerNotification.client_id == actor.id)
    if status is not None:
        stmt = stmt.where(PartnerNotification.status == status.value)
    return await paginate(
        session,
        stmt,
        order=[PartnerNotification.received_at, PartnerNotification.id],
        limit=limit,
        cursor=cursor,
    )


async def purge_expired_keys(session: AsyncSession) -> int:
    """Forget keys past their keeping period (at least ``KEEP_DAYS``); for a periodic job."""
    result = await session.execute(delete(IdempotencyKey).where(col(IdempotencyKey.expires_at) < utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


# --- the inbox ----------------------------------------------------------------------------------


async def notification_views(
    session: AsyncSession, actor: Actor, cipher: FieldCipher, rows: list[PartnerNotification]
) -> list[NotificationPublic]:
    """Inbox items (``details`` decrypted); a matched person (id, summary, household) only when
    that person is in the reader's scope. One query for the people of the whole page."""
    people = await load_people(session, person_ids=(n.person_id for n in rows), actor=actor)
    out = []
    for n in rows:
        visible = people.person(n.person_id) is not None
        out.append(
            NotificationPublic(
                id=n.id,
                kind=NotificationKind(n.kind),
                agency=n.agency,
                status=NotificationStatus(n.status),
                name=n.name,
                id_number_masked=n.id_number_masked,
                address=n.address,
                area_code=n.area_code,
                village_code=n.village_code,
                occurred_on=n.occurred_on,
                reference=n.reference,
                details=_details(cipher, n),
                person_id=n.person_id if visible else None,
                migrant_id=n.migrant_id,
                received_at=n.received_at,
                decided_at=n.decided_at,
                decided_by=n.decided_by,
                dismiss_reason=n.dismiss_reason,
                version=n.version,
                person=people.person(n.person_id),
                household=people.household(person_id=n.person_id),
            )
        )
    return out


DECIDERS = (Role.village, Role.township)


async def list_inbox(
    session: AsyncSession,
    actor: Actor,
    *,
    status: InboxStatus | None,
    kind: NotificationKind | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[PartnerNotification], str | None]:
    """Notifications placed in the caller's scope, oldest first (village cadres: their village;
    township staff: their villages and the township-level ones)."""
    require_role(actor, *FIELD_ROLES)
    stmt = scoped(select(PartnerNotification), actor)
    if status is not None:
        wanted = NotificationStatus.pending_confirmation if status == InboxStatus.pending else status.value
        stmt = stmt.where(PartnerNotification.status == wanted)
    if kind is not None:
        stmt = stmt.where(PartnerNotification.kind == kind)
    return await paginate(
        session,
        stmt,
        order=[PartnerNotification.received_at, PartnerNotification.id],
        limit=limit,
        cursor=cursor,
    )


async def count_inbox(session: AsyncSession, actor: Actor, *, status: InboxStatus | None) -> int:
    """How many notifications ``list_inbox`` holds with this status (the workbench's queues)."""
    require_role(actor, *FIELD_ROLES)
    stmt = scoped(sa_select(func.count()).select_from(PartnerNotification), actor, PartnerNotification)
    if status is not None:
        wanted = NotificationStatus.pending_confirmation if status == InboxStatus.pending else status.value
        stmt = stmt.where(col(PartnerNotification.status) == wanted)
    return int((await session.execute(stmt)).scalar_one())


def may_decide(actor: Actor) -> bool:
    """Who may accept or dismiss a notification (``_pending_for_decision``)."""
    return actor.role in DECIDERS


async def get_notification(
    session: AsyncSession, actor: Actor, notification_id: uuid.UUID
) -> PartnerNotification:
    require_role(actor, *FIELD_ROLES)
    return await get_scoped(session, PartnerNotification, notification_id, actor)


async def _pending_for_decision(
    session: AsyncSession, actor: Actor, notification_id: uuid.UUID
) -> PartnerNotification:
    """The notification, locked (a second decision waits, then sees it decided: 409)."""
    require_role(actor, *DECIDERS)
    stmt = (
        scoped(select(PartnerNotification), actor)
        .where(PartnerNotification.id == notification_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    n = (await session.execute(stmt)).scalar_one_or_none()
    if n is None:
        raise NotFound("No notification with this id")
    if n.status != NotificationStatus.pending_confirmation:
        raise InvalidTransition(f"The notification is {n.status}; it was decided already")
    return n


def _decided(actor: Actor, n: PartnerNotification, status: NotificationStatus) -> None:
    n.status = status
    n.decided_at = utcnow()
    n.decided_by = actor.id
    touch(n)


async def accept(
    session: AsyncSession,
    actor: Actor,
    cipher: FieldCipher,
    notification_id: uuid.UUID,
    data: NotificationAccept,
) -> PartnerNotification:
    """Apply a pending notification in one transaction: create or update the inflow (and the
    person, if new); for a cancellation close the inflow. Township-level ones need the village."""
    n = await _pending_for_decision(session, actor, notification_id)
    village = n.village_code
    if village.endswith("000"):
        if data.village_code is None:
            raise hh.invalid("village_code", "choose the village of this township-level notification")
        if not data.village_code.startswith(n.township_code):
            raise hh.invalid("village_code", "the village is not in the notification's township")
        village = data.village_code
    elif data.village_code is not None and data.village_code != village:
        raise hh.invalid("village_code", "the notification names another village")
    ensure_can_place(actor, village)
    await areas_svc.require_area(session, village, field="village_code")
    number = cipher.decrypt(n.id_number_enc, context=b"id_number")
    person = await migrants_svc.find_by_id_number(session, cipher, number)
    details = _details(cipher, n) or {}
    inflows = await migrants_svc.open_records(session, person.id, Direction.inflow) if person else []
    here = [m for m in inflows if m.village_code == village]
    record: Migrant | None = None
    if n.kind == NotificationKind.residence_cancelled:
        record = here[0] if here else None
        if record is None and n.migrant_id is not None:
            record = await session.get(Migrant, n.migrant_id)
        if record is not None and record.status == MigrantStatus.open:
            migrants_svc.close_record(record, n.occurred_on, data.close_reason)
            await tasks_svc.cancel_tasks_for(session, "migrant", record.id)
            if person is not None:
                await session.flush()
                await hh.person_changed(session, person, "migrant")
    else:
        employer = _employer(details, n.reference) if n.kind == NotificationKind.business_licensed else None
        if n.kind == NotificationKind.business_licensed and not here:
            # her open inflow elsewhere in the notification's county, as intake matches it;
            # never another county's record
            here = [m for m in inflows if m.county_code == n.county_code]
        if here:
            record = here[0]
            if n.kind == NotificationKind.residence_registered:
                record.address = n.address
            else:
                record.employer = employer
            touch(record)
        else:
            origin = details.get("origin_area_code")
            origin = origin if isinstance(origin, str) and _AREA_RE.match(origin) else None
            if person is None:
                person = await migrants_svc.person_for_inflow(
                    session,
                    actor,
                    cipher,
                    person_in=MigrantPersonIn(
                        id_number=number, name=n.name, marital_status=data.marital_status
                    ),
                    village_code=village,
                    household_id=data.household_id,
                    household_type=data.household_type,
                    address=n.address,
                    origin_area_code=origin,
                    phone=None,
                )
            record = await migrants_svc.open_inflow(
                session,
                actor,
                person,
                migrant_id=None,
                village_code=village,
                moved_on=n.occurred_on,
                origin_area_code=origin,
                address=n.address,
                employer=employer,
                phone_enc=None,
                name_for_task=n.name,
                household_id=data.household_id,
            )
    n.person_id = person.id if person is not None else None
    n.migrant_id = record.id if record is not None else n.migrant_id
    _decided(actor, n, NotificationStatus.applied)
    await tasks_svc.cancel_tasks_for(session, SOURCE, n.id)
    await session.flush()
    return n


async def dismiss(
    session: AsyncSession, actor: Actor, notification_id: uuid.UUID, data: NotificationDismiss
) -> PartnerNotification:
    """Decide that a pending notification needs no change (a typo, a person not living here)."""
    n = await _pending_for_decision(session, actor, notification_id)
    n.dismiss_reason = data.reason
    _decided(actor, n, NotificationStatus.dismissed)
    await tasks_svc.cancel_tasks_for(session, SOURCE, n.id)
    await session.flush()
    return n

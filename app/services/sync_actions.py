"""Every field action syncs (issue 15): the push entities that act on an existing record
(``checkup_decline``, ``checkup_exempt``, ``task_completion``, ``migrant_close``), ``claim`` ops,
claims in pull, and the batched path of ``checkup_result`` ops.

Decisions where the contract is silent:

- An action op's ``id`` is the record acted on (appointment, task, migrant record). Its data
  may repeat that id (``appointment_id``, ``task_id``, ``migrant_id``): it must then equal
  ``id``, else the op is ``rejected`` (422 ``validation_failed`` on that field) — a phone that
  sends two different ids has a bug, and guessing which one it meant could act on the wrong
  woman.
- Each action goes through the REST endpoint's service function, so scope, rules and errors are
  the same; a record outside the caller's scope answers ``not_found`` exactly like a record that
  does not exist.
- A stale ``base_version`` on an action is a ``conflict`` with the current record and writes
  nothing; no conflict row is stored for the township (an action has no fields to merge: the
  phone pulls and its cadre decides again).
- A ``claim`` op creates a draft (``base_version`` null) or corrects one (a version: the fields
  of ``PATCH /claims/{id}``, merged field by field like every update); ``"submit": true`` then
  submits it in the same op. The op is whole or nothing: a submit the rules refuse (e.g.
  ``not_eligible``) rejects the op and the draft it would have created or changed is not kept,
  so a re-send after the fix does all of it.
- Consecutive new ``checkup_result`` ops are checked in memory against their appointments and
  rounds (read once) and written by one flush, with the answers each op would get alone
  (``build_result``: the rules of ``checkups.record_result``, in the same order).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import Field
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.authz.actor import Actor
from app.authz.policies import FIELD_ROLES, require_role
from app.authz.scope import get_many_scoped
from app.core import clock
from app.core.errors import Conflict, IdConflict, NotFound
from app.models.checkups import (
    CheckupAppointment,
    CheckupRound,
    DeclineIn,
    ExemptIn,
    ResultIn,
)
from app.models.claims import Claim, ClaimCreate, ClaimStatus, ClaimUpdate, RuleVersion, RuleVersionRef
from app.models.migrants import Migrant, MigrantClose
from app.models.visits import Task, TaskComplete
from app.services import checkups, sync
from app.services import claims as claims_svc
from app.services import households as hh
from app.services import migrants as migrants_svc
from app.services import tasks as tasks_svc
from app.services.changes import FIELD_ALIASES, register_synced

register_synced("claim", "claim")
# a claim's payee columns are the one API field ``payee`` (field-level merging of stale edits)
FIELD_ALIASES.update(
    {
        "payee_name": "payee",
        "payee_bank": "payee",
        "payee_account_enc": "payee",
        "payee_account_masked": "payee",
    }
)


def _today() -> date:
    """The business day of ``checkups.record_result`` (kept in step with it)."""
    return clock.today()


def _acted_on(data: dict[str, Any], key: str, ident: uuid.UUID) -> dict[str, Any]:
    """The op's data without the repeated id of the record acted on (which must be ``ident``)."""
    out = dict(data)
    given = out.pop(key, None)
    if given is not None:
        try:
            same = uuid.UUID(str(given)) == ident
        except ValueError:
            same = False
        if not same:
            raise hh.invalid(key, "must be the op's id (the record acted on), or left out")
    return out


# --- action entities --------------------------------------------------------------------------


async def _decline(
    s: AsyncSession, a: Actor, _c: sync.SyncContext, i: uuid.UUID, d: dict[str, Any]
) -> CheckupAppointment:
    body = sync._schema(DeclineIn, _acted_on(d, "appointment_id", i))
    return (await checkups.decline(s, a, i, body))[0]


async def _exempt(
    s: AsyncSession, a: Actor, _c: sync.SyncContext, i: uuid.UUID, d: dict[str, Any]
) -> CheckupAppointment:
    body = sync._schema(ExemptIn, _acted_on(d, "appointment_id", i))
    return (await checkups.exempt(s, a, i, body))[0]


async def _complete(s: AsyncSession, a: Actor, _c: sync.SyncContext, i: uuid.UUID, d: dict[str, Any]) -> Task:
    body = sync._schema(TaskComplete, _acted_on(d, "task_id", i))
    return await tasks_svc.complete_task(s, a, i, body.note)


async def _close(s: AsyncSession, a: Actor, _c: sync.SyncContext, i: uuid.UUID, d: dict[str, Any]) -> Migrant:
    body = sync._schema(MigrantClose, _acted_on(d, "migrant_id", i))
    return await migrants_svc.close_migrant(s, a, i, body)


def _appointment_view(appt: Any, _c: sync.SyncContext) -> dict[str, Any]:
    return checkups.appointment_public(appt).model_dump(mode="json")


def _migrant_view(m: Any, c: sync.SyncContext) -> dict[str, Any]:
    return migrants_svc.migrant_public(m, c.cipher).model_dump(mode="json")


async def _load_task(s: AsyncSession, a: Actor, i: uuid.UUID) -> Task:
    require_role(a, *FIELD_ROLES)
    from app.authz.scope import get_scoped

    return await get_scoped(s, Task, i, a)


async def _unused_create(*_args: Any) -> Any:  # action entities never create
    raise AssertionError("action entities apply through their action")


# --- claims -----------------------------------------------------------------------------------

# Rule versions are insert-only: their reference (id, area, effective date) is kept per process.
_RULE_REFS: dict[uuid.UUID, RuleVersionRef] = {}


async def _prime_rule_refs(session: AsyncSession, claims: list[Any]) -> None:
    missing = {c.rule_version_id for c in claims if c.rule_version_id not in _RULE_REFS}
    if not missing:
        return
    rows = await session.execute(
        sa_select(col(RuleVersion.id), col(RuleVersion.area_code), col(RuleVersion.effective_from)).where(
            col(RuleVersion.id).in_(missing)
        )
    )
    for ident, area, effective in rows.all():
        _RULE_REFS[ident] = RuleVersionRef(id=ident, area_code=area, effective_from=effective)


def _claim_view(c: Any, _c: sync.SyncContext) -> dict[str, Any]:
    """The claim as ``GET /claims`` lists it (rule versions read by ``_prime_rule_refs``)."""
    return claims_svc.claim_view(c, _RULE_REFS[c.rule_version_id]).model_dump(mode="json")


def _claim_values(c: Any, ctx: sync.SyncContext) -> dict[str, Any]:
    """Current values compared with a stale op's fields: ``payee`` as the op sends it (the full
    account number, never answered: answers use ``_claim_view``)."""
    out = _claim_view(c, ctx)
    account = claims_svc._payee_account(c, ctx.cipher)
    out["payee"] = (
        {"name": c.payee_name, "bank": c.payee_bank, "account": account} if account is not None else None
    )
    return out


def _submit_flag(data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    out = dict(data)
    submit = out.pop("submit", False)
    if not isinstance(submit, bool):
        raise hh.invalid("submit", "must be true or false")
    return out, submit


async def _submit(s: AsyncSession, a: Actor, c: sync.SyncContext, claim: Claim) -> Claim:
    return await claims_svc.transition(s, a, c.cipher, claim.id, "submit")


async def _create_claim(
    s: AsyncSession, a: Actor, c: sync.SyncContext, i: uuid.UUID, d: dict[str, Any]
) -> Claim:
    data, submit = _submit_flag(d)
    claim, _created = await claims_svc.create_claim(s, a, c.cipher, sync._schema(ClaimCreate, data, id=i))
    if submit and claim.status in (ClaimStatus.draft, ClaimStatus.returned):
        claim = await _submit(s, a, c, claim)
    await _prime_rule_refs(s, [claim])
    return claim


async def _update_claim(
    s: AsyncSession, a: Actor, c: sync.SyncContext, i: uuid.UUID, d: dict[str, Any], v: int
) -> Claim:
    data, submit = _submit_flag(d)
    fields = sync._schema(ClaimUpdate, data)
    if fields.model_fields_set or not submit:
        claim = await claims_svc.update_claim(s, a, c.cipher, i, fields, v)
    else:  # only ``submit``: nothing to correct first
        claim = await claims_svc.get_claim(s, a, i)
    if submit:
        claim = await _submit(s, a, c, claim)
    await _prime_rule_refs(s, [claim])
    return claim


async def _load_claim(s: AsyncSession, a: Actor, i: uuid.UUID) -> Claim:
    claim = await claims_svc.get_claim(s, a, i)
    await _prime_rule_refs(s, [claim])
    return claim


# --- batched ``checkup_result`` ops -------------------------------------------------------------


class ResultOp(ResultIn):
    """A ``checkup_result`` op's data: the result and the appointment it is for."""

    appointment_id: uuid.UUID = Field(description="The appointment the result is recorded on")


@dataclass
class ResultRefs:
    """What a run of new results refers to, read once: the appointments in the caller's scope,
    their rounds, and the result ids of the run already used by another appointment (any
    scope). Results built in the run are added, so a later op of the run sees them."""

    appointments: dict[uuid.UUID, CheckupAppointment]
    rounds: dict[uuid.UUID, CheckupRound]
    taken: dict[uuid.UUID, uuid.UUID]  # result id → appointment id
    today: date


async def load_results(session: AsyncSession, actor: Actor, items: list[Any]) -> ResultRefs:
    require_role(actor, *FIELD_ROLES)
    appts = await get_many_scoped(session, CheckupAppointment, {d.appointment_id for d in items}, actor)
    round_ids = {a.round_id for a in appts.values()}
    rounds: dict[uuid.UUID, CheckupRound] = {}
    if round_ids:
        found = await session.execute(select(CheckupRound).where(col(CheckupRound.id).in_(round_ids)))
        rounds = {r.id: r for r in found.scalars()}
    result_ids = {d.id for d in items if d.id is not None}
    taken: dict[uuid.UUID, uuid.UUID] = {}
    if result_ids:
        rows = await session.execute(
            sa_select(col(CheckupAppointment.result_id), col(CheckupAppointment.id)).where(
                col(CheckupAppointment.result_id).in_(result_ids)
            )
        )
        taken = {r: a for r, a in rows.tuples().all() if r is not None}
    return ResultRefs(appts, rounds, taken, _today())


async def build_result(
    session: AsyncSession, actor: Actor, data: ResultOp, refs: ResultRefs
) -> tuple[CheckupAppointment, bool]:
    """``checkups.record_result`` on ``refs``, in memory: the same rules in the same order
    (scope, replay of the same result, a result id used elsewhere, status, consent, items of the
    round, not in the future), the same writes (the appointment done, the prenatal-care and
    referral tasks), raising the same errors before changing anything. A declined appointment
    still takes a result while its round is open (v1.1: she changed her mind); the decline
    reason stays on it."""
    appt = refs.appointments.get(data.appointment_id)
    if appt is None:
        raise NotFound("No checkupappointment with this id")
    rnd = refs.rounds[appt.round_id]
    items = data.items.model_dump(exclude_none=True)
    if data.id is not None and appt.result_id == data.id:
        same = (appt.checked_on, appt.place, json.loads(appt.results or "{}"), appt.note) == (
            data.checked_on,
            data.place.value,
            items,
            data.note,
        )
        if not same:
            raise Conflict("This result id was recorded with different content", code="id_conflict")
        return appt, False
    if data.id is not None and data.id in refs.taken:
        raise IdConflict("This result id is already used by the result of another appointment")
    checkups._require_result_allowed(appt, rnd, refs.today)
    checkups.accept_result(appt, rnd, data, items, actor, refs.today)
    assert appt.result_id is not None  # set by accept_result
    refs.taken[appt.result_id] = appt.id
    await checkups._consequences(session, appt, items, refs.today)
    return appt, True


# --- registration -------------------------------------------------------------------------------


def _register() -> None:
    action = sync.PushHandler
    sync.register_push(
        "checkup_decline",
        action(CheckupAppointment, _unused_create, view=_appointment_view, action=_decline),
    )
    sync.register_push(
        "checkup_exempt",
        action(CheckupAppointment, _unused_create, view=_appointment_view, action=_exempt),
    )
    sync.register_push(
        "task_completion",
        action(Task, _unused_create, view=sync._task_view, load=_load_task, action=_complete),
    )
    sync.register_push("migrant_close", action(Migrant, _unused_create, view=_migrant_view, action=_close))
    sync.register_push(
        "claim",
        sync.PushHandler(
            Claim,
            _create_claim,
            _update_claim,
            ClaimUpdate,
            _claim_values,
            _claim_view,
            load=_load_claim,
        ),
    )
    sync.register_pull("claim", sync.PullEntity(Claim, _claim_view, prepare=_prime_rule_refs))
    # ``checkup_result`` (registered by ``checkups``): consecutive new results in one flush
    sync.PUSH["checkup_result"].batch = sync.BatchCreate(ResultOp, load_results, build_result)


_register()

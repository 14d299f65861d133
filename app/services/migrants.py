"""Migrant records: inflow and outflow, closing, movements inside the deployment, figures.

Rules (domain brief "Migrants", issue 6, issue 14):
- a person has at most one open inflow and one open outflow; a second one is 409
  ``migrant_exists`` (a request of this village still waiting for her release counts as her
  inflow here). Concurrent creations for one person are serialized by locking the person row
  (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite serializes writers anyway);
- an outflow is held by the person's home village; an inflow by the receiving village. An inflow
  may name a person not yet on the register by ID number: a known number (anywhere in the
  deployment) is that person, an unknown one registers a new person in the receiving village;
- **movement inside the deployment (issue 14).** An inflow for a person whose register entry is
  in another village (of this township, another township or another county) is a *request*:
  the record is ``pending_release`` (``transfer: "pending"``) and nothing about her changes.
  Its holder learns nothing of her record: ``person_id`` is null in every view of it (the
  answer, GET, lists, the ``person_id`` filter, sync pulls, push answers), no task of the
  receiving village names her, and a deceased or otherwise unmovable person is not revealed at
  request time (her place refuses). Where she goes is fixed at request time, because her place
  cannot choose a household in another village: ``household_id`` (a household of the receiving
  village, in the caller's scope) or else a new household at ``address`` (one of the two is
  required).
- **Who decides.** Only a caller whose scope contains her *current* village (her register
  entry) may ``confirm`` (``confirm_transfer``) or ``refuse`` (``refuse_transfer``). Her place
  addresses the request by the inflow's id, which its ``migrant_release`` task carries as
  ``source_id`` (and may read it with ``GET /migrants/{id}`` while it waits); the origin-side
  outflow of a movement requested before issue 14 (``counterpart_id``) names it as well. The
  receiving side's own confirm or refuse is 403 ``forbidden`` (it holds the record, not her);
  anyone holding neither the record nor her gets 404 ``not_found``, with no hint. A township
  or county holding both villages holds her place and may release her into its own request.
- **Confirm**: her register entry moves (the household named at request time, else a new one at
  the inflow's address, of her old household's type), with her children under 16 of her
  household unless ``children_stay``; her open tasks follow her and the checkup rounds move her
  appointment (``move_person_tasks``, person-change hook ``moved``); the relocation hooks run
  (claims flag pending claims for the new township). The inflow becomes ``open`` (``transfer:
  "confirmed"``) and its holder now sees her; her place keeps an outflow closed as ``settled``
  (history, ``counterpart_id`` both ways); her other open inflows close (``moved_on``); other
  requests for her still waiting are refused (her place changed: they must be filed again);
  the release tasks close.
- **Refuse** ``{"reason"}``: the inflow becomes ``refused`` (terminal; ``closed_on`` the day of
  refusal, ``refuse_reason``, ``transfer: "refused"``); the receiving village gets a
  ``migrant_refused`` task with the reason (not naming her); nothing about her changes.
- a death closes the person's open records (reason ``deceased``) and refuses the requests for
  her still waiting (with the same words as any refusal by a changed place).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, func, or_
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.authz.actor import Actor, scope_prefix
from app.authz.policies import FIELD_ROLES, require_role
from app.authz.scope import area_clause, ensure_area_in_scope, ensure_can_place, get_scoped, scoped
from app.core import clock
from app.core.errors import Conflict, Forbidden, InvalidTransition, NotFound
from app.core.messages import both
from app.core.pagination import paginate
from app.core.security import FieldCipher
from app.models.common import place_columns
from app.models.households import (
    Household,
    HouseholdCreate,
    HouseholdType,
    Person,
    PersonCreate,
    PersonMove,
)
from app.models.migrants import (
    HIDDEN_PERSON,
    CloseReason,
    Direction,
    Migrant,
    MigrantClose,
    MigrantConfirm,
    MigrantCreate,
    MigrantDetail,
    MigrantFigures,
    MigrantItem,
    MigrantPersonIn,
    MigrantPublic,
    MigrantRefuse,
    MigrantStatus,
    Transfer,
)
from app.models.users import Role
from app.models.visits import TaskKind
from app.services import areas as areas_svc
from app.services import audit
from app.services import households as hh
from app.services import tasks as tasks_svc
from app.services.changes import register_synced
from app.services.masking import mask_phone
from app.services.records import existing_by_id, replay_or_conflict, touch
from app.services.summaries import NOBODY, load_people, with_people

register_synced("migrant", "migrant")
hh.register_person_ref(Migrant, "person_id")

CONFIRM_WITHIN = timedelta(days=7)
# Tasks that belong to a village's own migrant records stay there when the person moves.
PLACE_BOUND_SOURCES = ("migrant", "migrant_notification")
CHILD_AGE = 16  # children younger than this move with a parent whose move is confirmed
# Why a waiting request was refused when her place changed (she moved, died): the same words
# whatever happened, so that the requester learns nothing of her record.
PLACE_CHANGED = "原籍情况已变化，无法放行；如仍需迁入请重新登记"

# Other domains react to a confirmed movement (claims flag pending claims for the receiving
# township): ``hook(session, person, from_village, to_village)``, in the same transaction.
RelocationHook = Callable[[AsyncSession, Person, str, str], Awaitable[None]]
RELOCATION_HOOKS: list[RelocationHook] = []


def on_relocation(hook: RelocationHook) -> RelocationHook:
    RELOCATION_HOOKS.append(hook)
    return hook


def local_today() -> date:
    """Today in China: a partner's or cadre's "today" must never look like a future date
    (the one clock's business date, ``clock.today()``)."""
    return clock.today()


def check_not_future(value: date, field: str) -> None:
    if value > local_today():
        raise hh.invalid(field, "must not be in the future")


def _phone(m: Migrant, cipher: FieldCipher) -> str | None:
    return cipher.decrypt(m.phone_enc, context=b"phone") if m.phone_enc else None


def migrant_public(m: Migrant, cipher: FieldCipher) -> MigrantPublic:
    """The masked view (lists, pulls, and the answers to create, close and confirm: like a
    person's, a write answer is masked too; the full phone is only in ``migrant_detail``)."""
    phone = _phone(m, cipher)
    return MigrantPublic(
        id=m.id,
        person_id=None if m.status in HIDDEN_PERSON else m.person_id,
        direction=Direction(m.direction),
        status=MigrantStatus(m.status),
        village_code=m.village_code,
        moved_on=m.moved_on,
        origin_area_code=m.origin_area_code,
        destination=m.destination,
        address=m.address,
        employer=m.employer,
        phone_masked=mask_phone(phone) if phone else None,
        closed_on=m.closed_on,
        close_reason=CloseReason(m.close_reason) if m.close_reason else None,
        transfer=Transfer(m.transfer) if m.transfer else None,
        refuse_reason=m.refuse_reason,
        version=m.version,
        created_at=m.created_at,
        updated_at=m.updated_at,
    )


async def migrant_items(session: AsyncSession, cipher: FieldCipher, rows: list[Migrant]) -> list[MigrantItem]:
    """A page of records with each person and her household (one more query). A record that
    hides its person (``HIDDEN_PERSON``: waiting for her place's release, or refused) names
    nobody: the requester learns nothing of the record the ID number found."""
    shown = [m.person_id for m in rows if m.status not in HIDDEN_PERSON]
    people = await load_people(session, person_ids=shown)
    items = []
    for m in rows:
        named = NOBODY if m.status in HIDDEN_PERSON else people.of(m.person_id)
        items.append(with_people(MigrantItem, migrant_public(m, cipher), named))
    return items


def migrant_detail(m: Migrant, cipher: FieldCipher) -> MigrantDetail:
    """The full view, for ``read_migrant_in_full`` only (that read is audited)."""
    return MigrantDetail(**migrant_public(m, cipher).model_dump(), phone=_phone(m, cipher))


# --- persons ------------------------------------------------------------------------------------


_ID_BY_HASH = (
    sa_select(col(Person.id), col(Person.merged_into_id))
    .where(col(Person.id_number_hash) == bindparam("hash"))
    .limit(1)
)
_ID_BY_ID = sa_select(col(Person.id), col(Person.merged_into_id)).where(col(Person.id) == bindparam("id"))


async def find_id_by_id_number(session: AsyncSession, cipher: FieldCipher, number: str) -> uuid.UUID | None:
    """The id of the person with this (validated) ID number anywhere in the deployment (blind
    index), following a merge to the surviving record; prepared Core queries, no ORM load."""
    row = (await session.execute(_ID_BY_HASH, {"hash": cipher.blind_index(number)})).first()
    for _ in range(5):
        if row is None or row.merged_into_id is None:
            break
        row = (await session.execute(_ID_BY_ID, {"id": row.merged_into_id})).first()
    return row.id if row is not None else None


async def find_by_id_number(session: AsyncSession, cipher: FieldCipher, number: str) -> Person | None:
    """``find_id_by_id_number``'s person, loaded."""
    person_id = await find_id_by_id_number(session, cipher, number)
    return await session.get(Person, person_id) if person_id is not None else None


async def lock_person(session: AsyncSession, person_id: uuid.UUID) -> Person:
    """The person row, locked for the rest of the transaction (PostgreSQL): two movements or
    two inflows of one person cannot interleave."""
    stmt = (
        select(Person)
        .where(Person.id == person_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    person = (await session.execute(stmt)).scalar_one()
    return person


def _check_living(person: Person) -> None:
    if person.merged_into_id is not None:
        raise Conflict("This record was merged into another person", code="person_merged")
    if person.death_date is not None:
        raise Conflict("The person is deceased", code="person_deceased")


async def _household_for_new_person(
    session: AsyncSession,
    actor: Actor,
    *,
    village_code: str,
    household_id: uuid.UUID | None,
    address: str | None,
    household_type: HouseholdType,
) -> Household:
    if household_id is not None:
        household = await get_scoped(session, Household, household_id, actor)
        if household.village_code != village_code:
            raise hh.invalid("household_id", "the household is not in that village")
        return household
    if not address:
        raise hh.invalid("address", "required to register a new person (the household's address)")
    household, _ = await hh.create_household(
        session,
        actor,
        HouseholdCreate(village_code=village_code, address=address, household_type=household_type),
    )
    return household


async def person_for_inflow(
    session: AsyncSession,
    actor: Actor,
    cipher: FieldCipher,
    *,
    person_in: MigrantPersonIn,
    village_code: str,
    household_id: uuid.UUID | None,
    household_type: HouseholdType,
    address: str | None,
    origin_area_code: str | None,
    phone: str | None,
) -> Person:
    """The person an inflow names by ID number; registered in the receiving village if new."""
    facts = hh.check_id_number(person_in.id_number, person_in.birth_date, person_in.sex)
    known = await find_by_id_number(session, cipher, facts.number)
    if known is not None:
        return known
    household = await _household_for_new_person(
        session,
        actor,
        village_code=village_code,
        household_id=household_id,
        address=address,
        household_type=household_type,
    )
    head = household.head_person_id is None
    person, _ = await hh.create_person(
        session,
        actor,
        cipher,
        PersonCreate(
            household_id=household.id,
            id_number=facts.number,
            name=person_in.name,
            relation_to_head="户主" if head else "其他",
            marital_status=person_in.marital_status,
            hukou_area_code=origin_area_code,
            phone=phone,
        ),
    )
    return person


# --- records ------------------------------------------------------------------------------------


async def open_records(session: AsyncSession, person_id: uuid.UUID, direction: Direction) -> list[Migrant]:
    stmt = select(Migrant).where(
        Migrant.person_id == person_id, Migrant.direction == direction, Migrant.status == MigrantStatus.open
    )
    return list((await session.execute(stmt.order_by(col(Migrant.created_at)))).scalars())


def close_record(m: Migrant, closed_on: date, reason: CloseReason) -> None:
    m.status = MigrantStatus.closed
    m.closed_on = max(closed_on, m.moved_on)
    m.close_reason = reason
    touch(m)


async def _village_label(session: AsyncSession, code: str) -> str:
    area = await areas_svc.get_area(session, code)
    return f"{area.name}（{code}）" if area else code


def _exists(actor: Actor, m: Migrant) -> Conflict:
    extra = {"migrant_id": str(m.id)} if actor.covers(m.village_code) and not actor.is_machine else None
    return Conflict(
        f"The person already has an open {m.direction} record", code="migrant_exists", extra=extra
    )


async def _inflows_here(session: AsyncSession, person_id: uuid.UUID, village_code: str) -> list[Migrant]:
    """Her inflows in this village that are open or waiting for her release."""
    stmt = select(Migrant).where(
        Migrant.person_id == person_id,
        Migrant.direction == Direction.inflow,
        col(Migrant.status).in_([MigrantStatus.open, MigrantStatus.pending_release]),
        Migrant.village_code == village_code,
    )
    return list((await session.execute(stmt.order_by(col(Migrant.created_at)))).scalars())


async def open_inflow(
    session: AsyncSession,
    actor: Actor,
    person: Person,
    *,
    migrant_id: uuid.UUID | None,
    village_code: str,
    moved_on: date,
    origin_area_code: str | None,
    address: str | None,
    employer: str | None,
    phone_enc: str | None,
    name_for_task: str,
    household_id: uuid.UUID | None = None,
) -> Migrant:
    """Open an inflow in ``village_code``. A person registered in another village makes a
    request waiting for her place's release (module docstring): ``household_id`` (else
    ``address``) is where she will live here; her place's release task shows the name the
    receiving side gave (``name_for_task``) beside the registered one."""
    elsewhere = person.village_code != village_code
    if not elsewhere or actor.covers(person.village_code):
        _check_living(person)
    person = await lock_person(session, person.id)
    if here := await _inflows_here(session, person.id, village_code):
        raise _exists(actor, here[0])
    inflow = Migrant(
        id=migrant_id or uuid.uuid4(),
        person_id=person.id,
        direction=Direction.inflow,
        moved_on=moved_on,
        origin_area_code=origin_area_code,
        address=address,
        employer=employer,
        phone_enc=phone_enc,
        **place_columns(village_code),
    )
    if not elsewhere:
        session.add(inflow)
        await session.flush()
        await hh.person_changed(session, person, "migrant")
        return inflow
    if household_id is not None:
        household = await get_scoped(session, Household, household_id, actor)
        if household.village_code != village_code:
            raise hh.invalid("household_id", "the household is not in the receiving village")
    elif not address:
        raise hh.invalid("address", "required (the address of her new household here), or give household_id")
    inflow.status = MigrantStatus.pending_release
    inflow.transfer = Transfer.pending
    inflow.target_household_id = household_id
    session.add(inflow)
    label = await _village_label(session, village_code)
    tasks_svc.open_task(
        session,
        kind=TaskKind.migrant_release,
        title=both(
            "task.migrant_release",
            name=person.name,
            place=label,
            registered_name=name_for_task,
            moved_on=moved_on.isoformat(),
        ),
        due_on=local_today() + CONFIRM_WITHIN,
        village_code=person.village_code,
        household_id=person.household_id,
        person_id=person.id,
        source_entity="migrant",
        source_id=inflow.id,
    )
    await session.flush()
    return inflow


def _same(m: Migrant, data: MigrantCreate, cipher: FieldCipher) -> bool:
    phone = cipher.decrypt(m.phone_enc, context=b"phone") if m.phone_enc else None
    return (
        m.direction == data.direction.value
        and m.village_code == data.village_code
        and m.moved_on == data.moved_on
        and m.origin_area_code == data.origin_area_code
        and m.destination == data.destination
        and m.address == data.address
        and m.employer == data.employer
        and phone == data.phone
        and (data.person_id is None or m.person_id == data.person_id)
    )


async def create_migrant(
    session: AsyncSession, actor: Actor, cipher: FieldCipher, data: MigrantCreate
) -> tuple[Migrant, bool]:
    """(record, created). Same id and same content again → the existing record. A replay
    naming a ``person_id`` matches a record hiding its person only for a caller holding her (it
    must not confirm a guess of whom a request names)."""
    require_role(actor, *FIELD_ROLES)
    existing = await existing_by_id(session, Migrant, data.id)
    if existing is not None:
        same = actor.covers(existing.village_code) and _same(existing, data, cipher)
        if same and (data.person is not None or existing.status in HIDDEN_PERSON):
            person = await session.get(Person, existing.person_id)
            if data.person is not None:
                facts = hh.check_id_number(data.person.id_number, None, None)
                same = person is not None and person.id_number_hash == cipher.blind_index(facts.number)
            else:
                same = person is not None and actor.covers(person.village_code)
        replay_or_conflict(same)
        return existing, False
    ensure_can_place(actor, data.village_code)
    await areas_svc.require_area(session, data.village_code, field="village_code")
    check_not_future(data.moved_on, "moved_on")
    phone_enc = cipher.encrypt(data.phone, context=b"phone") if data.phone else None
    if data.person_id is not None:
        person = await get_scoped(session, Person, data.person_id, actor)
        name = person.name
    else:
        assert data.person is not None
        person = await person_for_inflow(
            session,
            actor,
            cipher,
            person_in=data.person,
            village_code=data.village_code,
            household_id=data.household_id,
            household_type=data.household_type,
            address=data.address,
            origin_area_code=data.origin_area_code,
            phone=data.phone,
        )
        name = data.person.name
    if data.direction == Direction.inflow:
        migrant = await open_inflow(
            session,
            actor,
            person,
            migrant_id=data.id,
            village_code=data.village_code,
            moved_on=data.moved_on,
            origin_area_code=data.origin_area_code,
            address=data.address,
            employer=data.employer,
            phone_enc=phone_enc,
            name_for_task=name,
            household_id=data.household_id,
        )
        return migrant, True
    _check_living(person)
    if person.village_code != data.village_code:
        raise hh.invalid("village_code", "an outflow is held by the person's home village")
    person = await lock_person(session, person.id)
    current = await open_records(session, person.id, Direction.outflow)
    if current:
        raise _exists(actor, current[0])
    migrant = Migrant(
        id=data.id or uuid.uuid4(),
        person_id=person.id,
        direction=Direction.outflow,
        moved_on=data.moved_on,
        destination=data.destination,
        address=data.address,
        employer=data.employer,
        phone_enc=phone_enc,
        **place_columns(data.village_code),
    )
    session.add(migrant)
    await session.flush()
    await hh.person_changed(session, person, "migrant")
    return migrant, True


async def get_migrant(session: AsyncSession, actor: Actor, migrant_id: uuid.UUID) -> Migrant:
    """A record in scope; or a request waiting for the release of a person the caller holds
    (her place reads what it is asked to decide)."""
    require_role(actor, *FIELD_ROLES)
    migrant = await session.get(Migrant, migrant_id)
    if migrant is not None and actor.covers(migrant.village_code):
        return migrant
    if migrant is not None and migrant.status == MigrantStatus.pending_release:
        village = await _person_village(session, migrant.person_id)
        if village is not None and actor.covers(village):
            return migrant
    raise NotFound("No migrant with this id")


async def _person_village(session: AsyncSession, person_id: uuid.UUID) -> str | None:
    stmt = select(Person.village_code).where(Person.id == person_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def read_migrant_in_full(session: AsyncSession, actor: Actor, migrant_id: uuid.UUID) -> Migrant:
    """Opening one record shows the full phone; the read is audited (as for a person)."""
    migrant = await get_migrant(session, actor, migrant_id)
    audit.record(session, actor, "read", "migrant", migrant.id)
    return migrant


async def list_migrants(
    session: AsyncSession,
    actor: Actor,
    *,
    direction: Direction | None,
    status: MigrantStatus | None,
    village_code: str | None,
    person_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Migrant], str | None]:
    """Records in scope (open and closed: the history stays), latest movement first. The
    ``person_id`` filter never finds a record that hides its person."""
    require_role(actor, *FIELD_ROLES)
    stmt = scoped(select(Migrant), actor)
    if direction:
        stmt = stmt.where(Migrant.direction == direction)
    if status:
        stmt = stmt.where(Migrant.status == status)
    if village_code:
        stmt = stmt.where(Migrant.village_code == village_code)
    if person_id:
        stmt = stmt.where(Migrant.person_id == person_id, col(Migrant.status).not_in(HIDDEN_PERSON))
    return await paginate(
        session, stmt, order=[Migrant.moved_on, Migrant.id], limit=limit, cursor=cursor, descending=True
    )


def _releases_waiting(stmt: Any, actor: Actor) -> Any:
    """Requests waiting for the release of a person whose current village the caller holds
    (``_release_target``'s "holds her place")."""
    stmt = stmt.join(Person, col(Person.id) == Migrant.person_id).where(
        Migrant.direction == Direction.inflow, Migrant.status == MigrantStatus.pending_release
    )
    return scoped(stmt, actor, Person)


async def list_pending_releases(
    session: AsyncSession, actor: Actor, *, limit: int, cursor: str | None
) -> tuple[list[Migrant], str | None]:
    """Inflows elsewhere waiting for the caller to confirm or refuse (her place), oldest
    movement first."""
    require_role(actor, *FIELD_ROLES)
    stmt = _releases_waiting(select(Migrant), actor)
    return await paginate(session, stmt, order=[Migrant.moved_on, Migrant.id], limit=limit, cursor=cursor)


async def count_pending_releases(session: AsyncSession, actor: Actor) -> int:
    require_role(actor, *FIELD_ROLES)
    stmt = _releases_waiting(sa_select(func.count()).select_from(Migrant), actor)
    return int((await session.execute(stmt)).scalar_one())


async def close_migrant(
    session: AsyncSession, actor: Actor, migrant_id: uuid.UUID, data: MigrantClose
) -> Migrant:
    """Close an open record with a reason; a closed record stays (history). Closing an inflow
    whose movement was never confirmed withdraws its confirmation task."""
    require_role(actor, *FIELD_ROLES)
    migrant = await get_scoped(session, Migrant, migrant_id, actor)
    if migrant.status != MigrantStatus.open:
        raise InvalidTransition(f"The record is {migrant.status}, not open")
    check_not_future(data.closed_on, "closed_on")
    if data.closed_on < migrant.moved_on:
        raise hh.invalid("closed_on", "must not be before moved_on")
    close_record(migrant, data.closed_on, data.reason)
    await tasks_svc.cancel_tasks_for(session, "migrant", migrant.id)
    await session.flush()
    person = await session.get(Person, migrant.person_id)
    if person is not None:
        await hh.person_changed(session, person, "migrant")
    return migrant


async def _relocate(session: AsyncSession, actor: Actor, person: Person, household: Household) -> str:
    """Move the person's register entry to ``household`` (as ``move_person`` does, but as a
    system act: the origin may be outside the caller's scope). Returns the old village."""
    old_village = person.village_code
    old = await session.get(Household, person.household_id)
    if old is not None and old.head_person_id == person.id:
        old.head_person_id = None
        touch(old)
    session.add(
        PersonMove(
            person_id=person.id,
            from_household_id=person.household_id,
            to_household_id=household.id,
            actor_id=actor.id,
        )
    )
    person.household_id = household.id
    for key, value in place_columns(household.village_code).items():
        setattr(person, key, value)
    person.current_village_code = household.village_code
    touch(person)
    if household.head_person_id is None:
        household.head_person_id = person.id
        touch(household)
    return old_village


async def _release_target(
    session: AsyncSession, actor: Actor, migrant_id: uuid.UUID
) -> tuple[Migrant, Person]:
    """The request a confirm or refuse acts on, and its person, both locked; only for a caller
    holding her current village (module docstring: 404 for a caller holding neither the record
    nor her, 409 when nothing waits, 403 for the receiving side).

    ``migrant_id`` is the inflow's id, or the origin-side outflow of a movement requested
    before issue 14 (``counterpart_id``, its ``migrant_confirm`` task's ``source_id``)."""
    require_role(actor, *FIELD_ROLES)
    record = await session.get(Migrant, migrant_id)
    if record is None:
        raise NotFound("No migrant with this id")
    holds_record = actor.covers(record.village_code)
    inflow: Migrant | None = record
    if record.direction == Direction.outflow:
        inflow = None
        if holds_record and record.counterpart_id is not None and record.transfer == Transfer.pending:
            inflow = await session.get(Migrant, record.counterpart_id)
    waiting = (
        inflow is not None
        and inflow.direction == Direction.inflow
        and inflow.status == MigrantStatus.pending_release
    )
    holds_person = False
    if waiting:
        assert inflow is not None
        village = await _person_village(session, inflow.person_id)
        holds_person = village is not None and actor.covers(village)
    if not holds_record and not holds_person:
        raise NotFound("No migrant with this id")
    if not waiting:
        raise InvalidTransition("This record has no move waiting for release")
    if not holds_person:
        raise Forbidden("Only the person's current place may confirm or refuse this move")
    assert inflow is not None
    person = await lock_person(session, inflow.person_id)
    stmt = (
        select(Migrant)
        .where(Migrant.id == inflow.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    inflow = (await session.execute(stmt)).scalar_one()
    if inflow.status != MigrantStatus.pending_release:  # decided meanwhile
        raise InvalidTransition("This record has no move waiting for release")
    if not actor.covers(person.village_code):  # she moved meanwhile
        raise Forbidden("Only the person's current place may confirm or refuse this move")
    return inflow, person


async def _refuse(session: AsyncSession, inflow: Migrant, reason: str) -> None:
    """End a waiting request: ``refused``, the release tasks closed, the receiving village told
    (a task that does not name her: its holder never learns whom the number named)."""
    inflow.status = MigrantStatus.refused
    inflow.transfer = Transfer.refused
    inflow.refuse_reason = reason
    inflow.closed_on = max(local_today(), inflow.moved_on)
    touch(inflow)
    await tasks_svc.cancel_tasks_for(session, "migrant", inflow.id)
    if inflow.counterpart_id is not None:  # the origin outflow of a pre-issue-14 request
        old = await session.get(Migrant, inflow.counterpart_id)
        if old is not None and old.status == MigrantStatus.open and old.transfer == Transfer.pending:
            old.status = MigrantStatus.refused
            old.transfer = Transfer.refused
            old.closed_on = max(local_today(), old.moved_on)
            touch(old)
            await tasks_svc.cancel_tasks_for(session, "migrant", old.id)
    tasks_svc.open_task(
        session,
        kind=TaskKind.migrant_refused,
        title=both("task.migrant_refused", moved_on=inflow.moved_on.isoformat(), reason=reason),
        due_on=local_today() + CONFIRM_WITHIN,
        village_code=inflow.village_code,
        source_entity="migrant",
        source_id=inflow.id,
    )


async def refuse_transfer(
    session: AsyncSession, actor: Actor, migrant_id: uuid.UUID, data: MigrantRefuse
) -> Migrant:
    """The person's current place refuses the move (module docstring); nothing about her
    changes."""
    inflow, _ = await _release_target(session, actor, migrant_id)
    await _refuse(session, inflow, data.reason)
    await session.flush()
    return inflow


async def _destination(session: AsyncSession, inflow: Migrant, person: Person) -> Household:
    """The household named at request time, else a new one at the inflow's address (a system
    act: the releasing caller need not hold the receiving village)."""
    if inflow.target_household_id is not None:
        household = await session.get(Household, inflow.target_household_id)
        if household is not None and household.village_code == inflow.village_code:
            return household
    if not inflow.address:
        raise InvalidTransition("The household named by the request is no longer in the receiving village")
    old = await session.get(Household, person.household_id)
    household = Household(
        address=inflow.address,
        household_type=HouseholdType(old.household_type) if old else HouseholdType.rural,
        **place_columns(inflow.village_code),
    )
    session.add(household)
    await session.flush()
    return household


async def _children_under_16(session: AsyncSession, parent: Person, household_id: uuid.UUID) -> list[Person]:
    """Her (or his) living children under ``CHILD_AGE`` in the given household, locked."""
    born_after = _years_before(local_today(), CHILD_AGE)
    stmt = (
        select(Person)
        .where(
            or_(col(Person.mother_id) == parent.id, col(Person.father_id) == parent.id),
            Person.household_id == household_id,
            col(Person.birth_date) > born_after,
            col(Person.merged_into_id).is_(None),
            col(Person.death_date).is_(None),
        )
        .order_by(col(Person.id))
        .with_for_update()
    )
    return list((await session.execute(stmt)).scalars())


async def _after_move(session: AsyncSession, person: Person, old_village: str, new_village: str) -> None:
    """What follows a person whose register entry moved: her appointments (hook ``moved``),
    her open tasks (not those of the villages' own migrant records) with her new household,
    the relocation hooks."""
    await hh.person_changed(session, person, "moved")
    await tasks_svc.move_person_tasks(
        session,
        person.id,
        to_village=new_village,
        keep_sources=PLACE_BOUND_SOURCES,
        household_id=person.household_id,
    )
    for hook in RELOCATION_HOOKS:
        await hook(session, person, old_village, new_village)


async def _origin_history(
    session: AsyncSession, inflow: Migrant, person: Person, origin_village: str
) -> None:
    """Her records elsewhere after a confirmed move: her open outflows close as ``settled``
    (the first, or a new one at her old village, is the inflow's counterpart), her other open
    inflows as ``moved_on``, and requests for her still waiting are refused."""
    today = local_today()
    label = await _village_label(session, inflow.village_code)
    outflows = await open_records(session, person.id, Direction.outflow)
    if inflow.counterpart_id is not None:
        outflows.sort(key=lambda m: m.id != inflow.counterpart_id)
    if outflows:
        counterpart = outflows[0]
        counterpart.destination = counterpart.destination or label
    else:
        counterpart = Migrant(
            person_id=person.id,
            direction=Direction.outflow,
            status=MigrantStatus.closed,
            moved_on=inflow.moved_on,
            destination=label,
            closed_on=max(today, inflow.moved_on),
            close_reason=CloseReason.settled,
            **place_columns(origin_village),
        )
        session.add(counterpart)
    for m in outflows:
        close_record(m, today, CloseReason.settled)
        await tasks_svc.cancel_tasks_for(session, "migrant", m.id)
    counterpart.counterpart_id = inflow.id
    counterpart.transfer = Transfer.confirmed
    inflow.counterpart_id = counterpart.id
    for m in await open_records(session, person.id, Direction.inflow):
        if m.id != inflow.id:
            close_record(m, today, CloseReason.moved_on)
            await tasks_svc.cancel_tasks_for(session, "migrant", m.id)
    waiting = select(Migrant).where(
        Migrant.person_id == person.id,
        Migrant.status == MigrantStatus.pending_release,
        Migrant.id != inflow.id,
    )
    for m in (await session.execute(waiting)).scalars():
        await _refuse(session, m, PLACE_CHANGED)


async def confirm_transfer(
    session: AsyncSession, actor: Actor, migrant_id: uuid.UUID, data: MigrantConfirm
) -> Migrant:
    """The person's current place releases her: her register entry (and her children's under
    16, unless ``children_stay``) moves to the receiving village with everything open about her,
    in this transaction (module docstring)."""
    inflow, person = await _release_target(session, actor, migrant_id)
    _check_living(person)
    household = await _destination(session, inflow, person)
    old_household_id = person.household_id
    children = [] if data.children_stay else await _children_under_16(session, person, old_household_id)
    old_village = await _relocate(session, actor, person, household)
    moved = [(person, old_village)]
    for child in children:
        moved.append((child, await _relocate(session, actor, child, household)))
    inflow.status = MigrantStatus.open
    inflow.transfer = Transfer.confirmed
    touch(inflow)
    await _origin_history(session, inflow, person, old_village)
    await tasks_svc.cancel_tasks_for(session, "migrant", inflow.id)
    await session.flush()
    for who, was in moved:
        await _after_move(session, who, was, inflow.village_code)
    await session.flush()
    return inflow


@hh.on_person_change
async def _close_on_death(session: AsyncSession, person: Person, reason: str) -> None:
    """A death closes the person's open migrant records and refuses the requests for her."""
    if reason != "died" or person.death_date is None:
        return
    rows = await session.execute(
        select(Migrant).where(
            Migrant.person_id == person.id,
            col(Migrant.status).in_([MigrantStatus.open, MigrantStatus.pending_release]),
        )
    )
    for m in rows.scalars():
        if m.status == MigrantStatus.pending_release:
            await _refuse(session, m, PLACE_CHANGED)
            continue
        close_record(m, person.death_date, CloseReason.deceased)
        await tasks_svc.cancel_tasks_for(session, "migrant", m.id)


# --- figures ------------------------------------------------------------------------------------


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


async def figures(
    session: AsyncSession,
    actor: Actor,
    *,
    area_code: str,
    from_: date,
    to: date,
    breakdown: bool = False,
) -> list[MigrantFigures]:
    """Open inflow and outflow records, those that began in ``[from_, to]``, and how many of
    each are women aged 15–49 on ``to``: for the area, or (``breakdown``) for each child area
    that has any. Aggregates only, so dashboards may read them. Requests waiting for a
    release, or refused, are no movement and count nowhere."""
    require_role(actor, *FIELD_ROLES, Role.dashboard)
    ensure_area_in_scope(actor, area_code)
    if to < from_:
        raise hh.invalid("to", "must not be before from")
    prefix = scope_prefix(area_code)
    own = {6: Migrant.county_code, 9: Migrant.township_code, 12: Migrant.village_code}[len(prefix)]
    child = {6: Migrant.township_code, 9: Migrant.village_code, 12: Migrant.village_code}[len(prefix)]
    key_column = col(child if breakdown else own)
    born_after, born_by = _years_before(to, 50), _years_before(to, 15)
    is_open = col(Migrant.status) == MigrantStatus.open.value
    is_new = and_(col(Migrant.moved_on) >= from_, col(Migrant.moved_on) <= to)
    woman = and_(
        col(Person.sex) == "female", col(Person.birth_date) > born_after, col(Person.birth_date) <= born_by
    )

    def count(cond: ColumnElement[bool]) -> ColumnElement[int]:
        return func.sum(case((cond, 1), else_=0))

    # sqlmodel's select takes at most four columns; the SQLAlchemy one is the same construct.
    stmt = (
        sa_select(
            key_column,
            col(Migrant.direction),
            count(is_open),
            count(and_(is_open, woman)),
            count(is_new),
            count(and_(is_new, woman)),
        )
        .join(Person, col(Person.id) == Migrant.person_id)
        .where(
            area_clause(Migrant, area_code),
            or_(is_open, is_new),
            col(Migrant.status).not_in(HIDDEN_PERSON),  # a request is not a movement (yet)
        )
        .group_by(key_column, col(Migrant.direction))
    )
    out: dict[str, dict[str, int]] = {} if breakdown else {prefix: {}}
    for key, direction, opened, open_w, new, new_w in (await session.execute(stmt)).all():
        d = out.setdefault(key, {})
        d[f"open_{direction}"] = int(opened or 0)
        d[f"open_{direction}_women_15_49"] = int(open_w or 0)
        d[f"new_{direction}"] = int(new or 0)
        d[f"new_{direction}_women_15_49"] = int(new_w or 0)
    result = []
    for key in sorted(out):
        code = key.ljust(12, "0")
        values = {name: out[key].get(name, 0) for name in MigrantFigures.model_fields if name != "area_code"}
        result.append(MigrantFigures(area_code=code, **values))
    return result


# --- offline sync: ``migrant`` ops (create) and pulls --------------------------------------------


def _register_sync() -> None:
    from app.services import sync

    async def create(
        s: AsyncSession, a: Actor, c: sync.SyncContext, i: uuid.UUID, d: dict[str, object]
    ) -> Migrant:
        return (await create_migrant(s, a, c.cipher, sync._schema(MigrantCreate, d, id=i)))[0]

    def view(m: Migrant, c: sync.SyncContext) -> dict[str, object]:
        return migrant_public(m, c.cipher).model_dump(mode="json")

    sync.register_push("migrant", sync.PushHandler(Migrant, create))
    sync.register_pull("migrant", sync.PullEntity(Migrant, view))


_register_sync()

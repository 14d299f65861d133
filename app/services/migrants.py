"""Migrant records: inflow and outflow, closing, movements inside the deployment, figures.

Rules (domain brief "Migrants", issue 6):
- a person has at most one open inflow and one open outflow; a second one is 409
  ``migrant_exists``. Concurrent creations for one person are serialized by locking the person
  row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite serializes writers anyway);
- an outflow is held by the person's home village; an inflow by the receiving village. An inflow
  may name a person not yet on the register by ID number: a known number (anywhere in the
  deployment) is that person, an unknown one registers a new person in the receiving village;
- movement inside the deployment: an inflow for a person whose register entry is in another
  village (of any county we hold) opens, as a system act outside the caller's scope, an outflow
  in the origin village (or closes the inflow she had there) with a task for its cadre. The
  person's household and village change only when the receiving side confirms
  (``confirm_transfer``); in that same transaction the origin outflow closes as ``settled``, her
  open tasks follow her, the checkup rounds move her appointment (person-change hook
  ``moved``), and the relocation hooks run (claims flag pending claims for the new township).
  The caller learns nothing of the other village's record beyond ``transfer: "pending"``;
- a death closes the person's open records (reason ``deceased``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import ColumnElement, and_, bindparam, case, func, or_
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.authz.actor import Actor, scope_prefix
from app.authz.policies import FIELD_ROLES, require_role
from app.authz.scope import area_clause, ensure_area_in_scope, ensure_can_place, get_scoped, scoped
from app.core.errors import Conflict, InvalidTransition
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
    CloseReason,
    Direction,
    Migrant,
    MigrantClose,
    MigrantConfirm,
    MigrantCreate,
    MigrantDetail,
    MigrantFigures,
    MigrantPersonIn,
    MigrantPublic,
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

register_synced("migrant", "migrant")
hh.register_person_ref(Migrant, "person_id")

CONFIRM_WITHIN = timedelta(days=7)
CHINA = timezone(timedelta(hours=8))
# Tasks that belong to a village's own migrant records stay there when the person moves.
PLACE_BOUND_SOURCES = ("migrant", "migrant_notification")

# Other domains react to a confirmed movement (claims flag pending claims for the receiving
# township): ``hook(session, person, from_village, to_village)``, in the same transaction.
RelocationHook = Callable[[AsyncSession, Person, str, str], Awaitable[None]]
RELOCATION_HOOKS: list[RelocationHook] = []


def on_relocation(hook: RelocationHook) -> RelocationHook:
    RELOCATION_HOOKS.append(hook)
    return hook


def local_today() -> date:
    """Today in China: a partner's or cadre's "today" must never look like a future date."""
    return datetime.now(CHINA).date()


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
        person_id=m.person_id,
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
        version=m.version,
        created_at=m.created_at,
        updated_at=m.updated_at,
    )


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
    stmt = select(Person).where(Person.id == person_id).with_for_update()
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
) -> Migrant:
    """Open an inflow in ``village_code``; a person registered in another village starts a
    movement (see the module docstring)."""
    _check_living(person)
    person = await lock_person(session, person.id)
    current = await open_records(session, person.id, Direction.inflow)
    for m in current:
        if m.village_code == village_code:
            raise _exists(actor, m)
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
    session.add(inflow)
    origin = person.village_code
    if origin == village_code and not current:
        await session.flush()
        await hh.person_changed(session, person, "migrant")
        return inflow
    # A movement: the origin village's record is the inflow she had there, else an outflow.
    inflow.transfer = Transfer.pending
    label = await _village_label(session, village_code)
    due = local_today() + CONFIRM_WITHIN
    counterpart: Migrant | None = None
    for old in current:
        close_record(old, moved_on, CloseReason.moved_on)
        old.counterpart_id = inflow.id
        tasks_svc.open_task(
            session,
            kind=TaskKind.migrant_confirm,
            title=f"流入人员{person.name}已在{label}登记流入，本村流入记录已注销，请核实",
            due_on=due,
            village_code=old.village_code,
            person_id=person.id,
            source_entity="migrant",
            source_id=old.id,
        )
        if old.village_code == origin:
            counterpart = old
    if counterpart is None and origin != village_code:
        outflows = await open_records(session, person.id, Direction.outflow)
        if outflows:
            counterpart = outflows[0]
            counterpart.destination = counterpart.destination or label
            touch(counterpart)
        else:
            counterpart = Migrant(
                person_id=person.id,
                direction=Direction.outflow,
                moved_on=moved_on,
                destination=label,
                **place_columns(origin),
            )
            session.add(counterpart)
        counterpart.counterpart_id = inflow.id
        counterpart.transfer = Transfer.pending
        tasks_svc.open_task(
            session,
            kind=TaskKind.migrant_confirm,
            title=f"确认流出：{person.name}已在{label}登记流入（{moved_on.isoformat()}起）",
            due_on=due,
            village_code=origin,
            household_id=person.household_id,
            person_id=person.id,
            source_entity="migrant",
            source_id=counterpart.id,
        )
    if counterpart is not None:
        inflow.counterpart_id = counterpart.id
    tasks_svc.open_task(
        session,
        kind=TaskKind.migrant_confirm,
        title=f"确认迁入：{name_for_task}（{moved_on.isoformat()}起），确认后户籍登记迁入本村",
        due_on=due,
        village_code=village_code,
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
    """(record, created). Same id and same content again → the existing record."""
    require_role(actor, *FIELD_ROLES)
    existing = await existing_by_id(session, Migrant, data.id)
    if existing is not None:
        same = actor.covers(existing.village_code) and _same(existing, data, cipher)
        if same and data.person is not None:
            person = await session.get(Person, existing.person_id)
            facts = hh.check_id_number(data.person.id_number, None, None)
            same = person is not None and person.id_number_hash == cipher.blind_index(facts.number)
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
    require_role(actor, *FIELD_ROLES)
    return await get_scoped(session, Migrant, migrant_id, actor)


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
    """Records in scope (open and closed: the history stays), latest movement first."""
    require_role(actor, *FIELD_ROLES)
    stmt = scoped(select(Migrant), actor)
    if direction:
        stmt = stmt.where(Migrant.direction == direction)
    if status:
        stmt = stmt.where(Migrant.status == status)
    if village_code:
        stmt = stmt.where(Migrant.village_code == village_code)
    if person_id:
        stmt = stmt.where(Migrant.person_id == person_id)
    return await paginate(
        session, stmt, order=[Migrant.moved_on, Migrant.id], limit=limit, cursor=cursor, descending=True
    )


async def close_migrant(
    session: AsyncSession, actor: Actor, migrant_id: uuid.UUID, data: MigrantClose
) -> Migrant:
    """Close an open record with a reason; a closed record stays (history). Closing an inflow
    whose movement was never confirmed withdraws its confirmation task."""
    require_role(actor, *FIELD_ROLES)
    migrant = await get_scoped(session, Migrant, migrant_id, actor)
    if migrant.status != MigrantStatus.open:
        raise InvalidTransition("The record is already closed")
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


async def confirm_transfer(
    session: AsyncSession, actor: Actor, migrant_id: uuid.UUID, data: MigrantConfirm
) -> Migrant:
    """The receiving side confirms a movement: the person joins a household of the receiving
    village (the given one, or a new one at the inflow's address) and everything open about her
    moves in this transaction (see the module docstring)."""
    require_role(actor, *FIELD_ROLES)
    inflow = await get_scoped(session, Migrant, migrant_id, actor)
    if (
        inflow.direction != Direction.inflow
        or inflow.status != MigrantStatus.open
        or inflow.transfer != Transfer.pending
    ):
        raise InvalidTransition("This record has no movement waiting for confirmation")
    person = await lock_person(session, inflow.person_id)
    _check_living(person)
    if data.household_id is not None:
        household = await get_scoped(session, Household, data.household_id, actor)
        if household.village_code != inflow.village_code:
            raise hh.invalid("household_id", "the household is not in the receiving village")
    else:
        if not inflow.address:
            raise hh.invalid("household_id", "give a household (the record has no address for a new one)")
        old = await session.get(Household, person.household_id)
        household, _ = await hh.create_household(
            session,
            actor,
            HouseholdCreate(
                village_code=inflow.village_code,
                address=inflow.address,
                household_type=HouseholdType(old.household_type) if old else HouseholdType.rural,
            ),
        )
    old_village = await _relocate(session, actor, person, household)
    inflow.transfer = Transfer.confirmed
    touch(inflow)
    if inflow.counterpart_id is not None:
        origin = await session.get(Migrant, inflow.counterpart_id)
        if origin is not None and origin.transfer == Transfer.pending:
            origin.transfer = Transfer.confirmed
            if origin.status == MigrantStatus.open and origin.direction == Direction.outflow:
                close_record(origin, local_today(), CloseReason.settled)
            else:
                touch(origin)
    await tasks_svc.cancel_tasks_for(session, "migrant", inflow.id)
    await session.flush()
    await hh.person_changed(session, person, "moved")
    await tasks_svc.move_person_tasks(
        session, person.id, to_village=inflow.village_code, keep_sources=PLACE_BOUND_SOURCES
    )
    for hook in RELOCATION_HOOKS:
        await hook(session, person, old_village, inflow.village_code)
    await session.flush()
    return inflow


@hh.on_person_change
async def _close_on_death(session: AsyncSession, person: Person, reason: str) -> None:
    """A death closes the person's open migrant records."""
    if reason != "died" or person.death_date is None:
        return
    rows = await session.execute(
        select(Migrant).where(Migrant.person_id == person.id, Migrant.status == MigrantStatus.open)
    )
    for m in rows.scalars():
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
    that has any. Aggregates only, so dashboards may read them."""
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
        .where(area_clause(Migrant, area_code), or_(is_open, is_new))
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

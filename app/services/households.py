"""The register: households, persons, moves and merges.

Rules enforced here (see domain brief, "The register"):
- every read goes through the scope filter; out of scope is 404, creating outside scope 403;
- ID numbers are validated (GB 11643), birth date and sex derive from them and a disagreeing
  value is ``id_number_mismatch``; one person per ID number in the whole deployment;
- ID numbers are stored encrypted with a blind index; lists show them masked, a full read and an
  exact lookup are audited;
- every change bumps ``version``; PATCH needs the version the client read (If-Match).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from app.authz.actor import Actor
from app.authz.policies import FIELD_ROLES, SUPERVISOR_ROLES, require_role
from app.authz.scope import ensure_can_place, get_scoped, scoped
from app.core import clock
from app.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.core.pagination import paginate
from app.core.security import FieldCipher
from app.models.common import place_columns
from app.models.households import (
    Household,
    HouseholdCreate,
    HouseholdPublic,
    HouseholdUpdate,
    MaritalStatus,
    Person,
    PersonCreate,
    PersonDetail,
    PersonMerge,
    PersonMove,
    PersonPublic,
    PersonUpdate,
    Sex,
)
from app.services import areas as areas_svc
from app.services import (
    audit,
    indicator_upkeep,  # noqa: F401  (issue 8: figures kept in every write)
)
from app.services.changes import register_synced
from app.services.idnumber import IdNumberError, mask_id_number, parse_id_number
from app.services.masking import mask_phone
from app.services.records import check_version, existing_by_id, replay_or_conflict, touch

register_synced("household", "household")
register_synced("person", "person")

# Other domains react to register events where they are recorded (not by a nightly job): the
# checkup rounds add or cancel appointments when a woman marries, moves, dies or is merged.
PersonHook = Callable[[AsyncSession, "Person", str], Awaitable[None]]
PERSON_HOOKS: list[PersonHook] = []


def on_person_change(hook: PersonHook) -> PersonHook:
    """Register ``hook(session, person, reason)``; reasons: created, updated, moved, died,
    merged, born."""
    PERSON_HOOKS.append(hook)
    return hook


async def person_changed(session: AsyncSession, person: Person, reason: str) -> None:
    await session.flush()
    for hook in PERSON_HOOKS:
        await hook(session, person, reason)


MIN_PARENT_AGE_YEARS = 15
MAX_AGE_YEARS = 130


def _years_between(earlier: date, later: date) -> int:
    years = later.year - earlier.year
    if (later.month, later.day) < (earlier.month, earlier.day):
        years -= 1
    return years


def invalid(field: str, message: str, code: str = "validation_failed") -> ValidationFailed:
    return ValidationFailed(message, code=code, errors=[FieldError(field=field, message=message)])


# --- views ------------------------------------------------------------------------------------


def full_phone(p: Person, cipher: FieldCipher) -> str | None:
    return cipher.decrypt(p.phone_enc, context=b"phone") if p.phone_enc else None


def person_public(p: Person, cipher: FieldCipher) -> PersonPublic:
    """The masked view: lists, household members, sync pulls and conflicts, the 412 ``current``
    and the answers to POST/PATCH/move. The answer to a create or update is masked too (not the
    full phone the caller just sent): a replayed create answers whoever holds the id, and one
    shape for every answer but the audited GET keeps full values in exactly one place."""
    phone = full_phone(p, cipher)
    return PersonPublic(
        id=p.id,
        household_id=p.household_id,
        village_code=p.village_code,
        current_village_code=p.current_village_code,
        id_number_masked=p.id_number_masked,
        name=p.name,
        sex=Sex(p.sex),
        birth_date=p.birth_date,
        relation_to_head=p.relation_to_head,
        marital_status=MaritalStatus(p.marital_status),
        hukou_area_code=p.hukou_area_code,
        phone_masked=mask_phone(phone) if phone else None,
        mother_id=p.mother_id,
        father_id=p.father_id,
        alive=p.death_date is None,
        death_date=p.death_date,
        merged_into_id=p.merged_into_id,
        version=p.version,
        created_at=p.created_at,
        updated_at=p.updated_at,
    )


def full_id_number(p: Person, cipher: FieldCipher) -> str | None:
    return cipher.decrypt(p.id_number_enc, context=b"id_number") if p.id_number_enc else None


def person_detail(p: Person, cipher: FieldCipher) -> PersonDetail:
    """The full view, for ``read_person_in_full`` only (that read is audited)."""
    return PersonDetail(
        **person_public(p, cipher).model_dump(),
        id_number=full_id_number(p, cipher),
        phone=full_phone(p, cipher),
    )


def household_public(h: Household) -> HouseholdPublic:
    return HouseholdPublic.model_validate(h, from_attributes=True)


# --- households -------------------------------------------------------------------------------


async def create_household(
    session: AsyncSession, actor: Actor, data: HouseholdCreate
) -> tuple[Household, bool]:
    """(household, created). Same id and same content again → the existing one."""
    require_role(actor, *FIELD_ROLES)
    ensure_can_place(actor, data.village_code)
    existing = await existing_by_id(session, Household, data.id)
    if existing is not None:
        same = actor.covers(existing.village_code) and (
            existing.village_code,
            existing.address,
            existing.household_type,
        ) == (data.village_code, data.address, data.household_type.value)
        replay_or_conflict(same)
        return existing, False
    await areas_svc.require_area(session, data.village_code, field="village_code")
    household = Household(
        id=data.id or uuid.uuid4(),
        address=data.address,
        household_type=data.household_type,
        **place_columns(data.village_code),
    )
    session.add(household)
    await session.flush()
    return household, True


async def get_household(session: AsyncSession, actor: Actor, household_id: uuid.UUID) -> Household:
    require_role(actor, *FIELD_ROLES)
    return await get_scoped(session, Household, household_id, actor)


async def household_members(session: AsyncSession, actor: Actor, household_id: uuid.UUID) -> list[Person]:
    stmt = scoped(select(Person), actor).where(
        Person.household_id == household_id, col(Person.merged_into_id).is_(None)
    )
    return list((await session.execute(stmt.order_by(col(Person.birth_date), col(Person.id)))).scalars())


async def list_households(
    session: AsyncSession,
    actor: Actor,
    *,
    village_code: str | None,
    q: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Household], str | None]:
    require_role(actor, *FIELD_ROLES)
    stmt = scoped(select(Household), actor)
    if village_code:
        stmt = stmt.where(Household.village_code == village_code)
    if q:
        stmt = stmt.where(col(Household.address).contains(q, autoescape=True))
    return await paginate(session, stmt, order=[Household.id], limit=limit, cursor=cursor)


async def update_household(
    session: AsyncSession, actor: Actor, household_id: uuid.UUID, data: HouseholdUpdate, expected: int
) -> Household:
    require_role(actor, *FIELD_ROLES)
    household = await get_scoped(session, Household, household_id, actor)
    check_version(household.version, expected, household_public(household).model_dump(mode="json"))
    changes = data.model_dump(exclude_unset=True)
    if "head_person_id" in changes and changes["head_person_id"] is not None:
        head = await session.get(Person, changes["head_person_id"])
        if (
            head is None
            or head.household_id != household.id
            or head.merged_into_id is not None
            or head.death_date is not None
        ):
            raise invalid("head_person_id", "the head must be a living member of the household")
    for key, value in changes.items():
        if value is None and key != "head_person_id":
            raise invalid(key, "must not be null")
        setattr(household, key, value)
    touch(household)
    await session.flush()
    return household


# --- persons ----------------------------------------------------------------------------------


@dataclass
class IdFacts:
    number: str
    birth_date: date
    sex: Sex


def check_id_number(raw: str, birth_date: date | None, sex: Sex | None) -> IdFacts:
    """Validate an ID number and the birth date and sex given with it."""
    try:
        info = parse_id_number(raw)
    except IdNumberError as exc:
        raise invalid("id_number", exc.reason, "id_number_invalid") from None
    if birth_date is not None and birth_date != info.birth_date:
        raise invalid("birth_date", "birth date disagrees with the ID number", "id_number_mismatch")
    if sex is not None and sex.value != info.sex:
        raise invalid("sex", "sex disagrees with the ID number", "id_number_mismatch")
    return IdFacts(number=info.number, birth_date=info.birth_date, sex=Sex(info.sex))


async def ensure_id_number_free(
    session: AsyncSession, actor: Actor, id_hash: str, *, except_id: uuid.UUID | None = None
) -> None:
    stmt = select(Person).where(Person.id_number_hash == id_hash)
    other = (await session.execute(stmt)).scalar_one_or_none()
    if other is None or other.id == except_id:
        return
    if actor.covers(other.village_code) and not actor.is_machine:
        raise Conflict(
            "A person with this ID number is already registered",
            code="person_exists",
            extra={"person_id": str(other.id)},
        )
    raise Conflict(
        "A person with this ID number is registered in another area", code="person_exists_elsewhere"
    )


async def check_parent(
    session: AsyncSession,
    actor: Actor,
    parent_id: uuid.UUID,
    *,
    field: str,
    sex: Sex,
    child_birth: date,
    child_id: uuid.UUID | None = None,
) -> Person:
    """A mother/father link must name an existing person in scope of plausible sex and age."""
    parent = (
        await session.execute(scoped(select(Person), actor).where(Person.id == parent_id))
    ).scalar_one_or_none()
    if parent is None or parent.merged_into_id is not None:
        raise invalid(field, "no such person in your area")
    if parent.id == child_id:
        raise invalid(field, "a person cannot be their own parent")
    if parent.sex != sex.value:
        raise invalid(field, f"the {field.removesuffix('_id')} must be {sex.value}")
    if _years_between(parent.birth_date, child_birth) < MIN_PARENT_AGE_YEARS:
        raise invalid(field, f"the parent was under {MIN_PARENT_AGE_YEARS} at the child's birth")
    return parent


def _check_birth_date(value: date, field: str = "birth_date") -> None:
    today = clock.today()
    if value > today:
        raise invalid(field, "must not be in the future")
    if _years_between(value, today) > MAX_AGE_YEARS:
        raise invalid(field, f"more than {MAX_AGE_YEARS} years ago")


def _id_columns(cipher: FieldCipher, number: str | None) -> dict[str, Any]:
    if number is None:
        return {"id_number_enc": None, "id_number_hash": None, "id_number_masked": None}
    return {
        "id_number_enc": cipher.encrypt(number, context=b"id_number"),
        "id_number_hash": cipher.blind_index(number),
        "id_number_masked": mask_id_number(number),
    }


def _same_person(p: Person, data: PersonCreate, facts: IdFacts | None, cipher: FieldCipher) -> bool:
    phone = full_phone(p, cipher)
    id_hash = cipher.blind_index(facts.number) if facts else None
    return (
        p.household_id == data.household_id
        and p.id_number_hash == id_hash
        and p.name == data.name
        and (data.sex is None or p.sex == data.sex.value)
        and (data.birth_date is None or p.birth_date == data.birth_date)
        and p.relation_to_head == data.relation_to_head
        and p.marital_status == data.marital_status.value
        and p.hukou_area_code == data.hukou_area_code
        and phone == data.phone
        and p.mother_id == data.mother_id
        and p.father_id == data.father_id
        and (data.current_village_code is None or p.current_village_code == data.current_village_code)
    )


async def create_person(
    session: AsyncSession, actor: Actor, cipher: FieldCipher, data: PersonCreate
) -> tuple[Person, bool]:
    require_role(actor, *FIELD_ROLES)
    facts = check_id_number(data.id_number, data.birth_date, data.sex) if data.id_number else None
    existing = await existing_by_id(session, Person, data.id)
    if existing is not None:
        replay_or_conflict(
            actor.covers(existing.village_code) and _same_person(existing, data, facts, cipher)
        )
        return existing, False
    household = await get_scoped(session, Household, data.household_id, actor)
    ensure_can_place(actor, household.village_code)
    birth_date = facts.birth_date if facts else data.birth_date
    sex = facts.sex if facts else data.sex
    missing = [f for f, v in (("birth_date", birth_date), ("sex", sex)) if v is None]
    if missing:
        raise ValidationFailed(
            "birth_date and sex are required without an ID number",
            errors=[FieldError(field=f, message="required without id_number") for f in missing],
        )
    assert birth_date is not None
    assert sex is not None
    _check_birth_date(birth_date)
    if facts:
        await ensure_id_number_free(session, actor, cipher.blind_index(facts.number))
    person_id = data.id or uuid.uuid4()
    if data.mother_id:
        await check_parent(
            session, actor, data.mother_id, field="mother_id", sex=Sex.female, child_birth=birth_date
        )
    if data.father_id:
        await check_parent(
            session, actor, data.father_id, field="father_id", sex=Sex.male, child_birth=birth_date
        )
    if data.current_village_code:
        await areas_svc.require_area(session, data.current_village_code, field="current_village_code")
    person = Person(
        id=person_id,
        household_id=household.id,
        name=data.name,
        sex=sex,
        birth_date=birth_date,
        relation_to_head=data.relation_to_head,
        marital_status=data.marital_status,
        hukou_area_code=data.hukou_area_code,
        phone_enc=cipher.encrypt(data.phone, context=b"phone") if data.phone else None,
        mother_id=data.mother_id,
        father_id=data.father_id,
        current_village_code=data.current_village_code or household.village_code,
        **_id_columns(cipher, facts.number if facts else None),
        **place_columns(household.village_code),
    )
    session.add(person)
    await session.flush()
    if household.head_person_id is None and data.relation_to_head in ("户主", "本人", "head", "self"):
        household.head_person_id = person.id
        touch(household)
        await session.flush()
    await person_changed(session, person, "created")
    return person, True


async def get_person(session: AsyncSession, actor: Actor, person_id: uuid.UUID) -> Person:
    require_role(actor, *FIELD_ROLES)
    return await get_scoped(session, Person, person_id, actor)


async def read_person_in_full(session: AsyncSession, actor: Actor, person_id: uuid.UUID) -> Person:
    """Opening one person's record shows the full ID number and phone; the read is audited."""
    person = await get_person(session, actor, person_id)
    audit.record(session, actor, "read", "person", person.id)
    return person


def id_number_index(cipher: FieldCipher, id_number: str) -> str:
    """The blind index an exact ID-number lookup matches (ID numbers are stored encrypted); an
    invalid number is 422 ``id_number_invalid`` (it can match nobody)."""
    try:
        number = parse_id_number(id_number).number
    except IdNumberError as exc:
        raise invalid("id_number", exc.reason, "id_number_invalid") from None
    return cipher.blind_index(number)


def born_between(today: date, age_min: int | None, age_max: int | None) -> tuple[date | None, date | None]:
    """The birth dates of the ages ``age_min``..``age_max`` (whole years, both included) on
    ``today``, as (born after, born on or before); None where open.

    Ages count as everywhere in the service (``claim_rules.age_on``): one is a year older on the
    birthday; one born on 29 February turns a year older on 1 March in a common year. So
    ``age >= n`` ⇔ born on or before ``today`` n years ago (28 February when that day does not
    exist), and ``age <= n`` ⇔ born after ``today`` n + 1 years ago. Exact to the day: one
    born on this day 30 years ago is 30, one born a day later 29."""
    born_by = _years_before(today, age_min) if age_min is not None else None
    born_after = _years_before(today, age_max + 1) if age_max is not None else None
    return born_after, born_by


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


async def list_persons(
    session: AsyncSession,
    actor: Actor,
    cipher: FieldCipher,
    *,
    household_id: uuid.UUID | None,
    village_code: str | None,
    q: str | None,
    id_number: str | None,
    include_merged: bool,
    limit: int,
    cursor: str | None,
    sex: Sex | None = None,
    marital_status: MaritalStatus | None = None,
    age_min: int | None = None,
    age_max: int | None = None,
) -> tuple[list[Person], str | None]:
    """Persons in scope, ordered by name (``persons_query`` reads the filters)."""
    stmt = persons_query(
        session,
        actor,
        cipher,
        household_id=household_id,
        village_code=village_code,
        q=q,
        id_number=id_number,
        include_merged=include_merged,
        sex=sex,
        marital_status=marital_status,
        age_min=age_min,
        age_max=age_max,
    )
    return await paginate(session, stmt, order=PERSON_ORDER, limit=limit, cursor=cursor)


PERSON_ORDER = [Person.name, Person.id]


def persons_query(
    session: AsyncSession,
    actor: Actor,
    cipher: FieldCipher,
    *,
    household_id: uuid.UUID | None,
    village_code: str | None,
    q: str | None,
    id_number: str | None,
    include_merged: bool,
    sex: Sex | None = None,
    marital_status: MaritalStatus | None = None,
    age_min: int | None = None,
    age_max: int | None = None,
) -> SelectOfScalar[Person]:
    """The persons in scope matching the filters of ``GET /persons`` (and of its roster export),
    unordered. ``id_number`` is an exact, audited lookup.

    ``age_min``/``age_max``: whole years on the business today (``born_between``), both bounds
    included; the deceased are aged as if alive (the list keeps them, as it always did). A
    range with ``age_min`` above ``age_max`` is 422 ``invalid_range`` (it would silently match
    nobody)."""
    require_role(actor, *FIELD_ROLES)
    if age_min is not None and age_max is not None and age_min > age_max:
        raise invalid("age_max", f"must not be less than age_min ({age_min})", "invalid_range")
    stmt = scoped(select(Person), actor)
    if sex is not None:
        stmt = stmt.where(Person.sex == sex.value)
    if marital_status is not None:
        stmt = stmt.where(Person.marital_status == marital_status.value)
    born_after, born_by = born_between(clock.today(), age_min, age_max)
    if born_by is not None:
        stmt = stmt.where(Person.birth_date <= born_by)
    if born_after is not None:
        stmt = stmt.where(Person.birth_date > born_after)
    if not include_merged:
        stmt = stmt.where(col(Person.merged_into_id).is_(None))
    if household_id:
        stmt = stmt.where(Person.household_id == household_id)
    if village_code:
        stmt = stmt.where(Person.village_code == village_code)
    if q:
        stmt = stmt.where(col(Person.name).contains(q, autoescape=True))
    if id_number is not None:
        stmt = stmt.where(Person.id_number_hash == id_number_index(cipher, id_number))
        audit.record(session, actor, "lookup", "person", None, "by id_number")
    return stmt


def _apply_id_number(
    person: Person, cipher: FieldCipher, changes: dict[str, Any], data: PersonUpdate
) -> IdFacts | None:
    """The ID number (given now or kept) decides birth date and sex."""
    if "id_number" in changes and changes["id_number"] is not None:
        facts = check_id_number(changes["id_number"], data.birth_date, data.sex)
    elif person.id_number_enc and ("birth_date" in changes or "sex" in changes):
        facts = check_id_number(full_id_number(person, cipher) or "", data.birth_date, data.sex)
    else:
        return None
    return facts


async def update_person(
    session: AsyncSession,
    actor: Actor,
    cipher: FieldCipher,
    person_id: uuid.UUID,
    data: PersonUpdate,
    expected: int,
) -> Person:
    require_role(actor, *FIELD_ROLES)
    person = await get_scoped(session, Person, person_id, actor)
    check_version(person.version, expected, person_public(person, cipher).model_dump(mode="json"))
    if person.merged_into_id is not None:
        raise Conflict("This record was merged into another person", code="person_merged")
    changes = data.model_dump(exclude_unset=True)
    nullable = {"hukou_area_code", "phone", "mother_id", "father_id", "id_number"}
    for key, value in changes.items():
        if value is None and key not in nullable:
            raise invalid(key, "must not be null")
    if "id_number" in changes and changes["id_number"] is None and person.id_number_enc:
        raise invalid("id_number", "an ID number cannot be removed once recorded")
    facts = _apply_id_number(person, cipher, changes, data)
    if facts is not None:
        id_hash = cipher.blind_index(facts.number)
        if id_hash != person.id_number_hash:
            await ensure_id_number_free(session, actor, id_hash, except_id=person.id)
            for key, value in _id_columns(cipher, facts.number).items():
                setattr(person, key, value)
        person.birth_date = facts.birth_date
        person.sex = facts.sex
    else:
        if "birth_date" in changes:
            _check_birth_date(changes["birth_date"])
            person.birth_date = changes["birth_date"]
        if "sex" in changes:
            person.sex = changes["sex"]
    for field, sex in (("mother_id", Sex.female), ("father_id", Sex.male)):
        if field in changes and changes[field] is not None:
            await check_parent(
                session,
                actor,
                changes[field],
                field=field,
                sex=sex,
                child_birth=person.birth_date,
                child_id=person.id,
            )
    if changes.get("current_village_code"):
        await areas_svc.require_area(session, changes["current_village_code"], field="current_village_code")
    for key in (
        "name",
        "relation_to_head",
        "marital_status",
        "hukou_area_code",
        "mother_id",
        "father_id",
        "current_village_code",
    ):
        if key in changes:
            setattr(person, key, changes[key])
    if "phone" in changes:
        person.phone_enc = cipher.encrypt(changes["phone"], context=b"phone") if changes["phone"] else None
    touch(person)
    await person_changed(session, person, "updated")
    return person


async def move_person(
    session: AsyncSession, actor: Actor, person_id: uuid.UUID, household_id: uuid.UUID
) -> Person:
    """Move a member to another household in scope; the move is kept in history. A head who
    leaves stops being the head of the old household."""
    require_role(actor, *FIELD_ROLES)
    person = await get_scoped(session, Person, person_id, actor)
    if person.merged_into_id is not None:
        raise Conflict("This record was merged into another person", code="person_merged")
    target = await get_scoped(session, Household, household_id, actor)
    if target.id == person.household_id:
        raise Conflict("The person already belongs to that household", code="already_member")
    old = await session.get(Household, person.household_id)
    if old is not None and old.head_person_id == person.id:
        old.head_person_id = None
        touch(old)
    session.add(
        PersonMove(
            person_id=person.id,
            from_household_id=person.household_id,
            to_household_id=target.id,
            actor_id=actor.id,
        )
    )
    was_local = person.current_village_code == person.village_code
    person.household_id = target.id
    for key, value in place_columns(target.village_code).items():
        setattr(person, key, value)
    if was_local:
        person.current_village_code = target.village_code
    touch(person)
    await person_changed(session, person, "moved")
    return person


# --- merge ------------------------------------------------------------------------------------

# (table model, column) pairs that point at a person. Later domains (visits, checkups, migrants,
# claims) add theirs with ``register_person_ref`` so a merge moves everything attached.
PERSON_REFS: list[tuple[Any, str]] = []


def register_person_ref(model: Any, column: str) -> None:
    if (model, column) not in PERSON_REFS:
        PERSON_REFS.append((model, column))


register_person_ref(Person, "mother_id")
register_person_ref(Person, "father_id")

# What exists once per person (an appointment of one round, a claim of one programme and year)
# cannot simply move when both records hold one: the owning domain settles such clashes with
# ``on_merge`` before the references move, keeping one and setting the other aside (cancelled,
# withdrawn: it still moves, outside the once-per-person rule) or refusing with 409
# ``merge_conflict``. A settler returns what it set aside as ``{"table", "column", "id"}``.
MergeSettler = Callable[[AsyncSession, Actor, Person, Person], Awaitable[list[dict[str, str]]]]
MERGE_SETTLERS: list[MergeSettler] = []


def on_merge(settler: MergeSettler) -> MergeSettler:
    """Register ``settler(session, actor, duplicate, survivor)``. A refusal raised by any
    settler rolls back what the others wrote (one transaction per request)."""
    if settler not in MERGE_SETTLERS:
        MERGE_SETTLERS.append(settler)
    return settler


async def merge_persons(
    session: AsyncSession, actor: Actor, person_id: uuid.UUID, into_id: uuid.UUID
) -> PersonMerge:
    """Township or county: ``person_id`` is a duplicate of ``into_id``. Everything attached to
    it moves to the survivor, which takes over a missing ID number; the duplicate becomes a
    tombstone pointing at the survivor. One audited act, with the moved references kept.

    Records both hold once per person are settled first by their domains (``on_merge``): two
    appointments of one round keep the one with a result (else the earlier) and cancel the other
    (``merged``); a clashing draft claim is withdrawn; two claims past draft of one programme and
    year are 409 ``merge_conflict`` and nothing is written (the request's transaction rolls
    back). The record set aside moves to the survivor too, so nothing stays on the tombstone."""
    require_role(actor, *SUPERVISOR_ROLES)
    dup = await get_scoped(session, Person, person_id, actor)
    keep = await get_scoped(session, Person, into_id, actor)
    if dup.id == keep.id:
        raise invalid("into_id", "a record cannot be merged into itself")
    if dup.merged_into_id is not None or keep.merged_into_id is not None:
        raise Conflict("One of the records is already merged", code="person_merged")
    if dup.id_number_hash and keep.id_number_hash and dup.id_number_hash != keep.id_number_hash:
        raise Conflict("The two records have different ID numbers", code="different_id_numbers")
    moved: list[dict[str, str]] = []
    for settle in MERGE_SETTLERS:
        for entry in await settle(session, actor, dup, keep):
            moved.append({**entry, "settled": "merged"})
    try:
        async with session.begin_nested():
            for model, column in PERSON_REFS:
                attr = getattr(model, column)
                rows = (await session.execute(select(model).where(attr == dup.id))).scalars().all()
                for row in rows:
                    if model is Person and row.id == keep.id:
                        continue
                    setattr(row, column, keep.id)
                    if hasattr(row, "version"):
                        touch(row)
                    moved.append({"table": model.__tablename__, "column": column, "id": str(row.id)})
                await session.flush()
    except IntegrityError:
        # what no settler settles, e.g. a death recorded on both records: one of them must be
        # settled before merging (appointments and claims are settled above).
        raise Conflict(
            "Both records hold a record that exists once per person (e.g. a recorded death); "
            "settle one before merging",
            code="merge_conflict",
        ) from None
    if dup.id_number_hash and not keep.id_number_hash:
        carried = (dup.id_number_enc, dup.id_number_hash, dup.id_number_masked)
        dup.id_number_enc = dup.id_number_hash = dup.id_number_masked = None
        await session.flush()  # free the unique blind index before the survivor takes it
        keep.id_number_enc, keep.id_number_hash, keep.id_number_masked = carried
        touch(keep)
    dup.merged_into_id = keep.id
    touch(dup)
    household = await session.get(Household, dup.household_id)
    if household is not None and household.head_person_id == dup.id:
        household.head_person_id = keep.id if keep.household_id == household.id else None
        touch(household)
    merge = PersonMerge(merged_id=dup.id, into_id=keep.id, moved_refs=json.dumps(moved), actor_id=actor.id)
    session.add(merge)
    await person_changed(session, dup, "merged")
    await person_changed(session, keep, "updated")
    return merge


@dataclass(frozen=True)
class MergePreview:
    """What ``merge_persons(dup, keep)`` would move, as the caller's scope shows it: per
    registered reference (table, column) the number of rows pointing at the duplicate, whether
    the survivor takes over the duplicate's ID number, and whether the duplicate heads its
    household (the headship passes to the survivor in the same household, else it is left empty)."""

    dup: Person
    keep: Person
    refs: list[tuple[str, str, int]]
    carries_id_number: bool
    dup_is_head: bool


async def merge_preview(
    session: AsyncSession, actor: Actor, person_id: uuid.UUID, into_id: uuid.UUID
) -> MergePreview:
    """The checks of ``merge_persons`` (role, scope, itself, merged, ID numbers) without writing;
    the reference counts in one statement."""
    require_role(actor, *SUPERVISOR_ROLES)
    dup = await get_scoped(session, Person, person_id, actor)
    keep = await get_scoped(session, Person, into_id, actor)
    if dup.id == keep.id:
        raise invalid("into_id", "a record cannot be merged into itself")
    if dup.merged_into_id is not None or keep.merged_into_id is not None:
        raise Conflict("One of the records is already merged", code="person_merged")
    if dup.id_number_hash and keep.id_number_hash and dup.id_number_hash != keep.id_number_hash:
        raise Conflict("The two records have different ID numbers", code="different_id_numbers")
    from sqlalchemy import literal, union_all
    from sqlalchemy import select as sa_select

    parts: list[Any] = []
    for i, (model, column) in enumerate(PERSON_REFS):
        attr = getattr(model, column)
        stmt: Any = (
            sa_select(literal(i).label("i"), func.count().label("n")).select_from(model).where(attr == dup.id)
        )
        if model is Person:
            stmt = stmt.where(col(Person.id) != keep.id)
        parts.append(scoped(stmt, actor, model))
    counts = {int(r.i): int(r.n) for r in (await session.execute(union_all(*parts))).all()} if parts else {}
    refs = [(model.__tablename__, column, counts.get(i, 0)) for i, (model, column) in enumerate(PERSON_REFS)]
    household = await session.get(Household, dup.household_id)
    return MergePreview(
        dup=dup,
        keep=keep,
        refs=refs,
        carries_id_number=bool(dup.id_number_hash and not keep.id_number_hash),
        dup_is_head=household is not None and household.head_person_id == dup.id,
    )


async def living_children_count(
    session: AsyncSession, mother_id: uuid.UUID, up_to: date, exclude: uuid.UUID | None
) -> int:
    stmt = (
        select(func.count())
        .select_from(Person)
        .where(
            Person.mother_id == mother_id,
            col(Person.merged_into_id).is_(None),
            col(Person.birth_date) <= up_to,
        )
    )
    if exclude is not None:
        stmt = stmt.where(Person.id != exclude)
    return int((await session.execute(stmt)).scalar_one())


def require_person_found(person: Person | None) -> Person:
    if person is None:
        raise NotFound("No person with this id")
    return person

"""Births and deaths.

A birth creates the child in the mother's household and links it to her; its birth order
(first, second, third or later live-born child of the mother) is derived, never typed. A birth
before the mother turned 15 or after her death is refused. A death closes the person: the record
stays readable, marked deceased, and leaves the "current" counts.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.authz.actor import Actor
from app.authz.policies import FIELD_ROLES, require_role
from app.authz.scope import ensure_can_place, get_scoped
from app.core.errors import Conflict, ValidationFailed
from app.core.security import FieldCipher
from app.models.common import place_columns
from app.models.households import (
    Birth,
    BirthCreate,
    Death,
    DeathCreate,
    Household,
    MaritalStatus,
    Person,
    Sex,
)
from app.services import households as hh
from app.services.records import existing_by_id, replay_or_conflict, touch

UNNAMED_CHILD = "未取名"


def _refused(detail: str, field: str) -> ValidationFailed:
    return hh.invalid(field, detail, "birth_refused")


async def create_birth(
    session: AsyncSession, actor: Actor, cipher: FieldCipher, data: BirthCreate
) -> tuple[Birth, bool]:
    require_role(actor, *FIELD_ROLES)
    child = data.child
    facts = hh.check_id_number(child.id_number, child.birth_date, child.sex) if child.id_number else None
    existing = await existing_by_id(session, Birth, data.id)
    if existing is not None:
        same = actor.covers(existing.village_code) and (
            existing.mother_id,
            existing.father_id,
            existing.birth_date,
            existing.sex,
        ) == (data.mother_id, data.father_id, child.birth_date, child.sex.value)
        replay_or_conflict(same)
        return existing, False
    mother = await get_scoped(session, Person, data.mother_id, actor)
    ensure_can_place(actor, mother.village_code)
    hh._check_birth_date(child.birth_date, "child.birth_date")
    if mother.merged_into_id is not None:
        raise Conflict("The mother's record was merged into another person", code="person_merged")
    if mother.sex != Sex.female.value:
        raise hh.invalid("mother_id", "the mother must be female")
    if hh._years_between(mother.birth_date, child.birth_date) < hh.MIN_PARENT_AGE_YEARS:
        raise _refused("the mother was under 15 at this birth", "child.birth_date")
    if mother.death_date is not None and child.birth_date > mother.death_date:
        raise _refused("the birth date is after the mother's death", "child.birth_date")
    if data.father_id:
        await hh.check_parent(
            session, actor, data.father_id, field="father_id", sex=Sex.male, child_birth=child.birth_date
        )
    if facts:
        await hh.ensure_id_number_free(session, actor, cipher.blind_index(facts.number))
    household = await session.get(Household, mother.household_id)
    assert household is not None
    order = 1 + await hh.living_children_count(session, mother.id, child.birth_date, exclude=None)
    person = Person(
        household_id=household.id,
        name=child.name or UNNAMED_CHILD,
        sex=child.sex,
        birth_date=child.birth_date,
        relation_to_head="子女",
        marital_status=MaritalStatus.single,
        hukou_area_code=None,
        mother_id=mother.id,
        father_id=data.father_id,
        current_village_code=household.village_code,
        **hh._id_columns(cipher, facts.number if facts else None),
        **place_columns(household.village_code),
    )
    session.add(person)
    await session.flush()
    birth = Birth(
        id=data.id or uuid.uuid4(),
        mother_id=mother.id,
        father_id=data.father_id,
        child_person_id=person.id,
        birth_date=child.birth_date,
        sex=child.sex,
        birth_order=order,
        **place_columns(household.village_code),
    )
    session.add(birth)
    await hh.person_changed(session, person, "born")
    return birth, True


async def create_death(session: AsyncSession, actor: Actor, data: DeathCreate) -> tuple[Death, bool]:
    require_role(actor, *FIELD_ROLES)
    existing = await existing_by_id(session, Death, data.id)
    if existing is not None:
        same = actor.covers(existing.village_code) and (existing.person_id, existing.death_date) == (
            data.person_id,
            data.death_date,
        )
        replay_or_conflict(same)
        return existing, False
    person = await get_scoped(session, Person, data.person_id, actor)
    ensure_can_place(actor, person.village_code)
    if person.merged_into_id is not None:
        raise Conflict("This record was merged into another person", code="person_merged")
    if person.death_date is not None:
        raise Conflict("This person is already recorded as deceased", code="already_deceased")
    if data.death_date < person.birth_date:
        raise hh.invalid("death_date", "the death date is before the birth date")
    person.death_date = data.death_date
    touch(person)
    death = Death(
        id=data.id or uuid.uuid4(),
        person_id=person.id,
        death_date=data.death_date,
        **place_columns(person.village_code),
    )
    session.add(death)
    await hh.person_changed(session, person, "died")
    return death, True


hh.register_person_ref(Birth, "mother_id")
hh.register_person_ref(Birth, "father_id")

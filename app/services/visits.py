"""Home visits. A visit is placed in its household's village; the household (and the person,
if named) must be in the caller's scope, the person must be alive and a member, ``visited_at``
may not be in the future beyond a small clock skew, and a ``follow_up_on`` date opens a task."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.authz.actor import Actor
from app.authz.policies import FIELD_ROLES, require_role
from app.authz.scope import ensure_can_place, get_many_scoped, get_scoped, scoped
from app.core import clock
from app.core.db import as_utc
from app.core.errors import Conflict, NotFound
from app.core.messages import Ref, both
from app.core.pagination import paginate
from app.models.common import place_columns
from app.models.households import Household, Person
from app.models.visits import (
    Location,
    Task,
    TaskKind,
    Visit,
    VisitCreate,
    VisitPublic,
    VisitPurpose,
    VisitUpdate,
)
from app.services import households as hh
from app.services.changes import register_synced
from app.services.records import check_version, replay_or_conflict, touch
from app.services.tasks import open_task

register_synced("visit", "visit")
hh.register_person_ref(Visit, "person_id")
hh.register_person_ref(Task, "person_id")

CLOCK_SKEW = timedelta(minutes=10)


def visit_public(v: Visit) -> VisitPublic:
    location = (
        Location(lat=v.lat, lon=v.lon, accuracy_m=v.accuracy_m)
        if v.lat is not None and v.lon is not None
        else None
    )
    return VisitPublic(
        id=v.id,
        household_id=v.household_id,
        person_id=v.person_id,
        village_code=v.village_code,
        visited_at=v.visited_at,
        purpose=VisitPurpose(v.purpose),
        notes=v.notes,
        location=location,
        follow_up_on=v.follow_up_on,
        follow_up_note=v.follow_up_note,
        visitor_id=v.visitor_id,
        version=v.version,
        created_at=v.created_at,
        updated_at=v.updated_at,
    )


def _same(v: Visit, data: VisitCreate) -> bool:
    loc = data.location
    return (
        v.household_id == data.household_id
        and v.person_id == data.person_id
        and v.visited_at == as_utc(data.visited_at)
        and v.purpose == data.purpose.value
        and v.notes == data.notes
        and (v.lat, v.lon, v.accuracy_m)
        == ((loc.lat, loc.lon, loc.accuracy_m) if loc else (None, None, None))
        and v.follow_up_on == data.follow_up_on
        and v.follow_up_note == data.follow_up_note
    )


@dataclass
class VisitRefs:
    """What a batch of new visits refers to, loaded once: existing visits with the same ids (any
    scope), and the households and persons in the caller's scope."""

    existing: dict[uuid.UUID, Visit]
    households: dict[uuid.UUID, Household]
    persons: dict[uuid.UUID, Person]


async def load_refs(session: AsyncSession, actor: Actor, items: list[VisitCreate]) -> VisitRefs:
    ids = {d.id for d in items if d.id is not None}
    existing: dict[uuid.UUID, Visit] = {}
    if ids:
        rows = await session.execute(select(Visit).where(col(Visit.id).in_(ids)))
        existing = {v.id: v for v in rows.scalars()}
    households = await get_many_scoped(session, Household, {d.household_id for d in items}, actor)
    person_ids = {d.person_id for d in items if d.person_id is not None}
    persons = await get_many_scoped(session, Person, person_ids, actor)
    return VisitRefs(existing, households, persons)


def build_visit(
    session: AsyncSession, actor: Actor, data: VisitCreate, refs: VisitRefs
) -> tuple[Visit, bool]:
    """The visit (and its follow-up task) added to the session, or the existing visit of a
    replayed create; raises the API error of a refused one. No database access: the rules run
    on ``refs``, so a batch of visits is checked in memory and written by one flush."""
    existing = refs.existing.get(data.id) if data.id is not None else None
    if existing is not None:
        replay_or_conflict(actor.covers(existing.village_code) and _same(existing, data))
        return existing, False
    household = refs.households.get(data.household_id)
    if household is None:
        raise NotFound("No household with this id")
    ensure_can_place(actor, household.village_code)
    visited_at = as_utc(data.visited_at)
    assert visited_at is not None
    if visited_at > clock.now() + CLOCK_SKEW:
        raise hh.invalid("visited_at", "must not be in the future")
    if data.person_id is not None:
        person = refs.persons.get(data.person_id)
        if person is None or person.merged_into_id is not None:
            raise hh.invalid("person_id", "no such person in your area")
        if person.household_id != household.id:
            raise hh.invalid("person_id", "the person is not a member of this household")
        if person.death_date is not None:
            raise Conflict(
                "The person is deceased; visits to them cannot be recorded", code="person_deceased"
            )
    if data.follow_up_on is not None and data.follow_up_on < visited_at.date():
        raise hh.invalid("follow_up_on", "must not be before the visit")
    loc = data.location
    visit = Visit(
        id=data.id or uuid.uuid4(),
        household_id=household.id,
        person_id=data.person_id,
        visited_at=visited_at,
        purpose=data.purpose,
        notes=data.notes,
        lat=loc.lat if loc else None,
        lon=loc.lon if loc else None,
        accuracy_m=loc.accuracy_m if loc else None,
        follow_up_on=data.follow_up_on,
        follow_up_note=data.follow_up_note,
        visitor_id=actor.id,
        **place_columns(household.village_code),
    )
    session.add(visit)
    if data.id is not None:
        refs.existing[data.id] = visit  # the same id again in this batch is a replay
    if data.follow_up_on is not None:
        open_task(
            session,
            kind=TaskKind.follow_up,
            title=data.follow_up_note or _follow_up_title(data.purpose.value, data.person_id, refs),
            due_on=data.follow_up_on,
            village_code=household.village_code,
            household_id=household.id,
            person_id=data.person_id,
            source_entity="visit",
            source_id=visit.id,
        )
    return visit, True


def _follow_up_title(purpose: str, person_id: uuid.UUID | None, refs: VisitRefs) -> tuple[str, str]:
    """A follow-up without the cadre's own note: the visit's purpose and the person visited."""
    person = refs.persons.get(person_id) if person_id is not None else None
    if person is None:
        return both("task.follow_up_household", purpose=Ref(f"purpose.{purpose}"))
    return both("task.follow_up", purpose=Ref(f"purpose.{purpose}"), name=person.name)


async def create_visit(session: AsyncSession, actor: Actor, data: VisitCreate) -> tuple[Visit, bool]:
    require_role(actor, *FIELD_ROLES)
    refs = await load_refs(session, actor, [data])
    visit, created = build_visit(session, actor, data, refs)
    if created:
        await session.flush()
    return visit, created


async def get_visit(session: AsyncSession, actor: Actor, visit_id: uuid.UUID) -> Visit:
    require_role(actor, *FIELD_ROLES)
    return await get_scoped(session, Visit, visit_id, actor)


async def update_visit(
    session: AsyncSession, actor: Actor, visit_id: uuid.UUID, data: VisitUpdate, expected: int
) -> Visit:
    visit = await get_visit(session, actor, visit_id)
    check_version(visit.version, expected, visit_public(visit).model_dump(mode="json"))
    for key, value in data.model_dump(exclude_unset=True).items():
        if key == "purpose" and value is None:
            raise hh.invalid(key, "must not be null")
        setattr(visit, key, value)
    touch(visit)
    await session.flush()
    return visit


async def list_visits(
    session: AsyncSession,
    actor: Actor,
    *,
    household_id: uuid.UUID | None,
    person_id: uuid.UUID | None,
    purpose: VisitPurpose | None,
    from_: datetime | None,
    to: datetime | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Visit], str | None]:
    """Visits in scope, newest first."""
    require_role(actor, *FIELD_ROLES)
    stmt = scoped(select(Visit), actor)
    if household_id:
        stmt = stmt.where(Visit.household_id == household_id)
    if person_id:
        stmt = stmt.where(Visit.person_id == person_id)
    if purpose:
        stmt = stmt.where(Visit.purpose == purpose)
    if from_:
        stmt = stmt.where(col(Visit.visited_at) >= as_utc(from_))
    if to:
        stmt = stmt.where(col(Visit.visited_at) < as_utc(to))
    return await paginate(
        session, stmt, order=[Visit.visited_at, Visit.id], limit=limit, cursor=cursor, descending=True
    )

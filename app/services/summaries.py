"""The ``person`` and ``household`` of list items (contract v1.1, "People in lists").

Every list whose items concern a person (tasks, appointments, claims, migrants, migrant
notifications, sync conflicts, data-quality faults) reads the people of its whole page with
``load_people``: ONE statement, whatever the page size (the persons with their village's name
and their household, and the households items name on their own), so a page of 500 is the
page's query plus this one — never a query per item. ``id_number_masked`` is the column the
register keeps for lists: nothing is decrypted.

Who may be named: an item in the caller's scope names the person it concerns (a woman living
in village B but registered in village A is on B's checkup list under her name: B's cadre
checks her). Lists whose items may point at a record the caller may not see say so: migrant
records waiting for a release hide the person (``migrants.migrant_items``), inbox
notifications name a matched person only inside the reader's scope (``actor=``), a sync
conflict names the current record only when it is still in scope.

The summary's ``village_code`` is the village of her register entry (``village_code`` of
``GET /persons/{id}``), ``village_name`` that area's name.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import String, Uuid, cast, null, union_all
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from app.authz.actor import Actor
from app.authz.scope import scope_clause
from app.models.areas import Area
from app.models.households import Household, HouseholdSummary, People, Person, PersonSummary

__all__ = ["NOBODY", "PeopleOnPage", "load_people", "with_people"]

ItemT = TypeVar("ItemT", bound=SQLModel)


@dataclass(frozen=True)
class PeopleOnPage:
    """The people of one page, by id."""

    persons: dict[uuid.UUID, PersonSummary] = field(default_factory=dict)
    households: dict[uuid.UUID, HouseholdSummary] = field(default_factory=dict)
    homes: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # person → her household

    def person(self, person_id: uuid.UUID | None) -> PersonSummary | None:
        return self.persons.get(person_id) if person_id is not None else None

    def home(self, person_id: uuid.UUID | None) -> uuid.UUID | None:
        """The household a (found) person belongs to."""
        return self.homes.get(person_id) if person_id is not None else None

    def household(
        self, household_id: uuid.UUID | None = None, person_id: uuid.UUID | None = None
    ) -> HouseholdSummary | None:
        """The household the item names itself, else the household of its person."""
        hid = household_id if household_id is not None else self.home(person_id)
        return self.households.get(hid) if hid is not None else None

    def of(self, person_id: uuid.UUID | None, household_id: uuid.UUID | None = None) -> People:
        """An item's ``person`` and ``household``."""
        return People(person=self.person(person_id), household=self.household(household_id, person_id))


NOBODY = People(person=None, household=None)


def with_people(item: type[ItemT], view: SQLModel, people: People) -> ItemT:
    """A record's list view (``XPublic``) as its list item (``XItem``: the view and ``people``)."""
    return item.model_validate({**dict(view), **dict(people)})


def _ids(values: Iterable[uuid.UUID | None]) -> set[uuid.UUID]:
    return {v for v in values if v is not None}


async def load_people(
    session: AsyncSession,
    *,
    person_ids: Iterable[uuid.UUID | None],
    household_ids: Iterable[uuid.UUID | None] = (),
    actor: Actor | None = None,
) -> PeopleOnPage:
    """The summaries of these persons (each with her household) and households, in one
    statement (none when there are no ids). ``actor``: only records in that caller's scope."""
    pids, hids = _ids(person_ids), _ids(household_ids)
    if not pids and not hids:
        return PeopleOnPage()
    p, h = Person, Household
    parts: list[Any] = []
    if pids:
        persons: Any = (
            sa_select(
                col(p.id).label("person_id"),
                col(p.name).label("name"),
                col(p.id_number_masked).label("id_number_masked"),
                col(p.village_code).label("village_code"),
                col(Area.name).label("village_name"),
                col(h.id).label("household_id"),
                col(h.address).label("address"),
            )
            .select_from(p)
            .join(h, col(h.id) == col(p.household_id))
            .outerjoin(Area, col(Area.code) == col(p.village_code))
            .where(col(p.id).in_(pids))
        )
        parts.append(persons.where(scope_clause(p, actor)) if actor is not None else persons)
    if hids:
        households: Any = sa_select(
            cast(null(), Uuid()).label("person_id"),
            cast(null(), String()).label("name"),
            cast(null(), String()).label("id_number_masked"),
            cast(null(), String()).label("village_code"),
            cast(null(), String()).label("village_name"),
            col(h.id).label("household_id"),
            col(h.address).label("address"),
        ).where(col(h.id).in_(hids))
        parts.append(households.where(scope_clause(h, actor)) if actor is not None else households)
    stmt: Any = parts[0] if len(parts) == 1 else union_all(*parts)
    out = PeopleOnPage()
    for row in (await session.execute(stmt)).all():
        out.households[row.household_id] = HouseholdSummary(id=row.household_id, address=row.address)
        if row.person_id is not None:
            out.homes[row.person_id] = row.household_id
            out.persons[row.person_id] = PersonSummary(
                id=row.person_id,
                name=row.name,
                id_number_masked=row.id_number_masked,
                village_code=row.village_code,
                village_name=row.village_name,
            )
    return out

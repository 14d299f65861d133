"""Data-quality faults of the register, computed live (a fault disappears once fixed).

Kinds (stable): ``likely_duplicate`` (same name and birth date in the county, at least one
without ID number — searched county-wide, reported on the side in the caller's scope),
``child_born_before_mother_15``, ``married_under_20`` (women; the legal age of marriage),
``over_110_alive``, ``household_without_head``, ``household_no_living_member``,
``village_mismatch`` (the person's current village differs from the household's).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import and_, exists, literal_column, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from app.authz.actor import Actor
from app.authz.policies import FIELD_ROLES, require_role
from app.authz.scope import area_clause, ensure_area_in_scope, scoped
from app.models.households import DataQualityFault, Household, Person

KINDS = (
    "likely_duplicate",
    "child_born_before_mother_15",
    "married_under_20",
    "over_110_alive",
    "household_without_head",
    "household_no_living_member",
    "village_mismatch",
)
MAX_PER_KIND = 1000


def _years_ago(years: int, today: date) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def _plus_years(column: Any, years: int, dialect: str) -> Any:
    if dialect == "sqlite":
        from sqlalchemy import func

        return func.date(column, f"+{years} years")
    return column + literal_column(f"interval '{years} years'")


def _current(model: Any = Person) -> Any:
    return and_(col(model.merged_into_id).is_(None), col(model.death_date).is_(None))


async def list_faults(
    session: AsyncSession, actor: Actor, *, area_code: str | None, kind: str | None
) -> list[DataQualityFault]:
    require_role(actor, *FIELD_ROLES)
    if area_code:
        ensure_area_in_scope(actor, area_code)
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    today = date.today()
    out: list[DataQualityFault] = []

    def narrow(stmt: Any, model: Any) -> Any:
        stmt = scoped(stmt, actor, model)
        return stmt.where(area_clause(model, area_code)) if area_code else stmt

    async def run(k: str, stmt: Any, entity: str, detail: Any) -> None:
        if kind and kind != k:
            return
        rows = (await session.execute(stmt.limit(MAX_PER_KIND))).all()
        out.extend(DataQualityFault(kind=k, entity=entity, id=r[0], detail=detail(r)) for r in rows)

    other = aliased(Person)
    dup = (
        narrow(select(Person.id, other.id), Person)
        .join(
            other,
            and_(
                col(other.county_code) == Person.county_code,
                col(other.name) == Person.name,
                col(other.birth_date) == Person.birth_date,
                col(other.id) != Person.id,
                col(other.merged_into_id).is_(None),
                or_(col(Person.id_number_hash).is_(None), col(other.id_number_hash).is_(None)),
            ),
        )
        .where(col(Person.merged_into_id).is_(None))
    )
    await run(
        "likely_duplicate",
        dup.order_by(Person.id),
        "person",
        lambda r: f"same name and birth date as person {r[1]}",
    )

    mother = aliased(Person)
    young = (
        narrow(select(Person.id, mother.id), Person)
        .join(mother, mother.id == Person.mother_id)
        .where(
            col(Person.merged_into_id).is_(None),
            Person.birth_date < _plus_years(mother.birth_date, 15, dialect),
        )
    )
    await run(
        "child_born_before_mother_15",
        young.order_by(Person.id),
        "person",
        lambda r: f"born before mother {r[1]} turned 15",
    )

    under20 = narrow(select(Person.id), Person).where(
        _current(),
        Person.sex == "female",
        Person.marital_status == "married",
        col(Person.birth_date) > _years_ago(20, today),
    )
    await run("married_under_20", under20.order_by(Person.id), "person", lambda _r: "married woman under 20")

    cutoff = _years_ago(110, today)
    old = narrow(select(Person.id), Person).where(_current(), col(Person.birth_date) < cutoff)
    await run(
        "over_110_alive",
        old.order_by(Person.id),
        "person",
        lambda _r: "over 110 and not recorded as deceased",
    )

    headless = narrow(select(Household.id), Household).where(col(Household.head_person_id).is_(None))
    await run(
        "household_without_head",
        headless.order_by(Household.id),
        "household",
        lambda _r: "no head of household",
    )

    living = exists().where(col(Person.household_id) == Household.id, _current())
    empty = narrow(select(Household.id), Household).where(~living)
    await run(
        "household_no_living_member", empty.order_by(Household.id), "household", lambda _r: "no living member"
    )

    moved = narrow(select(Person.id, Person.current_village_code), Person).where(
        _current(), Person.current_village_code != Person.village_code
    )
    await run(
        "village_mismatch",
        moved.order_by(Person.id),
        "person",
        lambda r: f"lives in {r[1]}, household elsewhere",
    )
    return out

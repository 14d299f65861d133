"""Data-quality faults of the register (a fault disappears once fixed).

Kinds (stable): ``likely_duplicate`` (same name and birth date in the county, at least one
without ID number — searched county-wide, reported on the side in the caller's scope),
``child_born_before_mother_15``, ``married_under_20`` (women; the legal age of marriage),
``over_110_alive``, ``household_without_head``, ``household_no_living_member``,
``village_mismatch`` (the person's current village differs from the household's).

The list (``list_faults``) runs the live queries. The counts the figures show
(``count_faults``) read ``data_quality_flag`` for the five kinds that do not depend on the date:
those flags are re-derived with the same queries, narrowed to the touched records, in every
transaction that writes a person or a household (``indicator_upkeep``). The two date-dependent
kinds stay live: each is a range scan of a partial index of living people by birth date.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import and_, exists, func, literal, literal_column, or_, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from app.authz.actor import Actor, scope_prefix
from app.authz.policies import FIELD_ROLES, require_role
from app.authz.scope import area_clause, ensure_area_in_scope, scoped
from app.core import clock
from app.core.messages import translate
from app.models.households import DataQualityFault, Household, Person
from app.models.indicators import LIVING, LIVING_MARRIED_WOMEN, DataQualityFlag
from app.services.summaries import load_people

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


def fault_queries(narrow: Any, dialect: str, today: date) -> list[tuple[str, str, Any, Any]]:
    """(kind, entity, statement, detail) per kind. Each statement selects ``id``, ``info`` (for
    the detail), and the place columns ``t`` (township) and ``v`` (village) of the record."""

    def cols(model: Any, info: Any) -> list[Any]:
        return [
            col(model.id).label("id"),
            info.label("info"),
            col(model.township_code).label("t"),
            col(model.village_code).label("v"),
        ]

    other = aliased(Person)
    dup = (
        narrow(select(*cols(Person, col(other.id))), Person)
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
    mother = aliased(Person)
    young = (
        narrow(select(*cols(Person, col(mother.id))), Person)
        .join(mother, col(mother.id) == Person.mother_id)
        .where(
            col(Person.merged_into_id).is_(None),
            col(Person.birth_date) < _plus_years(mother.birth_date, 15, dialect),
        )
    )
    under20 = narrow(select(*cols(Person, literal(""))), Person).where(
        _current(),
        col(Person.sex) == "female",
        col(Person.marital_status) == "married",
        col(Person.birth_date) > _years_ago(20, today),
    )
    old = narrow(select(*cols(Person, literal(""))), Person).where(
        _current(), col(Person.birth_date) < _years_ago(110, today)
    )
    headless = narrow(select(*cols(Household, literal(""))), Household).where(
        col(Household.head_person_id).is_(None)
    )
    living = exists().where(col(Person.household_id) == Household.id, _current())
    empty = narrow(select(*cols(Household, literal(""))), Household).where(~living)
    moved = narrow(select(*cols(Person, col(Person.current_village_code))), Person).where(
        _current(), col(Person.current_village_code) != Person.village_code
    )
    return [
        ("likely_duplicate", "person", dup, lambda i: f"same name and birth date as person {i}"),
        ("child_born_before_mother_15", "person", young, lambda i: f"born before mother {i} turned 15"),
        ("married_under_20", "person", under20, lambda _i: "married woman under 20"),
        ("over_110_alive", "person", old, lambda _i: "over 110 and not recorded as deceased"),
        ("household_without_head", "household", headless, lambda _i: "no head of household"),
        ("household_no_living_member", "household", empty, lambda _i: "no living member"),
        ("village_mismatch", "person", moved, lambda i: f"lives in {i}, household elsewhere"),
    ]


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


async def list_faults(
    session: AsyncSession, actor: Actor, *, area_code: str | None, kind: str | None
) -> list[DataQualityFault]:
    require_role(actor, *FIELD_ROLES)
    if area_code:
        ensure_area_in_scope(actor, area_code)

    def narrow(stmt: Any, model: Any) -> Any:
        stmt = scoped(stmt, actor, model)
        return stmt.where(area_clause(model, area_code)) if area_code else stmt

    from app.services.indicator_upkeep import FLAGGED_KINDS

    out: list[DataQualityFault] = []
    for k, entity, stmt, detail in fault_queries(narrow, _dialect(session), clock.today()):
        if kind and kind != k:
            continue
        if k in FLAGGED_KINDS:
            # Kept as flags in every write: the live query runs only on the flagged records (a
            # county-wide self-join for duplicates took ~10 s on a 700,000-person county); its
            # own scope and area filters still apply, so the answer is the live one.
            flagged = scoped(select(DataQualityFlag.entity_id), actor, DataQualityFlag).where(
                DataQualityFlag.kind == k
            )
            if area_code:
                flagged = flagged.where(area_clause(DataQualityFlag, area_code))
            model = Person if entity == "person" else Household
            stmt = stmt.where(col(model.id).in_(flagged))
        rows = (await session.execute(stmt.order_by(literal_column("id")).limit(MAX_PER_KIND))).all()
        out.extend(
            DataQualityFault(kind=k, entity=entity, id=r.id, detail=translate(detail(r.info))) for r in rows
        )
    return out


async def add_people(session: AsyncSession, faults: list[DataQualityFault]) -> list[DataQualityFault]:
    """Each fault with the record it is about: a person fault names her and her household, a
    household fault its household (one query for the whole list; faults are in scope)."""
    people = await load_people(
        session,
        person_ids=(f.id for f in faults if f.entity == "person"),
        household_ids=(f.id for f in faults if f.entity == "household"),
    )
    for f in faults:
        if f.entity == "person":
            f.person, f.household = people.person(f.id), people.household(person_id=f.id)
        elif f.entity == "household":
            f.household = people.household(f.id)
    return faults


async def count_faults(session: AsyncSession, *, area_code: str, by: str) -> dict[str, int]:
    """Open faults per child area (``by`` = "t" township or "v" village), for the figures.
    Callers have checked the area is in scope; counts reveal no record.

    The maintained kinds are counted from their flags; ``married_under_20`` and
    ``over_110_alive`` live, with the very predicates of the partial indexes (literal SQL, so
    that PostgreSQL's generic plans and SQLite can match them) plus the county column."""
    prefix = scope_prefix(area_code)
    flag, person = DataQualityFlag, Person
    group: Any = col(flag.township_code) if by == "t" else col(flag.village_code)
    totals: dict[str, int] = {}
    stmt = select(group, func.count()).where(area_clause(flag, area_code)).group_by(group)
    for code, n in (await session.execute(stmt)).all():
        totals[code] = totals.get(code, 0) + int(n)
    today = clock.today()
    group = col(person.township_code) if by == "t" else col(person.village_code)
    for predicate, bound in (
        (LIVING_MARRIED_WOMEN, col(person.birth_date) > _years_ago(20, today)),
        (LIVING, col(person.birth_date) < _years_ago(110, today)),
    ):
        stmt = (
            select(group, func.count())
            .where(
                col(person.county_code) == prefix[:6], text(predicate), bound, area_clause(person, area_code)
            )
            .group_by(group)
        )
        for code, n in (await session.execute(stmt)).all():
            totals[code] = totals.get(code, 0) + int(n)
    return totals

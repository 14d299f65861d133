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

import hashlib
import json
import uuid
from datetime import date
from typing import Any

from sqlalchemy import and_, exists, func, literal, literal_column, or_, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from app.authz.actor import Actor, scope_prefix
from app.authz.policies import FIELD_ROLES, SUPERVISOR_ROLES, require_role
from app.authz.scope import area_clause, ensure_area_in_scope, get_scoped, scoped
from app.core import clock
from app.core.db import utcnow
from app.core.errors import FieldError, NotFound, ValidationFailed
from app.core.messages import translate
from app.models.common import place_columns
from app.models.households import (
    DataQualityDismissal,
    DataQualityFault,
    DismissalPublic,
    DismissRequest,
    FaultDismissed,
    FaultEntity,
    FaultKind,
    Household,
    Person,
)
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
    # The very predicates of the partial indexes, as literal SQL (as ``count_faults`` does): with
    # bound values PostgreSQL's plan could not use them and read the whole county (2.4 s for the
    # married-under-20 list of a 700,000-person county; 10 ms with the index).
    under20 = narrow(select(*cols(Person, literal(""))), Person).where(
        text(LIVING_MARRIED_WOMEN), col(Person.birth_date) > _years_ago(20, today)
    )
    old = narrow(select(*cols(Person, literal(""))), Person).where(
        text(LIVING), col(Person.birth_date) < _years_ago(110, today)
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
    session: AsyncSession,
    actor: Actor,
    *,
    area_code: str | None,
    kind: str | None,
    include_dismissed: bool = False,
) -> list[DataQualityFault]:
    """Open faults in scope; dismissed ones (whose fields have not changed since) only with
    ``include_dismissed``, marked with who dismissed them, when and why."""
    require_role(actor, *FIELD_ROLES)
    if area_code:
        ensure_area_in_scope(actor, area_code)

    def narrow(stmt: Any, model: Any) -> Any:
        stmt = scoped(stmt, actor, model)
        return stmt.where(area_clause(model, area_code)) if area_code else stmt

    from app.services.indicator_upkeep import FLAGGED_KINDS

    out: list[DataQualityFault] = []
    found: list[tuple[DataQualityFault, uuid.UUID | None]] = []
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
        # OFFSET 0 fences the query off from the ORDER BY … LIMIT: without it PostgreSQL may walk
        # the primary key in order, hoping to meet 1,000 matches early, and read a whole county
        # to find the three married women under 20 (2.1 s on 700,000 people; 10 ms with it).
        fenced = stmt.offset(0).subquery()
        ordered = select(fenced).order_by(fenced.c.id).limit(MAX_PER_KIND)
        rows = (await session.execute(ordered)).all()
        found.extend(
            (
                DataQualityFault(kind=k, entity=entity, id=r.id, detail=translate(detail(r.info))),
                _other(k, r.info),
            )
            for r in rows
        )
    dismissed = await _dismissed(session, found)
    for fault, other in found:
        gone = dismissed.get((fault.kind, fault.id, other))
        if gone is None:
            out.append(fault)
        elif include_dismissed:
            fault.dismissed = FaultDismissed(by=gone.dismissed_by, at=gone.dismissed_at, reason=gone.reason)
            out.append(fault)
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
    for t, v in await _dismissed_open(session, area_code):
        code = t if by == "t" else v
        totals[code] = totals.get(code, 0) - 1
    return totals


# --- dismissals -----------------------------------------------------------------------------------
#
# A township or county may set a fault aside ("not a duplicate", "really 112 and alive"). It stays
# aside while the fields the fault rests on keep their values: the dismissal stores a SHA-256 of
# them (values the register holds in clear beside it — names, dates, codes, ids — or already as a
# keyed hash: the ID number's blind index; so the digest tells nothing the rows do not), and the
# list compares it with the digest of the current values. Another value of any of those fields,
# and the fault is raised again. For a likely duplicate the fields are both
# records' (name, birth date, ID number), and what is dismissed is the pair: one row per direction,
# each at its record's place, so the other record's side is quiet too (a third look-alike is a new
# pair and is raised). Rotating the blind-index key raises dismissed duplicates with an ID number
# again. The figures' ``data_quality_open`` leaves out the records whose open faults of a kind
# are all dismissed (``count_faults``).

FAULT_ENTITY = {
    "likely_duplicate": "person",
    "child_born_before_mother_15": "person",
    "married_under_20": "person",
    "over_110_alive": "person",
    "household_without_head": "household",
    "household_no_living_member": "household",
    "village_mismatch": "person",
}
_CHUNK = 900
Key = tuple[uuid.UUID, uuid.UUID | None]


def _other(kind: str, info: Any) -> uuid.UUID | None:
    """The other record of a likely duplicate (a fault row's ``info``)."""
    if kind != "likely_duplicate" or info is None:
        return None
    return info if isinstance(info, uuid.UUID) else uuid.UUID(str(info))


def _chunks(ids: list[uuid.UUID]) -> list[list[uuid.UUID]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


async def _persons(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Person]:
    out: dict[uuid.UUID, Person] = {}
    for part in _chunks(sorted(ids)):
        out.update(
            {
                p.id: p
                for p in (await session.execute(select(Person).where(col(Person.id).in_(part)))).scalars()
            }
        )
    return out


async def _fingerprints(session: AsyncSession, kind: str, keys: set[Key]) -> dict[Key, str]:
    """The SHA-256 of the fields each fault rests on (as the rows hold them: an ID number only
    as its blind index), per (record, other record)."""
    parts: dict[Key, Any] = {}
    if FAULT_ENTITY[kind] == "household":
        households = {h.id: h for h in (await _rows(session, Household, {k[0] for k in keys}))}
        members: dict[uuid.UUID, list[Person]] = {}
        for part in _chunks(sorted(households)):
            stmt = select(Person).where(col(Person.household_id).in_(part))
            for p in (await session.execute(stmt)).scalars():
                members.setdefault(p.household_id, []).append(p)
        for key in keys:
            h = households.get(key[0])
            people = sorted(members.get(key[0], []), key=lambda p: str(p.id))
            if h is None:
                continue
            if kind == "household_without_head":
                parts[key] = [h.head_person_id, [p.id for p in people if p.merged_into_id is None]]
            else:
                parts[key] = [[p.id, p.death_date, p.merged_into_id] for p in people]
    else:
        persons = await _persons(session, {k[0] for k in keys} | {k[1] for k in keys if k[1]})
        if kind == "child_born_before_mother_15":
            mothers = {p.mother_id for p in persons.values() if p.mother_id} - set(persons)
            persons.update(await _persons(session, mothers))
        for key in keys:
            found = persons.get(key[0])
            if found is None:
                continue
            p = found
            if kind == "likely_duplicate":
                o = persons.get(key[1]) if key[1] else None
                if o is None:
                    continue
                parts[key] = [p.name, p.birth_date, p.id_number_hash, o.name, o.birth_date, o.id_number_hash]
            elif kind == "child_born_before_mother_15":
                mother = persons.get(p.mother_id) if p.mother_id else None
                parts[key] = [p.birth_date, p.mother_id, mother.birth_date if mother else None]
            elif kind == "married_under_20":
                parts[key] = [p.sex, p.marital_status, p.birth_date]
            elif kind == "over_110_alive":
                parts[key] = [p.birth_date, p.death_date]
            else:  # village_mismatch
                parts[key] = [p.village_code, p.current_village_code]
    return {
        key: hashlib.sha256(json.dumps([kind, value], default=str).encode()).hexdigest()
        for key, value in parts.items()
    }


async def _rows(session: AsyncSession, model: Any, ids: set[uuid.UUID]) -> list[Any]:
    out: list[Any] = []
    for part in _chunks(sorted(ids)):
        out.extend((await session.execute(select(model).where(col(model.id).in_(part)))).scalars())
    return out


async def _dismissed(
    session: AsyncSession, faults: list[tuple[DataQualityFault, uuid.UUID | None]]
) -> dict[tuple[str, uuid.UUID, uuid.UUID | None], DataQualityDismissal]:
    """The listed faults whose dismissal still holds (fingerprint unchanged), by (kind, id, other)."""
    wanted = {(f.kind, f.id, other) for f, other in faults}
    candidates: dict[tuple[str, uuid.UUID, uuid.UUID | None], DataQualityDismissal] = {}
    for part in _chunks(sorted({f.id for f, _ in faults})):
        stmt = select(DataQualityDismissal).where(col(DataQualityDismissal.entity_id).in_(part))
        for d in (await session.execute(stmt.order_by(col(DataQualityDismissal.dismissed_at)))).scalars():
            key = (d.kind, d.entity_id, d.other_id)
            if key in wanted:
                candidates[key] = d  # the latest dismissal of a fault decides
    by_kind: dict[str, set[Key]] = {}
    for kind, ident, other in candidates:
        by_kind.setdefault(kind, set()).add((ident, other))
    holding: dict[tuple[str, uuid.UUID, uuid.UUID | None], DataQualityDismissal] = {}
    for kind, keys in by_kind.items():
        now = await _fingerprints(session, kind, keys)
        for ident, other in keys:
            d = candidates[(kind, ident, other)]
            if now.get((ident, other)) == d.fingerprint:
                holding[(kind, ident, other)] = d
    return holding


async def dismiss_fault(
    session: AsyncSession, actor: Actor, data: DismissRequest
) -> list[DataQualityDismissal]:
    """Township or county (village: 403): set an open fault of a record in scope aside (out of
    scope, or no such open fault: 404). Dismissing again (after the fields changed, or to give
    another reason) replaces the earlier dismissal. A likely duplicate is dismissed for every
    pair the record is in now, or only the pair with ``other_id``."""
    require_role(actor, *SUPERVISOR_ROLES)
    kind = data.kind.value
    if data.entity.value != FAULT_ENTITY[kind]:
        raise ValidationFailed(
            f"A {kind} fault is about a {FAULT_ENTITY[kind]}",
            errors=[FieldError(field="entity", message=f"must be {FAULT_ENTITY[kind]} for {kind}")],
        )
    if data.other_id is not None and kind != "likely_duplicate":
        raise ValidationFailed(
            "other_id is for likely_duplicate only",
            errors=[FieldError(field="other_id", message="only for likely_duplicate")],
        )
    model = Person if data.entity.value == "person" else Household
    await get_scoped(session, model, data.id, actor)

    def narrow(stmt: Any, m: Any) -> Any:
        return stmt.where(col(m.id) == data.id)

    stmt = next(q for k, _e, q, _d in fault_queries(narrow, _dialect(session), clock.today()) if k == kind)
    rows = (await session.execute(stmt)).all()
    keys: set[Key] = {(r.id, _other(kind, r.info)) for r in rows}
    if data.other_id is not None:
        keys = {k for k in keys if k[1] == data.other_id}
    if not keys:
        raise NotFound("No open fault of this kind for this record")
    keys |= {(other, ident) for ident, other in keys if other is not None}  # both sides of a pair
    prints = await _fingerprints(session, kind, keys)
    records = {r.id: r for r in await _rows(session, model, {k[0] for k in keys})}
    existing: dict[Key, DataQualityDismissal] = {}
    for part in _chunks(sorted({k[0] for k in keys})):
        stmt = select(DataQualityDismissal).where(
            col(DataQualityDismissal.entity_id).in_(part), DataQualityDismissal.kind == kind
        )
        for d in (await session.execute(stmt)).scalars():
            existing[(d.entity_id, d.other_id)] = d
    out: list[DataQualityDismissal] = []
    now = utcnow()
    for key in sorted(keys, key=lambda k: (k[0] != data.id, str(k[0]), str(k[1]))):
        record = records[key[0]]
        known = existing.get(key)
        if known is None:
            d = DataQualityDismissal(
                kind=kind,
                entity=data.entity.value,
                entity_id=key[0],
                other_id=key[1],
                fingerprint=prints.get(key, ""),
                reason=data.reason,
                dismissed_by=actor.id,
                dismissed_at=now,
                **place_columns(record.village_code),
            )
            session.add(d)
        else:
            d = known
            d.fingerprint = prints.get(key, "")
            d.reason = data.reason
            d.dismissed_by = actor.id
            d.dismissed_at = now
            for column, value in place_columns(record.village_code).items():
                setattr(d, column, value)
        out.append(d)
    await session.flush()
    return out


def dismissal_public(d: DataQualityDismissal) -> DismissalPublic:
    return DismissalPublic(
        kind=FaultKind(d.kind),
        entity=FaultEntity(d.entity),
        id=d.entity_id,
        other_id=d.other_id,
        reason=d.reason,
        dismissed_by=d.dismissed_by,
        dismissed_at=d.dismissed_at,
    )


async def _dismissed_open(session: AsyncSession, area_code: str) -> list[tuple[str, str]]:
    """The place (township, village) of each record, once per kind, that a count of open faults
    leaves out: its faults of that kind are open and every one of them is dismissed (the
    dismissal's fingerprint still holds). Reads the area's dismissals, usually few."""
    stmt = select(DataQualityDismissal).where(area_clause(DataQualityDismissal, area_code))
    rows = list((await session.execute(stmt.order_by(col(DataQualityDismissal.dismissed_at)))).scalars())
    if not rows:
        return []
    by_kind: dict[str, dict[Key, DataQualityDismissal]] = {}
    for d in rows:
        by_kind.setdefault(d.kind, {})[(d.entity_id, d.other_id)] = d
    out: list[tuple[str, str]] = []
    dialect = _dialect(session)
    for kind, dismissals in by_kind.items():
        prints = await _fingerprints(session, kind, set(dismissals))
        holding = {key for key, d in dismissals.items() if prints.get(key) == d.fingerprint}
        ids = sorted({key[0] for key in holding})
        for part in _chunks(ids):

            def narrow(stmt: Any, model: Any, part: list[uuid.UUID] = part) -> Any:
                return stmt.where(col(model.id).in_(part))

            query = next(q for k, _e, q, _d in fault_queries(narrow, dialect, clock.today()) if k == kind)
            open_keys: dict[uuid.UUID, tuple[set[Key], tuple[str, str]]] = {}
            for r in (await session.execute(query)).all():
                place = (str(r._mapping["t"]), str(r._mapping["v"]))  # (``Row.t`` is the tuple)
                keys, _place = open_keys.setdefault(r.id, (set(), place))
                keys.add((r.id, _other(kind, r.info)))
            out.extend(place for keys, place in open_keys.values() if keys <= holding)
    return out

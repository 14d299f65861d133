"""Checkup rounds ("three checks"): who is due, appointments, results, overdue, figures.

Who is due in a round (``is_due`` is the rule; ``_due_select`` the same rule in SQL):
women, alive, not merged, married, aged 15–49 (15 reached by the reference day — the opening
day, or today while the window is open — and not yet 50 on the opening day), living in the
round's area: their current village, or the village of an open inflow migrant record; a woman
with an open outflow record lives elsewhere and is not due. A woman exempted in an earlier round
until a date on or after this round's opening is carried in as ``exempted``.

Appointments are created set-based (INSERT … SELECT) with their change-log rows, so a county of
140,000 women takes seconds. Each appointment is its woman's "checkup due by the closing day"
inbox item (read from the appointments by ``tasks.list_tasks``, overdue the moment the window
closes), not a task row of its own. While a round is open, register events (marriage, move, death,
merge, migrant records) re-evaluate the woman through the person-change hook: she joins or
leaves (``cancelled`` with the reason) where the event is recorded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Table, and_, case, exists, func, insert, literal, literal_column, or_, text
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from app.authz.actor import Actor, scope_prefix
from app.authz.policies import FIELD_ROLES, SUPERVISOR_ROLES, require_role
from app.authz.scope import get_scoped, scoped
from app.core import clock
from app.core.db import utcnow
from app.core.errors import (
    Conflict,
    FieldError,
    IdConflict,
    InvalidTransition,
    NotFound,
    OutOfScope,
    ValidationFailed,
)
from app.core.messages import both
from app.core.pagination import paginate
from app.core.security import FieldCipher
from app.models.areas import Area
from app.models.checkups import (
    ITEMS,
    MERGED,
    AppointmentAction,
    AppointmentEvent,
    AppointmentItem,
    AppointmentPublic,
    AppointmentStatus,
    AreaFigures,
    CancelIn,
    CheckupAppointment,
    CheckupRound,
    DeclineIn,
    ExemptIn,
    ExemptReason,
    Place,
    RescheduleIn,
    ResultCorrection,
    ResultIn,
    RoundCreate,
    RoundFigures,
    RoundPublic,
)
from app.models.common import place_columns
from app.models.households import Person
from app.models.migrants import Migrant
from app.models.sync import Change
from app.models.visits import TaskKind
from app.services import areas as areas_svc
from app.services import audit
from app.services import households as hh
from app.services.changes import register_synced, txid_expr
from app.services.masking import mask_phone
from app.services.records import check_version, touch
from app.services.summaries import load_people, with_people
from app.services.tasks import open_task

register_synced("checkup_appointment", "checkup_appointment")
hh.register_person_ref(CheckupAppointment, "person_id")

SCHEDULED = AppointmentStatus.scheduled.value
CANCELLED = AppointmentStatus.cancelled.value
DECLINED = AppointmentStatus.declined.value
# Statuses a township or county user may cancel (a result is never thrown away by a cancel).
CANCELLABLE = (SCHEDULED, DECLINED, AppointmentStatus.exempted.value)


# --- the rule -------------------------------------------------------------------------------------


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def reference_day(opens_on: date, closes_on: date, today: date) -> date:
    """The day by which a girl must have turned 15: the opening day, or today while open."""
    return max(opens_on, min(today, closes_on))


def age_window(opens_on: date, closes_on: date, today: date) -> tuple[date, date]:
    """(born after, born on or before): 15 by the reference day, not yet 50 on opening day."""
    return years_before(opens_on, 50), years_before(reference_day(opens_on, closes_on, today), 15)


@dataclass(frozen=True)
class Woman:
    sex: str
    marital_status: str
    birth_date: date
    alive: bool
    merged: bool
    residence: str | None  # village she lives in now (None: lives elsewhere, open outflow)


def is_due(w: Woman, *, area_prefix: str, opens_on: date, closes_on: date, today: date) -> str | None:
    """None when due; otherwise the reason she is not (used as the cancel reason)."""
    if w.merged:
        return "merged"
    if not w.alive:
        return "deceased"
    if w.residence is None or not w.residence.startswith(area_prefix):
        return "moved_out"
    if w.sex != "female" or w.marital_status != "married":
        return "not_eligible"
    born_after, born_by = age_window(opens_on, closes_on, today)
    if not (born_after < w.birth_date <= born_by):
        return "age"
    return None


# --- set-based creation ---------------------------------------------------------------------------


def _new_uuid(dialect: str) -> Any:
    if dialect == "postgresql":
        return literal_column("gen_random_uuid()")
    return literal_column("lower(hex(randomblob(16)))")


def table_of(model: Any) -> Table:
    table: Table = model.__table__
    return table


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


_APPT_COLUMNS = (
    "id",
    "round_id",
    "person_id",
    "status",
    "exempt_reason",
    "exempt_until",
    "county_code",
    "township_code",
    "village_code",
    "version",
    "created_at",
    "updated_at",
)
_CHANGE_COLUMNS = (
    "tx_id",
    "entity",
    "entity_id",
    "version",
    "deleted",
    "county_code",
    "township_code",
    "village_code",
    "at",
)


def _due_select(
    dialect: str,
    rnd: CheckupRound,
    today: date,
    now: Any,
    *,
    new_round: bool,
    rivals: list[uuid.UUID] | None = None,
) -> Any:
    """The round's due women without an appointment yet, as appointment rows (labelled as the
    appointment's columns). ``rivals``: other rounds whose window overlaps and that share an item
    (``_overlapping_rounds``); a woman holding an appointment there that is not cancelled (she
    moved here after it was made, or the rounds predate the overlap rule) is not due twice."""
    born_after, born_by = age_window(rnd.opens_on, rnd.closes_on, today)
    inflow = aliased(Migrant)
    residence = func.coalesce(inflow.village_code, Person.current_village_code)
    appt = table_of(CheckupAppointment)
    # Exemptions carried from earlier rounds: one grouped scan joined once (not a correlated
    # subquery per woman).
    carried = (
        sa_select(
            col(CheckupAppointment.person_id).label("person_id"),
            func.max(CheckupAppointment.exempt_until).label("until"),
            func.max(CheckupAppointment.exempt_reason).label("reason"),
        )
        .where(
            col(CheckupAppointment.status) == AppointmentStatus.exempted.value,
            col(CheckupAppointment.exempt_until) >= rnd.opens_on,
        )
        .group_by(col(CheckupAppointment.person_id))
        .subquery()
    )
    where = [
        col(Person.sex) == "female",
        col(Person.marital_status) == "married",
        col(Person.death_date).is_(None),
        col(Person.merged_into_id).is_(None),
        col(Person.birth_date) > born_after,
        col(Person.birth_date) <= born_by,
        residence.like(rnd.area_prefix + "%"),
        ~exists().where(
            col(Migrant.person_id) == Person.id,
            col(Migrant.direction) == "outflow",
            col(Migrant.status) == "open",
        ),
    ]
    if rivals:
        other = aliased(CheckupAppointment)
        where.append(
            ~exists().where(
                col(other.person_id) == Person.id,
                col(other.round_id).in_(rivals),
                col(other.status) != CANCELLED,
            )
        )
    if not new_round:  # a round just created has no appointment yet
        where.append(
            ~exists().where(
                col(CheckupAppointment.person_id) == Person.id,
                col(CheckupAppointment.round_id) == rnd.id,
            )
        )
    return (
        sa_select(
            _new_uuid(dialect).label("id"),
            literal(rnd.id, type_=appt.c.round_id.type).label("round_id"),
            col(Person.id).label("person_id"),
            case((carried.c.until.is_not(None), AppointmentStatus.exempted.value), else_=SCHEDULED).label(
                "status"
            ),
            carried.c.reason.label("exempt_reason"),
            carried.c.until.label("exempt_until"),
            func.substr(residence, 1, 6).label("county_code"),
            func.substr(residence, 1, 9).label("township_code"),
            residence.label("village_code"),
            literal(1).label("version"),
            literal(now).label("created_at"),
            literal(now).label("updated_at"),
        )
        .select_from(Person)
        .outerjoin(carried, carried.c.person_id == Person.id)
        .outerjoin(
            inflow,
            and_(
                col(inflow.person_id) == Person.id,
                col(inflow.direction) == "inflow",
                col(inflow.status) == "open",
            ),
        )
        .where(*where)
    )


def _change_values(entity: str, source: Any, now: Any, dialect: str) -> Any:
    return sa_select(
        txid_expr(dialect),
        literal(entity),
        source.c.id,
        literal(1),
        literal(False),
        source.c.county_code,
        source.c.township_code,
        source.c.village_code,
        literal(now),
    )


async def _insert_due(session: AsyncSession, rnd: CheckupRound, today: date, *, new_round: bool) -> int:
    """Appointments for the round's due women who have none yet, with their change-log rows;
    returns how many appointments were created.

    No task rows: a scheduled appointment *is* its woman's "checkup due" inbox item
    (``tasks.list_tasks`` reads them from the appointments), so a county-wide round writes
    123,000 rows fewer (and as many change rows), and the item follows the appointment when
    she moves, is done, declines or leaves. On PostgreSQL this is one statement: the due women
    are selected once (a CTE) feeding two data-modifying CTEs (appointments and their change
    rows), so nothing is read back. SQLite (no data-modifying CTEs) inserts the appointments,
    then their change rows from the rows this call inserted (they carry its ``now``)."""
    dialect = _dialect(session)
    now = utcnow()
    rivals = await _overlapping_rounds(
        session,
        rnd.area_prefix,
        rnd.opens_on,
        rnd.closes_on,
        rnd.items.split(","),
        nested=False,
        exclude=rnd.id,
    )
    due = _due_select(dialect, rnd, today, now, new_round=new_round, rivals=[r.id for r in rivals])
    appt, change = table_of(CheckupAppointment), table_of(Change)
    if dialect == "postgresql":
        rows = due.cte("due")
        new_appts = insert(appt).from_select(
            list(_APPT_COLUMNS), sa_select(*(rows.c[c] for c in _APPT_COLUMNS))
        )
        appt_changes = insert(change).from_select(
            list(_CHANGE_COLUMNS), _change_values("checkup_appointment", rows, now, dialect)
        )
        stmt = (
            sa_select(func.count())
            .select_from(rows)
            .add_cte(new_appts.cte("new_appts"), appt_changes.cte("appt_changes"))
        )
        return int((await session.execute(stmt)).scalar_one())
    due_rows = due.subquery()
    result = await session.execute(
        insert(appt).from_select(list(_APPT_COLUMNS), sa_select(*(due_rows.c[c] for c in _APPT_COLUMNS)))
    )
    created = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if not created:
        return 0
    mine = sa_select(appt).where(appt.c.round_id == rnd.id, appt.c.created_at == now).subquery()
    await session.execute(
        insert(change).from_select(
            list(_CHANGE_COLUMNS), _change_values("checkup_appointment", mine, now, dialect)
        )
    )
    return created


# --- rounds ---------------------------------------------------------------------------------------


def round_public(r: CheckupRound) -> RoundPublic:
    return RoundPublic(
        id=r.id,
        name=r.name,
        area_code=r.area_code,
        opens_on=r.opens_on,
        closes_on=r.closes_on,
        items=r.items.split(","),  # type: ignore[arg-type]
        created_by=r.created_by,
        version=r.version,
        created_at=r.created_at,
    )


def rounds_overlap(
    a_prefix: str,
    a_window: tuple[date, date],
    a_items: set[str],
    b_prefix: str,
    b_window: tuple[date, date],
    b_items: set[str],
) -> bool:
    """The overlap rule (409 ``round_overlaps``): one area equals or contains the other (scope
    prefixes), the windows share a day (closing and opening days included: a round closing on
    the 31st and one opening on the 1st do not overlap) and the rounds share an item. Rounds of
    the same area and window with disjoint items are allowed: no woman is due twice for an item."""
    nested = a_prefix.startswith(b_prefix) or b_prefix.startswith(a_prefix)
    windows = a_window[0] <= b_window[1] and b_window[0] <= a_window[1]
    return nested and windows and bool(a_items & b_items)


def _items_clause(items: Iterable[str]) -> Any:
    """A round's comma-separated ``items`` shares one of these (item names are not substrings
    of one another)."""
    return or_(*(col(CheckupRound.items).contains(i) for i in sorted(items)))


async def _overlapping_rounds(
    session: AsyncSession,
    prefix: str,
    opens_on: date,
    closes_on: date,
    items: Iterable[str],
    *,
    nested: bool,
    exclude: uuid.UUID | None = None,
) -> list[CheckupRound]:
    """Rounds whose window overlaps this one and that share an item; with ``nested`` only those
    whose area equals, contains or lies inside ``prefix`` (the overlap rule, ``rounds_overlap``),
    otherwise of any area (a woman who moved may hold an appointment in one). The query narrows
    by window and item; the rule itself is applied by ``rounds_overlap`` on the few rows found."""
    wanted = set(items)
    stmt = select(CheckupRound).where(
        col(CheckupRound.opens_on) <= closes_on,
        col(CheckupRound.closes_on) >= opens_on,
        _items_clause(wanted),
    )
    if nested:
        stmt = stmt.where(CheckupRound.county_code == prefix[:6])
    if exclude is not None:
        stmt = stmt.where(CheckupRound.id != exclude)
    found = (await session.execute(stmt)).scalars()
    return [
        r
        for r in found
        if rounds_overlap(
            prefix,
            (opens_on, closes_on),
            wanted,
            r.area_prefix if nested else prefix,
            (r.opens_on, r.closes_on),
            set(r.items.split(",")),
        )
    ]


def _covers_round(actor: Actor, rnd: CheckupRound) -> bool:
    """A round is visible to callers inside its area and to callers whose area contains it."""
    return actor.county_code == rnd.county_code and (
        rnd.area_prefix.startswith(actor.prefix) or actor.prefix.startswith(rnd.area_prefix)
    )


async def create_round(session: AsyncSession, actor: Actor, data: RoundCreate) -> tuple[CheckupRound, int]:
    """Township or county users open a round for an area inside their scope."""
    require_role(actor, *SUPERVISOR_ROLES)
    prefix = scope_prefix(data.area_code)
    if not prefix.startswith(actor.prefix):
        raise OutOfScope("That area is outside your area")
    await areas_svc.require_area(session, data.area_code)
    if data.closes_on < clock.today():
        raise hh.invalid("closes_on", "must not be before today")
    items = ",".join(i for i in ITEMS if i in data.items)
    if await _overlapping_rounds(session, prefix, data.opens_on, data.closes_on, data.items, nested=True):
        raise Conflict(
            "A round of this area, of an area containing it or of an area inside it, sharing an "
            "item, overlaps that window",
            code="round_overlaps",
        )
    rnd = CheckupRound(
        name=data.name,
        area_code=data.area_code,
        area_prefix=prefix,
        county_code=data.area_code[:6],
        opens_on=data.opens_on,
        closes_on=data.closes_on,
        items=items,
        created_by=actor.id,
    )
    session.add(rnd)
    await session.flush()
    created = await _open_appointments(session, rnd, new_round=True)
    audit.record(session, actor, "open_round", "checkup_round", rnd.id, f"{created} appointments")
    return rnd, created


async def _open_appointments(session: AsyncSession, rnd: CheckupRound, *, new_round: bool) -> int:
    created = await _insert_due(session, rnd, clock.today(), new_round=new_round)
    if created:
        if _dialect(session) == "postgresql" and created > 10_000:
            # A county-wide round changes the table's statistics at once; plan the breakdown
            # queries on the new ones (ANALYZE runs inside the transaction, on its snapshot).
            await session.execute(text("ANALYZE checkup_appointment"))
    return created


async def refresh_round(session: AsyncSession, actor: Actor, round_id: uuid.UUID) -> tuple[CheckupRound, int]:
    """Add women who became due without a register event (e.g. turned 15) while open."""
    require_role(actor, *SUPERVISOR_ROLES)
    rnd = await get_round(session, actor, round_id)
    if not rnd.area_prefix.startswith(actor.prefix):
        raise NotFound("No such round in your area")
    if rnd.closes_on < clock.today():
        raise InvalidTransition("The round's window has closed")
    return rnd, await _open_appointments(session, rnd, new_round=False)


async def get_round(session: AsyncSession, actor: Actor, round_id: uuid.UUID) -> CheckupRound:
    require_role(actor, *FIELD_ROLES)
    rnd = await session.get(CheckupRound, round_id)
    if rnd is None or not _covers_round(actor, rnd):
        raise NotFound("No checkup round with this id")
    return rnd


async def list_rounds(
    session: AsyncSession, actor: Actor, *, area_code: str | None, limit: int, cursor: str | None
) -> tuple[list[CheckupRound], str | None]:
    require_role(actor, *FIELD_ROLES)
    stmt = select(CheckupRound).where(
        CheckupRound.county_code == actor.county_code,
        or_(
            col(CheckupRound.area_prefix).startswith(actor.prefix),
            literal(actor.prefix).startswith(CheckupRound.area_prefix),
        ),
    )
    if area_code:
        stmt = stmt.where(CheckupRound.area_code == area_code)
    return await paginate(
        session,
        stmt,
        order=[CheckupRound.opens_on, CheckupRound.id],
        limit=limit,
        cursor=cursor,
        descending=True,
    )


def _figures_columns(closes_on: date, today: date) -> list[Any]:
    status = col(CheckupAppointment.status)
    return [
        func.sum(case((status != CANCELLED, 1), else_=0)),
        func.sum(case((status == "done", 1), else_=0)),
        func.sum(case((status == "declined", 1), else_=0)),
        func.sum(case((status == "exempted", 1), else_=0)),
        func.sum(case((status == SCHEDULED, 1), else_=0)) if closes_on < today else literal(0),
    ]


def _figures(row: Any) -> RoundFigures:
    due, done, declined, exempted, overdue = (int(v or 0) for v in row)
    denominator = due - exempted
    rate = round(done * 100.0 / denominator, 1) if denominator > 0 else None
    return RoundFigures(due=due, done=done, declined=declined, exempted=exempted, overdue=overdue, rate=rate)


async def round_figures(session: AsyncSession, actor: Actor, rnd: CheckupRound) -> RoundFigures:
    stmt = scoped(select(*_figures_columns(rnd.closes_on, clock.today())), actor, CheckupAppointment).where(
        CheckupAppointment.round_id == rnd.id
    )
    return _figures((await session.execute(stmt)).one())


async def figures_by_round(
    session: AsyncSession, actor: Actor, rounds: list[CheckupRound]
) -> dict[uuid.UUID, RoundFigures]:
    """``round_figures`` of each of these rounds in one grouped query (a page of rounds)."""
    if not rounds:
        return {}
    today = clock.today()
    status = col(CheckupAppointment.status)
    query: Any = sa_select(
        col(CheckupAppointment.round_id),
        func.sum(case((status != CANCELLED, 1), else_=0)),
        func.sum(case((status == "done", 1), else_=0)),
        func.sum(case((status == "declined", 1), else_=0)),
        func.sum(case((status == "exempted", 1), else_=0)),
        func.sum(case((status == SCHEDULED, 1), else_=0)),
    )
    stmt = (
        scoped(query, actor, CheckupAppointment)
        .where(col(CheckupAppointment.round_id).in_([r.id for r in rounds]))
        .group_by(col(CheckupAppointment.round_id))
    )
    found = {row[0]: row[1:] for row in (await session.execute(stmt)).all()}
    out = {}
    for rnd in rounds:
        row = found.get(rnd.id, (0, 0, 0, 0, 0))
        overdue = row[4] if rnd.closes_on < today else 0
        out[rnd.id] = _figures((*row[:4], overdue))
    return out


async def round_breakdown(session: AsyncSession, actor: Actor, round_id: uuid.UUID) -> list[AreaFigures]:
    """The figures per child area (county → townships, township → villages), worst rate first."""
    rnd = await get_round(session, actor, round_id)
    level = max(len(actor.prefix), len(rnd.area_prefix))
    column = CheckupAppointment.township_code if level == 6 else CheckupAppointment.village_code
    stmt = (
        scoped(select(column, *_figures_columns(rnd.closes_on, clock.today())), actor, CheckupAppointment)
        .where(CheckupAppointment.round_id == rnd.id)
        .group_by(column)
    )
    rows = (await session.execute(stmt)).all()
    codes = [r[0] + ("000" if level == 6 else "") for r in rows]
    names = {
        a.code: a.name
        for a in (await session.execute(select(Area).where(col(Area.code).in_(codes)))).scalars()
    }
    out = []
    for code, row in zip(codes, rows, strict=True):
        f = _figures(row[1:])
        out.append(AreaFigures(area_code=code, name=names.get(code), **f.model_dump()))
    out.sort(key=lambda a: (a.rate is None, a.rate if a.rate is not None else 0.0, a.area_code))
    return out


def total_of(parts: list[AreaFigures]) -> RoundFigures:
    """The round's figures for the caller from its ``round_breakdown``: the child areas part the
    caller's appointments of the round, so the sums are ``round_figures`` (without reading the
    round's appointments a second time; a county-wide round has over 100,000)."""
    sums = [sum(getattr(p, k) for p in parts) for k in ("due", "done", "declined", "exempted", "overdue")]
    return _figures(sums)


# --- appointments ---------------------------------------------------------------------------------


def appointment_public(
    a: CheckupAppointment, closes_on: date | None = None, today: date | None = None
) -> AppointmentPublic:
    status = a.status
    if status == SCHEDULED and closes_on is not None and closes_on < (today or clock.today()):
        status = AppointmentStatus.overdue.value
    return AppointmentPublic(
        id=a.id,
        round_id=a.round_id,
        person_id=a.person_id,
        village_code=a.village_code,
        status=AppointmentStatus(status),
        cancel_reason=a.cancel_reason,
        result_id=a.result_id,
        checked_on=a.checked_on,
        scheduled_on=a.scheduled_on,
        place=a.place or a.scheduled_place,  # the result's place once checked, else the planned one
        consent=a.consent,
        items=json.loads(a.results) if a.results else None,
        note=a.note,
        decline_reason=a.decline_reason,
        exempt_reason=ExemptReason(a.exempt_reason) if a.exempt_reason else None,
        exempt_until=a.exempt_until,
        history=history_of(a),
        version=a.version,
        updated_at=a.updated_at,
    )


async def appointment_items(
    session: AsyncSession, rows: list[tuple[CheckupAppointment, date]]
) -> list[AppointmentItem]:
    """A page of ``list_appointments`` with each woman and her household (one more query)."""
    people = await load_people(session, person_ids=(a.person_id for a, _ in rows))
    return [with_people(AppointmentItem, appointment_public(a, c), people.of(a.person_id)) for a, c in rows]


def history_of(a: CheckupAppointment) -> list[AppointmentEvent]:
    return [AppointmentEvent.model_validate(e) for e in json.loads(a.history)] if a.history else []


def log_event(
    appt: CheckupAppointment,
    action: AppointmentAction,
    by: uuid.UUID | None,
    from_status: str,
    *,
    reason: str | None = None,
    scheduled_on: date | None = None,
    place: str | None = None,
) -> None:
    """Append a step to the appointment's ``history`` (call before ``touch``: the same version).

    Why a JSON column and not a table: the history is read with the appointment in every answer
    (GET, lists, sync pull) without another query, and it changes with the appointment's version.
    The audit log still records every write of the row."""
    events = json.loads(appt.history) if appt.history else []
    # the JSON of an ``AppointmentEvent`` (nulls left out), written directly: a batch of results
    # writes one per appointment, and a model per event cost a fifth of the batch's Python
    event: dict[str, Any] = {
        "at": utcnow().isoformat().replace("+00:00", "Z"),
        "by": str(by) if by is not None else None,
        "action": AppointmentAction(action).value,
        "from_status": from_status,
        "to_status": appt.status,
        "reason": reason,
        "scheduled_on": scheduled_on.isoformat() if scheduled_on is not None else None,
        "place": place,
    }
    events.append({k: v for k, v in event.items() if v is not None})
    appt.history = json.dumps(events, ensure_ascii=False)


async def list_appointments(
    session: AsyncSession,
    actor: Actor,
    *,
    round_id: uuid.UUID | None,
    status: AppointmentStatus | None,
    village_code: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[tuple[CheckupAppointment, date]], str | None]:
    require_role(actor, *FIELD_ROLES)
    stmt = _appointments_where(
        scoped(select(CheckupAppointment), actor), round_id=round_id, status=status, village_code=village_code
    )
    rows, nxt = await paginate(session, stmt, order=[CheckupAppointment.id], limit=limit, cursor=cursor)
    closes = await _closing_days(session, {r.round_id for r in rows})
    return [(r, closes[r.round_id]) for r in rows], nxt


def _appointments_where(
    stmt: Any, *, round_id: uuid.UUID | None, status: AppointmentStatus | None, village_code: str | None
) -> Any:
    """The filters of ``list_appointments`` (and of its count)."""
    if round_id:
        stmt = stmt.where(CheckupAppointment.round_id == round_id)
    if village_code:
        stmt = stmt.where(CheckupAppointment.village_code == village_code)
    today = clock.today()
    if status is AppointmentStatus.overdue or status is AppointmentStatus.scheduled:
        closed = select(CheckupRound.id).where(col(CheckupRound.closes_on) < today)
        stmt = stmt.where(CheckupAppointment.status == SCHEDULED)
        in_closed = col(CheckupAppointment.round_id).in_(closed)
        stmt = stmt.where(in_closed if status is AppointmentStatus.overdue else ~in_closed)
    elif status is not None:
        stmt = stmt.where(CheckupAppointment.status == status.value)
    return stmt


async def count_appointments(
    session: AsyncSession,
    actor: Actor,
    *,
    status: AppointmentStatus | None,
    round_id: uuid.UUID | None = None,
    village_code: str | None = None,
) -> int:
    """How many rows ``list_appointments`` holds with these filters (all its pages)."""
    require_role(actor, *FIELD_ROLES)
    stmt = _appointments_where(
        scoped(select(func.count()).select_from(CheckupAppointment), actor, CheckupAppointment),
        round_id=round_id,
        status=status,
        village_code=village_code,
    )
    return int((await session.execute(stmt)).scalar_one())


async def masked_phones(
    session: AsyncSession, actor: Actor, cipher: FieldCipher, appointment_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str | None]:
    """The masked phone of the woman of each of these appointments in the caller's scope, by
    appointment id (one query; as lists show phones: ``mask_phone``)."""
    ids = set(appointment_ids)
    if not ids:
        return {}
    query: Any = (
        sa_select(col(CheckupAppointment.id), col(Person.phone_enc))
        .select_from(CheckupAppointment)
        .join(Person, col(Person.id) == col(CheckupAppointment.person_id))
        .where(col(CheckupAppointment.id).in_(ids))
    )
    stmt = scoped(query, actor, CheckupAppointment)
    out: dict[uuid.UUID, str | None] = {}
    for appt_id, phone_enc in (await session.execute(stmt)).all():
        phone = cipher.decrypt(phone_enc, context=b"phone") if phone_enc else None
        out[appt_id] = mask_phone(phone) if phone else None
    return out


async def round_names(session: AsyncSession, round_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The names of these rounds (those of a page of appointments), one query."""
    if not round_ids:
        return {}
    rows = await session.execute(
        select(col(CheckupRound.id), col(CheckupRound.name)).where(col(CheckupRound.id).in_(round_ids))
    )
    return {r[0]: r[1] for r in rows}


async def _closing_days(session: AsyncSession, round_ids: set[uuid.UUID]) -> dict[uuid.UUID, date]:
    if not round_ids:
        return {}
    rows = await session.execute(
        select(col(CheckupRound.id), col(CheckupRound.closes_on)).where(col(CheckupRound.id).in_(round_ids))
    )
    return {r[0]: r[1] for r in rows}


async def _appointment(
    session: AsyncSession, actor: Actor, appointment_id: uuid.UUID
) -> tuple[CheckupAppointment, CheckupRound]:
    require_role(actor, *FIELD_ROLES)
    appt = await get_scoped(session, CheckupAppointment, appointment_id, actor)
    rnd = await session.get(CheckupRound, appt.round_id)
    assert rnd is not None
    return appt, rnd


async def get_appointment(
    session: AsyncSession, actor: Actor, appointment_id: uuid.UUID
) -> tuple[CheckupAppointment, CheckupRound]:
    return await _appointment(session, actor, appointment_id)


def _check_items(rnd: CheckupRound, items: dict[str, str]) -> None:
    allowed = set(rnd.items.split(","))
    extra = sorted(set(items) - allowed)
    if extra:
        raise ValidationFailed(
            f"Not items of this round: {', '.join(extra)}",
            code="item_not_in_round",
            errors=[FieldError(field=f"items.{i}", message="not an item of this round") for i in extra],
        )


async def _consequences(
    session: AsyncSession, appt: CheckupAppointment, items: dict[str, str], today: date
) -> None:
    """The follow-up tasks of a result: prenatal care after a positive pregnancy check, a
    referral after an abnormal screening, each titled with her name."""
    if items.get("pregnancy") != "positive" and items.get("gynecological") != "abnormal":
        return
    person = await session.get(Person, appt.person_id)
    name = person.name if person is not None else ""
    if items.get("pregnancy") == "positive":
        open_task(
            session,
            kind=TaskKind.prenatal_care,
            title=both("task.prenatal_care", name=name),
            due_on=today,
            village_code=appt.village_code,
            person_id=appt.person_id,
            source_entity="checkup_appointment",
            source_id=appt.id,
        )
    if items.get("gynecological") == "abnormal":
        open_task(
            session,
            kind=TaskKind.referral,
            title=both("task.referral", name=name),
            due_on=today,
            village_code=appt.village_code,
            person_id=appt.person_id,
            source_entity="checkup_appointment",
            source_id=appt.id,
        )


def _require_scheduled(appt: CheckupAppointment) -> None:
    if appt.status != SCHEDULED:
        raise InvalidTransition(f"The appointment is {appt.status}; only a scheduled one takes this")


def _require_result_allowed(appt: CheckupAppointment, rnd: CheckupRound, today: date) -> None:
    """A scheduled appointment takes a result (also when overdue: she came late). A declined one
    takes it while the round is open (she changed her mind: it becomes ``done``, the decline stays
    in its ``history`` and ``decline_reason``); after the closing day 409 ``round_closed``."""
    if appt.status == DECLINED:
        if rnd.closes_on < today:
            raise Conflict(
                "She declined and the round closed on "
                f"{rnd.closes_on.isoformat()}: a declined appointment takes a result only while "
                "its round is open",
                code="round_closed",
            )
        return
    _require_scheduled(appt)


def accept_result(
    appt: CheckupAppointment,
    rnd: CheckupRound,
    data: ResultIn,
    items: dict[str, str],
    actor: Actor,
    today: date,
) -> None:
    """The checks of a new result after its status (consent, items of the round, not in the
    future) and its writes on the appointment, with the history step: one piece for the REST
    path (``record_result``) and the batched sync path (``sync_actions.build_result``)."""
    if not data.consent:
        raise ValidationFailed(
            "A checkup needs the woman's consent; record a decline instead", code="consent_required"
        )
    if not items:
        raise ValidationFailed("Give the result of at least one item", code="validation_failed")
    _check_items(rnd, items)
    if data.checked_on > today:
        raise hh.invalid("checked_on", "must not be in the future")
    before = appt.status
    appt.status = AppointmentStatus.done.value
    appt.result_id = data.id or uuid.uuid4()
    appt.checked_on = data.checked_on
    appt.place = data.place.value
    appt.consent = True
    appt.results = json.dumps(items)
    appt.note = data.note
    appt.recorded_by = actor.id
    appt.recorded_at = utcnow()
    log_event(appt, AppointmentAction.done, actor.id, before, place=appt.place)
    touch(appt)


async def record_result(
    session: AsyncSession, actor: Actor, appointment_id: uuid.UUID, data: ResultIn
) -> tuple[CheckupAppointment, CheckupRound, bool]:
    """(appointment, round, created). The same result id and content again → unchanged; the
    id of another appointment's result (any scope) → 409 ``id_conflict``, as for every client id."""
    appt, rnd = await _appointment(session, actor, appointment_id)
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
        return appt, rnd, False
    if data.id is not None and await _result_id_taken(session, data.id):
        raise IdConflict("This result id is already used by the result of another appointment")
    today = clock.today()
    _require_result_allowed(appt, rnd, today)
    accept_result(appt, rnd, data, items, actor, today)
    await _consequences(session, appt, items, today)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:  # the same id sent for two appointments at the same moment
        raise IdConflict("This result id is already used by the result of another appointment") from None
    return appt, rnd, True


async def _result_id_taken(session: AsyncSession, result_id: uuid.UUID) -> bool:
    stmt = sa_select(literal(1)).where(col(CheckupAppointment.result_id) == result_id).limit(1)
    return (await session.execute(stmt)).first() is not None


async def correct_result(
    session: AsyncSession, actor: Actor, appointment_id: uuid.UUID, data: ResultCorrection, expected: int
) -> tuple[CheckupAppointment, CheckupRound]:
    appt, rnd = await _appointment(session, actor, appointment_id)
    check_version(appt.version, expected, appointment_public(appt, rnd.closes_on).model_dump(mode="json"))
    if appt.status != AppointmentStatus.done.value:
        raise InvalidTransition("Only a recorded result can be corrected")
    changes = data.model_dump(exclude_unset=True)
    if "items" in changes and changes["items"] is not None:
        items = {k: v for k, v in changes["items"].items() if v is not None}
        if not items:
            raise ValidationFailed("Give the result of at least one item", code="validation_failed")
        _check_items(rnd, items)
        before = json.loads(appt.results or "{}")
        appt.results = json.dumps(items)
        new = {k: v for k, v in items.items() if before.get(k) != v}
        await _consequences(session, appt, new, clock.today())
    if changes.get("checked_on"):
        if changes["checked_on"] > clock.today():
            raise hh.invalid("checked_on", "must not be in the future")
        appt.checked_on = changes["checked_on"]
    if changes.get("place"):
        appt.place = Place(changes["place"]).value
    if "note" in changes:
        appt.note = changes["note"]
    touch(appt)
    await session.flush()
    return appt, rnd


async def decline(
    session: AsyncSession, actor: Actor, appointment_id: uuid.UUID, data: DeclineIn
) -> tuple[CheckupAppointment, CheckupRound]:
    appt, rnd = await _appointment(session, actor, appointment_id)
    _require_scheduled(appt)
    appt.status = AppointmentStatus.declined.value
    appt.decline_reason = data.reason
    appt.recorded_by = actor.id
    appt.recorded_at = utcnow()
    log_event(appt, AppointmentAction.declined, actor.id, SCHEDULED, reason=data.reason)
    touch(appt)
    await session.flush()
    return appt, rnd


async def exempt(
    session: AsyncSession, actor: Actor, appointment_id: uuid.UUID, data: ExemptIn
) -> tuple[CheckupAppointment, CheckupRound]:
    appt, rnd = await _appointment(session, actor, appointment_id)
    _require_scheduled(appt)
    if data.until is not None and data.until < clock.today():
        raise hh.invalid("until", "must not be in the past")
    appt.status = AppointmentStatus.exempted.value
    appt.exempt_reason = data.reason.value
    appt.exempt_until = data.until
    appt.recorded_by = actor.id
    appt.recorded_at = utcnow()
    log_event(appt, AppointmentAction.exempted, actor.id, SCHEDULED, reason=data.reason.value)
    touch(appt)
    await session.flush()
    return appt, rnd


async def reschedule(
    session: AsyncSession,
    actor: Actor,
    appointment_id: uuid.UUID,
    data: RescheduleIn,
    expected: int | None = None,
) -> tuple[CheckupAppointment, CheckupRound]:
    """A new day (within the round's window, not before today; null: any day of the window) and
    optionally a new place (omitted: unchanged; null: any place) for a scheduled appointment
    (also an overdue one, though no day of a closed window is still ahead). Her village's cadre,
    the township or the county (scope: 404 elsewhere). ``expected`` (If-Match, optional): 412
    when stale. The same day and place again changes nothing (no new version)."""
    appt, rnd = await _appointment(session, actor, appointment_id)
    if expected is not None:
        check_version(appt.version, expected, appointment_public(appt, rnd.closes_on).model_dump(mode="json"))
    _require_scheduled(appt)
    day = data.scheduled_on
    if day is not None:
        if not rnd.opens_on <= day <= rnd.closes_on:
            raise hh.invalid(
                "scheduled_on",
                f"must be within the round's window ({rnd.opens_on} to {rnd.closes_on})",
            )
        if day < clock.today():
            raise hh.invalid("scheduled_on", "must not be before today")
    place = data.place if "place" in data.model_fields_set else appt.scheduled_place
    if (day, place) == (appt.scheduled_on, appt.scheduled_place):
        return appt, rnd
    appt.scheduled_on = day
    appt.scheduled_place = place
    log_event(appt, AppointmentAction.rescheduled, actor.id, appt.status, scheduled_on=day, place=place)
    touch(appt)
    await session.flush()
    return appt, rnd


async def cancel(
    session: AsyncSession,
    actor: Actor,
    appointment_id: uuid.UUID,
    data: CancelIn,
    expected: int | None = None,
) -> tuple[CheckupAppointment, CheckupRound]:
    """Township and county users cancel an appointment that should not be there (scheduled —
    also overdue —, declined or exempted; a recorded result is never cancelled: 409). A cancelled
    appointment counts in no figure and leaves the inbox; the register does not bring it back
    (only her leaving the round, ``reevaluate``, is undone when she is due again)."""
    require_role(actor, *SUPERVISOR_ROLES)
    appt, rnd = await _appointment(session, actor, appointment_id)
    if expected is not None:
        check_version(appt.version, expected, appointment_public(appt, rnd.closes_on).model_dump(mode="json"))
    if appt.status not in CANCELLABLE:
        raise InvalidTransition(f"The appointment is {appt.status}; it cannot be cancelled")
    before = appt.status
    appt.status = CANCELLED
    appt.cancel_reason = data.reason
    log_event(appt, AppointmentAction.cancelled, actor.id, before, reason=data.reason)
    touch(appt)
    await session.flush()
    return appt, rnd


# --- joining and leaving while a round is open ----------------------------------------------------


async def _residence(session: AsyncSession, person: Person) -> str | None:
    rows = await session.execute(
        select(Migrant.direction, Migrant.village_code).where(
            Migrant.person_id == person.id, Migrant.status == "open"
        )
    )
    open_records: dict[str, str] = {d: v for d, v in rows.all()}  # noqa: C416
    if "outflow" in open_records:
        return None
    return open_records.get("inflow") or person.current_village_code


@hh.on_person_change
async def reevaluate(session: AsyncSession, person: Person, _reason: str) -> None:
    """Join or leave the open rounds after a register event about this person.

    Leaving is done first: a woman who moved from one township's round to another's leaves the
    first before she joins the second. She does not join (nor come back to) a round while she
    holds an appointment that is not cancelled in another round whose window overlaps it and that
    shares an item (``_due_elsewhere``): no woman is due twice for one item. An appointment a
    township or county user cancelled (``cancel``) stays cancelled."""
    today = clock.today()
    mine = [
        a
        for a in (
            await session.execute(select(CheckupAppointment).where(CheckupAppointment.person_id == person.id))
        ).scalars()
        if not _merged_away(a)
    ]
    existing = {a.round_id: a for a in mine}
    if person.sex != "female" and not existing:
        return
    residence = await _residence(session, person)
    rounds = list(
        (
            await session.execute(
                select(CheckupRound).where(
                    or_(
                        col(CheckupRound.id).in_(list(existing)),
                        and_(
                            col(CheckupRound.closes_on) >= today,
                            literal(residence or "-").startswith(CheckupRound.area_prefix),
                        ),
                    )
                )
            )
        ).scalars()
    )
    by_id = {r.id: r for r in rounds}
    open_rounds = [r for r in rounds if r.closes_on >= today]
    woman = Woman(
        sex=person.sex,
        marital_status=person.marital_status,
        birth_date=person.birth_date,
        alive=person.death_date is None,
        merged=person.merged_into_id is not None,
        residence=residence,
    )
    verdicts = {
        rnd.id: is_due(
            woman, area_prefix=rnd.area_prefix, opens_on=rnd.opens_on, closes_on=rnd.closes_on, today=today
        )
        for rnd in open_rounds
    }
    for rnd in open_rounds:
        appt = existing.get(rnd.id)
        why_not = verdicts[rnd.id]
        if why_not is not None and appt is not None and appt.status == SCHEDULED:
            # a scheduled appointment has no tasks of its own (only a recorded result makes some)
            appt.status = CANCELLED
            appt.cancel_reason = why_not
            log_event(appt, AppointmentAction.cancelled, None, SCHEDULED, reason=why_not)
            touch(appt)
    for rnd in open_rounds:
        if verdicts[rnd.id] is not None:
            continue
        assert residence is not None
        appt = existing.get(rnd.id)
        if appt is None:
            if not _due_elsewhere(rnd, mine, by_id):
                mine.append(_join(session, rnd, person, residence))
        elif appt.status == CANCELLED:
            if not _cancelled_by_hand(appt) and not _due_elsewhere(rnd, mine, by_id):
                appt.status = SCHEDULED
                appt.cancel_reason = None
                _move_place(appt, residence)
                log_event(appt, AppointmentAction.reinstated, None, CANCELLED)
                touch(appt)
        elif appt.status == SCHEDULED and appt.village_code != residence:
            # her "checkup due" item is the appointment: it moves with it
            _move_place(appt, residence)
            touch(appt)
    await session.flush()


def _merged_away(appt: CheckupAppointment) -> bool:
    """Cancelled by a merge: set aside for good, outside the one-per-round rule."""
    return appt.status == CANCELLED and appt.cancel_reason == MERGED


# Which of two appointments of one round a merge keeps: a result first, then a recorded
# decline or exemption, then a scheduled one; a tie keeps the earlier.
_KEEP_RANK = {
    AppointmentStatus.done.value: 3,
    AppointmentStatus.declined.value: 2,
    AppointmentStatus.exempted.value: 2,
    SCHEDULED: 1,
}


@hh.on_merge
async def settle_merge(
    session: AsyncSession, actor: Actor, dup: Person, keep: Person
) -> list[dict[str, str]]:
    """Both records of one woman hold an appointment of the same round: keep the one with a
    result (else a decline or exemption, else the earlier made) and cancel the other with
    reason ``merged``, whatever the round's window (a closed round's figures count her once).
    The cancelled one keeps what was recorded on it and moves to the survivor with the rest."""
    rows = (
        await session.execute(
            select(CheckupAppointment)
            .where(col(CheckupAppointment.person_id).in_([dup.id, keep.id]))
            .order_by(col(CheckupAppointment.created_at), col(CheckupAppointment.id))
        )
    ).scalars()
    by_round: dict[uuid.UUID, list[CheckupAppointment]] = {}
    for appt in rows:
        if not _merged_away(appt):
            by_round.setdefault(appt.round_id, []).append(appt)
    settled: list[dict[str, str]] = []
    for pair in by_round.values():
        if len(pair) < 2:
            continue
        kept = max(pair, key=lambda a: _KEEP_RANK.get(a.status, 0))  # first (earliest) of the best
        for appt in pair:
            if appt is kept:
                continue
            before = appt.status
            appt.status = CANCELLED
            appt.cancel_reason = MERGED
            log_event(appt, AppointmentAction.cancelled, actor.id, before, reason=MERGED)
            settled.append({"table": "checkup_appointment", "column": "status", "id": str(appt.id)})
            if appt.person_id == dup.id:  # moved here, so that it changes version once
                appt.person_id = keep.id
                settled.append({"table": "checkup_appointment", "column": "person_id", "id": str(appt.id)})
            touch(appt)
    await session.flush()
    return settled


def _due_elsewhere(
    rnd: CheckupRound, mine: list[CheckupAppointment], rounds: dict[uuid.UUID, CheckupRound]
) -> bool:
    """She holds an appointment (not cancelled) in another round overlapping ``rnd``'s window
    and sharing an item."""
    items = set(rnd.items.split(","))
    for a in mine:
        other = rounds.get(a.round_id)
        if other is None or other.id == rnd.id or a.status == CANCELLED:
            continue
        if (
            other.opens_on <= rnd.closes_on
            and rnd.opens_on <= other.closes_on
            and items & set(other.items.split(","))
        ):
            return True
    return False


def _cancelled_by_hand(appt: CheckupAppointment) -> bool:
    """The last cancellation was a user's (``cancel``), not the register's (``reevaluate``)."""
    cancels = [e for e in history_of(appt) if e.action == AppointmentAction.cancelled]
    return bool(cancels) and cancels[-1].by is not None


def _move_place(appt: CheckupAppointment, village: str) -> None:
    for key, value in place_columns(village).items():
        setattr(appt, key, value)


def _join(session: AsyncSession, rnd: CheckupRound, person: Person, residence: str) -> CheckupAppointment:
    appt = CheckupAppointment(round_id=rnd.id, person_id=person.id, **place_columns(residence))
    session.add(appt)
    return appt


# --- sync --------------------------------------------------------------------------------------------


async def find_by_result_id(session: AsyncSession, actor: Actor, result_id: uuid.UUID) -> CheckupAppointment:
    stmt = scoped(select(CheckupAppointment), actor).where(CheckupAppointment.result_id == result_id)
    appt = (await session.execute(stmt)).scalar_one_or_none()
    if appt is None:
        raise NotFound("No checkup result with this id")
    return appt


# --- offline sync: ``checkup_result`` ops and ``checkup_appointment`` pulls -----------------------


def _register_sync() -> None:
    from app.services import sync

    async def create(s: AsyncSession, a: Actor, _c: sync.SyncContext, i: uuid.UUID, d: dict[str, Any]) -> Any:
        data = dict(d)
        appointment_id = data.pop("appointment_id", None)
        if appointment_id is None:
            raise hh.invalid("appointment_id", "required for a checkup_result op")
        result = sync._schema(ResultIn, data, id=i)
        appt, _rnd, _created = await record_result(s, a, uuid.UUID(str(appointment_id)), result)
        return appt

    async def correct(
        s: AsyncSession, a: Actor, _c: sync.SyncContext, i: uuid.UUID, d: dict[str, Any], v: int
    ) -> Any:
        appt = await find_by_result_id(s, a, i)
        fix = sync._schema(ResultCorrection, {k: val for k, val in d.items() if k != "appointment_id"})
        return (await correct_result(s, a, appt.id, fix, v))[0]

    def values(appt: Any, _c: sync.SyncContext) -> dict[str, Any]:
        return appointment_public(appt).model_dump(mode="json")

    # Sync addresses a result by its own id; its version is the appointment's.
    sync.register_push(
        "checkup_result",
        sync.PushHandler(
            CheckupAppointment, create, correct, ResultCorrection, values, values, load=find_by_result_id
        ),
    )
    sync.register_pull("checkup_appointment", sync.PullEntity(CheckupAppointment, values))
    sync.register_lookup("checkup_result", CheckupAppointment.result_id)


_register_sync()


async def any_open_round(session: AsyncSession, county_code: str) -> bool:
    """Whether a round of this county is still open: a new person can only join such a round
    (``reevaluate`` does nothing for a new person otherwise), so a bulk import skips the hook
    when there is none."""
    stmt = select(CheckupRound.id).where(
        CheckupRound.county_code == county_code, col(CheckupRound.closes_on) >= clock.today()
    )
    return (await session.execute(stmt.limit(1))).first() is not None

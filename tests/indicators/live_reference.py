"""The figures as computed before issue 8 made them fast: one live grouped query per source
table, the data-quality counts from the live fault queries. Kept as the reference the maintained
state must always agree with (``test_equivalence.py``); the monthly series reuse the service's
own live query (``live_month_values``, which also serves the metrics without tallies)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.authz.actor import Actor
from app.authz.scope import area_clause
from app.core import clock
from app.core.errors import ValidationFailed
from app.models.checkups import CheckupAppointment, CheckupRound
from app.models.households import Birth, Death, Household, Person
from app.models.migrants import Migrant
from app.models.visits import Visit
from app.services import indicators as svc
from app.services.checkups import years_before
from app.services.data_quality import fault_queries
from app.services.indicators import (
    SERIES_METRICS,
    AreaQuery,
    Counts,
    _grouped,
    _sum_if,
    _ts,
    area_query,
    check_period,
    live_month_values,
    series_body,
)


async def count_faults(session: AsyncSession, *, area_code: str, by: str) -> dict[str, int]:
    def narrow(stmt: Any, model: Any) -> Any:
        return stmt.where(area_clause(model, area_code))

    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    totals: dict[str, int] = {}
    for _k, _e, stmt, _d in fault_queries(narrow, dialect, clock.today()):
        sub = stmt.subquery()
        group = sub.c[by]
        rows = await session.execute(select(group, func.count(func.distinct(sub.c.id))).group_by(group))
        for code, n in rows.all():
            totals[code] = totals.get(code, 0) + int(n)
    return totals


async def compute(session: AsyncSession, aq: AreaQuery, start: date, end: date) -> dict[str, Counts]:
    """Counts per child area (village areas: one entry for the village itself)."""
    out: dict[str, Counts] = {}

    def at(code: str) -> Counts:
        return out.setdefault(code, Counts())

    day_before = start - timedelta(days=1)
    alive_at_end = and_(
        col(Person.birth_date) <= end, or_(col(Person.death_date).is_(None), col(Person.death_date) > end)
    )
    alive_at_start = and_(
        col(Person.birth_date) <= day_before,
        or_(col(Person.death_date).is_(None), col(Person.death_date) > day_before),
    )
    woman_15_49 = and_(
        col(Person.sex) == "female",
        col(Person.birth_date) > years_before(end, 50),
        col(Person.birth_date) <= years_before(end, 15),
    )
    rows = await _grouped(
        session,
        aq,
        Person,
        [
            _sum_if(alive_at_end),
            _sum_if(alive_at_start),
            _sum_if(and_(alive_at_end, woman_15_49, col(Person.marital_status) == "married")),
        ],
        col(Person.merged_into_id).is_(None),
    )
    for code, (pop, pop0, mw) in rows.items():
        c = at(code)
        c.population, c.population_start, c.married_women_15_49 = int(pop or 0), int(pop0 or 0), int(mw or 0)

    for code, (n,) in (await _grouped(session, aq, Household, [func.count()])).items():
        at(code).households = int(n)

    order = col(Birth.birth_order)
    birth_rows = await _grouped(
        session,
        aq,
        Birth,
        [
            func.count(),
            _sum_if(order == 1),
            _sum_if(order == 2),
            _sum_if(order >= 3),
            _sum_if(col(Birth.sex) == "male"),
            _sum_if(col(Birth.sex) == "female"),
        ],
        col(Birth.birth_date) >= start,
        col(Birth.birth_date) <= end,
    )
    for code, vals in birth_rows.items():
        at(code).births = dict(
            zip(
                ("total", "first", "second", "third_plus", "boys", "girls"),
                (int(v or 0) for v in vals),
                strict=True,
            )
        )

    for code, (n,) in (
        await _grouped(
            session, aq, Death, [func.count()], col(Death.death_date) >= start, col(Death.death_date) <= end
        )
    ).items():
        at(code).deaths = int(n)

    open_at_end = and_(
        col(Migrant.moved_on) <= end, or_(col(Migrant.closed_on).is_(None), col(Migrant.closed_on) > end)
    )
    new_in = and_(col(Migrant.moved_on) >= start, col(Migrant.moved_on) <= end)
    inflow = col(Migrant.direction) == "inflow"
    outflow = col(Migrant.direction) == "outflow"
    # A request waiting for the person's release, or refused, is no movement: it counts nowhere.
    movement = col(Migrant.status).not_in(("pending_release", "refused"))
    group = getattr(Migrant, aq.child_attr)
    mig_stmt = (
        select(
            group,
            _sum_if(and_(inflow, open_at_end)),
            _sum_if(and_(outflow, open_at_end)),
            _sum_if(and_(inflow, new_in)),
            _sum_if(and_(outflow, new_in)),
        )
        .where(area_clause(Migrant, aq.code), movement)
        .group_by(group)
    )
    for r in (await session.execute(mig_stmt)).all():
        c = at(aq.child_code(r[0]))
        for name, v in zip(("inflow_open", "outflow_open", "inflow_new", "outflow_new"), r[1:], strict=True):
            c.migrants[name] = int(v or 0)
    # Only open inflows need the person (sex, age): join those, not the whole register.
    women_stmt = (
        select(group, func.count())
        .join(Person, col(Person.id) == Migrant.person_id)
        .where(area_clause(Migrant, aq.code), movement, inflow, open_at_end, woman_15_49)
        .group_by(group)
    )
    for r in (await session.execute(women_stmt)).all():
        at(aq.child_code(r[0])).migrants["inflow_women_15_49"] = int(r[1])

    status = col(CheckupAppointment.status)
    group = getattr(CheckupAppointment, aq.child_attr)
    ck_stmt = (
        select(
            group, _sum_if(status != "cancelled"), _sum_if(status == "done"), _sum_if(status == "exempted")
        )
        .join(CheckupRound, col(CheckupRound.id) == CheckupAppointment.round_id)
        .where(
            area_clause(CheckupAppointment, aq.code),
            col(CheckupRound.opens_on) <= end,
            col(CheckupRound.closes_on) >= start,
        )
        .group_by(group)
    )
    for r in (await session.execute(ck_stmt)).all():
        at(aq.child_code(r[0])).checkups = {
            "due": int(r[1] or 0),
            "done": int(r[2] or 0),
            "exempted": int(r[3] or 0),
        }

    for code, (n,) in (
        await _grouped(
            session,
            aq,
            Visit,
            [func.count()],
            col(Visit.visited_at) >= _ts(start),
            col(Visit.visited_at) < _ts(end + timedelta(days=1)),
        )
    ).items():
        at(code).visits = int(n)

    await _claims(session, aq, start, end, at)
    await _in_payment(session, aq, start, end, at)

    by = "t" if aq.child_attr == "township_code" else "v"
    for code, n in (await count_faults(session, area_code=aq.code, by=by)).items():
        at(aq.child_code(code)).data_quality_open = n
    return out


def _year_earlier(d: date) -> date:
    try:
        return d.replace(year=d.year - 1)
    except ValueError:
        return d.replace(year=d.year - 1, day=28)


async def _claims(session: AsyncSession, aq: AreaQuery, start: date, end: date, at: Any) -> None:
    try:
        from app.models.claims import Claim, Payment
    except ImportError:  # pragma: no cover - the claims domain ships with this service
        return
    group = getattr(Payment, aq.child_attr)

    async def paid(a: date, b: date) -> list[tuple[str, str, Any, int]]:
        stmt = (
            select(group, col(Claim.programme), col(Claim.person_id), col(Payment.amount_fen))
            .join(Claim, col(Claim.id) == Payment.claim_id)
            .where(area_clause(Payment, aq.code), col(Payment.paid_on) >= a, col(Payment.paid_on) <= b)
        )
        return [(aq.child_code(r[0]), r[1], r[2], int(r[3])) for r in (await session.execute(stmt)).all()]

    now = await paid(start, end)
    before = await paid(_year_earlier(start), _year_earlier(end))
    prior = {(prog, pid) for _c, prog, pid, _a in before}
    current = {(prog, pid) for _c, prog, pid, _a in now}
    seen: set[tuple[str, str, Any]] = set()
    for code, prog, pid, amount in now:
        v = at(code).claims.setdefault(prog, svc.claim_counts())
        v["amount_fen"] += amount
        if (code, prog, pid) in seen:
            continue
        seen.add((code, prog, pid))
        v["total"] += 1
        v["continuing" if (prog, pid) in prior else "new"] += 1
    gone: set[tuple[str, str, Any]] = set()
    for code, prog, pid, _a in before:
        if (prog, pid) not in current and (code, prog, pid) not in gone:
            gone.add((code, prog, pid))
            v = at(code).claims.setdefault(prog, svc.claim_counts())
            v["exited"] += 1


async def _in_payment(session: AsyncSession, aq: AreaQuery, start: date, end: date, at: Any) -> None:
    """Approved or posted claims of the period's years, read row by row and counted here."""
    from app.models.claims import Claim

    stmt = select(Claim).where(area_clause(Claim, aq.code))
    persons: dict[tuple[str, str], set[Any]] = {}
    for c in (await session.execute(stmt)).scalars():
        if c.status in ("approved", "posted") and start.year <= c.year <= end.year:
            code = aq.child_code(getattr(c, aq.child_attr))
            v = at(code).claims.setdefault(c.programme, svc.claim_counts())
            v["in_payment_fen"] += c.approved_amount_fen or 0
            persons.setdefault((code, c.programme), set()).add(c.person_id)
    for (code, prog), who in persons.items():
        at(code).claims[prog]["in_payment"] = len(who)


async def _series_checkup_rate(
    session: AsyncSession, area_code: str, start: date, end: date
) -> dict[str, Any]:
    """Each month's rate by the figures' definition (appointments of the rounds whose window
    overlaps the month's days), counted row by row."""
    out: dict[str, Any] = {}
    for month in svc.months_between(start, end):
        lo, hi = svc._month_days(month, start, end)
        stmt = (
            select(CheckupAppointment.status)
            .join(CheckupRound, col(CheckupRound.id) == CheckupAppointment.round_id)
            .where(
                area_clause(CheckupAppointment, area_code),
                col(CheckupRound.opens_on) <= hi,
                col(CheckupRound.closes_on) >= lo,
            )
        )
        statuses = list((await session.execute(stmt)).scalars())
        due = sum(1 for s in statuses if s != "cancelled")
        done = sum(1 for s in statuses if s == "done")
        exempted = sum(1 for s in statuses if s == "exempted")
        out[month] = round(done * 100.0 / (due - exempted), 1) if due - exempted > 0 else None
    return out


async def _series_beneficiaries(
    session: AsyncSession, area_code: str, start: date, end: date
) -> dict[str, Any]:
    """Persons paid per month and programme, from the payment rows."""
    from app.models.claims import Claim, Payment

    out: dict[str, Any] = dict.fromkeys(svc.months_between(start, end), 0)
    stmt = (
        select(Payment.paid_on, Claim.programme, Claim.person_id)
        .join(Claim, col(Claim.id) == Payment.claim_id)
        .where(area_clause(Payment, area_code))
    )
    seen = set()
    for paid_on, prog, pid in (await session.execute(stmt)).all():
        month = f"{paid_on.year:04d}-{paid_on.month:02d}"
        if start <= paid_on <= end and (month, prog, pid) not in seen:
            seen.add((month, prog, pid))
            out[month] += 1
    return out


async def series(
    session: AsyncSession, actor: Actor, *, area_code: str | None, metric: str, start: date, end: date
) -> dict[str, Any]:
    """Monthly values of one metric, grouped in the database (months without events are 0)."""
    aq = area_query(actor, area_code)
    check_period(start, end)
    if metric not in SERIES_METRICS:
        raise ValidationFailed(f"metric must be one of {', '.join(SERIES_METRICS)}", code="invalid_metric")
    if metric == "checkup_rate":
        values = await _series_checkup_rate(session, aq.code, start, end)
    elif metric == "beneficiaries":
        values = await _series_beneficiaries(session, aq.code, start, end)
    else:
        values = await live_month_values(session, aq.code, metric, start, end)
    return series_body(aq.code, metric, values)

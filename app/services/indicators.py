"""County figures: aggregates only, for an area in scope and a period, with a per-child breakdown.

Every figure is computed by one grouped query per source table (grouped by the child area column
of the requested area: townships of a county, villages of a township), so a breakdown costs the
same as the total, and the totals are the sums of the children (all counts are additive; rates
are derived from the summed counts). Places are the register's: a person counts where her
household is (``village_code``), events where they were recorded.

Definitions (see the domain brief, "Figures the county reads"):
- ``population``: persons on the register at ``to`` — born by then, not deceased by then, not
  merged; ``households``: households in the area; ``married_women_15_49`` at ``to``.
- ``births`` / ``deaths``: events dated within [from, to]; birth order from the birth record.
- ``natural_growth_rate_per_mille`` = (births − deaths) / mean population × 1000, where the mean
  population is the average of the population the day before ``from`` and at ``to``; annualised
  (× 365.25 / days) when the period is not a calendar year.
- ``migrants``: open at ``to`` (moved on or before, not closed by then), new within the period,
  and the women 15–49 (at ``to``) among open inflows.
- ``checkups``: appointments of rounds whose window overlaps the period; rate as for rounds.
- ``claims`` per programme: beneficiaries paid within the period (total), of whom ``new`` were not
  paid in the same period a year earlier and ``continuing`` were; ``exited`` were paid a year
  earlier and not now; ``amount`` paid within the period.
- ``visits``: visits made within the period; ``data_quality_open``: faults open now.
"""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.authz.actor import Actor, scope_prefix
from app.authz.policies import require_role
from app.authz.scope import area_clause, ensure_area_in_scope
from app.core.errors import ValidationFailed
from app.models.areas import Area
from app.models.audit import AuditEvent
from app.models.checkups import CheckupAppointment, CheckupRound
from app.models.households import Birth, Death, Household, Person
from app.models.migrants import Migrant
from app.models.users import Role
from app.models.visits import Visit
from app.services import data_quality
from app.services.checkups import years_before

READER_ROLES = (Role.village, Role.township, Role.county, Role.admin, Role.dashboard)
MAX_DAYS = 3660
SERIES_METRICS = (
    "births",
    "deaths",
    "visits",
    "inflow_new",
    "outflow_new",
    "checkups_done",
    "claims_paid_amount",
)


@dataclass
class Counts:
    population: int = 0
    population_start: int = 0
    households: int = 0
    married_women_15_49: int = 0
    births: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("total", "first", "second", "third_plus", "boys", "girls"), 0)
    )
    deaths: int = 0
    migrants: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("inflow_open", "outflow_open", "inflow_new", "outflow_new", "inflow_women_15_49"), 0
        )
    )
    checkups: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("due", "done", "exempted"), 0))
    claims: dict[str, dict[str, int]] = field(default_factory=dict)
    visits: int = 0
    data_quality_open: int = 0

    def add(self, other: Counts) -> None:
        for name in (
            "population",
            "population_start",
            "households",
            "married_women_15_49",
            "deaths",
            "visits",
            "data_quality_open",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("births", "migrants", "checkups"):
            mine, theirs = getattr(self, name), getattr(other, name)
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        for prog, vals in other.claims.items():
            mine = self.claims.setdefault(
                prog, dict.fromkeys(("new", "continuing", "exited", "total", "amount_fen"), 0)
            )
            for k, v in vals.items():
                mine[k] += v


def _rate(num: int, den: int) -> float | None:
    return round(num * 100.0 / den, 1) if den > 0 else None


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def render(c: Counts, start: date, end: date) -> dict[str, Any]:
    days = (end - start).days + 1
    is_year = start.month == 1 and start.day == 1 and end == date(start.year, 12, 31)
    mean_pop = (c.population + c.population_start) / 2
    growth = None
    if mean_pop > 0:
        g = (c.births["total"] - c.deaths) / mean_pop * 1000
        if not is_year:
            g = g * 365.25 / days
        growth = round(g, 1)
    boys, girls = c.births["boys"], c.births["girls"]
    due, done, exempted = c.checkups["due"], c.checkups["done"], c.checkups["exempted"]
    return {
        "population": c.population,
        "households": c.households,
        "married_women_15_49": c.married_women_15_49,
        "births": dict(c.births),
        "sex_ratio_at_birth": round(boys * 100.0 / girls, 1) if girls else None,
        "deaths": c.deaths,
        "natural_growth_rate_per_mille": growth,
        "migrants": dict(c.migrants),
        "checkups": {"due": due, "done": done, "rate": _rate(done, due - exempted)},
        "claims": {
            prog: {
                "new": v["new"],
                "continuing": v["continuing"],
                "exited": v["exited"],
                "total": v["total"],
                "amount": _yuan(v["amount_fen"]),
            }
            for prog, v in sorted(c.claims.items())
        },
        "visits": c.visits,
        "data_quality_open": c.data_quality_open,
    }


# --- the area and its children ---------------------------------------------------------------------


@dataclass(frozen=True)
class AreaQuery:
    code: str
    prefix: str
    child_attr: str  # "township_code" or "village_code"

    def child_code(self, value: str) -> str:
        return value + "000" if self.child_attr == "township_code" else value


def area_query(actor: Actor, area_code: str | None) -> AreaQuery:
    require_role(actor, *READER_ROLES)
    code = area_code or (actor.prefix + "0" * (12 - len(actor.prefix)))
    ensure_area_in_scope(actor, code)
    prefix = scope_prefix(code)
    if len(prefix) < 6:
        raise ValidationFailed("Figures are per county, township or village", code="area_level")
    return AreaQuery(
        code=code, prefix=prefix, child_attr="township_code" if len(prefix) == 6 else "village_code"
    )


def check_period(start: date, end: date) -> None:
    if start > end:
        raise ValidationFailed("from must not be after to", code="invalid_period")
    if (end - start).days > MAX_DAYS:
        raise ValidationFailed("The period may span at most 10 years", code="invalid_period")


def _ts(d: date) -> datetime:
    """Local (UTC+8) midnight of a day, as an aware timestamp."""
    return datetime.combine(d, time.min, tzinfo=UTC) - timedelta(hours=8)


def _sum_if(cond: Any) -> Any:
    return func.sum(case((cond, 1), else_=0))


async def _grouped(
    session: AsyncSession, aq: AreaQuery, model: Any, columns: list[Any], *where: Any
) -> dict[str, tuple[Any, ...]]:
    group = getattr(model, aq.child_attr)
    stmt = select(group, *columns).where(area_clause(model, aq.code), *where).group_by(group)
    return {aq.child_code(r[0]): tuple(r[1:]) for r in (await session.execute(stmt)).all()}


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
    group = getattr(Migrant, aq.child_attr)
    mig_stmt = (
        select(
            group,
            _sum_if(and_(inflow, open_at_end)),
            _sum_if(and_(outflow, open_at_end)),
            _sum_if(and_(inflow, new_in)),
            _sum_if(and_(outflow, new_in)),
        )
        .where(area_clause(Migrant, aq.code))
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
        .where(area_clause(Migrant, aq.code), inflow, open_at_end, woman_15_49)
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

    by = "t" if aq.child_attr == "township_code" else "v"
    for code, n in (await data_quality.count_faults(session, area_code=aq.code, by=by)).items():
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
        v = at(code).claims.setdefault(
            prog, dict.fromkeys(("new", "continuing", "exited", "total", "amount_fen"), 0)
        )
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
            v = at(code).claims.setdefault(
                prog, dict.fromkeys(("new", "continuing", "exited", "total", "amount_fen"), 0)
            )
            v["exited"] += 1


async def child_areas(session: AsyncSession, aq: AreaQuery) -> list[Area]:
    if len(aq.prefix) == 12:
        return []
    stmt = select(Area).where(col(Area.parent_code) == aq.code).order_by(col(Area.code))
    return list((await session.execute(stmt)).scalars())


async def indicators(
    session: AsyncSession, actor: Actor, *, area_code: str | None, start: date, end: date, breakdown: bool
) -> dict[str, Any]:
    aq = area_query(actor, area_code)
    check_period(start, end)
    per_child = await compute(session, aq, start, end)
    total = Counts()
    for c in per_child.values():
        total.add(c)
    area = await session.get(Area, aq.code)
    out: dict[str, Any] = {
        "area_code": aq.code,
        "name": area.name if area else None,
        "from": start.isoformat(),
        "to": end.isoformat(),
        **render(total, start, end),
    }
    if breakdown:
        children = await child_areas(session, aq)
        out["children"] = [
            {"area_code": a.code, "name": a.name, **render(per_child.get(a.code, Counts()), start, end)}
            for a in children
        ]
    return out


# --- monthly series --------------------------------------------------------------------------------


def months_between(start: date, end: date) -> list[str]:
    out, y, m = [], start.year, start.month
    while (y, m) <= (end.year, end.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _month_of(value: Any) -> str:
    if isinstance(value, datetime | date):
        return f"{value.year:04d}-{value.month:02d}"
    return str(value)[:7]


# Days and months are those of the service's clock (China Standard Time, UTC+8, no DST).
LOCAL_OFFSET_HOURS = 8


def _month_key(column: Any, dialect: str, *, timestamp: bool = False) -> Any:
    """The 'YYYY-MM' of a date (or of a UTC timestamp in local time), computed in SQL."""
    if dialect == "postgresql":
        expr = column
        if timestamp:
            expr = func.timezone("Asia/Shanghai", column)
        return func.to_char(expr, "YYYY-MM")
    if timestamp:
        return func.strftime("%Y-%m", column, f"+{LOCAL_OFFSET_HOURS} hours")
    return func.strftime("%Y-%m", column)


async def series(
    session: AsyncSession, actor: Actor, *, area_code: str | None, metric: str, start: date, end: date
) -> dict[str, Any]:
    """Monthly values of one metric, grouped in the database (months without events are 0)."""
    aq = area_query(actor, area_code)
    check_period(start, end)
    if metric not in SERIES_METRICS:
        raise ValidationFailed(f"metric must be one of {', '.join(SERIES_METRICS)}", code="invalid_metric")
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    values = dict.fromkeys(months_between(start, end), 0)
    model: Any
    when: Any
    amount: Any = func.count()
    where: list[Any] = []
    timestamp = False
    if metric == "births":
        model, when = Birth, col(Birth.birth_date)
    elif metric == "deaths":
        model, when = Death, col(Death.death_date)
    elif metric == "visits":
        model, when, timestamp = Visit, col(Visit.visited_at), True
    elif metric in ("inflow_new", "outflow_new"):
        model, when = Migrant, col(Migrant.moved_on)
        where.append(col(Migrant.direction) == metric.removesuffix("_new"))
    elif metric == "checkups_done":
        model, when = CheckupAppointment, col(CheckupAppointment.checked_on)
        where.append(col(CheckupAppointment.status) == "done")
    else:
        from app.models.claims import Payment

        model, when, amount = Payment, col(Payment.paid_on), func.sum(col(Payment.amount_fen))
    if timestamp:
        where += [when >= _ts(start), when < _ts(end + timedelta(days=1))]
    else:
        where += [when >= start, when <= end]
    key = _month_key(when, dialect, timestamp=timestamp).label("month")
    stmt = select(key, amount).where(area_clause(model, aq.code), *where).group_by(key)
    for month, n in (await session.execute(stmt)).all():
        if month in values:
            values[month] += int(n or 0)
    points: list[dict[str, Any]] = [{"month": k, "value": v} for k, v in values.items()]
    if metric == "claims_paid_amount":
        points = [{"month": p["month"], "value": _yuan(int(p["value"]))} for p in points]
    return {"area_code": aq.code, "metric": metric, "granularity": "month", "points": points}


# --- caching ---------------------------------------------------------------------------------------


async def data_version(session: AsyncSession) -> str:
    """Changes whenever anything is written (every write leaves an audit event) and daily (ages
    move): a cheap validator for ETags, read with one index lookup."""
    last = (await session.execute(select(func.max(col(AuditEvent.at))))).scalar_one()
    return f"{last.isoformat() if last else '-'}|{date.today().isoformat()}"


def etag(*parts: str) -> str:
    return '"' + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32] + '"'


def year_bounds(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year, 12, calendar.monthrange(year, 12)[1])

"""County figures: aggregates only, for an area in scope and a period, with a per-child breakdown.

Every figure is read per child area of the requested area (townships of a county, villages of a
township), so a breakdown costs the same as the total, and the totals are the sums of the
children (all counts are additive; rates are derived from the summed counts). Places are the
register's: a person counts where her household is (``village_code``), events where they were
recorded.

Issue 8 (a 700,000-person county in a fraction of a second, exact): the figures no longer count
the source tables on every request. They read state kept exact in every writing transaction by
``indicator_upkeep``: tallies per area and year or month (living persons by birth year, married
women by birth year, households, visits, births, deaths, migrant entries and exits, payment
amounts, beneficiaries per programme and year), plus, for the days of a period that do not fill
a whole year or month, a live count of those days through an index (see ``_Plan``). What stays
live is small by construction: the dead (who are alive at a past day), the inflow women of the
maintained copy, checkups (a round's appointments), beneficiaries of periods that are not a
calendar year, the two date-dependent data-quality kinds. ``tests/indicators/live_reference.py``
keeps the former one-query-per-table code, and ``test_equivalence.py`` proves the two agree.

Definitions (see the domain brief, "Figures the county reads"):
- ``population``: persons on the register at ``to`` — born by then, not deceased by then, not
  merged; ``households``: households in the area; ``married_women_15_49`` at ``to``.
- ``births`` / ``deaths``: events dated within [from, to]; birth order from the birth record.
- ``natural_growth_rate_per_mille`` = (births − deaths) / mean population × 1000, where the mean
  population is the average of the population the day before ``from`` and at ``to``; annualised
  (× 365.25 / days) when the period is not a calendar year.
- ``migrants``: open at ``to`` (moved on or before, not closed by then), new within the period,
  and the women 15–49 (at ``to``) among open inflows. A request still waiting for the person's
  release (``pending_release``) or refused by her place (``refused``) is no movement and counts
  in no figure (``COUNTED``); once confirmed (``open``) it counts from its ``moved_on``.
- ``checkups``: appointments of rounds whose window overlaps the period; rate as for rounds.
- ``claims`` per programme (issue 15, item 8): which statuses count. A beneficiary is a person
  *paid* within the period (``total``; a claim counts once it is ``paid``, on its ``paid_on``),
  of whom ``new`` were not paid in the same period a year earlier and ``continuing`` were;
  ``exited`` were paid a year earlier and not now; ``amount`` is what was paid within the
  period. Claims decided but not yet paid — ``approved`` or ``posted`` (publicly posted, 公示) —
  count apart as ``in_payment`` (persons) and ``in_payment_amount`` (their approved amounts), for
  the claim years the period touches (``year`` between the years of ``from`` and ``to``): money
  the county has committed. Drafts, submitted, reviewed, returned and rejected claims count in
  no figure. (Before, a posted claim left ``claims`` as ``{}``: only payments were counted, and
  a posted claim has none yet.) A programme appears when any of these is non-zero.
- ``sex_ratio_at_birth`` (boys per 100 girls) is null below ``MIN_BIRTHS_FOR_SEX_RATIO`` (20)
  births of known sex in the area and period: on a handful of births the ratio is noise
  (3 boys and 1 girl read "300"), and a village's month would show it.
- ``visits``: visits made within the period; ``data_quality_open``: faults open now.
"""

from __future__ import annotations

import calendar
import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.authz.actor import Actor, scope_prefix
from app.authz.policies import require_role
from app.authz.scope import area_clause, ensure_area_in_scope
from app.core import clock
from app.core.errors import ValidationFailed
from app.models.areas import Area
from app.models.checkups import CheckupAppointment, CheckupRound
from app.models.households import Birth, Death, Person
from app.models.indicators import (
    DEAD,
    LIVING,
    LIVING_MARRIED_WOMEN,
    DataVersion,
    IndicatorInflowWoman,
    IndicatorTally,
)
from app.models.migrants import HIDDEN_PERSON, Migrant
from app.models.users import Role
from app.models.visits import Visit
from app.services import data_quality
from app.services.checkups import years_before

READER_ROLES = (Role.village, Role.township, Role.county, Role.admin, Role.dashboard)
MAX_DAYS = 3660
# A migrant record counts in the figures unless it is a request waiting for release or refused.
UNCOUNTED_STATUSES = tuple(s.value for s in HIDDEN_PERSON)


def counted_migrant() -> Any:
    """The migrant records the figures count."""
    return col(Migrant.status).not_in(UNCOUNTED_STATUSES)


SERIES_METRICS = (
    "births",
    "deaths",
    "visits",
    "inflow_new",
    "outflow_new",
    "checkups_done",
    "claims_paid_amount",
    "checkup_rate",
    "beneficiaries",
)
# Below this many births (boys + girls) in the area and period the sex ratio at birth is null.
MIN_BIRTHS_FOR_SEX_RATIO = 20
# The claims figures per programme, as counted (amounts in fen).
CLAIM_KEYS = ("new", "continuing", "exited", "total", "amount_fen", "in_payment", "in_payment_fen")
IN_PAYMENT_STATUSES = ("approved", "posted")


def claim_counts() -> dict[str, int]:
    return dict.fromkeys(CLAIM_KEYS, 0)


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
            mine = self.claims.setdefault(prog, claim_counts())
            for k, v in vals.items():
                mine[k] += v


def _rate(num: int, den: int) -> float | None:
    return round(num * 100.0 / den, 1) if den > 0 else None


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def sex_ratio(boys: int, girls: int) -> float | None:
    """Boys per 100 girls, or None below ``MIN_BIRTHS_FOR_SEX_RATIO`` births (or no girl)."""
    if boys + girls < MIN_BIRTHS_FOR_SEX_RATIO or not girls:
        return None
    return round(boys * 100.0 / girls, 1)


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
        "sex_ratio_at_birth": sex_ratio(boys, girls),
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
                "in_payment": v["in_payment"],
                "in_payment_amount": _yuan(v["in_payment_fen"]),
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
    """The instant a business day begins (local midnight, ``clock.start_of_day``)."""
    return clock.start_of_day(d)


def _sum_if(cond: Any) -> Any:
    return func.sum(case((cond, 1), else_=0))


async def _grouped(
    session: AsyncSession, aq: AreaQuery, model: Any, columns: list[Any], *where: Any
) -> dict[str, tuple[Any, ...]]:
    group = getattr(model, aq.child_attr)
    stmt = select(group, *columns).where(area_clause(model, aq.code), *where).group_by(group)
    return {aq.child_code(r[0]): tuple(r[1:]) for r in (await session.execute(stmt)).all()}


# --- maintained tallies, exact to the day -----------------------------------------------------------
#
# ``indicator_tally`` (kept by ``indicator_upkeep`` in every writing transaction) holds additive
# counts per area and bucket: living persons per birth year (``alive``, and ``alive_fm`` for
# married women), households, visits per local month, births (by order and sex) and deaths per
# month, migrant entries and exits per month (``in_entry`` ...), payment amounts per month, each
# also with an all-time bucket 0 where a stock needs it. A period is
# rarely made of whole buckets, so a sum over days [lo, hi] is planned as whole buckets from
# the tally, plus or minus the days of the partial buckets counted live from the source table
# through an index (whichever side of a partial bucket is shorter). All tally parts of one
# request are read by one query.

Counter = Callable[[AreaQuery, date, date], tuple[Any, list[Any]]]
PerChild = dict[str, int]
LAST_DAY = date.max


def _bucket(d: date, unit: str) -> int:
    return d.year if unit == "year" else d.year * 100 + d.month


def _bucket_days(d: date, unit: str) -> tuple[date, date]:
    if unit == "year":
        return date(d.year, 1, 1), date(d.year, 12, 31)
    return date(d.year, d.month, 1), date(d.year, d.month, calendar.monthrange(d.year, d.month)[1])


def _next_day(d: date) -> date | None:
    return None if d == LAST_DAY else d + timedelta(days=1)


def _in_county(model: Any, aq: AreaQuery) -> Any:
    """The county column too, so that the (county_code, date) indexes serve township and village
    requests as well."""
    return col(model.county_code) == aq.prefix[:6]


def _living_born(fm: bool) -> Counter:
    """Living, unmerged persons (married women if ``fm``) born within [lo, hi]: the source of
    the ``alive`` / ``alive_fm`` tallies. Literal predicates: they select a partial index."""

    def count(aq: AreaQuery, lo: date, hi: date) -> tuple[Any, list[Any]]:
        return Person, [
            _in_county(Person, aq),
            text(LIVING_MARRIED_WOMEN if fm else LIVING),
            col(Person.birth_date) >= lo,
            col(Person.birth_date) <= hi,
        ]

    return count


def _visits_on(aq: AreaQuery, lo: date, hi: date) -> tuple[Any, list[Any]]:
    where = [_in_county(Visit, aq), col(Visit.visited_at) >= _ts(lo)]
    if hi < LAST_DAY:
        where.append(col(Visit.visited_at) < _ts(hi + timedelta(days=1)))
    return Visit, where


BIRTH_TALLIES: dict[str, tuple[str, Callable[[], Any] | None]] = {
    "total": ("births", None),
    "first": ("births_first", lambda: col(Birth.birth_order) == 1),
    "second": ("births_second", lambda: col(Birth.birth_order) == 2),
    "third_plus": ("births_third", lambda: col(Birth.birth_order) >= 3),
    "boys": ("births_male", lambda: col(Birth.sex) == "male"),
    "girls": ("births_female", lambda: col(Birth.sex) == "female"),
}


def _births(condition: Callable[[], Any] | None) -> Counter:
    def count(aq: AreaQuery, lo: date, hi: date) -> tuple[Any, list[Any]]:
        where = [_in_county(Birth, aq), col(Birth.birth_date) >= lo, col(Birth.birth_date) <= hi]
        return Birth, where + ([condition()] if condition else [])

    return count


def _deaths_on(aq: AreaQuery, lo: date, hi: date) -> tuple[Any, list[Any]]:
    return Death, [_in_county(Death, aq), col(Death.death_date) >= lo, col(Death.death_date) <= hi]


def _paid_on(aq: AreaQuery, lo: date, hi: date) -> tuple[Any, list[Any]]:
    from app.models.claims import Payment

    return Payment, [_in_county(Payment, aq), col(Payment.paid_on) >= lo, col(Payment.paid_on) <= hi]


def _entries(direction: str) -> Counter:
    def count(aq: AreaQuery, lo: date, hi: date) -> tuple[Any, list[Any]]:
        return Migrant, [
            _in_county(Migrant, aq),
            col(Migrant.direction) == direction,
            counted_migrant(),
            col(Migrant.moved_on) >= lo,
            col(Migrant.moved_on) <= hi,
        ]

    return count


def _exits(direction: str) -> Counter:
    """Records that ended within [lo, hi]; a record ends on max(moved_on, closed_on)."""

    def count(aq: AreaQuery, lo: date, hi: date) -> tuple[Any, list[Any]]:
        moved, closed = col(Migrant.moved_on), col(Migrant.closed_on)
        return Migrant, [
            _in_county(Migrant, aq),
            col(Migrant.direction) == direction,
            counted_migrant(),
            closed.is_not(None),
            or_(
                and_(closed >= moved, closed >= lo, closed <= hi),
                and_(closed < moved, moved >= lo, moved <= hi),
            ),
        ]

    return count


@dataclass
class _Plan:
    """Sums of tallied metrics over day ranges, per child area, read with one tally query plus
    the few live edge counts."""

    aq: AreaQuery
    tally_parts: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    live_parts: list[tuple[str, Counter, date, date, int]] = field(default_factory=list)

    def tally(self, key: str, metric: str, first: int, last: int, sign: int = 1) -> None:
        self.tally_parts.append((key, metric, first, last, sign))

    def days(self, key: str, metric: str, lo: date | None, hi: date, unit: str, live: Counter) -> None:
        """``key`` += the metric over the days [lo, hi] (nothing when ``lo`` is None or > hi)."""
        if lo is None or hi < lo:
            return
        first, last = _bucket(lo, unit), _bucket(hi, unit)
        f_lo, l_lo = _bucket_days(lo, unit)
        f_hi, l_hi = _bucket_days(hi, unit)
        if first == last:
            span = (hi - lo).days + 1
            if span <= (l_lo - f_lo).days + 1 - span:
                self.live_parts.append((key, live, lo, hi, 1))
                return
            self.tally(key, metric, first, first)
            if lo > f_lo:
                self.live_parts.append((key, live, f_lo, lo - timedelta(days=1), -1))
            if hi < l_hi:
                self.live_parts.append((key, live, hi + timedelta(days=1), l_hi, -1))
            return
        if lo > f_lo:
            if (l_lo - lo).days + 1 <= (lo - f_lo).days:
                self.live_parts.append((key, live, lo, l_lo, 1))
                first = _bucket(l_lo + timedelta(days=1), unit)
            else:
                self.live_parts.append((key, live, f_lo, lo - timedelta(days=1), -1))
        if hi < l_hi:
            if (hi - f_hi).days + 1 <= (l_hi - hi).days:
                self.live_parts.append((key, live, f_hi, hi, 1))
                last = _bucket(f_hi - timedelta(days=1), unit)
            else:
                self.live_parts.append((key, live, hi + timedelta(days=1), l_hi, -1))
        if first <= last:
            self.tally(key, metric, first, last)

    async def run(self, session: AsyncSession) -> dict[str, PerChild]:
        out: dict[str, PerChild] = defaultdict(lambda: defaultdict(int))
        aq, t = self.aq, IndicatorTally
        if self.tally_parts:
            conds = [
                and_(col(t.metric) == m, col(t.bucket) >= a, col(t.bucket) <= b)
                for _k, m, a, b, _s in self.tally_parts
            ]
            area = col(t.area_code) == aq.prefix if len(aq.prefix) == 12 else col(t.parent_code) == aq.prefix
            stmt = (
                select(col(t.area_code), *(func.sum(case((c, col(t.n)), else_=0)) for c in conds))
                .where(area, or_(*conds))
                .group_by(col(t.area_code))
            )
            for row in (await session.execute(stmt)).all():
                child = aq.child_code(row[0])
                for (key, _m, _a, _b, sign), n in zip(self.tally_parts, row[1:], strict=True):
                    out[key][child] += sign * int(n or 0)
        counted: dict[tuple[Counter, date, date], dict[str, tuple[Any, ...]]] = {}
        for key, live, lo, hi, sign in self.live_parts:
            if (live, lo, hi) not in counted:
                model, where = live(aq, lo, hi)
                value = func.sum(col(model.amount_fen)) if live is _paid_on else func.count()
                counted[(live, lo, hi)] = await _grouped(session, aq, model, [value], *where)
            for child, (n,) in counted[(live, lo, hi)].items():
                out[key][child] += sign * int(n or 0)
        return out


async def compute(session: AsyncSession, aq: AreaQuery, start: date, end: date) -> dict[str, Counts]:
    """Counts per child area (village areas: one entry for the village itself); equal, figure
    by figure, to counting the source tables (``tests/indicators/live_reference.py``)."""
    out: dict[str, Counts] = {}

    def at(code: str) -> Counts:
        c = out.get(code)
        if c is None:
            c = out[code] = Counts()
        return c

    day_before = start - timedelta(days=1)
    after_end = _next_day(end)
    old, young = years_before(end, 50), years_before(end, 15)  # women born in (old, young]
    plan = _Plan(aq)
    # Living persons born by a day = all of them minus those born after it; the dead are few
    # and counted live below.
    plan.tally("alive", "alive", 0, 0)
    plan.days("born_after_end", "alive", after_end, LAST_DAY, "year", _living_born(False))
    plan.days("born_after_start", "alive", start, LAST_DAY, "year", _living_born(False))
    plan.days("married_women", "alive_fm", old + timedelta(days=1), young, "year", _living_born(True))
    plan.tally("households", "households", 0, 0)
    plan.days("visits", "visits", start, end, "month", _visits_on)
    for d, direction in (("in", "inflow"), ("out", "outflow")):
        for kind, live in (("entry", _entries(direction)), ("exit", _exits(direction))):
            plan.tally(f"{d}_{kind}", f"{d}_{kind}", 0, 0)
            plan.days(f"{d}_{kind}_after", f"{d}_{kind}", after_end, LAST_DAY, "month", live)
        plan.days(f"{d}_new", f"{d}_entry", start, end, "month", _entries(direction))
    for name, (metric, condition) in BIRTH_TALLIES.items():
        plan.days(f"births_{name}", metric, start, end, "month", _births(condition))
    plan.days("deaths", "deaths", start, end, "month", _deaths_on)
    got = await plan.run(session)

    dead = text(DEAD)
    for code, (pop_end, pop_start, mw) in (
        await _grouped(
            session,
            aq,
            Person,
            [
                _sum_if(and_(col(Person.birth_date) <= end, col(Person.death_date) > end)),
                _sum_if(and_(col(Person.birth_date) <= day_before, col(Person.death_date) > day_before)),
                _sum_if(
                    and_(
                        col(Person.birth_date) > old,
                        col(Person.birth_date) <= young,
                        col(Person.death_date) > end,
                        text("sex = 'female' AND marital_status = 'married'"),
                    )
                ),
            ],
            _in_county(Person, aq),
            dead,
            col(Person.death_date) > day_before,
        )
    ).items():
        c = at(code)
        c.population, c.population_start, c.married_women_15_49 = int(pop_end), int(pop_start), int(mw)
    for code, n in got["alive"].items():
        c = at(code)
        c.population += n - got["born_after_end"].get(code, 0)
        c.population_start += n - got["born_after_start"].get(code, 0)
    for code, n in got["married_women"].items():
        at(code).married_women_15_49 += n
    for code, n in got["households"].items():
        at(code).households = n
    for code, n in got["visits"].items():
        at(code).visits = n
    for d, direction in (("in", "inflow"), ("out", "outflow")):
        entered, left = got[f"{d}_entry"], got[f"{d}_exit"]
        for code in set(entered) | set(left):
            c = at(code)
            c.migrants[f"{direction}_open"] = (
                entered.get(code, 0)
                - got[f"{d}_entry_after"].get(code, 0)
                - left.get(code, 0)
                + got[f"{d}_exit_after"].get(code, 0)
            )
        for code, n in got[f"{d}_new"].items():
            at(code).migrants[f"{direction}_new"] = n

    # Open inflows of women 15-49 at ``to``: the maintained copy of inflow records with the
    # woman's birth date (no join with the register).
    w = IndicatorInflowWoman
    for code, (n,) in (
        await _grouped(
            session,
            aq,
            w,
            [func.count()],
            _in_county(w, aq),
            col(w.birth_date) > old,
            col(w.birth_date) <= young,
            col(w.moved_on) <= end,
            or_(col(w.closed_on).is_(None), col(w.closed_on) > end),
        )
    ).items():
        at(code).migrants["inflow_women_15_49"] = int(n)

    for name in BIRTH_TALLIES:
        for code, n in got[f"births_{name}"].items():
            at(code).births[name] = n
    for code, n in got["deaths"].items():
        at(code).deaths = n

    # A county-wide round holds 100,000+ appointments: read them from the (round, township |
    # village, status) indexes alone, the area as a range of the child column (a place's codes
    # extend its parents', ``place_columns``).
    status = col(CheckupAppointment.status)
    group = getattr(CheckupAppointment, aq.child_attr)
    in_area = (
        group == aq.prefix
        if len(aq.prefix) == 12
        else and_(group >= aq.prefix + "000", group <= aq.prefix + "999")
    )
    ck_stmt = (
        select(
            group, _sum_if(status != "cancelled"), _sum_if(status == "done"), _sum_if(status == "exempted")
        )
        .join(CheckupRound, col(CheckupRound.id) == CheckupAppointment.round_id)
        .where(in_area, col(CheckupRound.opens_on) <= end, col(CheckupRound.closes_on) >= start)
        .group_by(group)
    )
    for r in (await session.execute(ck_stmt)).all():
        at(aq.child_code(r[0])).checkups = {
            "due": int(r[1] or 0),
            "done": int(r[2] or 0),
            "exempted": int(r[3] or 0),
        }

    if (start.month, start.day, end.month, end.day) == (1, 1, 12, 31) and start.year == end.year:
        await _claims_of_year(session, aq, start.year, at)
    else:
        await _claims(session, aq, start, end, at)
    await _in_payment(session, aq, start, end, at)

    by = "t" if aq.child_attr == "township_code" else "v"
    for code, n in (await data_quality.count_faults(session, area_code=aq.code, by=by)).items():
        at(aq.child_code(code)).data_quality_open = n
    return out


def _year_earlier(d: date) -> date:
    try:
        return d.replace(year=d.year - 1)
    except ValueError:
        return d.replace(year=d.year - 1, day=28)


async def _claims_of_year(session: AsyncSession, aq: AreaQuery, year: int, at: Any) -> None:
    """The claims figures of a calendar year from the beneficiary tallies (``bt`` paid persons,
    ``ba`` amount, ``bc`` continuing, ``bx`` exited; per programme, for the request's level:
    ``c`` township rows of a county, ``t`` village rows of a township, a village alone reads its
    own ``v`` continuing and exited), equal to ``_claims`` for that year."""
    t = IndicatorTally
    if len(aq.prefix) == 12:
        area, level = col(t.area_code) == aq.prefix, {"bt": "t", "ba": "t", "bc": "v", "bx": "v"}
    else:
        lv = "c" if len(aq.prefix) == 6 else "t"
        area, level = col(t.parent_code) == aq.prefix, dict.fromkeys(("bt", "ba", "bc", "bx"), lv)
    stmt = select(col(t.area_code), col(t.metric), col(t.n)).where(
        area, col(t.metric) >= "b", col(t.metric) < "c", col(t.bucket) == year
    )
    found: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for code, metric, n in (await session.execute(stmt)).all():
        kind, _, programme = metric.partition(":")
        if len(kind) == 3 and level.get(kind[:2]) == kind[2]:
            found[(aq.child_code(code), programme)][kind[:2]] += int(n)
    for (code, programme), v in found.items():
        if v["bt"] or v["bx"]:
            at(code).claims[programme] = {
                **claim_counts(),
                "new": v["bt"] - v["bc"],
                "continuing": v["bc"],
                "exited": v["bx"],
                "total": v["bt"],
                "amount_fen": v["ba"],
            }


async def _claims(session: AsyncSession, aq: AreaQuery, start: date, end: date, at: Any) -> None:
    """Beneficiaries and amounts per child area and programme, aggregated in the database:
    ``total`` distinct persons paid in the period, of whom ``continuing`` were paid (anywhere in
    the area) in the same period a year earlier and ``new`` were not; ``exited`` persons paid a
    year earlier (counted where they were paid then) and not now."""
    try:
        from app.models.claims import Claim, Payment
    except ImportError:  # pragma: no cover - the claims domain ships with this service
        return
    group = getattr(Payment, aq.child_attr)

    def paid(a: date, b: date, name: str) -> Any:
        return (
            select(
                group.label("c"),
                col(Claim.programme).label("prog"),
                col(Claim.person_id).label("pid"),
                col(Payment.amount_fen).label("fen"),
            )
            .join(Claim, col(Claim.id) == Payment.claim_id)
            .where(
                _in_county(Payment, aq),
                area_clause(Payment, aq.code),
                col(Payment.paid_on) >= a,
                col(Payment.paid_on) <= b,
            )
            .cte(name)
        )

    now = paid(start, end, "paid_now")
    before = paid(_year_earlier(start), _year_earlier(end), "paid_before")
    now_set = select(now.c.prog, now.c.pid).distinct().cte("now_set")
    before_set = select(before.c.prog, before.c.pid).distinct().cte("before_set")
    current = (
        select(
            literal("now").label("part"),
            now.c.c,
            now.c.prog,
            func.sum(now.c.fen),
            func.count(func.distinct(now.c.pid)),
            func.count(func.distinct(case((before_set.c.pid.is_not(None), now.c.pid)))),
        )
        .select_from(
            now.outerjoin(before_set, and_(before_set.c.prog == now.c.prog, before_set.c.pid == now.c.pid))
        )
        .group_by(now.c.c, now.c.prog)
    )
    gone = (
        select(
            literal("gone").label("part"),
            before.c.c,
            before.c.prog,
            literal(0),
            func.count(func.distinct(before.c.pid)),
            literal(0),
        )
        .select_from(
            before.outerjoin(now_set, and_(now_set.c.prog == before.c.prog, now_set.c.pid == before.c.pid))
        )
        .where(now_set.c.pid.is_(None))
        .group_by(before.c.c, before.c.prog)
    )
    for part, code, prog, fen, persons, continuing in (await session.execute(union_all(current, gone))).all():
        v = at(aq.child_code(code)).claims.setdefault(prog, claim_counts())
        if part == "gone":
            v["exited"] = int(persons)
        else:
            v.update(
                amount_fen=int(fen or 0),
                total=int(persons),
                continuing=int(continuing),
                new=int(persons) - int(continuing),
            )


async def _in_payment(session: AsyncSession, aq: AreaQuery, start: date, end: date, at: Any) -> None:
    """Claims approved or posted and not yet paid, of the claim years the period touches: per
    child area and programme, the persons and their approved amounts (live: a county's pipeline
    of decided claims is small, read through the (county, programme, year, status) index)."""
    from app.models.claims import Claim

    group = getattr(Claim, aq.child_attr)
    stmt = (
        select(
            group,
            col(Claim.programme),
            func.count(func.distinct(col(Claim.person_id))),
            func.sum(func.coalesce(col(Claim.approved_amount_fen), 0)),
        )
        .where(
            _in_county(Claim, aq),
            area_clause(Claim, aq.code),
            col(Claim.year) >= start.year,
            col(Claim.year) <= end.year,
            col(Claim.status).in_(IN_PAYMENT_STATUSES),
        )
        .group_by(group, col(Claim.programme))
    )
    for code, prog, persons, fen in (await session.execute(stmt)).all():
        v = at(aq.child_code(code)).claims.setdefault(prog, claim_counts())
        v["in_payment"] = int(persons)
        v["in_payment_fen"] = int(fen or 0)


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


def _month_key(column: Any, dialect: str, *, timestamp: bool = False) -> Any:
    """The 'YYYY-MM' of a date (or of a UTC timestamp in the business zone, ``app.core.clock``),
    computed in SQL."""
    if timestamp:
        return clock.sql_local_month(column, dialect)
    if dialect == "postgresql":
        return func.to_char(column, "YYYY-MM")
    return func.strftime("%Y-%m", column)


async def series(
    session: AsyncSession, actor: Actor, *, area_code: str | None, metric: str, start: date, end: date
) -> dict[str, Any]:
    """Monthly values of one metric, grouped in the database (months without events are 0).
    ``checkup_rate`` is each month's checkup rate as the figures count it for that month's days
    (per cent, null when nothing was due); ``beneficiaries`` the persons paid in each month."""
    aq = area_query(actor, area_code)
    check_period(start, end)
    if metric not in SERIES_METRICS:
        raise ValidationFailed(f"metric must be one of {', '.join(SERIES_METRICS)}", code="invalid_metric")
    values = dict.fromkeys(months_between(start, end), 0)
    tallied: dict[str, tuple[str, Counter]] = {
        "births": ("births", _births(None)),
        "deaths": ("deaths", _deaths_on),
        "visits": ("visits", _visits_on),
        "inflow_new": ("in_entry", _entries("inflow")),
        "outflow_new": ("out_entry", _entries("outflow")),
        "claims_paid_amount": ("paid_fen", _paid_on),
    }
    if metric in tallied:
        tally_metric, live = tallied[metric]
        plan = _Plan(aq)
        for month in values:
            first, last = _bucket_days(date(int(month[:4]), int(month[5:]), 1), "month")
            plan.days(month, tally_metric, max(first, start), min(last, end), "month", live)
        got = await plan.run(session)
        values = {k: sum(got[k].values()) for k in values}
    else:
        values = await live_month_values(session, aq.code, metric, start, end)
    return series_body(aq.code, metric, values)


def series_body(area_code: str, metric: str, values: dict[str, Any]) -> dict[str, Any]:
    amounts = metric == "claims_paid_amount"
    points = [{"month": k, "value": _yuan(v) if amounts else v} for k, v in values.items()]
    return {"area_code": area_code, "metric": metric, "granularity": "month", "points": points}


def _month_days(month: str, start: date, end: date) -> tuple[date, date]:
    """The days of a 'YYYY-MM' month inside [start, end]."""
    first, last = _bucket_days(date(int(month[:4]), int(month[5:]), 1), "month")
    return max(first, start), min(last, end)


async def _checkup_rate_months(
    session: AsyncSession, area_code: str, start: date, end: date
) -> dict[str, float | None]:
    """Per month, the checkup rate of the figures for that month's days: appointments of the
    rounds whose window overlaps them, done / (due - exempted) in per cent (null: none due).
    One grouped query per round, months summed here."""
    status = col(CheckupAppointment.status)
    stmt = (
        select(
            col(CheckupRound.opens_on),
            col(CheckupRound.closes_on),
            _sum_if(status != "cancelled"),
            _sum_if(status == "done"),
            _sum_if(status == "exempted"),
        )
        .join(CheckupRound, col(CheckupRound.id) == CheckupAppointment.round_id)
        .where(
            area_clause(CheckupAppointment, area_code),
            col(CheckupRound.opens_on) <= end,
            col(CheckupRound.closes_on) >= start,
        )
        .group_by(col(CheckupRound.id), col(CheckupRound.opens_on), col(CheckupRound.closes_on))
    )
    rounds = [
        (o, c, int(d or 0), int(n or 0), int(x or 0)) for o, c, d, n, x in (await session.execute(stmt)).all()
    ]
    out: dict[str, float | None] = {}
    for month in months_between(start, end):
        lo, hi = _month_days(month, start, end)
        due = done = exempted = 0
        for opens, closes, d, n, x in rounds:
            if opens <= hi and closes >= lo:
                due, done, exempted = due + d, done + n, exempted + x
        out[month] = _rate(done, due - exempted)
    return out


async def _beneficiary_months(
    session: AsyncSession, area_code: str, start: date, end: date, dialect: str
) -> dict[str, int]:
    """Per month, the persons paid in it (a person paid by two programmes counts twice, once
    per programme, as in the figures)."""
    from app.models.claims import Claim, Payment

    values = dict.fromkeys(months_between(start, end), 0)
    key = _month_key(col(Payment.paid_on), dialect).label("month")
    stmt = (
        select(key, col(Claim.programme), func.count(func.distinct(col(Claim.person_id))))
        .join(Claim, col(Claim.id) == Payment.claim_id)
        .where(area_clause(Payment, area_code), col(Payment.paid_on) >= start, col(Payment.paid_on) <= end)
        .group_by(key, col(Claim.programme))
    )
    for month, _prog, n in (await session.execute(stmt)).all():
        if month in values:
            values[month] += int(n)
    return values


async def live_month_values(
    session: AsyncSession, area_code: str, metric: str, start: date, end: date
) -> dict[str, Any]:
    """One metric per month counted from its source table by one grouped query (months
    without events are 0): the figures of metrics without tallies, and the reference the
    tallies are tested against."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    if metric == "checkup_rate":
        return await _checkup_rate_months(session, area_code, start, end)
    if metric == "beneficiaries":
        return await _beneficiary_months(session, area_code, start, end, dialect)
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
        where += [col(Migrant.direction) == metric.removesuffix("_new"), counted_migrant()]
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
    stmt = select(key, amount).where(area_clause(model, area_code), *where).group_by(key)
    for month, n in (await session.execute(stmt)).all():
        if month in values:
            values[month] += int(n or 0)
    return values


# --- caching ---------------------------------------------------------------------------------------


async def data_version(session: AsyncSession, area_code: str) -> str:
    """The ETag validator of an area's figures: the area's county's data version (bumped at
    commit by every transaction that wrote in the county), the version of writes without a
    county, and the date (ages and the date-dependent faults move daily). A few primary-key
    rows; see ``indicator_upkeep`` for why a counter and not the latest audit timestamp."""
    county = area_code[:6]
    v = DataVersion
    stmt = (
        select(col(v.county_code), func.sum(col(v.n)))
        .where(col(v.county_code).in_((county, "")))
        .group_by(col(v.county_code))
    )
    got = {c: int(n or 0) for c, n in (await session.execute(stmt)).all()}
    return f"{county}:{got.get(county, 0)}|{got.get('', 0)}|{clock.today().isoformat()}"


def etag(*parts: str) -> str:
    return '"' + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32] + '"'


def year_bounds(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year, 12, calendar.monthrange(year, 12)[1])

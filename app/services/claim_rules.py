"""Benefit-claim rules as pure functions (no I/O), and the claim workflow as one table.

Eligibility takes the register facts (a ``Family``: the person, their household type, children
through mother/father links, spouse, applicant), the declared facts the register cannot know
(``ClaimFacts``) and the programme's rule versions; it answers ``eligible``, the amount in fen and
one reason per rule, so a cadre can tell a family exactly why.

Which version applies: the version in force on the last day of the claim year is the one stamped
on the claim and decides eligibility; monthly programmes pay each month the rate of the version
in force on that month's first day (so 2022 pays six months at the old and six at the new rate).

Versions belong to an area: national ones (``area_code`` null, shipped with the migrations) and a
county's own (added by that county's admin). The evaluation is given the national versions and
those of the claim's county only, and ``version_on`` takes the most specific one in force on the
date (see there): another county's version never reaches it.

The national defaults shipped with the service are ``NATIONAL_DEFAULTS`` (the migration holds the
same rows as data; a test keeps them equal).
"""

from __future__ import annotations

import calendar
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, ValidationError, field_validator

from app.core.errors import Conflict, FieldError, ValidationFailed
from app.core.messages import translate
from app.models.claims import ClaimFacts, ClaimStatus, Decision, ProgrammeCode
from app.models.users import Role

# --- money ------------------------------------------------------------------------------------


def to_fen(value: Decimal | str | int) -> int:
    """Yuan (exact, at most two decimals) → integer fen."""
    try:
        fen = Decimal(str(value)) * 100
        exact = fen.is_finite() and abs(fen) < 10**12 and fen == fen.to_integral_value()
    except (InvalidOperation, ValueError):
        exact = False
    if not exact:
        raise ValueError(f"{value!r} is not an amount of yuan with at most two decimals")
    return int(fen)


def yuan(fen: int) -> str:
    """Integer fen → ``"960.00"``."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def _money(v: Any) -> Decimal:
    d = Decimal(str(v))
    if d < 0:
        raise ValueError("must not be negative")
    return Decimal(to_fen(d)) / 100


YuanAmount = Annotated[Decimal, PlainSerializer(lambda d: yuan(to_fen(d)), return_type=str)]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _amounts(cls, v: Any, info: Any) -> Any:
        name = info.field_name or ""
        if name == "amount" or name.endswith(("_monthly", "top_up", "monthly")):
            try:
                return _money(v)
            except (InvalidOperation, ValueError) as exc:
                raise ValueError(f"must be an amount of yuan like '960.00' ({exc})") from None
        return v


class RuralRewardParams(_Params):
    amount: YuanAmount
    top_up: YuanAmount = Decimal("0")
    min_age: int = 60
    born_on_or_after: date = date(1933, 1, 1)
    policy_window: tuple[int, int] = (1973, 2001)


class SpecialAssistanceParams(_Params):
    death_monthly: YuanAmount
    disability_monthly: YuanAmount
    top_up_monthly: YuanAmount = Decimal("0")
    mother_min_age: int = 49
    born_on_or_after: date = date(1933, 1, 1)
    max_disability_grade: int = 3


class ChildcareParams(_Params):
    monthly: YuanAmount
    top_up_monthly: YuanAmount = Decimal("0")
    months: int = 36
    count_from: date = date(2025, 1, 1)


class OnlyChildParams(_Params):
    amount: YuanAmount
    top_up: YuanAmount = Decimal("0")
    requires_certificate: bool = True
    child_max_age: int | None = None  # paid while the only child is under this age; None: no limit


PARAMS: dict[ProgrammeCode, type[_Params]] = {
    ProgrammeCode.rural_reward: RuralRewardParams,
    ProgrammeCode.special_assistance: SpecialAssistanceParams,
    ProgrammeCode.childcare_subsidy: ChildcareParams,
    ProgrammeCode.only_child_parent_reward: OnlyChildParams,
}


def validate_params(programme: ProgrammeCode, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check a version's parameters; the normalised JSON (amounts as ``"960.00"``) or 422."""
    try:
        model = PARAMS[programme].model_validate(dict(params))
    except ValidationError as exc:
        errors = [
            FieldError(field="params." + ".".join(str(p) for p in e["loc"]), message=e["msg"])
            for e in exc.errors()
        ]
        raise ValidationFailed("The rule parameters are not valid", errors=errors) from None
    out: dict[str, Any] = model.model_dump(mode="json")
    return out


# --- the programmes shipped -------------------------------------------------------------------

PROGRAMMES: list[dict[str, str]] = [
    {"code": "rural_reward", "name": "农村部分计划生育家庭奖励扶助", "basis": "per_person_yearly"},
    {"code": "special_assistance", "name": "计划生育家庭特别扶助", "basis": "per_parent_monthly"},
    {"code": "childcare_subsidy", "name": "育儿补贴", "basis": "per_child_monthly"},
    {"code": "only_child_parent_reward", "name": "独生子女父母奖励", "basis": "per_parent_yearly"},
]

_RURAL = {"top_up": "0.00", "min_age": 60, "born_on_or_after": "1933-01-01", "policy_window": [1973, 2001]}
_SPECIAL = {"top_up_monthly": "0.00", "mother_min_age": 49, "born_on_or_after": "1933-01-01"}
NATIONAL_DEFAULTS: list[dict[str, Any]] = [
    {
        "id": uuid.UUID("5f0c3a52-7b43-4d1e-9a51-000000002004"),
        "programme_code": "rural_reward",
        "effective_from": date(2004, 1, 1),
        "params": {"amount": "600.00", **_RURAL},
        "note": "national default",
    },
    {
        "id": uuid.UUID("5f0c3a52-7b43-4d1e-9a51-000000002009"),
        "programme_code": "rural_reward",
        "effective_from": date(2009, 1, 1),
        "params": {"amount": "720.00", **_RURAL},
        "note": "national default",
    },
    {
        "id": uuid.UUID("5f0c3a52-7b43-4d1e-9a51-000000002012"),
        "programme_code": "rural_reward",
        "effective_from": date(2012, 1, 1),
        "params": {"amount": "960.00", **_RURAL},
        "note": "national default",
    },
    {
        "id": uuid.UUID("5f0c3a52-7b43-4d1e-9a52-000000002008"),
        "programme_code": "special_assistance",
        "effective_from": date(2008, 1, 1),
        "params": {
            "death_monthly": "450.00",
            "disability_monthly": "350.00",
            **_SPECIAL,
            "max_disability_grade": 3,
        },
        "note": "national default",
    },
    {
        "id": uuid.UUID("5f0c3a52-7b43-4d1e-9a52-000000202207"),
        "programme_code": "special_assistance",
        "effective_from": date(2022, 7, 1),
        "params": {
            "death_monthly": "590.00",
            "disability_monthly": "460.00",
            **_SPECIAL,
            "max_disability_grade": 3,
        },
        "note": "national default",
    },
    {
        "id": uuid.UUID("5f0c3a52-7b43-4d1e-9a53-000000002025"),
        "programme_code": "childcare_subsidy",
        "effective_from": date(2025, 1, 1),
        "params": {"monthly": "300.00", "top_up_monthly": "0.00", "months": 36, "count_from": "2025-01-01"},
        "note": "national default",
    },
]


# --- register facts as the rules see them -----------------------------------------------------


@dataclass(frozen=True)
class Member:
    id: uuid.UUID
    sex: str
    birth_date: date
    death_date: date | None = None
    household_id: uuid.UUID | None = None
    mother_id: uuid.UUID | None = None
    father_id: uuid.UUID | None = None

    @property
    def alive(self) -> bool:
        return self.death_date is None


@dataclass(frozen=True)
class Family:
    """The beneficiary and what the register says about their family."""

    person: Member
    household_type: str = "rural"
    children: tuple[Member, ...] = ()
    spouse: Member | None = None
    applicant: Member | None = None  # childcare subsidy: the parent applying


@dataclass(frozen=True)
class Version:
    id: uuid.UUID
    effective_from: date
    params: Mapping[str, Any]
    area_code: str | None = None  # None: national; else the county's 12-digit code


@dataclass(frozen=True)
class Evaluation:
    eligible: bool
    amount_fen: int
    version: Version
    reasons: list[dict[str, Any]]
    months: list[str] = field(default_factory=list)
    category: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"reasons": self.reasons, "months": self.months, "category": self.category}


def _reason(rule: str, passed: bool, detail: str) -> dict[str, Any]:
    """One rule's outcome. ``detail`` is written in English, as stored in the claim's
    evaluation; ``localized`` renders it in the reader's language (the catalogue's
    ``reason.*`` messages, app/core/messages.py), so stored claims read in either language."""
    return {"rule": rule, "passed": passed, "detail": detail}


def localized(reason: dict[str, Any]) -> dict[str, Any]:
    """A stored reason with its detail in the request's language."""
    return {**reason, "detail": translate(str(reason.get("detail", "")))}


def add_years(d: date, years: int) -> date:
    """The same day ``years`` later (29 February → 1 March in a common year)."""
    try:
        return d.replace(year=d.year + years)
    except ValueError:
        return date(d.year + years, 3, 1)


def age_on(birth: date, day: date) -> int:
    years = day.year - birth.year
    if (day.month, day.day) < (birth.month, birth.day):
        years -= 1
    return years


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _ym(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


class Dated(Protocol):
    """What ``version_on`` reads of a version (a ``Version`` or a ``RuleVersion`` row)."""

    @property
    def effective_from(self) -> date: ...

    @property
    def area_code(self) -> str | None: ...


V = TypeVar("V", bound=Dated)


def version_on(versions: Sequence[V], day: date) -> V | None:
    """The most specific version in force on ``day``.

    ``versions`` are one area's candidates: the national versions and those of one county
    (the caller picks them; another county's never belong here). Among the versions with
    ``effective_from <= day``, the county's latest wins if the county has one; only when it has
    none does the latest national one apply. So a county version effective 2026-01-01 beats a
    national one effective 2026-06-01: once a county has set its own rules, a later national
    change reaches it only when its admin adds a new county version (carrying over the rest).
    """
    national: V | None = None
    own: V | None = None
    for v in versions:
        if v.effective_from > day:
            continue
        if v.area_code is None:
            if national is None or v.effective_from > national.effective_from:
                national = v
        elif own is None or v.effective_from > own.effective_from:
            own = v
    return own or national


def versions_in_force(versions: Sequence[V]) -> list[V]:
    """The versions that can ever apply in the area, oldest first (what ``version_on`` can
    answer for some day): the national ones that started before the county's first own
    version, then all the county's own."""
    own = [v for v in versions if v.area_code is not None]
    first_own = min((v.effective_from for v in own), default=None)
    kept = [
        v for v in versions if v.area_code is not None or first_own is None or v.effective_from < first_own
    ]
    return sorted(kept, key=lambda v: v.effective_from)


def _span(months: list[str]) -> str:
    if not months:
        return "none"
    return months[0] if len(months) == 1 else f"{months[0]}–{months[-1]}"


# --- the programmes ---------------------------------------------------------------------------


def rural_reward(year: int, fam: Family, facts: ClaimFacts, version: Version) -> Evaluation:
    """农村部分计划生育家庭奖励扶助: a yearly amount per person."""
    p = RuralRewardParams.model_validate(dict(version.params))
    me = fam.person
    reasons = [
        _reason(
            "birth_date_floor",
            me.birth_date >= p.born_on_or_after,
            f"born {me.birth_date}; must be born on or after {p.born_on_or_after}",
        ),
        _reason(
            "min_age",
            me.birth_date.year + p.min_age <= year,
            f"turns {p.min_age} in {me.birth_date.year + p.min_age}; must be in or before {year}",
        ),
        _reason("alive", me.alive, "alive" if me.alive else f"died on {me.death_date}"),
    ]
    if facts.hukou_rural is not None:
        rural = facts.hukou_rural
        detail = "declared rural residents" if rural else "declared not rural residents"
    else:
        rural = fam.household_type == "rural"
        detail = f"household registered as {fam.household_type} (declare hukou_rural if it differs)"
    reasons.append(_reason("hukou_rural", rural, detail))
    lo, hi = p.policy_window
    within = facts.births_within_policy_1973_2001
    reasons.append(
        _reason(
            "births_within_policy",
            within is True,
            {
                True: f"declared: no births against the policy in {lo}–{hi}",
                False: f"declared: births against the policy in {lo}–{hi}",
                None: f"not declared whether births in {lo}–{hi} kept to the policy",
            }[within],
        )
    )
    reasons.append(_children_pattern(fam.children))
    eligible = all(r["passed"] for r in reasons)
    amount = to_fen(p.amount + p.top_up) if eligible else 0
    return Evaluation(eligible, amount, version, reasons)


def _children_pattern(children: Sequence[Member]) -> dict[str, Any]:
    """One living child, or two living children both daughters, or children none of whom lives."""
    living = [c for c in children if c.alive]
    daughters = sum(1 for c in living if c.sex == "female")
    if not children:
        return _reason("children", False, "no children on the register")
    if len(living) == 1:
        return _reason("children", True, "one living child")
    if len(living) == 2 and daughters == 2:
        return _reason("children", True, "two living children, both daughters")
    if not living:
        return _reason("children", True, f"had {len(children)} child(ren), none is alive")
    sons = len(living) - daughters
    return _reason("children", False, f"{len(living)} living children ({sons} sons, {daughters} daughters)")


def special_assistance(year: int, fam: Family, facts: ClaimFacts, versions: Sequence[Version]) -> Evaluation:
    """计划生育家庭特别扶助: monthly, per parent, for the death or severe disability of the only
    child. Months count from the month after the child's death and from the month the mother
    (for a single parent, that parent) turns 49."""
    stamp = _stamp(versions, year)
    p = SpecialAssistanceParams.model_validate(dict(stamp.params))
    me = fam.person
    kids = sorted(fam.children, key=lambda c: c.birth_date)
    reasons = []
    if len(kids) == 1:
        reasons.append(_reason("one_child", True, f"one child on the register (born {kids[0].birth_date})"))
    else:
        reasons.append(_reason("one_child", False, f"{len(kids)} children on the register; must be one"))
    only = kids[0] if kids else None
    category: str | None = None
    grade = facts.only_child_disability_grade
    if only is not None and only.death_date is not None:
        category = "death"
        reasons.append(_reason("child_died_or_disabled", True, f"the child died on {only.death_date}"))
    elif grade is not None and grade <= p.max_disability_grade:
        category = "disability"
        reasons.append(
            _reason(
                "child_died_or_disabled", True, f"the child holds a disability certificate of grade {grade}"
            )
        )
    elif grade is not None:
        reasons.append(
            _reason(
                "child_died_or_disabled",
                False,
                f"disability grade {grade}; grades 1–{p.max_disability_grade} qualify",
            )
        )
    else:
        reasons.append(
            _reason(
                "child_died_or_disabled",
                False,
                f"the child is alive and no disability grade 1–{p.max_disability_grade} is declared"
                if only
                else "no child on the register",
            )
        )
    later = kids[1:]
    if facts.later_child_or_adoption:
        reasons.append(_reason("no_later_child", False, "declared a later birth or adoption"))
    elif later:
        reasons.append(_reason("no_later_child", False, f"a later child born {later[0].birth_date}"))
    else:
        reasons.append(_reason("no_later_child", True, "no later birth or adoption"))
    parents = [me] + ([fam.spouse] if fam.spouse else [])
    too_old = [m for m in parents if m.birth_date < p.born_on_or_after]
    reasons.append(
        _reason(
            "parents_birth_date_floor",
            not too_old,
            f"{'both parents' if fam.spouse else 'the parent'} born on or after {p.born_on_or_after}"
            if not too_old
            else f"a parent born {too_old[0].birth_date}, before {p.born_on_or_after}",
        )
    )
    if me.sex == "female":
        mother, who = me, "the mother"
    elif fam.spouse is not None and fam.spouse.sex == "female":
        mother, who = fam.spouse, "the mother"
    else:
        mother, who = me, "the parent (single)"
    turns = add_years(mother.birth_date, p.mother_min_age)
    reasons.append(
        _reason(
            "mother_age",
            turns <= date(year, 12, 31),
            f"{who} turns {p.mother_min_age} on {turns}",
        )
    )
    reasons.append(_reason("alive", me.alive, "alive" if me.alive else f"died on {me.death_date}"))
    months: list[str] = []
    amount = 0
    static_ok = all(r["passed"] for r in reasons)
    for m in range(1, 13):
        first, last = date(year, m, 1), _month_end(year, m)
        v = version_on(versions, first)
        if v is None or turns > last:
            continue
        if (
            category == "death"
            and only is not None
            and only.death_date is not None
            and only.death_date >= first
        ):
            continue  # paid from the month after the death
        if not static_ok:
            continue
        vp = SpecialAssistanceParams.model_validate(dict(v.params))
        rate = vp.death_monthly if category == "death" else vp.disability_monthly
        amount += to_fen(rate + vp.top_up_monthly)
        months.append(_ym(year, m))
    reasons.append(
        _reason(
            "eligible_months",
            bool(months),
            f"{len(months)} eligible months in {year} ({_span(months)})"
            if static_ok
            else "no eligible months while a rule above fails",
        )
    )
    eligible = all(r["passed"] for r in reasons)
    return Evaluation(eligible, amount if eligible else 0, stamp, reasons, months, category)


def childcare_subsidy(year: int, fam: Family, facts: ClaimFacts, versions: Sequence[Version]) -> Evaluation:  # noqa: ARG001
    """育儿补贴: per child, for the months after the birth month up to 36, counted only from
    ``count_from`` (2025-01) on; a year's claim pays that year's eligible months."""
    stamp = _stamp(versions, year)
    p = ChildcareParams.model_validate(dict(stamp.params))
    child, parent = fam.person, fam.applicant
    reasons = []
    is_parent = parent is not None and parent.id in (child.mother_id, child.father_id)
    reasons.append(
        _reason(
            "applicant_is_parent",
            is_parent,
            "the applicant is the child's parent on the register"
            if is_parent
            else (
                "no applicant parent given" if parent is None else "the applicant is not the child's parent"
            ),
        )
    )
    same = parent is not None and parent.household_id == child.household_id
    reasons.append(
        _reason(
            "same_household",
            same,
            "the applicant lives in the child's household"
            if same
            else "the applicant is in another household",
        )
    )
    parent_alive = parent is not None and parent.alive
    reasons.append(
        _reason("applicant_alive", parent_alive, "alive" if parent_alive else "the applicant is deceased")
    )
    reasons.append(
        _reason(
            "child_alive", child.alive, "alive" if child.alive else f"the child died on {child.death_date}"
        )
    )
    b = child.birth_date
    base = b.year * 12 + (b.month - 1)  # birth month as a month number
    first_n, last_n = base + 1, base + p.months
    start_n = p.count_from.year * 12 + (p.count_from.month - 1)
    months: list[str] = []
    amount = 0
    static_ok = all(r["passed"] for r in reasons)
    for m in range(1, 13):
        n = year * 12 + (m - 1)
        if not (first_n <= n <= last_n and n >= start_n):
            continue
        v = version_on(versions, date(year, m, 1))
        if v is None:
            continue
        vp = ChildcareParams.model_validate(dict(v.params))
        months.append(_ym(year, m))
        amount += to_fen(vp.monthly + vp.top_up_monthly)
    first_ym = _ym(first_n // 12, first_n % 12 + 1)
    last_ym = _ym(last_n // 12, last_n % 12 + 1)
    reasons.append(
        _reason(
            "eligible_months",
            bool(months),
            f"born {b.year:04d}-{b.month:02d}: months {first_ym}–{last_ym}, counted from "
            f"{p.count_from.year:04d}-{p.count_from.month:02d}; {len(months)} in {year}"
            + (f" ({_span(months)})" if months else ""),
        )
    )
    eligible = all(r["passed"] for r in reasons)
    if not eligible:
        amount = 0
    return Evaluation(eligible, amount, stamp, reasons, months if static_ok else [])


def only_child_parent_reward(year: int, fam: Family, facts: ClaimFacts, version: Version) -> Evaluation:
    """独生子女父母奖励 (provincial amounts): parents of one child holding the certificate."""
    p = OnlyChildParams.model_validate(dict(version.params))
    me = fam.person
    reasons = []
    if p.requires_certificate:
        cert = facts.only_child_certificate is True
        reasons.append(
            _reason(
                "only_child_certificate",
                cert,
                "declared: holds the only-child parents' certificate"
                if cert
                else "no only-child parents' certificate declared",
            )
        )
    kids = sorted(fam.children, key=lambda c: c.birth_date)
    reasons.append(
        _reason("one_child", len(kids) == 1, f"{len(kids)} child(ren) on the register; must be one")
    )
    if p.child_max_age is not None and kids:
        age = age_on(kids[0].birth_date, date(year, 1, 1))
        reasons.append(
            _reason(
                "child_age",
                age < p.child_max_age,
                f"the child is {age} on {year}-01-01; paid while under {p.child_max_age}",
            )
        )
    reasons.append(_reason("alive", me.alive, "alive" if me.alive else f"died on {me.death_date}"))
    eligible = all(r["passed"] for r in reasons)
    return Evaluation(eligible, to_fen(p.amount + p.top_up) if eligible else 0, version, reasons)


def _stamp(versions: Sequence[Version], year: int) -> Version:
    v = version_on(versions, date(year, 12, 31))
    if v is None:
        raise Conflict(f"The programme has no rule version in force for {year}", code="no_rule_version")
    return v


def evaluate(
    programme: ProgrammeCode, year: int, fam: Family, facts: ClaimFacts, versions: Sequence[Version]
) -> Evaluation:
    """The one entry point: 409 ``no_rule_version`` when no version is in force for the year."""
    if programme == ProgrammeCode.special_assistance:
        return special_assistance(year, fam, facts, versions)
    if programme == ProgrammeCode.childcare_subsidy:
        return childcare_subsidy(year, fam, facts, versions)
    stamp = _stamp(versions, year)
    if programme == ProgrammeCode.rural_reward:
        return rural_reward(year, fam, facts, stamp)
    return only_child_parent_reward(year, fam, facts, stamp)


def exit_reason(programme: ProgrammeCode, fam: Family, ev: Evaluation) -> tuple[str, str]:
    """Why a paid beneficiary leaves at renewal: a short code and the failed rules' details."""
    failed = [r for r in ev.reasons if not r["passed"]]
    detail = "; ".join(f"{r['rule']}: {translate(r['detail'])}" for r in failed)  # reader's language
    if not fam.person.alive:
        return "died", detail
    names = {r["rule"] for r in failed}
    if programme == ProgrammeCode.childcare_subsidy and "eligible_months" in names and fam.person.alive:
        return "child_turned_3", detail
    if "no_later_child" in names or (programme == ProgrammeCode.special_assistance and "one_child" in names):
        return "later_child", detail
    if "children" in names:
        return "children_changed", detail
    return (failed[0]["rule"] if failed else "not_eligible"), detail


# --- the workflow -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    sources: frozenset[ClaimStatus]
    target: ClaimStatus
    roles: tuple[Role, ...]
    # the claim's users this step's actor must not be (``submitted_by``, ``reviewed_by``,
    # ``approved_by``)
    separate_from: tuple[str, ...] = ()


_S = ClaimStatus
_COUNTY = (Role.county, Role.admin)
_ANY = (Role.village, Role.township, Role.county, Role.admin)

# (action, decision) → the one allowed move. Nothing else changes a claim's status.
TRANSITIONS: dict[tuple[str, Decision | None], Transition] = {
    ("submit", None): Transition(frozenset({_S.draft, _S.returned}), _S.submitted, (Role.village,)),
    ("review", Decision.approve): Transition(
        frozenset({_S.submitted}), _S.reviewed, (Role.township,), ("submitted_by",)
    ),
    ("review", Decision.return_): Transition(
        frozenset({_S.submitted}), _S.returned, (Role.township,), ("submitted_by",)
    ),
    ("review", Decision.reject): Transition(
        frozenset({_S.submitted}), _S.rejected, (Role.township,), ("submitted_by",)
    ),
    ("approve", Decision.approve): Transition(
        frozenset({_S.reviewed}), _S.approved, _COUNTY, ("submitted_by", "reviewed_by")
    ),
    ("approve", Decision.return_): Transition(
        frozenset({_S.reviewed}), _S.returned, _COUNTY, ("submitted_by", "reviewed_by")
    ),
    ("approve", Decision.reject): Transition(
        frozenset({_S.reviewed}), _S.rejected, _COUNTY, ("submitted_by", "reviewed_by")
    ),
    ("publish", None): Transition(frozenset({_S.approved}), _S.posted, _COUNTY),
    ("object", None): Transition(frozenset({_S.posted}), _S.reviewed, _COUNTY),
    # Whoever approved the amount does not also pay it out (four eyes on the money).
    ("pay", None): Transition(frozenset({_S.posted}), _S.paid, _COUNTY, ("approved_by",)),
    # A new payee after submission: a recorded act that goes back to the township's review.
    ("change_payee", None): Transition(
        frozenset({_S.submitted, _S.reviewed, _S.approved, _S.posted}), _S.submitted, _ANY
    ),
}


def allowed_actions(status: ClaimStatus) -> list[str]:
    return sorted({a for (a, _), t in TRANSITIONS.items() if status in t.sources})

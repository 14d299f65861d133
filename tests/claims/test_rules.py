"""Benefit-claim rules as tables of cases: pure functions, no database."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from app.core.errors import Conflict, ValidationFailed
from app.models.claims import ClaimFacts, ClaimStatus, Decision, ProgrammeCode
from app.models.users import Role
from app.services import claim_rules as rules
from app.services.claim_rules import Family, Member, Version

HH = uuid.uuid4()
OTHER_HH = uuid.uuid4()


def versions(code: str, extra: list[Version] | None = None) -> list[Version]:
    out = [
        Version(d["id"], d["effective_from"], rules.validate_params(ProgrammeCode(code), d["params"]))
        for d in rules.NATIONAL_DEFAULTS
        if d["programme_code"] == code
    ]
    return out + (extra or [])


def kid(born: date, sex: str = "male", died: date | None = None, **kw: object) -> Member:
    return Member(id=uuid.uuid4(), sex=sex, birth_date=born, death_date=died, household_id=HH, **kw)  # type: ignore[arg-type]


def failed(ev: rules.Evaluation) -> set[str]:
    return {r["rule"] for r in ev.reasons if not r["passed"]}


# --- money ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fen"), [("960.00", 96000), ("960", 96000), ("0.01", 1), ("6240.5", 624050), ("0", 0)]
)
def test_yuan_to_fen_and_back(text, fen):
    assert rules.to_fen(text) == fen
    assert rules.yuan(fen) == f"{fen // 100}.{fen % 100:02d}"


@pytest.mark.parametrize("text", ["12.345", "abc", "NaN", "1e400000"])
def test_amounts_with_more_than_two_decimals_are_refused(text):
    with pytest.raises(ValueError, match="yuan"):
        rules.to_fen(text)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"amount": "12.345"}, "params.amount"),
        ({"amount": "-1.00"}, "params.amount"),
        ({"amount": "960.00", "colour": "red"}, "params.colour"),
        ({}, "params.amount"),
    ],
)
def test_rule_parameters_are_validated(params, field):
    with pytest.raises(ValidationFailed) as exc:
        rules.validate_params(ProgrammeCode.rural_reward, params)
    assert field in {e.field for e in exc.value.errors or []}


def test_parameters_are_normalised():
    out = rules.validate_params(ProgrammeCode.rural_reward, {"amount": 1200})
    assert out["amount"] == "1200.00"
    assert out["min_age"] == 60
    assert out["born_on_or_after"] == "1933-01-01"
    assert out["policy_window"] == [1973, 2001]


# --- rural_reward -----------------------------------------------------------------------------

OK = ClaimFacts(hukou_rural=True, births_within_policy_1973_2001=True)
SON = ("male", None)
DAUGHTER = ("female", None)
DEAD_SON = ("male", date(2010, 5, 5))
DEAD_DAUGHTER = ("female", date(2011, 6, 6))

RURAL_CASES = [
    # id, year, born, facts, household, children, eligible, amount, failing rules
    ("turns 60 in the year", 2024, date(1964, 6, 1), OK, "rural", [SON], True, "960.00", set()),
    ("turns 60 on 31 Dec", 2024, date(1964, 12, 31), OK, "rural", [SON], True, "960.00", set()),
    ("turns 60 next year", 2024, date(1965, 1, 1), OK, "rural", [SON], False, "0.00", {"min_age"}),
    ("older than 60", 2024, date(1950, 1, 1), OK, "rural", [SON], True, "960.00", set()),
    ("born 1933-01-01", 2012, date(1933, 1, 1), OK, "rural", [SON], True, "960.00", set()),
    ("born 1932-12-31", 2012, date(1932, 12, 31), OK, "rural", [SON], False, "0.00", {"birth_date_floor"}),
    ("2011 pays 720", 2011, date(1950, 1, 1), OK, "rural", [SON], True, "720.00", set()),
    ("2009 pays 720", 2009, date(1949, 1, 1), OK, "rural", [SON], True, "720.00", set()),
    ("2008 pays 600", 2008, date(1945, 1, 1), OK, "rural", [SON], True, "600.00", set()),
    ("2004 pays 600", 2004, date(1940, 1, 1), OK, "rural", [SON], True, "600.00", set()),
    (
        "declared not rural",
        2024,
        date(1960, 1, 1),
        ClaimFacts(hukou_rural=False, births_within_policy_1973_2001=True),
        "rural",
        [SON],
        False,
        "0.00",
        {"hukou_rural"},
    ),
    (
        "urban household, nothing declared",
        2024,
        date(1960, 1, 1),
        ClaimFacts(births_within_policy_1973_2001=True),
        "urban",
        [SON],
        False,
        "0.00",
        {"hukou_rural"},
    ),
    (
        "rural household, nothing declared",
        2024,
        date(1960, 1, 1),
        ClaimFacts(births_within_policy_1973_2001=True),
        "rural",
        [SON],
        True,
        "960.00",
        set(),
    ),
    (
        "declared rural in an urban household",
        2024,
        date(1960, 1, 1),
        OK,
        "urban",
        [SON],
        True,
        "960.00",
        set(),
    ),
    (
        "births against the policy",
        2024,
        date(1960, 1, 1),
        ClaimFacts(hukou_rural=True, births_within_policy_1973_2001=False),
        "rural",
        [SON],
        False,
        "0.00",
        {"births_within_policy"},
    ),
    (
        "policy not declared",
        2024,
        date(1960, 1, 1),
        ClaimFacts(hukou_rural=True),
        "rural",
        [SON],
        False,
        "0.00",
        {"births_within_policy"},
    ),
    ("no children", 2024, date(1960, 1, 1), OK, "rural", [], False, "0.00", {"children"}),
    ("two daughters", 2024, date(1960, 1, 1), OK, "rural", [DAUGHTER, DAUGHTER], True, "960.00", set()),
    (
        "a son and a daughter",
        2024,
        date(1960, 1, 1),
        OK,
        "rural",
        [SON, DAUGHTER],
        False,
        "0.00",
        {"children"},
    ),
    ("two sons", 2024, date(1960, 1, 1), OK, "rural", [SON, SON], False, "0.00", {"children"}),
    ("three daughters", 2024, date(1960, 1, 1), OK, "rural", [DAUGHTER] * 3, False, "0.00", {"children"}),
    ("one of two sons alive", 2024, date(1960, 1, 1), OK, "rural", [SON, DEAD_SON], True, "960.00", set()),
    (
        "no child alive",
        2024,
        date(1960, 1, 1),
        OK,
        "rural",
        [DEAD_SON, DEAD_DAUGHTER],
        True,
        "960.00",
        set(),
    ),
]


@pytest.mark.parametrize(
    ("year", "born", "facts", "household", "children", "eligible", "amount", "failing"),
    [c[1:] for c in RURAL_CASES],
    ids=[c[0] for c in RURAL_CASES],
)
def test_rural_reward(year, born, facts, household, children, eligible, amount, failing):
    fam = Family(
        person=Member(uuid.uuid4(), "female", born, household_id=HH),
        household_type=household,
        children=tuple(kid(date(1990, 1, 1), sex, died) for sex, died in children),
    )
    ev = rules.evaluate(ProgrammeCode.rural_reward, year, fam, facts, versions("rural_reward"))
    assert (ev.eligible, rules.yuan(ev.amount_fen), failed(ev)) == (eligible, amount, failing)
    assert [r["rule"] for r in ev.reasons] == [
        "birth_date_floor",
        "min_age",
        "alive",
        "hukou_rural",
        "births_within_policy",
        "children",
    ]
    assert all(r["detail"] for r in ev.reasons)


def test_rural_reward_stamps_the_version_of_the_year():
    fam = Family(person=Member(uuid.uuid4(), "male", date(1950, 1, 1)), children=(kid(date(1980, 1, 1)),))
    vs = versions("rural_reward")
    assert rules.evaluate(ProgrammeCode.rural_reward, 2011, fam, OK, vs).version.effective_from == date(
        2009, 1, 1
    )
    assert rules.evaluate(ProgrammeCode.rural_reward, 2012, fam, OK, vs).version.effective_from == date(
        2012, 1, 1
    )
    top_up = Version(uuid.uuid4(), date(2026, 1, 1), {**vs[-1].params, "top_up": "240.00"})
    ev = rules.evaluate(ProgrammeCode.rural_reward, 2026, fam, OK, [*vs, top_up])
    assert (ev.version.id, ev.amount_fen) == (top_up.id, 120000)


def test_no_version_before_2004():
    fam = Family(person=Member(uuid.uuid4(), "male", date(1940, 1, 1)), children=(kid(date(1970, 1, 1)),))
    with pytest.raises(Conflict) as exc:
        rules.evaluate(ProgrammeCode.rural_reward, 2003, fam, OK, versions("rural_reward"))
    assert exc.value.code == "no_rule_version"


def test_deceased_applicant_fails():
    fam = Family(
        person=Member(uuid.uuid4(), "male", date(1950, 1, 1), death_date=date(2024, 2, 2)),
        children=(kid(date(1980, 1, 1)),),
    )
    ev = rules.evaluate(ProgrammeCode.rural_reward, 2024, fam, OK, versions("rural_reward"))
    assert failed(ev) == {"alive"}


# --- special_assistance -----------------------------------------------------------------------

NONE = ClaimFacts()


def sa_family(
    *,
    mother_born: date = date(1970, 3, 3),
    child: Member | None = None,
    more: tuple[Member, ...] = (),
    applicant: str = "mother",
    father_born: date = date(1968, 1, 1),
    spouse: bool = True,
) -> Family:
    mother = Member(uuid.uuid4(), "female", mother_born)
    father = Member(uuid.uuid4(), "male", father_born)
    only = child or kid(date(1995, 1, 1), died=date(2015, 8, 8))
    me, other = (mother, father) if applicant == "mother" else (father, mother)
    return Family(person=me, children=(only, *more), spouse=other if spouse else None)


SA_CASES = [
    # id, year, family, facts, eligible, amount, months, failing
    ("bereaved 2022: six months at each rate", 2022, sa_family(), NONE, True, "6240.00", 12, set()),
    ("bereaved 2021: old rate", 2021, sa_family(), NONE, True, "5400.00", 12, set()),
    ("bereaved 2023: new rate", 2023, sa_family(), NONE, True, "7080.00", 12, set()),
    (
        "disability grade 3 in 2022",
        2022,
        sa_family(child=kid(date(1995, 1, 1))),
        ClaimFacts(only_child_disability_grade=3),
        True,
        "4860.00",
        12,
        set(),
    ),
    (
        "disability grade 1 in 2023",
        2023,
        sa_family(child=kid(date(1995, 1, 1))),
        ClaimFacts(only_child_disability_grade=1),
        True,
        "5520.00",
        12,
        set(),
    ),
    (
        "disability grade 4",
        2023,
        sa_family(child=kid(date(1995, 1, 1))),
        ClaimFacts(only_child_disability_grade=4),
        False,
        "0.00",
        0,
        {"child_died_or_disabled", "eligible_months"},
    ),
    (
        "child alive, nothing declared",
        2023,
        sa_family(child=kid(date(1995, 1, 1))),
        NONE,
        False,
        "0.00",
        0,
        {"child_died_or_disabled", "eligible_months"},
    ),
    (
        "mother turns 49 in July",
        2024,
        sa_family(mother_born=date(1975, 7, 15)),
        NONE,
        True,
        "3540.00",
        6,
        set(),
    ),
    (
        "mother turns 49 next year",
        2024,
        sa_family(mother_born=date(1976, 1, 1)),
        NONE,
        False,
        "0.00",
        0,
        {"mother_age", "eligible_months"},
    ),
    (
        "father applies: the wife's age counts",
        2022,
        sa_family(applicant="father", mother_born=date(1973, 5, 1), father_born=date(1960, 1, 1)),
        NONE,
        True,
        "4440.00",
        8,
        set(),
    ),
    (
        "single father: his own age counts",
        2022,
        sa_family(applicant="father", father_born=date(1960, 1, 1), spouse=False),
        NONE,
        True,
        "6240.00",
        12,
        set(),
    ),
    (
        "spouse born before 1933",
        2022,
        sa_family(applicant="mother", father_born=date(1932, 12, 31), mother_born=date(1940, 1, 1)),
        NONE,
        False,
        "0.00",
        0,
        {"parents_birth_date_floor", "eligible_months"},
    ),
    (
        "a later child on the register",
        2022,
        sa_family(more=(kid(date(2017, 1, 1)),)),
        NONE,
        False,
        "0.00",
        0,
        {"one_child", "no_later_child", "eligible_months"},
    ),
    (
        "a later adoption declared",
        2022,
        sa_family(),
        ClaimFacts(later_child_or_adoption=True),
        False,
        "0.00",
        0,
        {"no_later_child", "eligible_months"},
    ),
    (
        "child died in March: paid from April",
        2024,
        sa_family(child=kid(date(1995, 1, 1), died=date(2024, 3, 10))),
        NONE,
        True,
        "5310.00",
        9,
        set(),
    ),
    (
        "no child at all",
        2024,
        Family(person=Member(uuid.uuid4(), "female", date(1960, 1, 1))),
        NONE,
        False,
        "0.00",
        0,
        {"one_child", "child_died_or_disabled", "eligible_months"},
    ),
]


@pytest.mark.parametrize(
    ("year", "fam", "facts", "eligible", "amount", "months", "failing"),
    [c[1:] for c in SA_CASES],
    ids=[c[0] for c in SA_CASES],
)
def test_special_assistance(year, fam, facts, eligible, amount, months, failing):
    ev = rules.evaluate(ProgrammeCode.special_assistance, year, fam, facts, versions("special_assistance"))
    assert (ev.eligible, rules.yuan(ev.amount_fen), len(ev.months), failed(ev)) == (
        eligible,
        amount,
        months,
        failing,
    )


def test_special_assistance_2022_stamps_the_new_version_and_names_the_category():
    ev = rules.evaluate(
        ProgrammeCode.special_assistance, 2022, sa_family(), NONE, versions("special_assistance")
    )
    assert ev.version.effective_from == date(2022, 7, 1)
    assert ev.category == "death"
    assert ev.months[0] == "2022-01"
    assert ev.months[-1] == "2022-12"


# --- childcare_subsidy ------------------------------------------------------------------------

PARENT_ID = uuid.uuid4()


def cc_family(
    born: date, *, parent_hh: uuid.UUID = HH, is_parent: bool = True, child_died: date | None = None
):
    child = Member(
        uuid.uuid4(),
        "female",
        born,
        death_date=child_died,
        household_id=HH,
        mother_id=PARENT_ID if is_parent else None,
    )
    parent = Member(PARENT_ID, "female", date(1995, 1, 1), household_id=parent_hh)
    return Family(person=child, applicant=parent)


CC_CASES = [
    # id, year, born, eligible, amount, months
    ("born 2021-12: nothing in 2025", 2025, date(2021, 12, 15), False, "0.00", 0),
    ("born 2022-01: one month in 2025", 2025, date(2022, 1, 20), True, "300.00", 1),
    ("born 2023-12: all of 2025", 2025, date(2023, 12, 1), True, "3600.00", 12),
    ("born 2023-12: all of 2026", 2026, date(2023, 12, 1), True, "3600.00", 12),
    ("born 2023-12: nothing in 2027", 2027, date(2023, 12, 1), False, "0.00", 0),
    ("born 2025-01: eleven months of 2025", 2025, date(2025, 1, 1), True, "3300.00", 11),
    ("born 2025-01: one month in 2028", 2028, date(2025, 1, 31), True, "300.00", 1),
    ("born 2025-12: nothing in 2025", 2025, date(2025, 12, 31), False, "0.00", 0),
    ("born 2025-12: all of 2026", 2026, date(2025, 12, 31), True, "3600.00", 12),
    ("born 2024-06: all of 2025", 2025, date(2024, 6, 6), True, "3600.00", 12),
    ("born 2024-06: to June 2027", 2027, date(2024, 6, 6), True, "1800.00", 6),
]


@pytest.mark.parametrize(
    ("year", "born", "eligible", "amount", "months"),
    [c[1:] for c in CC_CASES],
    ids=[c[0] for c in CC_CASES],
)
def test_childcare_month_counting(year, born, eligible, amount, months):
    ev = rules.evaluate(
        ProgrammeCode.childcare_subsidy, year, cc_family(born), NONE, versions("childcare_subsidy")
    )
    assert (ev.eligible, rules.yuan(ev.amount_fen), len(ev.months)) == (eligible, amount, months)


@pytest.mark.parametrize(
    ("fam", "failing"),
    [
        (cc_family(date(2024, 1, 1), is_parent=False), {"applicant_is_parent"}),
        (cc_family(date(2024, 1, 1), parent_hh=OTHER_HH), {"same_household"}),
        (cc_family(date(2024, 1, 1), child_died=date(2025, 3, 3)), {"child_alive"}),
        (
            Family(person=Member(uuid.uuid4(), "male", date(2024, 1, 1), household_id=HH)),
            {"applicant_is_parent", "same_household", "applicant_alive"},
        ),
    ],
    ids=["not the parent", "another household", "child died", "no applicant"],
)
def test_childcare_applicant_and_child(fam, failing):
    ev = rules.evaluate(ProgrammeCode.childcare_subsidy, 2025, fam, NONE, versions("childcare_subsidy"))
    assert not ev.eligible
    assert failed(ev) == failing
    assert ev.amount_fen == 0


def test_childcare_before_2025_has_no_version():
    with pytest.raises(Conflict) as exc:
        rules.evaluate(
            ProgrammeCode.childcare_subsidy,
            2024,
            cc_family(date(2023, 1, 1)),
            NONE,
            versions("childcare_subsidy"),
        )
    assert exc.value.code == "no_rule_version"


# --- only_child_parent_reward -----------------------------------------------------------------


def test_only_child_reward_ships_without_a_version():
    fam = Family(person=Member(uuid.uuid4(), "male", date(1970, 1, 1)), children=(kid(date(2000, 1, 1)),))
    with pytest.raises(Conflict) as exc:
        rules.evaluate(
            ProgrammeCode.only_child_parent_reward, 2025, fam, NONE, versions("only_child_parent_reward")
        )
    assert exc.value.code == "no_rule_version"


@pytest.mark.parametrize(
    ("facts", "children", "max_age", "eligible", "failing"),
    [
        (ClaimFacts(only_child_certificate=True), 1, None, True, set()),
        (ClaimFacts(), 1, None, False, {"only_child_certificate"}),
        (ClaimFacts(only_child_certificate=True), 2, None, False, {"one_child"}),
        (ClaimFacts(only_child_certificate=True), 1, 18, False, {"child_age"}),
        (ClaimFacts(only_child_certificate=True), 1, 30, True, set()),
    ],
)
def test_only_child_reward_with_a_provincial_version(facts, children, max_age, eligible, failing):
    params = rules.validate_params(
        ProgrammeCode.only_child_parent_reward, {"amount": "1000.00", "child_max_age": max_age}
    )
    v = Version(uuid.uuid4(), date(2020, 1, 1), params)
    fam = Family(
        person=Member(uuid.uuid4(), "male", date(1970, 1, 1)),
        children=tuple(kid(date(2000 + i, 1, 1)) for i in range(children)),
    )
    ev = rules.evaluate(ProgrammeCode.only_child_parent_reward, 2025, fam, facts, [v])
    assert (ev.eligible, failed(ev), ev.amount_fen) == (eligible, failing, 100000 if eligible else 0)


# --- exits at renewal -------------------------------------------------------------------------


def test_exit_reasons():
    vs = versions("childcare_subsidy")
    fam = cc_family(date(2022, 6, 1))
    ev = rules.evaluate(ProgrammeCode.childcare_subsidy, 2026, fam, NONE, vs)
    assert rules.exit_reason(ProgrammeCode.childcare_subsidy, fam, ev)[0] == "child_turned_3"
    later = sa_family(more=(kid(date(2020, 1, 1)),))
    ev = rules.evaluate(ProgrammeCode.special_assistance, 2025, later, NONE, versions("special_assistance"))
    assert rules.exit_reason(ProgrammeCode.special_assistance, later, ev)[0] == "later_child"


# --- the workflow table -----------------------------------------------------------------------

S = ClaimStatus


@pytest.mark.parametrize(
    ("action", "decision", "source", "target", "role"),
    [
        ("submit", None, S.draft, S.submitted, Role.village),
        ("submit", None, S.returned, S.submitted, Role.village),
        ("review", Decision.approve, S.submitted, S.reviewed, Role.township),
        ("review", Decision.return_, S.submitted, S.returned, Role.township),
        ("review", Decision.reject, S.submitted, S.rejected, Role.township),
        ("approve", Decision.approve, S.reviewed, S.approved, Role.county),
        ("approve", Decision.return_, S.reviewed, S.returned, Role.admin),
        ("publish", None, S.approved, S.posted, Role.county),
        ("object", None, S.posted, S.reviewed, Role.county),
        ("pay", None, S.posted, S.paid, Role.admin),
        ("change_payee", None, S.approved, S.submitted, Role.village),
    ],
)
def test_transition_table(action, decision, source, target, role):
    t = rules.TRANSITIONS[(action, decision)]
    assert source in t.sources
    assert t.target == target
    assert role in t.roles


def test_nothing_leaves_paid_or_rejected():
    assert rules.allowed_actions(S.paid) == []
    assert rules.allowed_actions(S.rejected) == []
    assert rules.allowed_actions(S.draft) == ["submit"]
    assert rules.allowed_actions(S.posted) == ["change_payee", "object", "pay"]


def test_review_and_approve_are_separated_from_earlier_steps():
    assert rules.TRANSITIONS[("review", Decision.approve)].separate_from == ("submitted_by",)
    assert rules.TRANSITIONS[("approve", Decision.approve)].separate_from == ("submitted_by", "reviewed_by")


def test_paying_is_separated_from_approving():
    assert rules.TRANSITIONS[("pay", None)].separate_from == ("approved_by",)


# --- versions per area ------------------------------------------------------------------------

COUNTY_A = "430122000000"
_V = {
    "n2012": Version(uuid.uuid4(), date(2012, 1, 1), {}),
    "n2026_06": Version(uuid.uuid4(), date(2026, 6, 1), {}),
    "a2024": Version(uuid.uuid4(), date(2024, 1, 1), {}, COUNTY_A),
    "a2026_01": Version(uuid.uuid4(), date(2026, 1, 1), {}, COUNTY_A),
}


@pytest.mark.parametrize(
    ("names", "day", "expected"),
    [
        # national only: the latest national in force
        (["n2012", "n2026_06"], date(2026, 5, 31), "n2012"),
        (["n2012", "n2026_06"], date(2026, 6, 1), "n2026_06"),
        # the county's own version is in force from its date on ...
        (["n2012", "a2024"], date(2023, 12, 31), "n2012"),
        (["n2012", "a2024"], date(2024, 1, 1), "a2024"),
        # ... and beats a newer national one: the most specific version in force wins
        (["n2012", "n2026_06", "a2026_01"], date(2026, 12, 31), "a2026_01"),
        (["n2012", "n2026_06", "a2026_01"], date(2026, 3, 1), "a2026_01"),
        (["n2012", "n2026_06", "a2024", "a2026_01"], date(2025, 7, 1), "a2024"),
        # a county version not yet in force leaves the national one in force
        (["n2012", "n2026_06", "a2026_01"], date(2025, 12, 31), "n2012"),
        (["n2012"], date(2011, 12, 31), None),
    ],
)
def test_the_most_specific_version_in_force_on_the_date(names, day, expected):
    got = rules.version_on([_V[n] for n in names], day)
    assert got == (_V[expected] if expected else None)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["n2012", "n2026_06"], ["n2012", "n2026_06"]),
        # national versions from the county's first own version on never apply there
        (["n2012", "n2026_06", "a2026_01"], ["n2012", "a2026_01"]),
        (["n2012", "a2024", "n2026_06", "a2026_01"], ["n2012", "a2024", "a2026_01"]),
    ],
)
def test_versions_in_force_are_those_that_can_apply(names, expected):
    assert rules.versions_in_force([_V[n] for n in names]) == [_V[n] for n in expected]


def test_monthly_rates_follow_the_county_version_over_a_newer_national_one():
    """Special assistance pays month by month: a county version from 2022-01 is in force all
    year, the national raise of 2022-07 does not reach that county."""
    national = versions("special_assistance")
    own = Version(
        uuid.uuid4(),
        date(2022, 1, 1),
        {**national[0].params, "death_monthly": "700.00"},
        COUNTY_A,
    )
    ev = rules.evaluate(ProgrammeCode.special_assistance, 2022, sa_family(), NONE, [*national, own])
    assert (ev.version.id, ev.amount_fen, len(ev.months)) == (own.id, 12 * 70000, 12)
    elsewhere = rules.evaluate(ProgrammeCode.special_assistance, 2022, sa_family(), NONE, national)
    assert (elsewhere.version.effective_from, elsewhere.amount_fen) == (date(2022, 7, 1), 624000)

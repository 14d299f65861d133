"""Who is due in a round: the pure rule, as a table of cases."""

from __future__ import annotations

from datetime import date

import pytest

from app.services.checkups import Woman, age_window, is_due, reference_day, years_before

OPENS = date(2026, 3, 1)
CLOSES = date(2026, 4, 30)
AREA = "430122100"


def w(**kw) -> Woman:
    base = dict(
        sex="female",
        marital_status="married",
        birth_date=date(1990, 1, 1),
        alive=True,
        merged=False,
        residence="430122100201",
    )
    base.update(kw)
    return Woman(**base)


@pytest.mark.parametrize(
    ("woman", "today", "expected"),
    [
        (w(), OPENS, None),
        (w(birth_date=date(2011, 3, 1)), OPENS, None),  # 15 on the opening day
        (w(birth_date=date(2011, 3, 2)), OPENS, "age"),  # 14 on the opening day
        (w(birth_date=date(2011, 3, 2)), date(2026, 3, 2), None),  # turned 15 while open
        (w(birth_date=date(2011, 5, 1)), date(2026, 6, 1), "age"),  # 15 only after the window
        (w(birth_date=date(1976, 3, 2)), OPENS, None),  # 49 (turns 50 the next day)
        (w(birth_date=date(1976, 3, 1)), OPENS, "age"),  # 50 on the opening day
        (w(marital_status="single"), OPENS, "not_eligible"),
        (w(marital_status="divorced"), OPENS, "not_eligible"),
        (w(marital_status="widowed"), OPENS, "not_eligible"),
        (w(sex="male"), OPENS, "not_eligible"),
        (w(alive=False), OPENS, "deceased"),
        (w(merged=True), OPENS, "merged"),
        (w(residence=None), OPENS, "moved_out"),  # open outflow: lives elsewhere
        (w(residence="430122101201"), OPENS, "moved_out"),  # another township
        (w(residence="430122100203"), OPENS, None),  # another village of the township
    ],
)
def test_is_due(woman, today, expected):
    assert is_due(woman, area_prefix=AREA, opens_on=OPENS, closes_on=CLOSES, today=today) == expected


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2026, 2, 1), OPENS),
        (OPENS, OPENS),
        (date(2026, 4, 1), date(2026, 4, 1)),
        (date(2026, 9, 1), CLOSES),
    ],
)
def test_reference_day(today, expected):
    assert reference_day(OPENS, CLOSES, today) == expected


def test_age_window_and_leap_day():
    assert age_window(OPENS, CLOSES, OPENS) == (date(1976, 3, 1), date(2011, 3, 1))
    assert years_before(date(2028, 2, 29), 15) == date(2013, 2, 28)

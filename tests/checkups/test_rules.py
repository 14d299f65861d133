"""Who is due in a round: the pure rule, as a table of cases."""

from __future__ import annotations

from datetime import date

import pytest

from app.services.checkups import Woman, age_window, is_due, reference_day, rounds_overlap, years_before

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


W = (OPENS, CLOSES)


@pytest.mark.parametrize(
    ("a_prefix", "a_window", "a_items", "b_prefix", "b_window", "b_items", "overlap"),
    [
        # equal area, equal window: any shared item overlaps
        (AREA, W, {"iud", "pregnancy"}, AREA, W, {"iud", "pregnancy"}, True),
        (AREA, W, {"iud", "pregnancy"}, AREA, W, {"iud"}, True),  # a subset of the items
        (AREA, W, {"iud"}, AREA, W, {"iud", "gynecological"}, True),  # a superset
        (AREA, W, {"iud", "pregnancy"}, AREA, W, {"gynecological"}, False),  # disjoint items
        # containment, either way round
        ("430122", W, {"pregnancy"}, AREA, W, {"iud", "pregnancy"}, True),  # county over township
        (AREA, W, {"pregnancy"}, "430122", W, {"pregnancy"}, True),  # township under county
        (AREA + "201", W, {"iud"}, AREA, W, {"iud"}, True),  # village inside township
        ("430122101", W, {"iud"}, AREA, W, {"iud"}, False),  # sibling townships
        ("430181", W, {"iud"}, "430122", W, {"iud"}, False),  # another county
        # windows: sharing one day overlaps, adjacent windows do not
        (AREA, W, {"iud"}, AREA, (CLOSES, date(2026, 6, 30)), {"iud"}, True),
        (AREA, W, {"iud"}, AREA, (date(2026, 5, 1), date(2026, 6, 30)), {"iud"}, False),
        (AREA, W, {"iud"}, AREA, (date(2026, 1, 1), date(2026, 2, 28)), {"iud"}, False),
        (AREA, W, {"iud"}, AREA, (date(2026, 1, 1), OPENS), {"iud"}, True),
        (AREA, W, {"iud"}, "430122", (date(2026, 4, 1), date(2026, 4, 2)), {"iud"}, True),  # inside
    ],
)
def test_rounds_overlap(a_prefix, a_window, a_items, b_prefix, b_window, b_items, overlap):
    assert rounds_overlap(a_prefix, a_window, a_items, b_prefix, b_window, b_items) is overlap
    assert rounds_overlap(b_prefix, b_window, b_items, a_prefix, a_window, a_items) is overlap

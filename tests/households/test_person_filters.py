"""The persons list filters people reached for: ``sex``, ``marital_status`` and an age range
(``age_min``/``age_max``, whole years on the business today), alone, combined and paged; and the
age rule itself as a table of cases (birthdays on the boundary, 29 February)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.core import clock
from app.services.households import born_between
from tests.households.test_api import V1, V2, V_OTHER_TS, mk_household, mk_person, problem


def years_ago(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:
        return today.replace(year=today.year - years, day=28)


def age_on(birth: date, day: date) -> int:
    """Whole years, the long way round (independent of the service's arithmetic)."""
    years = day.year - birth.year
    if (day.month, day.day) < (birth.month, birth.day):
        years -= 1
    return years


# --- the rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("today", "age_min", "age_max", "expected"),
    [
        (date(2026, 12, 8), 30, None, (None, date(1996, 12, 8))),
        (date(2026, 12, 8), None, 40, (date(1985, 12, 8), None)),
        (date(2026, 12, 8), 15, 49, (date(1976, 12, 8), date(2011, 12, 8))),
        (date(2026, 12, 8), 0, 0, (date(2025, 12, 8), date(2026, 12, 8))),
        # today is 29 February: n years ago may not have one
        (date(2028, 2, 29), 18, None, (None, date(2010, 2, 28))),
        (date(2028, 2, 29), None, 3, (date(2024, 2, 29), None)),
        (date(2028, 2, 29), None, 2, (date(2025, 2, 28), None)),
    ],
)
def test_born_between(today, age_min, age_max, expected):
    assert born_between(today, age_min, age_max) == expected


@pytest.mark.parametrize("today", [date(2026, 12, 8), date(2027, 2, 28), date(2027, 3, 1), date(2028, 2, 29)])
@pytest.mark.parametrize(
    "birth",
    [
        date(2008, 2, 29),
        date(2009, 2, 28),
        date(2009, 3, 1),
        date(1996, 12, 8),
        date(1996, 12, 9),
        date(1990, 1, 1),
    ],
)
@pytest.mark.parametrize(("age_min", "age_max"), [(18, None), (None, 18), (18, 18), (30, 36), (0, 150)])
def test_born_between_agrees_with_whole_years(today, birth, age_min, age_max):
    """Born inside the bounds ⇔ the age on ``today`` is in the range, for every case."""
    after, by = born_between(today, age_min, age_max)
    inside = (after is None or birth > after) and (by is None or birth <= by)
    age = age_on(birth, today)
    assert inside == ((age_min is None or age >= age_min) and (age_max is None or age <= age_max))


# --- through HTTP -----------------------------------------------------------------------------


@pytest.fixture
async def township(client_as):
    return await client_as("township", "430122100000")


@pytest.fixture
async def people(client_as) -> dict[str, dict]:
    """Men and women, married and not, of ages on both sides of 30 and of 40 (today, China time),
    in two villages of one township, and one woman of another township."""
    today = clock.today()
    cadre = await client_as("village", V1)
    cadre2 = await client_as("village", V2)
    other = await client_as("village", V_OTHER_TS)
    h1 = await mk_household(cadre, V1)
    h2 = await mk_household(cadre2, V2)
    h3 = await mk_household(other, V_OTHER_TS)
    spec = {
        # name: (client, household, sex, birth date, marital status)
        "a30-she": (cadre, h1, "female", years_ago(today, 30), "married"),  # 30 today
        "b29-she": (cadre, h1, "female", years_ago(today, 30) + timedelta(days=1), "married"),  # 30 tomorrow
        "c40-he": (cadre, h1, "male", years_ago(today, 41) + timedelta(days=1), "married"),  # 41 tomorrow
        "d41-he": (cadre, h1, "male", years_ago(today, 41), "divorced"),  # 41 today
        "e35-she": (cadre2, h2, "female", years_ago(today, 35) - timedelta(days=40), "single"),
        "f35-he": (cadre2, h2, "male", years_ago(today, 36) + timedelta(days=40), "married"),
        "g70-she": (cadre2, h2, "female", years_ago(today, 70), "widowed"),
        "h2-she": (cadre2, h2, "female", years_ago(today, 2), "single"),
        "i33-away": (other, h3, "female", years_ago(today, 33), "married"),
    }
    out = {}
    for name, (c, h, sex, born, marital) in spec.items():
        out[name] = await mk_person(
            c, h["id"], sex=sex, born=born, name=name, marital_status=marital, relation_to_head="成员"
        )
    return out


async def names(c, query: str) -> list[str]:
    r = await c.get(f"/api/v1/persons?{query}")
    assert r.status_code == 200, r.text
    return [p["name"] for p in r.json()["items"]]


async def test_sex_and_marital_status(township, people):
    every = ["a30-she", "b29-she", "c40-he", "d41-he", "e35-she", "f35-he", "g70-she", "h2-she"]
    assert await names(township, "") == every  # the township's, by name; not the other township's
    assert await names(township, "sex=female") == ["a30-she", "b29-she", "e35-she", "g70-she", "h2-she"]
    assert await names(township, "sex=male") == ["c40-he", "d41-he", "f35-he"]
    assert await names(township, "marital_status=married") == ["a30-she", "b29-she", "c40-he", "f35-he"]
    assert await names(township, "marital_status=widowed") == ["g70-she"]
    assert await names(township, "sex=male&marital_status=divorced") == ["d41-he"]
    assert await names(township, f"sex=female&village_code={V2}") == ["e35-she", "g70-she", "h2-she"]
    # what each item says agrees with the filter
    r = await township.get("/api/v1/persons?sex=female&marital_status=single")
    assert {(p["sex"], p["marital_status"]) for p in r.json()["items"]} == {("female", "single")}


async def test_age_range_boundaries(township, people):
    assert await names(township, "age_min=30") == [
        "a30-she",
        "c40-he",
        "d41-he",
        "e35-she",
        "f35-he",
        "g70-she",
    ]
    assert await names(township, "age_max=29") == ["b29-she", "h2-she"]
    assert await names(township, "age_max=40") == [
        "a30-she",
        "b29-she",
        "c40-he",
        "e35-she",
        "f35-he",
        "h2-she",
    ]
    assert await names(township, "age_min=41") == ["d41-he", "g70-she"]
    assert await names(township, "age_min=30&age_max=40") == ["a30-she", "c40-he", "e35-she", "f35-he"]
    assert await names(township, "age_min=35&age_max=35") == ["e35-she", "f35-he"]
    assert await names(township, "age_min=0&age_max=2") == ["h2-she"]
    assert await names(township, "age_min=71") == []
    # the people of the filter: women 15-49 who are married (the checkup population)
    assert await names(township, "sex=female&marital_status=married&age_min=15&age_max=49") == [
        "a30-she",
        "b29-she",
    ]
    today = clock.today()
    r = await township.get("/api/v1/persons?age_min=30&age_max=40")
    for p in r.json()["items"]:
        assert 30 <= age_on(date.fromisoformat(p["birth_date"]), today) <= 40


async def test_filters_with_paging(township, people):
    """Pages of 2 walk the filtered list exactly: nothing missed, nothing twice, in order."""
    for query in ("sex=female", "age_min=30&age_max=40", "sex=male&marital_status=married", "age_max=100"):
        whole = await names(township, query)
        paged: list[str] = []
        cursor = None
        for _ in range(10):
            url = f"/api/v1/persons?{query}&limit=2" + (f"&cursor={cursor}" if cursor else "")
            r = await township.get(url)
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page["items"]) <= 2
            paged += [p["name"] for p in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert paged == whole, query
        assert len(whole) >= 2


async def test_bad_filter_values_are_422(township, people):
    body = problem(await township.get("/api/v1/persons?age_min=40&age_max=30"), 422, "invalid_range")
    assert [e["field"] for e in body["errors"]] == ["age_max"]
    for query in ("age_min=-1", "age_max=151", "age_min=x", "sex=f", "sex=FEMALE", "marital_status=engaged"):
        body = problem(await township.get(f"/api/v1/persons?{query}"), 422, "validation_failed")
        assert body["errors"][0]["field"] == query.split("=")[0]

"""Scale data: a whole synthetic county (~700,000 people) for load tests and benchmarks.

``seed_scale`` writes areas, households and persons with plausible family structure (a head
couple, their children linked to both parents, sometimes a widowed parent of the head), valid
and unique ID numbers, Chinese names and encrypted phones. It is a command-line seeding path:
rows are built as plain dicts and written with SQLAlchemy Core ``INSERT`` in batches, committed
per batch, which bypasses the ORM audit hook on purpose (nobody acted; nothing to audit).

Deterministic for a given ``seed``: the same county comes out every time (cipher texts aside,
which use random nonces). Idempotent: a county that already has the requested number of people
is left alone; a county with fewer (an interrupted run, or a smaller earlier one) is topped up.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import func, insert, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.core.config import Settings
from app.core.db import utcnow
from app.core.security import FieldCipher
from app.models.areas import Area
from app.models.common import place_columns
from app.models.households import Household, Person
from app.services.areas import build_area
from app.services.idnumber import generate_id_number, mask_id_number

BATCH_ROWS = 5_000
#: Birth dates are computed against this day (or today, if earlier), so a seed gives the same
#: county whatever day it runs.
AS_OF = date(2026, 1, 1)
NO_ID_SHARE_UNDER_3 = 0.05
PHONE_SHARE = 0.6
MIN_MOTHER_GAP_DAYS = 20 * 366  # a mother is at least 20 years older than her child
MAX_SEQUENCE = 500  # generate_id_number gives distinct numbers for sequences 0..499

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
MALE_CHARS = "伟强军勇杰涛明超刚平辉鹏华飞斌波宇浩凯健俊帆帅旭宁龙林阳磊志国建文兵峰东海湘德福贵春生荣成富家"
FEMALE_CHARS = "芳娟敏静丽艳娜秀英霞燕玲桂兰萍红梅琳雪婷颖慧莉倩欣怡佳月华凤琴云洁蓉丹玉珍淑美慧春香嫣璐婉"
PLACE_CHARS = (
    "乔靖茶铜桥白沙丁字格塘黄金星城高塘岭莲花雷锋白箬铺乌山桥驿新康月亮岛金山坪柏叶田心静慎东城九峰团头湖复胜"
)

#: Household sizes 1..6 and their weights (mean about 3.4 people).
SIZE_WEIGHTS = (10, 20, 25, 22, 15, 8)


def _place_name(rng: random.Random, suffix: str, used: set[str]) -> str:
    for _ in range(50):
        name = rng.choice(PLACE_CHARS) + rng.choice(PLACE_CHARS) + suffix
        if name not in used:
            used.add(name)
            return name
    name = f"{rng.choice(PLACE_CHARS)}{len(used)}{suffix}"
    used.add(name)
    return name


def _given_name(rng: random.Random, sex: str) -> str:
    chars = MALE_CHARS if sex == "male" else FEMALE_CHARS
    if rng.random() < 0.3:
        return rng.choice(chars)
    return rng.choice(chars) + rng.choice(chars)


@dataclass
class _Village:
    code: str
    name: str
    township_name: str
    urban: bool


@dataclass
class _Gen:
    """State of one run: the random stream, the cipher and the ID numbers taken so far."""

    rng: random.Random
    cipher: FieldCipher
    county_code: str
    as_of: date
    taken_hashes: set[str]
    sequences: dict[tuple[int, str], int] = field(default_factory=dict)

    def id_number(self, birth_ord: int, sex: str) -> tuple[str, str, int]:
        """A valid ID number not used yet, its blind index, and the birth date (ordinal) it
        encodes. A day whose sequences are all taken moves the birth one day earlier (practically
        never)."""
        while True:
            seq = self.sequences.get((birth_ord, sex), 0)
            if seq >= MAX_SEQUENCE:
                birth_ord -= 1
                continue
            self.sequences[(birth_ord, sex)] = seq + 1
            number = generate_id_number(
                area_code=self.county_code,
                birth_date=date.fromordinal(birth_ord),
                sex=sex,
                sequence=seq,
            )
            digest = self.cipher.blind_index(number)
            if digest in self.taken_hashes:
                continue
            self.taken_hashes.add(digest)
            return number, digest, birth_ord

    def phone(self) -> str:
        return f"1{self.rng.randint(3, 9)}{self.rng.randrange(10**9):09d}"


def _birth_ord(rng: random.Random, as_of_ord: int, age_years: int) -> int:
    return as_of_ord - int(age_years * 365.25) - rng.randint(0, 364)


class _HouseholdBuilder:
    """Builds the person rows of one household, parents before children."""

    def __init__(self, gen: _Gen, village: _Village, household_id: uuid.UUID, now: Any) -> None:
        self.gen = gen
        self.village = village
        self.household_id = household_id
        self.now = now
        self.rows: list[dict[str, Any]] = []
        self.places = place_columns(village.code)
        self.as_of_ord = gen.as_of.toordinal()

    def add(
        self,
        *,
        name: str,
        sex: str,
        birth_ord: int,
        relation: str,
        marital: str,
        mother_id: uuid.UUID | None = None,
        father_id: uuid.UUID | None = None,
        hukou: str | None = None,
        with_id: bool = True,
    ) -> dict[str, Any]:
        gen = self.gen
        number: str | None = None
        digest: str | None = None
        if with_id:
            number, digest, birth_ord = gen.id_number(birth_ord, sex)
        age_years = (self.as_of_ord - birth_ord) // 365
        phone = gen.phone() if 18 <= age_years <= 75 and gen.rng.random() < PHONE_SHARE else None
        row: dict[str, Any] = {
            "id": uuid.UUID(int=gen.rng.getrandbits(128), version=4),
            "household_id": self.household_id,
            "id_number_enc": gen.cipher.encrypt(number, context=b"id_number") if number else None,
            "id_number_hash": digest,
            "id_number_masked": mask_id_number(number) if number else None,
            "name": name,
            "sex": sex,
            "birth_date": date.fromordinal(birth_ord),
            "relation_to_head": relation,
            "marital_status": marital,
            "hukou_area_code": hukou or self.village.code,
            "phone_enc": gen.cipher.encrypt(phone, context=b"phone") if phone else None,
            "mother_id": mother_id,
            "father_id": father_id,
            "current_village_code": self.village.code,
            "death_date": None,
            "merged_into_id": None,
            "version": 1,
            "created_at": self.now,
            "updated_at": self.now,
            **self.places,
        }
        self.rows.append(row)
        return row


def _build_household(
    gen: _Gen, village: _Village, villages: list[_Village], size: int, number: int, now: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One household of ``size`` people: (household row, person rows in insert order)."""
    rng = gen.rng
    as_of_ord = gen.as_of.toordinal()
    household_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    b = _HouseholdBuilder(gen, village, household_id, now)
    urban = rng.random() < (0.9 if village.urban else 0.03)
    if village.urban:
        building, floor, door = rng.randint(1, 40), rng.randint(1, 30), rng.randint(1, 4)
        address = f"{village.township_name}{village.name}{building}栋{floor}0{door}室"
    else:
        address = f"{village.township_name}{village.name}{rng.randint(1, 15)}组{number}号"

    if size == 1:
        # Someone living alone: an elderly widow(er) or a young single adult.
        sex = rng.choice(("male", "female"))
        if rng.random() < 0.6:
            age, marital = rng.randint(60, 92), rng.choice(("widowed", "widowed", "divorced"))
        else:
            age, marital = rng.randint(22, 40), "single"
        head = b.add(
            name=rng.choice(SURNAMES) + _given_name(rng, sex),
            sex=sex,
            birth_ord=_birth_ord(rng, as_of_ord, age),
            relation="户主",
            marital=marital,
        )
    else:
        husband_age = max(22, min(80, round(rng.triangular(22, 80, 40))))
        wife_age = max(22, min(80, husband_age + rng.randint(-6, 3)))
        husband_surname = rng.choice(SURNAMES)
        wife_surname = rng.choice(SURNAMES)
        husband_head = rng.random() < 0.85
        children = size - 2
        grandparent = (
            children >= 1 and rng.random() < 0.35 and (husband_age if husband_head else wife_age) <= 70
        )
        if grandparent:
            children -= 1
        husband_birth = _birth_ord(rng, as_of_ord, husband_age)
        wife_birth = _birth_ord(rng, as_of_ord, wife_age)

        grand: dict[str, Any] | None = None
        if grandparent:
            head_birth = husband_birth if husband_head else wife_birth
            head_surname = husband_surname if husband_head else wife_surname
            g_sex = "female" if rng.random() < 0.65 else "male"  # women outlive men
            g_birth = head_birth - MIN_MOTHER_GAP_DAYS - rng.randint(0, 15 * 365)
            g_birth = max(g_birth, as_of_ord - int(98 * 365.25))
            if head_birth - g_birth >= MIN_MOTHER_GAP_DAYS:
                grand = b.add(
                    name=(head_surname if g_sex == "male" else rng.choice(SURNAMES))
                    + _given_name(rng, g_sex),
                    sex=g_sex,
                    birth_ord=g_birth,
                    relation="父亲" if g_sex == "male" else "母亲",
                    marital="widowed",
                )
            else:
                children += 1
        grand_link: dict[str, Any] = {
            "mother_id": grand["id"] if grand and grand["sex"] == "female" else None,
            "father_id": grand["id"] if grand and grand["sex"] == "male" else None,
        }
        husband_kwargs: dict[str, Any] = {
            "name": husband_surname + _given_name(rng, "male"),
            "sex": "male",
            "birth_ord": husband_birth,
            "relation": "户主" if husband_head else "配偶",
            "marital": "married",
        }
        wife_hukou = rng.choice(villages).code if rng.random() < 0.05 else None
        wife_kwargs: dict[str, Any] = {
            "name": wife_surname + _given_name(rng, "female"),
            "sex": "female",
            "birth_ord": wife_birth,
            "relation": "配偶" if husband_head else "户主",
            "marital": "married",
            "hukou": wife_hukou,
        }
        if husband_head:
            husband = b.add(**husband_kwargs, **grand_link)
            wife = b.add(**wife_kwargs)
            head = husband
        else:
            wife = b.add(**wife_kwargs, **grand_link)
            husband = b.add(**husband_kwargs)
            head = wife
        wife_birth = wife["birth_date"].toordinal()  # an ID number may have moved it a day
        husband_birth = husband["birth_date"].toordinal()
        earliest = max(wife_birth, husband_birth) + MIN_MOTHER_GAP_DAYS
        earliest = max(earliest, as_of_ord - 40 * 365)
        child_births = sorted(rng.randint(earliest, as_of_ord) for _ in range(children))
        for child_birth in child_births:
            sex = "male" if rng.random() < 0.52 else "female"
            age_years = (as_of_ord - child_birth) // 365
            marital = "married" if age_years >= 24 and rng.random() < 0.35 else "single"
            with_id = not (age_years < 3 and rng.random() < NO_ID_SHARE_UNDER_3)
            b.add(
                name=husband_surname + _given_name(rng, sex),
                sex=sex,
                birth_ord=child_birth,
                relation="子" if sex == "male" else "女",
                marital=marital,
                mother_id=wife["id"],
                father_id=husband["id"],
                with_id=with_id,
            )

    household: dict[str, Any] = {
        "id": household_id,
        "address": address[:200],
        "household_type": "urban" if urban else "rural",
        "head_person_id": head["id"],
        "version": 1,
        "created_at": now,
        "updated_at": now,
        **place_columns(village.code),
    }
    return household, b.rows


class _Batches:
    """Households and their people, about ``BATCH_ROWS`` people at a time, spread round-robin
    over the villages. Not thread-safe: one batch is built at a time (in order)."""

    def __init__(self, gen: _Gen, villages: list[_Village], *, to_make: int, first_index: int) -> None:
        self.gen = gen
        self.villages = villages
        self.left = to_make
        self.index = first_index
        self.now = utcnow()

    def next(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        households: list[dict[str, Any]] = []
        people: list[dict[str, Any]] = []
        villages = self.villages
        while self.left > 0 and len(people) < BATCH_ROWS:
            village = villages[self.index % len(villages)]
            house_number = self.index // len(villages) + 1
            self.index += 1
            size = min(self.gen.rng.choices(range(1, 7), weights=SIZE_WEIGHTS)[0], self.left)
            household, rows = _build_household(self.gen, village, villages, size, house_number, self.now)
            households.append(household)
            people.extend(rows)
            self.left -= len(rows)
        return households, people


async def _ensure_areas(
    session: AsyncSession, rng: random.Random, county_code: str, townships: int, villages_per_township: int
) -> tuple[int, list[_Village]]:
    """Create missing area rows (county, townships, villages); existing ones keep their names."""
    county = f"{county_code}000000"
    existing = {
        a.code: a.name
        for a in (await session.execute(select(Area).where(col(Area.code).startswith(county_code)))).scalars()
    }
    used: set[str] = set(existing.values())
    rows: list[Area] = []
    if county not in existing:
        area = build_area(county, "望城区" if county_code == "430122" else f"{county_code}县")
        area.parent_code = None  # provinces and cities are optional rows
        existing[county] = area.name
        rows.append(area)
    villages: list[_Village] = []
    for t in range(townships):
        t_code = f"{county_code}{100 + t:03d}000"
        urban = townships >= 5 and t >= townships - 2
        t_name = _place_name(rng, "街道" if urban else rng.choice(("镇", "镇", "乡")), used)
        if t_code not in existing:
            rows.append(build_area(t_code, t_name))
            existing[t_code] = t_name
        for v in range(villages_per_township):
            v_code = f"{county_code}{100 + t:03d}{201 + v:03d}"
            v_name = _place_name(rng, "社区" if urban else "村", used)
            if v_code not in existing:
                rows.append(build_area(v_code, v_name))
                existing[v_code] = v_name
            villages.append(_Village(v_code, existing[v_code], existing[t_code], urban))
    if rows:
        values = [
            {
                "code": a.code,
                "name": a.name,
                "level": a.level.value,
                "parent_code": a.parent_code,
                "county_code": a.county_code,
                "township_code": a.township_code,
                "village_code": a.village_code,
                "created_at": utcnow(),
            }
            for a in rows
        ]
        # Parents first: county, townships, villages (the list is built in that order).
        await session.execute(insert(Area.__table__), values)  # type: ignore[attr-defined]
        await session.commit()
    return len(rows), villages


async def _count(session: AsyncSession, model: Any, county_code: str) -> int:
    stmt = select(func.count()).select_from(model).where(model.county_code == county_code)
    return int((await session.execute(stmt)).scalar_one())


async def seed_scale(
    session: AsyncSession,
    settings_or_cipher: Settings | FieldCipher,
    *,
    persons: int,
    county_code: str = "430122",
    townships: int = 20,
    villages_per_township: int = 20,
    seed: int = 1,
) -> dict[str, int]:
    """Fill county ``county_code`` up to ``persons`` people. Returns the counts: ``areas``,
    ``households`` and ``persons`` created, and ``persons_total`` / ``households_total`` in the
    county afterwards (``skipped`` is 1 when there was nothing to do)."""
    if persons < 0 or townships < 1 or villages_per_township < 1:
        raise ValueError("persons must be >= 0, townships and villages_per_township >= 1")
    if townships > 899 or villages_per_township > 798:
        raise ValueError("too many townships or villages for 3-digit codes")
    cipher = (
        settings_or_cipher if isinstance(settings_or_cipher, FieldCipher) else FieldCipher(settings_or_cipher)
    )
    existing_persons = await _count(session, Person, county_code)
    existing_households = await _count(session, Household, county_code)
    if existing_persons >= persons:
        return {
            "areas": 0,
            "households": 0,
            "persons": 0,
            "persons_total": existing_persons,
            "households_total": existing_households,
            "skipped": 1,
        }
    rng = random.Random(seed)  # noqa: S311  (reproducible test data, not secrets)
    areas_created, villages = await _ensure_areas(session, rng, county_code, townships, villages_per_township)

    taken: set[str] = set()
    if existing_persons:
        # Top-up: continue with another stream and skip the ID numbers already registered.
        rng = random.Random(f"{seed}/{existing_persons}")  # noqa: S311
        stmt = select(Person.id_number_hash).where(
            Person.county_code == county_code, col(Person.id_number_hash).is_not(None)
        )
        taken = {h for (h,) in (await session.execute(stmt)).all()}
    gen = _Gen(
        rng=rng, cipher=cipher, county_code=county_code, as_of=min(AS_OF, date.today()), taken_hashes=taken
    )
    household_table: Any = Household.__table__  # type: ignore[attr-defined]
    person_table: Any = Person.__table__  # type: ignore[attr-defined]

    batches = _Batches(gen, villages, to_make=persons - existing_persons, first_index=existing_households)
    loop = asyncio.get_running_loop()
    made_persons = made_households = 0
    # Build the next batch in a worker thread while the database stores the current one.
    pending = loop.run_in_executor(None, batches.next)
    while True:
        households, people = await pending
        if not people:
            break
        pending = loop.run_in_executor(None, batches.next)
        await session.execute(insert(household_table), households)
        await session.execute(insert(person_table), people)
        await session.commit()
        made_households += len(households)
        made_persons += len(people)

    if session.bind is not None and session.bind.dialect.name == "postgresql":
        # Fresh statistics, so the planner sees the new size right away (autovacuum would
        # get there too, a little later).
        await session.execute(text("ANALYZE household"))
        await session.execute(text("ANALYZE person"))
        await session.commit()

    return {
        "areas": areas_created,
        "households": made_households,
        "persons": made_persons,
        "persons_total": existing_persons + made_persons,
        "households_total": existing_households + made_households,
        "skipped": 0,
    }


__all__ = ["seed_scale"]

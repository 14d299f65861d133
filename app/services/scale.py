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
import calendar
import hashlib
import heapq
import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, text, update
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.core import clock
from app.core.config import Settings
from app.core.db import utcnow
from app.core.security import FieldCipher
from app.models.areas import Area
from app.models.common import place_columns
from app.models.households import Birth, Death, Household, Person
from app.models.migrants import Migrant
from app.models.visits import Task, Visit
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


async def _rebuild_figures(session: AsyncSession, county_code: str) -> None:
    """Issue 8: the Core inserts above bypass the hooks that keep the figures' tallies, flags
    and data version; recompute them for the county in one transaction."""
    from app.services.indicator_upkeep import rebuild

    await session.run_sync(lambda s: rebuild(s.connection(), county_code))
    await session.commit()


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
        rng=rng, cipher=cipher, county_code=county_code, as_of=min(AS_OF, clock.today()), taken_hashes=taken
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

    await _rebuild_figures(session, county_code)
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


# --- a year of events -----------------------------------------------------------------------------
#
# ``seed_events`` adds one calendar year of register events to a seeded county: births (with the
# child's person row), deaths, home visits with their follow-up tasks, migrant records (inflows of
# new people from other counties, outflows of residents) and paid benefit claims for that year and
# the year before. Same technique as above: plain dicts, Core INSERTs. Each kind is written in one
# transaction whose first row has a deterministic id (``_marker``), so a kind already present for
# that county and year is skipped: the command is idempotent and an interrupted run resumes.

EVENTS_NAMESPACE = uuid.UUID("3d0f7a52-8a55-4c1e-9f0e-6a4b1f3c2e10")
BIRTHS_PER_PERSON = 0.010  # crude birth rate about 10 per mille
DEATHS_PER_PERSON = 0.007
MALE_BIRTH_SHARE = 107.5 / 207.5  # sex ratio at birth about 107.5
MIN_BIRTH_GAP_DAYS = 300
VISITS_PER_VILLAGE_MONTH = (24, 36)
FOLLOW_UP_SHARE = 0.15
FOLLOW_UP_DONE_SHARE = 0.9
INFLOW_OPEN_SHARE = 0.02  # open inflows at the end of the year, per resident
INFLOW_CLOSED_SHARE = 0.2  # of the year's inflows, closed again within the year
OUTFLOW_SHARE = 0.01
OUTFLOW_CLOSED_SHARE = 0.25
CLAIM_SHARES = {"rural_reward": 0.025, "special_assistance": 0.002, "childcare_subsidy": 0.12}

#: Fertility by the mother's age (years) and by the children she already has.
AGE_FERTILITY = ((20, 0.35), (25, 1.0), (30, 0.75), (35, 0.3), (40, 0.08), (43, 0.0))
PARITY_FERTILITY = (1.0, 0.9, 0.2, 0.05)
VISIT_PURPOSES = (
    ("elder_care", 25),
    ("health_education", 18),
    ("checkup_reminder", 14),
    ("postnatal", 8),
    ("special_family_care", 9),
    ("migrant_followup", 9),
    ("claim_verification", 9),
    ("other", 8),
)
VISIT_NOTES = (
    "家中情况良好",
    "已宣传政策",
    "老人身体健康",
    "需再次回访",
    "血压偏高，建议复查",
    None,
    None,
    None,
)
FOLLOW_UP_NOTES = ("复查血压", "送药上门", "再次核实情况", None, None)
ORIGINS = (
    "430124000000",  # 宁乡
    "430181000000",  # 浏阳
    "430521000000",  # 邵东
    "431121000000",  # 祁阳
    "430922000000",  # 桃江
    "431225000000",  # 会同
    "360502000000",  # 新余渝水
    "522401000000",  # 毕节
    "450330000000",  # 平乐
    "421087000000",  # 松滋
    "500101000000",  # 万州
    "513030000000",  # 渠县
)
DESTINATIONS = (
    "广东省深圳市",
    "广东省东莞市",
    "广东省广州市",
    "浙江省杭州市",
    "浙江省宁波市",
    "上海市",
    "北京市",
    "湖南省长沙市岳麓区",
    "江苏省苏州市",
)
EMPLOYERS = ("望城经开区电子厂", "建筑工地", "物流园", "餐馆", "服装厂", "个体经营", None, None)
BANKS = ("长沙农村商业银行", "中国农业银行望城支行", "中国邮政储蓄银行望城支行")
#: With ``open_claims``: the share of the events year's claims still on their way, and the steps
#: they stopped at, in turn; their steps happened in the last weeks before the end of the year.
OPEN_CLAIM_SHARE = 0.6
OPEN_STAGES = ("submitted", "returned", "reviewed", "approved", "posted", "draft")
RETURN_COMMENTS = ("材料不全，请补充户口簿复印件", "收款账号与户名不符，请核对", "请补充计划生育情况证明")


def _marker(county_code: str, year: int, kind: str) -> uuid.UUID:
    """The id of the first row of one kind of events for one county and year."""
    return uuid.uuid5(EVENTS_NAMESPACE, f"{county_code}/{year}/{kind}")


def _share(seed: int, *parts: object) -> float:
    """A stable number in [0, 1) for the parts: the same person is picked every year."""
    digest = hashlib.blake2b("/".join(map(str, (seed, *parts))).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _age(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:
        return date(d.year + years, 3, 1)


def _weighted_sample(rng: random.Random, items: list[Any], weights: list[float], k: int) -> list[Any]:
    """``k`` items without replacement, each with probability proportional to its weight
    (Efraimidis–Spirakis keys)."""
    keyed = [(rng.random() ** (1.0 / w), i) for i, w in enumerate(weights) if w > 0]
    return [items[i] for _key, i in heapq.nlargest(k, keyed)]


def _fertility(age: int) -> float:
    weight = 0.0
    for lower, value in AGE_FERTILITY:
        if age >= lower:
            weight = value
    return weight


def _month_days(year: int, month: int, last: date) -> tuple[date, date] | None:
    first = date(year, month, 1)
    if first > last:
        return None
    return first, min(date(year, month, calendar.monthrange(year, month)[1]), last)


def _at_cst(day: date, rng: random.Random) -> datetime:
    """A working-hours moment of ``day`` (China time), as an aware UTC datetime."""
    minute = rng.randint(8 * 60 + 30, 17 * 60 + 30)
    local = datetime.combine(day, time(minute // 60, minute % 60, rng.randint(0, 59)), tzinfo=clock.zone())
    return local.astimezone(UTC)


@dataclass(slots=True)
class _P:
    """What the event generator needs of a person."""

    id: uuid.UUID
    household_id: uuid.UUID
    village: str
    sex: str
    birth: date
    marital: str
    relation: str
    name: str
    mother_id: uuid.UUID | None
    hukou: str | None
    death: date | None


@dataclass
class _H:
    id: uuid.UUID
    village: str
    rural: bool


@dataclass
class _Events:
    session: AsyncSession
    cipher: FieldCipher
    rng: random.Random
    seed: int
    county_code: str
    year: int
    start: date
    end: date  # 31 December, or today for the current year
    now: datetime
    persons: list[_P]
    by_household: dict[uuid.UUID, list[_P]]
    households: dict[uuid.UUID, _H]
    villages: dict[str, _Village]
    taken: set[str]
    mothers: dict[uuid.UUID, date] = field(default_factory=dict)  # mothers of the year's births
    # The events year's claims stop at every step of the workflow (``OPEN_STAGES``), not only paid.
    open_claims: bool = False

    def alive_on(self, p: _P, day: date) -> bool:
        return p.birth <= day and (p.death is None or p.death > day)

    def population_at_start(self) -> int:
        day = self.start - timedelta(days=1)
        return sum(1 for p in self.persons if self.alive_on(p, day))

    def year_fraction(self) -> float:
        days = (date(self.year, 12, 31) - self.start).days + 1
        return ((self.end - self.start).days + 1) / days

    def gen(self, area_code: str) -> _Gen:
        return _Gen(
            rng=self.rng, cipher=self.cipher, county_code=area_code, as_of=self.end, taken_hashes=self.taken
        )

    def random_day(self, first: date | None = None) -> date:
        first = max(first or self.start, self.start)
        return date.fromordinal(self.rng.randint(first.toordinal(), self.end.toordinal()))

    async def exists(self, model: Any, marker: uuid.UUID) -> bool:
        row = await self.session.execute(select(model.id).where(model.id == marker))
        return row.first() is not None

    async def insert(self, model: Any, rows: list[dict[str, Any]]) -> None:
        table: Any = model.__table__
        for i in range(0, len(rows), BATCH_ROWS):
            await self.session.execute(insert(table), rows[i : i + BATCH_ROWS])


async def _load_events(
    session: AsyncSession, cipher: FieldCipher, county_code: str, year: int, seed: int
) -> _Events:
    start = date(year, 1, 1)
    end = min(date(year, 12, 31), clock.today())
    areas = (
        await session.execute(select(Area.code, Area.name).where(col(Area.code).startswith(county_code)))
    ).all()
    names = dict(areas)  # noqa: C416
    villages = {
        code: _Village(code, name, names.get(code[:9] + "000", ""), name.endswith("社区"))
        for code, name in areas
        if not code.endswith("000")
    }
    households = {
        r[0]: _H(r[0], r[1], r[2] == "rural")
        for r in (
            await session.execute(
                select(Household.id, Household.village_code, Household.household_type).where(
                    Household.county_code == county_code
                )
            )
        ).all()
    }
    person_columns: list[Any] = [
        Person.id,
        Person.household_id,
        Person.village_code,
        Person.sex,
        Person.birth_date,
        Person.marital_status,
        Person.relation_to_head,
        Person.name,
        Person.mother_id,
        Person.hukou_area_code,
        Person.death_date,
    ]
    stmt = sa_select(*person_columns).where(
        col(Person.county_code) == county_code, col(Person.merged_into_id).is_(None)
    )
    persons = [_P(*r) for r in (await session.execute(stmt)).all()]
    by_household: dict[uuid.UUID, list[_P]] = {}
    for p in persons:
        by_household.setdefault(p.household_id, []).append(p)
    # ID numbers that new ones could collide with: people born in the year (numbers of this
    # county encode the birth date) and people registered from other areas (inflows).
    taken_stmt = select(Person.id_number_hash).where(
        col(Person.id_number_hash).is_not(None),
        or_(
            col(Person.birth_date) >= start - timedelta(days=7),
            col(Person.hukou_area_code).is_(None),
            ~col(Person.hukou_area_code).startswith(county_code),
        ),
    )
    taken = {h for (h,) in (await session.execute(taken_stmt)).all()}
    return _Events(
        session=session,
        cipher=cipher,
        rng=random.Random(f"events/{seed}/{county_code}/{year}"),  # noqa: S311
        seed=seed,
        county_code=county_code,
        year=year,
        start=start,
        end=end,
        now=utcnow(),
        persons=persons,
        by_household=by_household,
        households=households,
        villages=villages,
        taken=taken,
    )


def _husband(ev: _Events, wife: _P) -> _P | None:
    for p in ev.by_household.get(wife.household_id, ()):
        if (
            p.sex == "male"
            and p.marital == "married"
            and p.relation in ("户主", "配偶")
            and p.id != wife.id
            and p.death is None
        ):
            return p
    return None


async def _seed_births(ev: _Events) -> int:
    rng = ev.rng
    marker = _marker(ev.county_code, ev.year, "births")
    if await ev.exists(Birth, marker):
        return -1
    children: dict[uuid.UUID, int] = {}
    last_child: dict[uuid.UUID, date] = {}
    for p in ev.persons:
        if p.mother_id is not None:
            children[p.mother_id] = children.get(p.mother_id, 0) + 1
            last_child[p.mother_id] = max(p.birth, last_child.get(p.mother_id, p.birth))
    mid_year = ev.start + (ev.end - ev.start) // 2
    candidates: list[tuple[_P, _P]] = []
    weights: list[float] = []
    for w in ev.persons:
        if w.sex != "female" or w.marital != "married" or w.relation not in ("户主", "配偶"):
            continue
        if not ev.alive_on(w, ev.end):
            continue
        weight = _fertility(_age(w.birth, mid_year)) * PARITY_FERTILITY[min(children.get(w.id, 0), 3)]
        if weight <= 0:
            continue
        last = last_child.get(w.id)
        if last is not None and (last + timedelta(days=MIN_BIRTH_GAP_DAYS)) > ev.end:
            continue
        husband = _husband(ev, w)
        if husband is None:
            continue
        candidates.append((w, husband))
        weights.append(weight)
    target = round(ev.population_at_start() * BIRTHS_PER_PERSON * ev.year_fraction())
    chosen = _weighted_sample(rng, candidates, weights, target)
    gen = ev.gen(ev.county_code)
    person_rows: list[dict[str, Any]] = []
    birth_rows: list[dict[str, Any]] = []
    for mother, father in chosen:
        last = last_child.get(mother.id)
        day = ev.random_day(last + timedelta(days=MIN_BIRTH_GAP_DAYS) if last else None)
        sex = "male" if rng.random() < MALE_BIRTH_SHARE else "female"
        village = ev.villages.get(mother.village) or _Village(mother.village, "", "", False)
        builder = _HouseholdBuilder(gen, village, mother.household_id, ev.now)
        child = builder.add(
            name=father.name[0] + _given_name(rng, sex),
            sex=sex,
            birth_ord=day.toordinal(),
            relation="子" if sex == "male" else "女",
            marital="single",
            mother_id=mother.id,
            father_id=father.id,
            hukou=mother.hukou if mother.hukou and mother.hukou.startswith(ev.county_code) else None,
            with_id=rng.random() >= NO_ID_SHARE_UNDER_3,
        )
        born: date = child["birth_date"]
        order = children.get(mother.id, 0) + 1
        children[mother.id] = order
        person_rows.append(child)
        birth_rows.append(
            {
                "id": marker if not birth_rows else uuid.UUID(int=rng.getrandbits(128), version=4),
                "mother_id": mother.id,
                "father_id": father.id,
                "child_person_id": child["id"],
                "birth_date": born,
                "sex": sex,
                "birth_order": order,
                "version": 1,
                "created_at": ev.now,
                "updated_at": ev.now,
                **place_columns(mother.village),
            }
        )
        ev.mothers[mother.id] = born
        kid = _P(
            child["id"], mother.household_id, mother.village, sex, born, "single", child["relation_to_head"],
            child["name"], mother.id, child["hukou_area_code"], None,
        )  # fmt: skip
        ev.persons.append(kid)
        ev.by_household.setdefault(kid.household_id, []).append(kid)
    await ev.insert(Person, person_rows)
    await ev.insert(Birth, birth_rows)
    await ev.session.commit()
    return len(birth_rows)


def _mortality(age: int) -> float:
    """Gompertz: about 0.5 per mille at 30, 9 at 60, 60 at 80, 150 at 90."""
    return 0.00003 * math.exp(0.095 * age)


async def _seed_deaths(ev: _Events) -> int:
    marker = _marker(ev.county_code, ev.year, "deaths")
    if await ev.exists(Death, marker):
        return -1
    day_before = ev.start - timedelta(days=1)
    candidates = [p for p in ev.persons if ev.alive_on(p, day_before) and p.id not in ev.mothers]
    weights = [_mortality(_age(p.birth, ev.start)) for p in candidates]
    target = round(ev.population_at_start() * DEATHS_PER_PERSON * ev.year_fraction())
    rows: list[dict[str, Any]] = []
    for p in _weighted_sample(ev.rng, candidates, weights, target):
        p.death = ev.random_day()
        rows.append(
            {
                "id": marker if not rows else uuid.UUID(int=ev.rng.getrandbits(128), version=4),
                "person_id": p.id,
                "death_date": p.death,
                "version": 1,
                "created_at": ev.now,
                "updated_at": ev.now,
                **place_columns(p.village),
            }
        )
    await ev.insert(Death, rows)
    # The register follows: every person with a death record of the year is deceased.
    person: Any = Person.__table__  # type: ignore[attr-defined]
    death: Any = Death.__table__  # type: ignore[attr-defined]
    await ev.session.execute(
        update(person)
        .where(
            death.c.person_id == person.c.id,
            death.c.county_code == ev.county_code,
            death.c.death_date >= ev.start,
            death.c.death_date <= ev.end,
            person.c.death_date.is_(None),
        )
        .values(death_date=death.c.death_date, version=person.c.version + 1, updated_at=ev.now)
    )
    await ev.session.commit()
    return len(rows)


async def _seed_visits(ev: _Events) -> tuple[int, int]:
    rng = ev.rng
    marker = _marker(ev.county_code, ev.year, "visits")
    if await ev.exists(Visit, marker):
        return -1, -1
    today = clock.today()
    by_village: dict[str, list[uuid.UUID]] = {}
    for h in ev.households.values():
        by_village.setdefault(h.village, []).append(h.id)
    mothers_by_village: dict[str, list[_P]] = {}
    for p in ev.persons:
        if p.id in ev.mothers:
            mothers_by_village.setdefault(p.village, []).append(p)
    purposes = [p for p, _w in VISIT_PURPOSES]
    purpose_weights = [w for _p, w in VISIT_PURPOSES]
    visits: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    for code in sorted(by_village):
        household_ids = by_village[code]
        for month in range(1, 13):
            days = _month_days(ev.year, month, ev.end)
            if days is None:
                break
            first, last = days
            share = ((last - first).days + 1) / calendar.monthrange(ev.year, month)[1]
            for _ in range(round(rng.randint(*VISITS_PER_VILLAGE_MONTH) * share)):
                purpose = rng.choices(purposes, purpose_weights)[0]
                person: _P | None = None
                mothers = mothers_by_village.get(code)
                if purpose == "postnatal" and mothers:
                    person = rng.choice(mothers)
                    household_id = person.household_id
                else:
                    household_id = rng.choice(household_ids)
                    members = [m for m in ev.by_household.get(household_id, ()) if m.death is None]
                    if purpose == "elder_care":
                        members = [m for m in members if _age(m.birth, first) >= 60] or members
                    if members and rng.random() < 0.7:
                        person = rng.choice(members)
                day = date.fromordinal(rng.randint(first.toordinal(), last.toordinal()))
                at = _at_cst(day, rng)
                visit_id = marker if not visits else uuid.UUID(int=rng.getrandbits(128), version=4)
                located = rng.random() < 0.4
                follow_up_on = (
                    day + timedelta(days=rng.randint(3, 30)) if rng.random() < FOLLOW_UP_SHARE else None
                )
                follow_up_note = rng.choice(FOLLOW_UP_NOTES) if follow_up_on else None
                visits.append(
                    {
                        "id": visit_id,
                        "household_id": household_id,
                        "person_id": person.id if person else None,
                        "visited_at": at,
                        "purpose": purpose,
                        "notes": rng.choice(VISIT_NOTES),
                        "lat": round(28.25 + rng.random() * 0.25, 6) if located else None,
                        "lon": round(112.70 + rng.random() * 0.25, 6) if located else None,
                        "accuracy_m": rng.choice((5.0, 10.0, 25.0)) if located else None,
                        "follow_up_on": follow_up_on,
                        "follow_up_note": follow_up_note,
                        "visitor_id": None,
                        "version": 1,
                        "created_at": at,
                        "updated_at": at,
                        **place_columns(code),
                    }
                )
                if follow_up_on is None:
                    continue
                done = follow_up_on < today and rng.random() < FOLLOW_UP_DONE_SHARE
                completed = _at_cst(follow_up_on, rng) if done else None
                tasks.append(
                    {
                        "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                        "kind": "follow_up",
                        "title": (follow_up_note or f"Follow-up of {purpose} visit")[:200],
                        "due_on": follow_up_on,
                        "status": "done" if done else "open",
                        "household_id": household_id,
                        "person_id": person.id if person else None,
                        "source_entity": "visit",
                        "source_id": visit_id,
                        "assignee_user_id": None,
                        "note": None,
                        "completed_at": completed,
                        "completed_by": None,
                        "version": 2 if done else 1,
                        "created_at": at,
                        "updated_at": completed or at,
                        **place_columns(code),
                    }
                )
    await ev.insert(Visit, visits)
    await ev.insert(Task, tasks)
    await ev.session.commit()
    return len(visits), len(tasks)


def _close(ev: _Events, moved_on: date, reasons: tuple[str, ...], weights: tuple[int, ...]) -> dict[str, Any]:
    earliest = moved_on + timedelta(days=30)
    if earliest > ev.end:
        return {"status": "open", "closed_on": None, "close_reason": None, "version": 1}
    return {
        "status": "closed",
        "closed_on": ev.random_day(earliest),
        "close_reason": ev.rng.choices(reasons, weights)[0],
        "version": 2,
    }


async def _seed_migrants(ev: _Events) -> tuple[int, int]:
    rng = ev.rng
    marker = _marker(ev.county_code, ev.year, "migrants")
    if await ev.exists(Migrant, marker):
        return -1, -1
    population = ev.population_at_start()
    migrants: list[dict[str, Any]] = []
    households: list[dict[str, Any]] = []
    people: list[dict[str, Any]] = []
    gens: dict[str, _Gen] = {}
    codes = sorted(ev.villages)
    village_weights = [3 if ev.villages[c].urban else 1 for c in codes]

    def migrant_id() -> uuid.UUID:
        return marker if not migrants else uuid.UUID(int=rng.getrandbits(128), version=4)

    def phone_enc() -> str | None:
        return ev.cipher.encrypt(f"1{rng.randint(3, 9)}{rng.randrange(10**9):09d}", context=b"phone")

    # Inflows: people from other counties, alone or as a couple, in a rented household.
    inflows = round(population * INFLOW_OPEN_SHARE * ev.year_fraction() / (1 - INFLOW_CLOSED_SHARE))
    made = 0
    while made < inflows:
        village = ev.villages[rng.choices(codes, village_weights)[0]]
        origin = rng.choice(ORIGINS)
        gen = gens.setdefault(origin, ev.gen(origin[:6]))
        household_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        b = _HouseholdBuilder(gen, village, household_id, ev.now)
        couple = rng.random() < 0.35 and made + 2 <= inflows
        moved_on = ev.random_day()
        address = f"{village.township_name}{village.name}{rng.randint(1, 15)}组租住房{rng.randint(1, 60)}号"
        age = max(17, min(58, round(rng.triangular(17, 58, 28))))
        first_sex = "male" if couple or rng.random() < 0.6 else "female"
        married = couple or (age >= 27 and rng.random() < 0.6)
        surname = rng.choice(SURNAMES)
        members = [
            b.add(
                name=surname + _given_name(rng, first_sex),
                sex=first_sex,
                birth_ord=_birth_ord(rng, ev.start.toordinal(), age),
                relation="户主",
                marital="married" if married else "single",
                hukou=origin,
            )
        ]
        if couple:
            members.append(
                b.add(
                    name=rng.choice(SURNAMES) + _given_name(rng, "female"),
                    sex="female",
                    birth_ord=_birth_ord(rng, ev.start.toordinal(), max(18, age + rng.randint(-5, 2))),
                    relation="配偶",
                    marital="married",
                    hukou=origin,
                )
            )
        households.append(
            {
                "id": household_id,
                "address": address[:200],
                "household_type": "urban" if village.urban else "rural",
                "head_person_id": members[0]["id"],
                "version": 1,
                "created_at": ev.now,
                "updated_at": ev.now,
                **place_columns(village.code),
            }
        )
        people.extend(members)
        closing = (
            _close(ev, moved_on, ("returned", "moved_on", "settled"), (5, 4, 1))
            if rng.random() < INFLOW_CLOSED_SHARE
            else {"status": "open", "closed_on": None, "close_reason": None, "version": 1}
        )
        employer = rng.choice(EMPLOYERS)
        for m in members:
            migrants.append(
                {
                    "id": migrant_id(),
                    "person_id": m["id"],
                    "direction": "inflow",
                    "moved_on": moved_on,
                    "origin_area_code": origin,
                    "destination": None,
                    "address": address[:200],
                    "employer": employer,
                    "phone_enc": phone_enc() if rng.random() < 0.7 else None,
                    "counterpart_id": None,
                    "transfer": None,
                    "created_at": ev.now,
                    "updated_at": ev.now,
                    **closing,
                    **place_columns(village.code),
                }
            )
        made += len(members)

    # Outflows: residents of working age who left for work elsewhere; some came back.
    residents = [
        p
        for p in ev.persons
        if p.death is None
        and p.birth < ev.start
        and 18 <= _age(p.birth, ev.start) <= 45
        and (p.hukou or "").startswith(ev.county_code)
    ]
    outflows = round(population * OUTFLOW_SHARE * ev.year_fraction() / (1 - OUTFLOW_CLOSED_SHARE))
    out_made = 0
    for p in rng.sample(residents, min(outflows, len(residents))):
        moved_on = ev.random_day()
        closing = (
            _close(ev, moved_on, ("returned",), (1,))
            if rng.random() < OUTFLOW_CLOSED_SHARE
            else {"status": "open", "closed_on": None, "close_reason": None, "version": 1}
        )
        migrants.append(
            {
                "id": migrant_id(),
                "person_id": p.id,
                "direction": "outflow",
                "moved_on": moved_on,
                "origin_area_code": None,
                "destination": rng.choice(DESTINATIONS),
                "address": None,
                "employer": rng.choice(EMPLOYERS),
                "phone_enc": phone_enc() if rng.random() < 0.5 else None,
                "counterpart_id": None,
                "transfer": None,
                "created_at": ev.now,
                "updated_at": ev.now,
                **closing,
                **place_columns(p.village),
            }
        )
        out_made += 1
    await ev.insert(Household, households)
    await ev.insert(Person, people)
    await ev.insert(Migrant, migrants)
    await ev.session.commit()
    return made, out_made


def _claim_months(birth: date, year: int, count_from: date, last: date) -> list[str]:
    """Months of ``year`` (not before ``count_from``, not after ``last``) in which the child is
    under 3."""
    months = []
    for month in range(1, 13):
        first = date(year, month, 1)
        end = date(year, month, calendar.monthrange(year, month)[1])
        if first > last or end < count_from:
            continue
        if birth <= end and _add_years(birth, 3) > first:
            months.append(f"{year:04d}-{month:02d}")
    return months


def _open_steps(
    rng: random.Random, last_day: date, stage: str
) -> tuple[list[tuple[str, str | None, str, str, date]], dict[str, str]]:
    """The steps of a claim stopped at ``stage`` on ``last_day`` (its steps in the last weeks),
    and the comment of a return."""
    created = last_day - timedelta(days=rng.randint(40, 45))
    submitted = created + timedelta(days=rng.randint(0, 10))
    reviewed = submitted + timedelta(days=rng.randint(1, 10))
    approved = reviewed + timedelta(days=rng.randint(1, 10))
    posted = approved + timedelta(days=rng.randint(0, 5))
    steps: list[tuple[str, str | None, str, str, date]] = [
        ("create", None, "draft", "village", created),
        ("submit", "draft", "submitted", "village", submitted),
    ]
    if stage == "returned":
        steps.append(("review", "submitted", "returned", "township", reviewed))
        return steps, {"review": rng.choice(RETURN_COMMENTS)}
    steps += [
        ("review", "submitted", "reviewed", "township", reviewed),
        ("approve", "reviewed", "approved", "county", approved),
        ("publish", "approved", "posted", "county", posted),
    ]
    order = ["draft", "submitted", "reviewed", "approved", "posted"]
    return steps[: order.index(stage) + 1], {}


async def _seed_claims(ev: _Events, claim_year: int) -> tuple[int, int]:
    """Paid claims of ``claim_year`` (rural reward, special assistance, childcare subsidy)."""
    try:
        from app.models.claims import Claim, ClaimHistory, Payment, RuleVersion
    except ImportError:  # pragma: no cover - the claims domain ships with this service
        return -1, -1
    rng = random.Random(f"claims/{ev.seed}/{ev.county_code}/{claim_year}")  # noqa: S311
    marker = _marker(ev.county_code, claim_year, "claims")
    if await ev.exists(Claim, marker):
        return -1, -1
    from app.services.claim_rules import version_on

    # The county's candidates only (national and its own), the most specific in force decides.
    versions: dict[str, list[Any]] = {}
    own_area = f"{ev.county_code}000000"
    for v in (
        await ev.session.execute(
            select(RuleVersion)
            .where(or_(col(RuleVersion.area_code).is_(None), col(RuleVersion.area_code) == own_area))
            .order_by(col(RuleVersion.effective_from))
        )
    ).scalars():
        versions.setdefault(v.programme_code, []).append(v)

    def version(programme: str, day: date) -> Any:
        return version_on(versions.get(programme, []), day)

    def fen(value: Any) -> int:
        return round(float(value or 0) * 100)

    first_day, last_day = date(claim_year, 1, 1), min(date(claim_year, 12, 31), clock.today())
    if last_day < first_day:
        return 0, 0
    by_id = {p.id: p for p in ev.persons}
    picks: list[tuple[str, _P, _P, Any, int, list[str], str | None, dict[str, Any]]] = []
    rural = version("rural_reward", first_day)
    special = version("special_assistance", first_day)
    care = version("childcare_subsidy", last_day)
    facts: dict[str, Any]
    category: str | None
    for p in ev.persons:
        if not ev.alive_on(p, first_day - timedelta(days=1)):
            continue
        age = claim_year - p.birth.year
        household = ev.households.get(p.household_id)
        local = (p.hukou or "").startswith(ev.county_code)
        if (
            rural is not None
            and local
            and household is not None
            and household.rural
            and age >= int(rural.params.get("min_age", 60))
            and p.birth >= date(1933, 1, 1)
            and _share(ev.seed, "rural_reward", p.id) < CLAIM_SHARES["rural_reward"]
        ):
            amount = fen(rural.params.get("amount")) + fen(rural.params.get("top_up"))
            facts = {"hukou_rural": True, "births_within_policy_1973_2001": True}
            picks.append(("rural_reward", p, p, rural, amount, [], None, facts))
        if (
            special is not None
            and local
            and age >= int(special.params.get("mother_min_age", 49))
            and p.birth >= date(1933, 1, 1)
            and _share(ev.seed, "special_assistance", p.id) < CLAIM_SHARES["special_assistance"]
        ):
            category = "death" if _share(ev.seed, "special_category", p.id) < 0.6 else "disability"
            months = [f"{claim_year:04d}-{m:02d}" for m in range(1, last_day.month + 1)]
            monthly = fen(special.params.get(f"{category}_monthly")) + fen(
                special.params.get("top_up_monthly")
            )
            facts = {"only_child_disability_grade": 2} if category == "disability" else {}
            picks.append(
                ("special_assistance", p, p, special, monthly * len(months), months, category, facts)
            )
        if (
            care is not None
            and p.mother_id is not None
            and p.birth > _add_years(first_day, -3)
            and _share(ev.seed, "childcare_subsidy", p.id) < CLAIM_SHARES["childcare_subsidy"]
        ):
            mother = by_id.get(p.mother_id)
            count_from = date.fromisoformat(str(care.params.get("count_from", care.effective_from)))
            months = _claim_months(p.birth, claim_year, count_from, last_day)
            if mother is None or mother.death is not None or not months:
                continue
            monthly = fen(care.params.get("monthly")) + fen(care.params.get("top_up_monthly"))
            picks.append(("childcare_subsidy", p, mother, care, monthly * len(months), months, None, {}))

    claims: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    payments: list[dict[str, Any]] = []
    opened = 0
    for programme, person, payee, ver, amount, months, category, facts in picks:
        claim_id = marker if not claims else uuid.UUID(int=rng.getrandbits(128), version=4)
        created = date.fromordinal(rng.randint(first_day.toordinal(), date(claim_year, 9, 30).toordinal()))
        submitted = created + timedelta(days=rng.randint(0, 10))
        reviewed = submitted + timedelta(days=rng.randint(1, 10))
        approved = reviewed + timedelta(days=rng.randint(1, 10))
        posted = approved + timedelta(days=rng.randint(0, 5))
        notice_until = posted + timedelta(days=7)
        paid_on = notice_until + timedelta(days=rng.randint(1, 20))
        if created > last_day:
            continue
        account = f"6217{rng.randrange(10**15):015d}"
        bank = rng.choice(BANKS)
        steps: list[tuple[str, str | None, str, str, date]] = [
            ("create", None, "draft", "village", created),
            ("submit", "draft", "submitted", "village", submitted),
            ("review", "submitted", "reviewed", "township", reviewed),
            ("approve", "reviewed", "approved", "county", approved),
            ("publish", "approved", "posted", "county", posted),
            ("pay", "posted", "paid", "county", paid_on),
        ]
        steps = [s for s in steps if s[4] <= last_day]
        comments: dict[str, str] = {}
        if ev.open_claims and claim_year == ev.year and rng.random() < OPEN_CLAIM_SHARE:
            stage = OPEN_STAGES[opened % len(OPEN_STAGES)]  # in turn: every step has its claims
            steps, comments = _open_steps(rng, last_day, stage)
            opened += 1
        status = steps[-1][2]
        paid = status == "paid"
        posted = next((day for name, *_r, day in steps if name == "publish"), posted)
        notice_until = posted + timedelta(days=7)
        at = {name: _at_cst(day, rng) for name, _f, _t, _r, day in steps}
        reasons = [
            {"rule": "alive", "passed": True, "detail": "alive"},
            {"rule": "register", "passed": True, "detail": f"seeded {programme} claim for {claim_year}"},
        ]
        claims.append(
            {
                "id": claim_id,
                "programme": programme,
                "person_id": person.id,
                "applicant_id": payee.id if payee is not person else None,
                "year": claim_year,
                "status": status,
                "facts": facts,
                "eligible": True,
                "amount_fen": amount,
                "rule_version_id": ver.id,
                "evaluation": {"reasons": reasons, "months": months, "category": category},
                "evaluated_at": at["submit"] if "submit" in at else at["create"],
                "approved_amount_fen": amount if "approve" in at else None,
                "payee_name": payee.name,
                "payee_bank": bank,
                "payee_account_enc": ev.cipher.encrypt(account, context=b"bank_account"),
                "payee_account_masked": "*" * (len(account) - 4) + account[-4:],
                "created_by": None,
                "submitted_by": None,
                "submitted_at": at.get("submit"),
                "reviewed_by": None,
                "posted_on": posted if "publish" in at else None,
                "notice_until": notice_until if "publish" in at else None,
                "renewed_from_id": None,
                "version": len(steps),
                "created_at": at["create"],
                "updated_at": at[steps[-1][0]],
                **place_columns(person.village),
            }
        )
        history.extend(
            {
                "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                "claim_id": claim_id,
                "action": name,
                "from_status": from_status,
                "to_status": to_status,
                "actor_id": None,
                "actor_role": role,
                "at": at[name],
                "comment": comments.get(name),
            }
            for name, from_status, to_status, role, _day in steps
        )
        if paid:
            payments.append(
                {
                    "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                    "claim_id": claim_id,
                    "paid_on": paid_on,
                    "amount_fen": amount,
                    "reference": f"WC{claim_year}{len(payments) + 1:07d}",
                    "payee_name": payee.name,
                    "payee_bank": bank,
                    "payee_account_enc": ev.cipher.encrypt(account, context=b"bank_account"),
                    "payee_account_masked": "*" * (len(account) - 4) + account[-4:],
                    "recorded_by": None,
                    "recorded_at": at["pay"],
                    **place_columns(person.village),
                }
            )
    await ev.insert(Claim, claims)
    await ev.insert(ClaimHistory, history)
    await ev.insert(Payment, payments)
    await ev.session.commit()
    return len(claims), len(payments)


async def seed_events(
    session: AsyncSession,
    settings_or_cipher: Settings | FieldCipher,
    *,
    year: int,
    county_code: str = "430122",
    seed: int = 1,
    open_claims: bool = False,
) -> dict[str, int]:
    """Add a year of events to a seeded county (each kind skipped when already there for that
    year). Returns the rows created per kind; -1 marks a kind that was already present.
    ``open_claims``: some claims of ``year`` stop at a step before paid (``OPEN_STAGES``)."""
    if year > clock.today().year:
        raise ValueError("the events year must not be in the future")
    cipher = (
        settings_or_cipher if isinstance(settings_or_cipher, FieldCipher) else FieldCipher(settings_or_cipher)
    )
    ev = await _load_events(session, cipher, county_code, year, seed)
    ev.open_claims = open_claims
    if not ev.persons:
        raise ValueError(f"county {county_code} holds no persons; seed it first")
    counts: dict[str, int] = {}
    counts["births"] = await _seed_births(ev)
    counts["deaths"] = await _seed_deaths(ev)
    counts["visits"], counts["follow_up_tasks"] = await _seed_visits(ev)
    counts["inflows"], counts["outflows"] = await _seed_migrants(ev)
    claims = payments = 0
    claim_years_skipped = 0
    for claim_year in (year - 1, year):
        made, paid = await _seed_claims(ev, claim_year)
        if made < 0:
            claim_years_skipped += 1
            continue
        claims, payments = claims + made, payments + paid
    counts["claims"] = claims if claim_years_skipped < 2 else -1
    counts["payments"] = payments if claim_years_skipped < 2 else -1
    await _rebuild_figures(session, county_code)

    if session.bind is not None and session.bind.dialect.name == "postgresql":
        for table in ("person", "household", "birth", "death", "visit", "task", "migrant"):
            await session.execute(text(f"ANALYZE {table}"))
        if counts["claims"] > 0:
            for table in ("claim", "claim_history", "payment"):
                await session.execute(text(f"ANALYZE {table}"))
        await session.commit()
    return counts


__all__ = ["seed_events", "seed_scale"]

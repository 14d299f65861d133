"""Demo county 430122 (望城区-like): 3 townships × 3 villages, a user of every role and two
machine clients with known secrets, and life in its villages (``seed_life``): a few hundred
households, two years of events, a checkup round in progress, claims at every step and a few
partner notifications. Idempotent: running it again creates nothing new.

The people and events come from ``app.services.scale`` (``seed_scale``, ``seed_events``: the
same generators as the load-test county, limited to the demo's nine villages); the round, its
results and the notifications go through the services, as the staff and the police system would
do it. ``seed-scale`` run afterwards on the same county tops it up (it counts the people there).
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import timedelta

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.authz.actor import Actor
from app.core import clock
from app.core.security import FieldCipher, hash_password
from app.models.areas import Area
from app.models.checkups import (
    CheckItem,
    CheckupAppointment,
    CheckupRound,
    DeclineIn,
    ItemResults,
    Place,
    ResultIn,
    RoundCreate,
)
from app.models.claims import Claim, ClaimHistory, ClaimStatus
from app.models.households import Person
from app.models.migrants import NotificationKind
from app.models.users import Agency, MachineClient, Role, User
from app.services import checkups, claims, partner
from app.services.areas import build_area
from app.services.households import full_id_number
from app.services.idnumber import generate_id_number
from app.services.scale import seed_events, seed_scale

COUNTY = ("430122000000", "望城区")
TOWNSHIPS = [
    (
        "430122100000",
        "乔口镇",
        [("430122100201", "团头湖村"), ("430122100202", "柏叶村"), ("430122100203", "田心坪村")],
    ),
    (
        "430122101000",
        "靖港镇",
        [("430122101201", "格塘村"), ("430122101202", "复胜村"), ("430122101203", "新桥村")],
    ),
    (
        "430122102000",
        "茶亭镇",
        [("430122102201", "静慎村"), ("430122102202", "东城村"), ("430122102203", "九峰村")],
    ),
]

# username, password, role, area, display name (README lists these)
DEMO_USERS = [
    ("admin", "admin-demo-2026", Role.admin, "430122000000", "县管理员 周建国"),
    ("county", "county-demo-2026", Role.county, "430122000000", "县卫健局 刘芳"),
    ("township", "township-demo-2026", Role.township, "430122100000", "乔口镇计生办 王丽"),
    ("village", "village-demo-2026", Role.village, "430122100201", "团头湖村专干 李秀英"),
    ("village2", "village2-demo-2026", Role.village, "430122101201", "格塘村专干 张红梅"),
]
# client_id, secret, role, agency, area, name
DEMO_CLIENTS = [
    (
        "demo-police",
        "police-demo-secret-2026",
        Role.partner,
        Agency.police,
        "430122000000",
        "县公安局户籍系统",
    ),
    (
        "demo-dashboard",
        "dashboard-demo-secret-2026",
        Role.dashboard,
        None,
        "430122000000",
        "县领导驾驶舱",
    ),
]


DEMO_PERSONS = 1_500  # about 450 households over the nine villages
DEMO_SEED = 17
ROUND_NAME = "孕情环情季度检查"
ROUND_ITEMS: list[CheckItem] = ["iud", "pregnancy"]
ROUND_DONE_SHARE = 0.45
ROUND_DECLINED_SHARE = 0.05
NOTIFICATIONS = 5


async def seed_demo(session: AsyncSession, cipher: FieldCipher | None = None) -> int:
    """The demo's areas, users and clients; with ``cipher``, its life too (``seed_life``).
    Returns the rows created (areas, users, clients and people)."""
    created = await _seed_accounts(session)
    if cipher is not None:
        await session.commit()
        created += await seed_life(session, cipher)
    return created


async def _seed_accounts(session: AsyncSession) -> int:
    created = 0
    areas = [COUNTY]
    for code, name, villages in TOWNSHIPS:
        areas.append((code, name))
        areas.extend(villages)
    for code, name in areas:
        if await session.get(Area, code) is None:
            area = build_area(code, name)
            if area.parent_code and await session.get(Area, area.parent_code) is None:
                area.parent_code = None
            session.add(area)
            await session.flush()
            created += 1
    for username, password, role, area_code, display in DEMO_USERS:
        exists = await session.execute(select(User.id).where(User.username == username))
        if exists.first() is None:
            session.add(
                User(
                    username=username,
                    password_hash=hash_password(password),
                    role=role,
                    area_code=area_code,
                    county_code=area_code[:6],
                    display_name=display,
                )
            )
            created += 1
    for client_id, secret, role, agency, area_code, name in DEMO_CLIENTS:
        exists = await session.execute(select(MachineClient.id).where(MachineClient.client_id == client_id))
        if exists.first() is None:
            session.add(
                MachineClient(
                    client_id=client_id,
                    secret_hash=hash_password(secret),
                    name=name,
                    role=role,
                    agency=agency,
                    area_code=area_code,
                    county_code=area_code[:6],
                )
            )
            created += 1
    await session.flush()
    return created


async def seed_life(session: AsyncSession, cipher: FieldCipher) -> int:
    """People, events, a round in progress, open claims and notifications in the demo county;
    each part is skipped when it is already there. Returns the people created."""
    county = COUNTY[0][:6]
    people = await seed_scale(
        session,
        cipher,
        persons=DEMO_PERSONS,
        county_code=county,
        townships=len(TOWNSHIPS),
        villages_per_township=len(TOWNSHIPS[0][2]),
        seed=DEMO_SEED,
    )
    year = clock.today().year
    for events_year in (year - 1, year):
        counts = await seed_events(
            session,
            cipher,
            year=events_year,
            county_code=county,
            seed=DEMO_SEED,
            open_claims=events_year == year,
        )
        if counts["claims"] > 0:
            await _open_claim_tasks(session, county, events_year)
    await _seed_round(session, county)
    await _seed_notifications(session, cipher, county)
    await session.commit()
    return people["persons"]


async def _actor(session: AsyncSession, username: str) -> Actor:
    user = (await session.execute(select(User).where(User.username == username))).scalar_one()
    return Actor(
        id=user.id,
        kind="user",
        role=Role(user.role),
        area_code=user.area_code,
        session_id=uuid.uuid4(),
        username=user.username,
        display_name=user.display_name or "",
    )


async def _open_claim_tasks(session: AsyncSession, county: str, year: int) -> None:
    """A submitted claim waits in the township's inbox, a returned one in the village's: the
    tasks the workflow opens (the generated claims are written without it)."""
    waiting = (
        await session.execute(
            select(Claim).where(
                Claim.county_code == county,
                Claim.year == year,
                col(Claim.status).in_([ClaimStatus.submitted.value, ClaimStatus.returned.value]),
            )
        )
    ).scalars()
    for claim in list(waiting):
        comment = None
        if claim.status == ClaimStatus.returned:
            comment = (
                await session.execute(
                    select(ClaimHistory.comment).where(
                        ClaimHistory.claim_id == claim.id,
                        ClaimHistory.to_status == ClaimStatus.returned.value,
                    )
                )
            ).scalar_one_or_none()
        await claims.open_tasks_after(session, claim, ClaimStatus(claim.status), comment=comment, by="review")
    await session.commit()


async def _seed_round(session: AsyncSession, county: str) -> None:
    """A county-wide round opened a month ago, closing in a month: about half the women done,
    a few declined, the rest still due."""
    found = await session.execute(select(CheckupRound.id).where(CheckupRound.county_code == county).limit(1))
    if found.first() is not None:
        return
    actor = await _actor(session, "county")
    today = clock.today()
    rnd, _created = await checkups.create_round(
        session,
        actor,
        RoundCreate(
            area_code=COUNTY[0],
            name=f"{today.year}年{ROUND_NAME}",
            opens_on=today - timedelta(days=30),
            closes_on=today + timedelta(days=30),
            items=ROUND_ITEMS,
        ),
    )
    rng = random.Random(f"demo-round/{DEMO_SEED}")  # noqa: S311  (demo data, not secrets)
    appointments = (
        await session.execute(
            select(CheckupAppointment.id)
            .where(CheckupAppointment.round_id == rnd.id)
            .order_by(col(CheckupAppointment.id))
        )
    ).scalars()
    for appointment_id in list(appointments):
        draw = rng.random()
        if draw < ROUND_DONE_SHARE:
            result = ResultIn(
                checked_on=today - timedelta(days=rng.randint(0, 29)),
                place=Place.station if rng.random() < 0.8 else Place.mobile_clinic,
                consent=True,
                items=ItemResults(iud="in_place" if rng.random() < 0.7 else "absent", pregnancy="negative"),
            )
            await checkups.record_result(session, actor, appointment_id, result)
        elif draw < ROUND_DONE_SHARE + ROUND_DECLINED_SHARE:
            await checkups.decline(session, actor, appointment_id, DeclineIn(reason="本人外出务工，暂不参加"))
    await session.commit()


async def _seed_notifications(session: AsyncSession, cipher: FieldCipher, county: str) -> None:
    """The police system reports a few residence registrations: people of the register (matched)
    and newcomers the register does not know yet. Idempotent through the idempotency keys."""
    client = (
        await session.execute(select(MachineClient).where(MachineClient.client_id == DEMO_CLIENTS[0][0]))
    ).scalar_one()
    actor = Actor(
        id=client.id,
        kind="client",
        role=Role.partner,
        area_code=client.area_code,
        session_id=uuid.uuid4(),
        username=client.client_id,
    )
    rng = random.Random(f"demo-notifications/{DEMO_SEED}")  # noqa: S311
    today = clock.today()
    residents = (
        await session.execute(
            select(Person)
            .where(Person.county_code == county, col(Person.id_number_enc).is_not(None))
            .order_by(col(Person.id))
            .limit(NOTIFICATIONS)
        )
    ).scalars()
    villages = [v for _t, _n, vs in TOWNSHIPS for v, _name in vs]
    sent = 0
    for i, person in enumerate(list(residents)[:3]):
        number = full_id_number(person, cipher) or ""
        await _notify(
            session,
            actor,
            cipher,
            i,
            NotificationKind.residence_registered,
            number,
            person.name,
            person.village_code,
            today - timedelta(days=rng.randint(1, 20)),
        )
        sent += 1
    for i in range(sent, NOTIFICATIONS):
        birth = today.replace(year=today.year - rng.randint(22, 40), day=1)
        number = generate_id_number(area_code="431121", birth_date=birth, sex="male", sequence=400 + i)
        await _notify(
            session,
            actor,
            cipher,
            i,
            NotificationKind.residence_registered,
            number,
            f"外来{i}",
            rng.choice(villages),
            today - timedelta(days=rng.randint(1, 20)),
        )
    await session.commit()


async def _notify(
    session: AsyncSession,
    actor: Actor,
    cipher: FieldCipher,
    i: int,
    kind: NotificationKind,
    number: str,
    name: str,
    village: str,
    day: object,
) -> None:
    body = {
        "kind": kind.value,
        "id_number": number,
        "name": name,
        "address": "暂住地址",
        "area_code": village,
        "occurred_on": str(day),
        "reference": f"DEMO-{DEMO_SEED}-{i + 1:03d}",
    }
    raw = json.dumps(body, ensure_ascii=False).encode()
    await partner.receive(session, actor, cipher, key=f"demo-notification-{i + 1}", raw=raw)


async def demo_counts(session: AsyncSession) -> int:
    """People in the demo county (for the command line's report)."""
    stmt = select(func.count()).select_from(Person).where(Person.county_code == COUNTY[0][:6])
    return int((await session.execute(stmt)).scalar_one())

"""Demo county 430122 (望城区-like): 3 townships × 3 villages, a user of every role and two
machine clients with known secrets. Idempotent: running it again creates nothing new."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from app.core.security import hash_password
from app.models.areas import Area
from app.models.users import Agency, MachineClient, Role, User
from app.services.areas import build_area

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


async def seed_demo(session: AsyncSession) -> int:
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

"""Areas: level and parent follow from the 12-digit code; the parent must exist except for a
county (the top of a deployment). Provinces and cities are optional rows."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.authz.actor import Actor
from app.authz.policies import ADMIN_ROLES, require_role
from app.authz.scope import scoped
from app.core.errors import Conflict, FieldError, NotFound, OutOfScope, ValidationFailed
from app.core.pagination import paginate
from app.core.text import FORBIDDEN as CONTROL_CHARACTERS
from app.models.areas import Area, AreaCreate, AreaLevel, area_code_problem


def level_of(code: str) -> AreaLevel:
    if code[2:] == "0" * 10:
        return AreaLevel.province
    if code[4:] == "0" * 8:
        return AreaLevel.city
    if code[6:] == "0" * 6:
        return AreaLevel.county
    if code[9:] == "000":
        return AreaLevel.township
    return AreaLevel.village


def parent_of(code: str) -> str | None:
    level = level_of(code)
    if level is AreaLevel.village:
        return code[:9] + "000"
    if level is AreaLevel.township:
        return code[:6] + "000000"
    if level is AreaLevel.county:
        return code[:4] + "00000000"
    if level is AreaLevel.city:
        return code[:2] + "0000000000"
    return None


def parent_required(code: str) -> bool:
    return level_of(code) in (AreaLevel.township, AreaLevel.village)


def build_area(code: str, name: str) -> Area:
    level = level_of(code)
    return Area(
        code=code,
        name=name,
        level=level,
        parent_code=parent_of(code),
        county_code=code[:6] if level in (AreaLevel.county, AreaLevel.township, AreaLevel.village) else None,
        township_code=code[:9] if level in (AreaLevel.township, AreaLevel.village) else None,
        village_code=code if level is AreaLevel.village else None,
    )


async def get_area(session: AsyncSession, code: str) -> Area | None:
    return await session.get(Area, code)


async def require_area(session: AsyncSession, code: str, *, field: str = "area_code") -> Area:
    area = await session.get(Area, code)
    if area is None:
        raise ValidationFailed("Unknown area code", errors=[FieldError(field=field, message="no such area")])
    return area


async def _link_parent(session: AsyncSession, area: Area, known: set[str]) -> None:
    """Drop a link to an optional parent row that does not exist (province, city)."""
    if area.parent_code and area.parent_code not in known:
        if await session.get(Area, area.parent_code) is None:
            if parent_required(area.code):
                raise ValidationFailed(
                    "The parent area does not exist",
                    code="parent_missing",
                    errors=[FieldError(field="code", message=f"parent {area.parent_code} missing")],
                )
            area.parent_code = None


async def create_area(session: AsyncSession, actor: Actor, data: AreaCreate) -> Area:
    """Admins add areas inside their county (or their county itself)."""
    require_role(actor, *ADMIN_ROLES)
    if not data.code.startswith(actor.county_code):
        raise OutOfScope("That area is outside your county")
    if await session.get(Area, data.code) is not None:
        raise Conflict("An area with this code exists", code="area_exists")
    area = build_area(data.code, data.name)
    await _link_parent(session, area, set())
    try:
        # The check above races with a concurrent create of the same code: the primary key
        # decides, and the loser gets the same 409 instead of a 500.
        async with session.begin_nested():
            session.add(area)
            await session.flush()
    except IntegrityError:
        raise Conflict("An area with this code exists", code="area_exists") from None
    return area


async def list_areas(
    session: AsyncSession, actor: Actor, *, parent_code: str | None, limit: int, cursor: str | None
) -> tuple[list[Area], str | None]:
    """Areas in the caller's scope (machine clients included: area names are not personal)."""
    stmt = scoped(select(Area), actor, allow_machine=True)
    if parent_code:
        stmt = stmt.where(Area.parent_code == parent_code)
    return await paginate(session, stmt, order=[Area.code], limit=limit, cursor=cursor)


async def get_in_scope(session: AsyncSession, actor: Actor, code: str) -> Area:
    stmt = scoped(select(Area).where(Area.code == code), actor, allow_machine=True)
    area = (await session.execute(stmt)).scalar_one_or_none()
    if area is None:
        raise NotFound("No area with this code")
    return area


@dataclass
class ImportReport:
    created: int
    unchanged: int
    renamed: int


def parse_area_csv(content: bytes) -> tuple[list[tuple[int, str, str]], list[FieldError]]:
    """Rows (line number, code, name) of a ``code,name`` CSV, and the bad lines (all of them,
    so one run names every fault). A wrong header or encoding refuses the file outright."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed(
            "The file is not UTF-8 text; save it as CSV UTF-8",
            errors=[FieldError(field="file", message="not UTF-8")],
        ) from None
    reader = csv.reader(io.StringIO(text))
    errors: list[FieldError] = []
    rows: list[tuple[int, str, str]] = []
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header] != ["code", "name"]:
        raise ValidationFailed(
            "The first line must be the header code,name",
            errors=[FieldError(field="line 1", message="header must be code,name")],
        )
    seen: dict[str, int] = {}
    for row in reader:
        line_no = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            errors.append(FieldError(field=f"line {line_no}", message="expected 2 columns"))
            continue
        code, name = row[0].strip(), row[1].strip()
        problem = area_code_problem(code)
        if problem:
            errors.append(FieldError(field=f"line {line_no}", message=f"code {problem}"))
        elif not name or len(name) > 100:
            errors.append(FieldError(field=f"line {line_no}", message="name must be 1-100 chars"))
        elif CONTROL_CHARACTERS.search(name):  # the file is text input too (app/core/text.py)
            errors.append(FieldError(field=f"line {line_no}", message="name has control characters"))
        elif code in seen:
            errors.append(FieldError(field=f"line {line_no}", message=f"code repeats line {seen[code]}"))
        else:
            seen[code] = line_no
            rows.append((line_no, code, name))
    return rows, errors


async def import_areas(session: AsyncSession, content: bytes) -> ImportReport:
    """Idempotent import in any row order: parents are resolved against the file and the
    database together; any bad row fails the whole import, and every bad row is reported."""
    rows, errors = parse_area_csv(content)
    in_file = {code for _, code, _ in rows}
    existing = {
        a.code: a for a in (await session.execute(select(Area).where(col(Area.code).in_(in_file)))).scalars()
    }
    report = ImportReport(0, 0, 0)
    to_add: list[Area] = []
    renames: list[tuple[Area, str]] = []
    for line_no, code, name in rows:
        if code in existing:
            if existing[code].name != name:
                renames.append((existing[code], name))
            else:
                report.unchanged += 1
            continue
        area = build_area(code, name)
        parent = area.parent_code
        if parent and parent not in in_file and await session.get(Area, parent) is None:
            if parent_required(code):
                errors.append(FieldError(field=f"line {line_no}", message=f"parent {parent} missing"))
                continue
            area.parent_code = None
        to_add.append(area)
    if errors:
        errors.sort(key=lambda e: int(e.field.split()[-1]))
        raise ValidationFailed("The file has bad rows; nothing was imported", errors=errors)
    for area, name in renames:
        area.name = name
    report.renamed = len(renames)
    # Parents first, so foreign keys hold whatever the file order was.
    order = [
        AreaLevel.province,
        AreaLevel.city,
        AreaLevel.county,
        AreaLevel.township,
        AreaLevel.village,
    ]
    for level in order:
        for area in to_add:
            if area.level is level:
                session.add(area)
        await session.flush()
    report.created = len(to_add)
    return report


async def names_of(session: AsyncSession, codes: set[str]) -> dict[str, str]:
    """The names of these areas, by code (one query; names are not personal, like ``list_areas``
    answers them to every caller)."""
    if not codes:
        return {}
    rows = await session.execute(select(col(Area.code), col(Area.name)).where(col(Area.code).in_(codes)))
    return {r[0]: r[1] for r in rows}

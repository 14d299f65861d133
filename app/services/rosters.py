"""Rosters out: the persons list as the 花名册 workbook and the claims list as a workbook.

Each export takes exactly the filters, scope and checks of its list (``persons_query``,
``claims_query``: one statement builds both), reads it in keyset pages of ``PAGE_ROWS`` in the
list's order inside the request's one transaction, and writes the rows with openpyxl's
write-only workbook (rows go straight to a temporary file, never a whole sheet in memory), so
memory stays bounded for a whole county; the finished file is streamed from disk and deleted
after it is sent.

**Row cap.** An export holds at most ``ROW_CAP`` rows (100,000 roster rows: 16 s on PostgreSQL
on the development machine, most of it openpyxl's, with lxml; server memory stayed at 160 MB);
filter a bigger county by township or village. Above it the request is 422
``export_too_large`` before any row is written, not a truncated file a reader could take for
the whole register.

**Never a formula.** openpyxl stores a text starting with ``=`` as a formula; every such text
(a name, an address a cadre typed) is written as a text cell, as it was entered.

**Masking.** ID numbers and phones are masked as the lists mask them. ``full_id_numbers=true``
(county and admin only; 403 for others) puts the full ID numbers and phones in the roster; that
export is written to the audit log with its row count. Every export is audited (action
``export``, detail: the file, the filters' gist and ``rows=N``).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fastapi.responses import FileResponse
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar
from starlette.background import BackgroundTask

from app.authz.actor import Actor
from app.authz.policies import COUNTY_ROLES
from app.core import clock
from app.core.errors import Forbidden
from app.core.messages import MESSAGES, msg
from app.core.pagination import paginate
from app.core.security import FieldCipher
from app.models.areas import Area
from app.models.claims import Claim
from app.models.households import Household, Person
from app.services import audit
from app.services import households as hh
from app.services.masking import mask_phone

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ROW_CAP = 100_000
PAGE_ROWS = 2_000

PERSON_HEADERS = (
    "户编号",
    "户主",
    "姓名",
    "身份证号",
    "性别",
    "出生日期",
    "与户主关系",
    "婚姻状况",
    "村编码",
    "村",
    "地址",
    "户类型",
    "户籍地编码",
    "联系电话",
    "存殁",
    "死亡日期",
)
CLAIM_HEADERS = (
    "申领编号",
    "项目",
    "年度",
    "状态",
    "村编码",
    "村",
    "姓名",
    "身份证号",
    "核算金额（元）",
    "核定金额（元）",
    "收款人",
    "开户银行",
    "收款账号",
    "提交时间",
    "公示日期",
    "公示截止",
    "创建时间",
)
SEX = {"male": "男", "female": "女"}
MARITAL = {"single": "未婚", "married": "已婚", "divorced": "离婚", "widowed": "丧偶"}
HOUSEHOLD_TYPE = {"rural": "农村", "urban": "城镇"}
RELATION = {"head": "户主", "self": "户主", "本人": "户主", "spouse": "配偶"}


@dataclass
class Export:
    """A finished workbook on disk (the caller streams and then deletes it)."""

    path: str
    filename: str
    rows: int


def _zh(key: str, fallback: str) -> str:
    entry = MESSAGES.get(key)
    return entry["zh"] if entry else fallback


async def _check_cap(session: AsyncSession, stmt: SelectOfScalar[Any]) -> int:
    total = int((await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one())
    if total > ROW_CAP:
        raise hh.invalid(
            "limit",
            msg("err.export_too_large", total=total, cap=ROW_CAP),
            "export_too_large",
        )
    return total


async def _area_names(session: AsyncSession, codes: Iterable[str]) -> dict[str, str]:
    wanted = set(codes)
    if not wanted:
        return {}
    rows = await session.execute(select(Area.code, Area.name).where(col(Area.code).in_(wanted)))
    return {str(code): str(name) for code, name in rows.all()}


def _new_file(prefix: str) -> str:
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".xlsx")
    os.close(fd)
    return path


async def _pages(session: AsyncSession, stmt: SelectOfScalar[Any], order: list[Any], descending: bool) -> Any:
    cursor: str | None = None
    while True:
        rows, cursor = await paginate(
            session, stmt, order=order, limit=PAGE_ROWS, cursor=cursor, descending=descending
        )
        yield rows
        if cursor is None:
            return


def _row(ws: Any, values: Sequence[Any]) -> list[Any]:
    """The cells of one row; a text starting with ``=`` stays text (openpyxl would store it as a
    formula that Excel runs when the file is opened)."""
    out: list[Any] = []
    for value in values:
        if isinstance(value, str) and value.startswith("="):
            cell = WriteOnlyCell(ws, value=value)
            cell.data_type = "s"
            out.append(cell)
        else:
            out.append(value)
    return out


def _save(wb: Workbook, path: str) -> None:
    try:
        wb.save(path)
    except BaseException:
        os.unlink(path)
        raise


async def persons_xlsx(
    session: AsyncSession,
    actor: Actor,
    cipher: FieldCipher,
    *,
    full_id_numbers: bool,
    **filters: Any,
) -> Export:
    """The 花名册 of the persons ``GET /persons`` would list with ``filters``, in its order."""
    stmt = hh.persons_query(session, actor, cipher, **filters)
    if full_id_numbers and actor.role not in COUNTY_ROLES:
        raise Forbidden(msg("err.full_id_numbers_county_only"))
    await _check_cap(session, stmt)
    path = _new_file("persons-")
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("花名册")
    ws.append(PERSON_HEADERS)
    rows = 0
    names: dict[str, str] = {}
    try:
        async for page in _pages(session, stmt, hh.PERSON_ORDER, descending=False):
            people: Sequence[Person] = page
            households = await _households(session, {p.household_id for p in people})
            heads = await _people(
                session, {h.head_person_id for h in households.values() if h.head_person_id}
            )
            missing = {p.village_code for p in people} - names.keys()
            names.update(await _area_names(session, missing))
            for p in people:
                home = households.get(p.household_id)
                head = heads.get(home.head_person_id) if home and home.head_person_id else None
                phone = hh.full_phone(p, cipher)
                if full_id_numbers:
                    number, shown_phone = hh.full_id_number(p, cipher), phone
                else:
                    number, shown_phone = p.id_number_masked, mask_phone(phone) if phone else None
                ws.append(
                    _row(
                        ws,
                        (
                            str(p.household_id),
                            head.name if head else None,
                            p.name,
                            number,
                            SEX.get(p.sex, p.sex),
                            p.birth_date,
                            RELATION.get(p.relation_to_head, p.relation_to_head),
                            MARITAL.get(p.marital_status, p.marital_status),
                            p.village_code,
                            names.get(p.village_code),
                            home.address if home else None,
                            HOUSEHOLD_TYPE.get(home.household_type, home.household_type) if home else None,
                            p.hukou_area_code,
                            shown_phone,
                            "在世" if p.death_date is None else "死亡",
                            p.death_date,
                        ),
                    )
                )
                rows += 1
        _save(wb, path)
    except BaseException:
        if os.path.exists(path):
            os.unlink(path)
        raise
    kind = "full" if full_id_numbers else "masked"
    gist = " ".join(
        f"{k}={v}" for k, v in sorted(filters.items()) if v not in (None, False) and k != "id_number"
    )
    audit.record(session, actor, "export", "person", None, f"persons.xlsx {kind} {gist} rows={rows}")
    return Export(path=path, filename=f"persons-{kind}.xlsx", rows=rows)


async def _households(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """The columns the roster shows of each household (plain rows: no ORM objects to build)."""
    if not ids:
        return {}
    columns: list[Any] = [Household.id, Household.address, Household.household_type, Household.head_person_id]
    found = await session.execute(sa_select(*columns).where(col(Household.id).in_(ids)))
    return {h.id: h for h in found.all()}


async def _people(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """Name and masked ID number of each person (plain rows)."""
    if not ids:
        return {}
    columns: list[Any] = [Person.id, Person.name, Person.id_number_masked]
    found = await session.execute(sa_select(*columns).where(col(Person.id).in_(ids)))
    return {p.id: p for p in found.all()}


async def claims_xlsx(session: AsyncSession, actor: Actor, cipher: FieldCipher, **filters: Any) -> Export:
    """The claims ``GET /claims`` would list with ``filters``, newest first; beneficiaries' ID
    numbers and payees' accounts masked."""
    from app.services import claims as claims_svc

    stmt = claims_svc.claims_query(session, actor, cipher=cipher, **filters)
    await _check_cap(session, stmt)
    path = _new_file("claims-")
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("申领")
    ws.append(CLAIM_HEADERS)
    rows = 0
    names: dict[str, str] = {}
    try:
        async for page in _pages(session, stmt, claims_svc.CLAIM_ORDER, descending=True):
            claims: Sequence[Claim] = page
            people = await _people(session, {c.person_id for c in claims})
            missing = {c.village_code for c in claims} - names.keys()
            names.update(await _area_names(session, missing))
            for c in claims:
                person = people.get(c.person_id)
                ws.append(
                    _row(
                        ws,
                        (
                            str(c.id),
                            _zh(f"programme.{c.programme}", c.programme),
                            c.year,
                            _zh(f"status.{c.status}", c.status),
                            c.village_code,
                            names.get(c.village_code),
                            person.name if person else None,
                            person.id_number_masked if person else None,
                            _yuan(c.amount_fen),
                            _yuan(c.approved_amount_fen),
                            c.payee_name,
                            c.payee_bank,
                            c.payee_account_masked,
                            _naive(c.submitted_at),
                            c.posted_on,
                            c.notice_until,
                            _naive(c.created_at),
                        ),
                    )
                )
                rows += 1
        _save(wb, path)
    except BaseException:
        if os.path.exists(path):
            os.unlink(path)
        raise
    gist = " ".join(
        f"{k}={getattr(v, 'value', v)}"
        for k, v in sorted(filters.items())
        if v is not None and k != "id_number"
    )
    audit.record(session, actor, "export", "claim", None, f"claims.xlsx {gist} rows={rows}")
    return Export(path=path, filename="claims.xlsx", rows=rows)


def _yuan(fen: int | None) -> Decimal | None:
    """Fen as a number of yuan with two decimals (a number cell, so Excel can sum it)."""
    return None if fen is None else Decimal(fen).scaleb(-2)


def _naive(value: Any) -> Any:
    """Excel has no time zones: a stored UTC time as China's local time, without a zone."""
    if value is None:
        return None
    return value.astimezone(clock.zone()).replace(tzinfo=None)


def file_response(export: Export) -> FileResponse:
    """The workbook as the answer; the file is deleted once sent."""
    return FileResponse(
        export.path,
        media_type=XLSX,
        filename=export.filename,
        headers={"X-Row-Count": str(export.rows)},
        background=BackgroundTask(os.unlink, export.path),
    )

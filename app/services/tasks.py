"""The task inbox. Other domains open tasks with ``open_task`` (follow-ups from visits,
prenatal care and referrals from checkups, partner notifications to confirm, claims to correct);
cadres and township staff list and complete them.

"Checkup due" items are not task rows: every appointment of a checkup round is its woman's
item, read from ``checkup_appointment`` with the round's closing day as due date (open while the
appointment is scheduled, done when her result is recorded, cancelled when she declines, is
exempted or leaves the round; overdue once the window has closed). A county-wide round thus
writes its 123,000 appointments and not as many task rows again, and the item can never
disagree with the appointment. The item's id is the appointment's; phones build the same items
from the appointments they pull. Completing one is refused: the result, decline or exemption
is what closes it.

**Titles in two languages.** A task's title names its person and says what to do, in Chinese
(``title``, the default language) and English (``title_en``), both rendered from the message
catalogue (``task.*`` in app/core/messages.py) when the task is opened; ``task_public`` shows
the one of the request's language (the inbox and the sync pull alike). Stored, not rendered at
read time from a kind and parameters: a title is a message of the moment it was written (the
township's return comment, the name as it was then), the inbox and the pull read it as a column
without a catalogue lookup per row or a join for the parameters, and only two languages exist.
A visit follow-up's title is the cadre's own note, stored as written (``title_en`` null: the
same text in both languages), as are tasks opened before titles had two languages. The
checkup-due items, built from the appointments, get their titles for the page only.
"""

from __future__ import annotations

import uuid
from datetime import date
from types import SimpleNamespace
from typing import Any, NotRequired, TypedDict, Unpack

from sqlalchemy import Date, String, Uuid, case, cast, func, literal, null, tuple_, union_all
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.authz.actor import Actor
from app.authz.policies import FIELD_ROLES, require_role
from app.authz.scope import get_scoped, scoped
from app.core import clock
from app.core.db import UTCDateTime, utcnow
from app.core.errors import InvalidTransition, NotFound
from app.core.messages import both, current_language
from app.core.pagination import decode_cursor, encode_cursor
from app.models.checkups import AppointmentStatus, CheckupAppointment, CheckupRound
from app.models.common import place_columns
from app.models.visits import Task, TaskItem, TaskKind, TaskPublic, TaskStatus
from app.services.changes import register_synced
from app.services.records import touch
from app.services.summaries import load_people, with_people

register_synced("task", "task")


def task_public(t: Any, today: date | None = None) -> TaskPublic:
    """A task row or ORM object, or a checkup-due item row, as the API shows it."""
    today = today or clock.today()
    data = {name: getattr(t, name, None) for name in TaskPublic.model_fields if name != "overdue"}
    data["overdue"] = t.status == TaskStatus.open and t.due_on < today
    title_en = getattr(t, "title_en", None)
    if title_en and current_language() == "en":
        data["title"] = title_en
    return TaskPublic.model_validate(data)


def task_item(t: Any, today: date | None = None) -> TaskItem:
    """An inbox item of ``list_tasks`` (which read its ``people``) as the API lists it."""
    return with_people(TaskItem, task_public(t, today), t.people)


class TaskFields(TypedDict):
    """What a domain says about a task it opens."""

    kind: TaskKind
    # one text for both languages, or (Chinese, English) from ``messages.both`` (module docstring)
    title: str | tuple[str, str]
    due_on: date
    village_code: str
    household_id: NotRequired[uuid.UUID | None]
    person_id: NotRequired[uuid.UUID | None]
    source_entity: NotRequired[str | None]
    source_id: NotRequired[uuid.UUID | None]
    assignee_user_id: NotRequired[uuid.UUID | None]


def task_row(**fields: Unpack[TaskFields]) -> dict[str, Any]:
    """A new open task as the columns of its row (every column set)."""
    now = utcnow()
    title = fields["title"]
    zh, en = title if isinstance(title, tuple) else (title, None)
    return {
        "id": uuid.uuid4(),
        "created_at": now,
        "updated_at": now,
        "version": 1,
        "kind": fields["kind"],
        "title": zh[:200],
        "title_en": en[:200] if en else None,
        "due_on": fields["due_on"],
        "status": TaskStatus.open,
        "household_id": fields.get("household_id"),
        "person_id": fields.get("person_id"),
        "source_entity": fields.get("source_entity"),
        "source_id": fields.get("source_id"),
        "assignee_user_id": fields.get("assignee_user_id"),
        "note": None,
        "completed_at": None,
        "completed_by": None,
        **place_columns(fields["village_code"]),
    }


def open_task(session: AsyncSession, **fields: Unpack[TaskFields]) -> Task:
    """Open a task through the ORM: its audit and change-log rows follow from the flush hooks."""
    task = Task(**task_row(**fields))
    session.add(task)
    return task


APPOINTMENT = "checkup_appointment"
DUE_KIND = TaskKind.checkup_due.value
_ITEM_COLUMNS = [name for name in TaskPublic.model_fields if name != "overdue"] + [
    "title_en",
    "county_code",
    "township_code",
    "sort_on",
]


def _task_column(name: str) -> Any:
    if name == "sort_on":
        return col(Task.due_on).label("sort_on")
    if name == "scheduled_on":  # a checkup-due item's field only
        return cast(null(), Date()).label("scheduled_on")
    return getattr(Task, name)


def _task_rows(actor: Actor) -> Any:
    return scoped(sa_select(*(_task_column(c) for c in _ITEM_COLUMNS)), actor, Task)


def _due_items(actor: Actor) -> Any:
    """Every appointment as its "checkup due" inbox item, with the task columns."""
    a, r = CheckupAppointment, CheckupRound
    status = col(a.status)
    scheduled = status == AppointmentStatus.scheduled.value
    columns = {
        "id": col(a.id),
        "kind": literal(DUE_KIND, String()),
        "title": col(r.name),  # the round's; the item's title is made for the page (list_tasks)
        "title_en": cast(null(), String()),
        "due_on": col(r.closes_on),
        "scheduled_on": col(a.scheduled_on),
        # the inbox order (list_tasks): the day she is expected, else the closing day
        "sort_on": func.coalesce(col(a.scheduled_on), col(r.closes_on)),
        "status": case(
            (scheduled, TaskStatus.open.value),
            (status == AppointmentStatus.done.value, TaskStatus.done.value),
            else_=TaskStatus.cancelled.value,
        ),
        "village_code": col(a.village_code),
        "household_id": cast(null(), Uuid()),  # filled in for the page only (list_tasks)
        "person_id": col(a.person_id),
        "source_entity": literal(APPOINTMENT, String()),
        "source_id": col(a.id),
        "assignee_user_id": cast(null(), Uuid()),
        "note": cast(null(), String()),
        "completed_at": case((~scheduled, col(a.recorded_at)), else_=cast(null(), UTCDateTime())),
        "completed_by": case((~scheduled, col(a.recorded_by)), else_=cast(null(), Uuid())),
        "version": col(a.version),
        "created_at": col(a.created_at),
        "updated_at": col(a.updated_at),
        "county_code": col(a.county_code),
        "township_code": col(a.township_code),
    }
    stmt: Any = (
        sa_select(*(columns[c].label(c) for c in _ITEM_COLUMNS))
        .select_from(a)
        .join(r, col(r.id) == col(a.round_id))
    )
    return scoped(stmt, actor, CheckupAppointment)


def _appointment_status(status: TaskStatus) -> Any:
    appt = col(CheckupAppointment.status)
    if status == TaskStatus.open:
        return appt == AppointmentStatus.scheduled.value
    if status == TaskStatus.done:
        return appt == AppointmentStatus.done.value
    return appt.not_in([AppointmentStatus.scheduled.value, AppointmentStatus.done.value])


async def list_tasks(
    session: AsyncSession,
    actor: Actor,
    *,
    status: TaskStatus | None,
    kind: TaskKind | None,
    village_code: str | None,
    overdue: bool | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Any], str | None]:
    """Tasks in scope (township users see all their villages' tasks), the checkup-due items of
    the appointments among them (module docstring).

    Order: by the day each item asks for — a task's ``due_on``; a checkup-due item's
    ``scheduled_on`` (the day she is expected, set by a reschedule), or its round's closing day
    when she may come any day of the window — then by ``due_on`` (checkup items the same day:
    the round closing first), then by id. So a woman expected tomorrow comes before a follow-up
    due next week, and an unscheduled appointment is listed by the last day she can come."""
    require_role(actor, *FIELD_ROLES)
    today = clock.today()
    tasks = _task_rows(actor)
    if status:
        tasks = tasks.where(Task.status == status)
    if kind:
        tasks = tasks.where(Task.kind == kind)
    if village_code:
        tasks = tasks.where(Task.village_code == village_code)
    if overdue is True:
        tasks = tasks.where(Task.status == TaskStatus.open, col(Task.due_on) < today)
    elif overdue is False:
        tasks = tasks.where(col(Task.due_on) >= today)
    parts = [tasks]
    if kind in (None, TaskKind.checkup_due):
        items = _due_items(actor)
        if status:
            items = items.where(_appointment_status(status))
        if village_code:
            items = items.where(CheckupAppointment.village_code == village_code)
        if overdue is True:
            items = items.where(
                CheckupAppointment.status == AppointmentStatus.scheduled.value,
                col(CheckupRound.closes_on) < today,
            )
        elif overdue is False:
            items = items.where(col(CheckupRound.closes_on) >= today)
        parts.append(items)
    # Each part is ordered and cut to the page before the union, so that a county's 100,000
    # scheduled appointments are a top-N sort, not a sorted union of everything.
    keys = [Task.due_on, Task.due_on, Task.id]  # (sort_on, due_on, id): see the docstring
    if cursor:
        after_sort, after_due, after_id = decode_cursor(cursor, keys)
    cut = []
    for part in parts:
        sub = part.subquery()
        stmt = sa_select(sub)
        if cursor:
            stmt = stmt.where(
                tuple_(sub.c.sort_on, sub.c.due_on, sub.c.id)
                > tuple_(literal(after_sort), literal(after_due), literal(after_id, Uuid()))
            )
        # (wrapped: SQLite takes ORDER BY/LIMIT only after a UNION, or inside a subquery)
        cut.append(
            sa_select(stmt.order_by(sub.c.sort_on, sub.c.due_on, sub.c.id).limit(limit + 1).subquery())
        )
    inbox = union_all(*cut).subquery("inbox") if len(cut) > 1 else cut[0].subquery("inbox")
    result = await session.execute(
        sa_select(inbox).order_by(inbox.c.sort_on, inbox.c.due_on, inbox.c.id).limit(limit + 1)
    )
    rows = [dict(r._mapping) for r in result]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor([last["sort_on"], last["due_on"], last["id"]], keys)
    # The people of the page, in one query; a checkup-due item's household is its woman's and
    # its title names her.
    people = await load_people(
        session, person_ids=(r["person_id"] for r in rows), household_ids=(r["household_id"] for r in rows)
    )
    for r in rows:
        if r["source_entity"] == APPOINTMENT and r["kind"] == DUE_KIND:
            r["household_id"] = people.home(r["person_id"])
            who = people.person(r["person_id"])
            zh, en = both("task.checkup_due", name=who.name if who else "", round=r["title"])
            r["title"], r["title_en"] = zh[:200], en[:200]
        r["people"] = people.of(r["person_id"], r["household_id"])
    return [SimpleNamespace(**r) for r in rows], next_cursor


async def complete_task(session: AsyncSession, actor: Actor, task_id: uuid.UUID, note: str | None) -> Task:
    require_role(actor, *FIELD_ROLES)
    try:
        task = await get_scoped(session, Task, task_id, actor)
    except NotFound:
        stmt = scoped(select(CheckupAppointment.id).where(CheckupAppointment.id == task_id), actor)
        if (await session.execute(stmt)).first() is not None:
            raise InvalidTransition(
                "A checkup-due item closes when the woman's result, decline or exemption is "
                "recorded on her appointment",
                code="record_checkup_instead",
            ) from None
        raise
    if task.status != TaskStatus.open:
        raise InvalidTransition(f"The task is {task.status}, not open")
    task.status = TaskStatus.done
    task.note = note
    task.completed_at = utcnow()
    task.completed_by = actor.id
    touch(task)
    await session.flush()
    return task


async def cancel_tasks_for(session: AsyncSession, source_entity: str, source_id: uuid.UUID) -> None:
    """Close the open tasks a source record made (e.g. a checkup that was then done)."""
    rows = await session.execute(
        select(Task).where(
            Task.source_entity == source_entity, Task.source_id == source_id, Task.status == TaskStatus.open
        )
    )
    for task in rows.scalars():
        task.status = TaskStatus.cancelled
        touch(task)


async def move_person_tasks(
    session: AsyncSession,
    person_id: uuid.UUID,
    *,
    to_village: str,
    keep_sources: tuple[str, ...] = (),
    household_id: uuid.UUID | None = None,
) -> int:
    """A person moved to another village: her open tasks go with her (to that village's cadres,
    unassigned), except those made by ``keep_sources`` records, which stay where they are. With
    ``household_id`` (her new household), a moved task that named her old household names the
    new one (the receiving cadre cannot open the old one)."""
    stmt = select(Task).where(
        Task.person_id == person_id, Task.status == TaskStatus.open, Task.village_code != to_village
    )
    if keep_sources:
        stmt = stmt.where(col(Task.source_entity).is_(None) | col(Task.source_entity).not_in(keep_sources))
    moved = 0
    for task in (await session.execute(stmt)).scalars():
        for key, value in place_columns(to_village).items():
            setattr(task, key, value)
        task.assignee_user_id = None
        if household_id is not None and task.household_id is not None:
            task.household_id = household_id
        touch(task)
        moved += 1
    return moved

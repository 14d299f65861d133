"""The task inbox. Other domains open tasks with ``open_task`` (follow-ups from visits,
prenatal care and referrals from checkups, partner notifications to confirm, overdue checkups);
cadres and township staff list and complete them."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from app.authz.actor import Actor
from app.authz.policies import FIELD_ROLES, require_role
from app.authz.scope import get_scoped, scoped
from app.core.db import utcnow
from app.core.errors import InvalidTransition
from app.core.pagination import paginate
from app.models.common import place_columns
from app.models.visits import Task, TaskKind, TaskPublic, TaskStatus
from app.services.changes import register_synced
from app.services.records import touch

register_synced("task", "task")


def task_public(t: Task, today: date | None = None) -> TaskPublic:
    today = today or date.today()
    data = {name: getattr(t, name) for name in TaskPublic.model_fields if name != "overdue"}
    data["overdue"] = t.status == TaskStatus.open and t.due_on < today
    return TaskPublic.model_validate(data)


def open_task(
    session: AsyncSession,
    *,
    kind: TaskKind,
    title: str,
    due_on: date,
    village_code: str,
    household_id: uuid.UUID | None = None,
    person_id: uuid.UUID | None = None,
    source_entity: str | None = None,
    source_id: uuid.UUID | None = None,
    assignee_user_id: uuid.UUID | None = None,
) -> Task:
    task = Task(
        kind=kind,
        title=title[:200],
        due_on=due_on,
        household_id=household_id,
        person_id=person_id,
        source_entity=source_entity,
        source_id=source_id,
        assignee_user_id=assignee_user_id,
        **place_columns(village_code),
    )
    session.add(task)
    return task


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
) -> tuple[list[Task], str | None]:
    """Tasks in scope, soonest due first (township users see all their villages' tasks)."""
    require_role(actor, *FIELD_ROLES)
    stmt = scoped(select(Task), actor)
    if status:
        stmt = stmt.where(Task.status == status)
    if kind:
        stmt = stmt.where(Task.kind == kind)
    if village_code:
        stmt = stmt.where(Task.village_code == village_code)
    if overdue is True:
        stmt = stmt.where(Task.status == TaskStatus.open, col(Task.due_on) < date.today())
    elif overdue is False:
        stmt = stmt.where(col(Task.due_on) >= date.today())
    return await paginate(session, stmt, order=[Task.due_on, Task.id], limit=limit, cursor=cursor)


async def complete_task(session: AsyncSession, actor: Actor, task_id: uuid.UUID, note: str | None) -> Task:
    require_role(actor, *FIELD_ROLES)
    task = await get_scoped(session, Task, task_id, actor)
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
    session: AsyncSession, person_id: uuid.UUID, *, to_village: str, keep_sources: tuple[str, ...] = ()
) -> int:
    """A person moved to another village: her open tasks go with her (to that village's cadres,
    unassigned), except those made by ``keep_sources`` records, which stay where they are."""
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
        touch(task)
        moved += 1
    return moved

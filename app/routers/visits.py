"""Home visits and the task inbox."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.core.errors import error_responses
from app.core.openapi import replayed
from app.core.pagination import Cursor, Limit, Page
from app.deps import Caller, IfMatch, SessionDep
from app.models.formats import TimestampFilter
from app.models.visits import (
    TaskComplete,
    TaskItem,
    TaskKind,
    TaskPublic,
    TaskStatus,
    VisitCreate,
    VisitPublic,
    VisitPurpose,
    VisitUpdate,
)
from app.services import tasks as tasks_svc
from app.services import visits as svc

router = APIRouter(prefix="/api/v1")


@router.post(
    "/visits",
    response_model=VisitPublic,
    status_code=201,
    tags=["visits"],
    responses={**error_responses(401, 403, 404, 409, 422), **replayed(VisitPublic)},
)
async def create_visit(
    session: SessionDep, caller: Caller, body: VisitCreate, response: Response
) -> VisitPublic:
    """Record a home visit; ``follow_up_on`` opens a task. A retry with the same id is 200."""
    visit, created = await svc.create_visit(session, caller, body)
    if not created:
        response.status_code = 200
    response.headers["ETag"] = f'"{visit.version}"'
    return svc.visit_public(visit)


@router.get(
    "/visits", response_model=Page[VisitPublic], tags=["visits"], responses=error_responses(401, 403, 422)
)
async def list_visits(
    session: SessionDep,
    caller: Caller,
    household_id: uuid.UUID | None = None,
    person_id: uuid.UUID | None = None,
    purpose: VisitPurpose | None = None,
    from_: Annotated[TimestampFilter | None, Query(alias="from", description="visited at or after")] = None,
    to: Annotated[TimestampFilter | None, Query(description="visited before")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[VisitPublic]:
    """Visits in your scope, newest first."""
    rows, nxt = await svc.list_visits(
        session,
        caller,
        household_id=household_id,
        person_id=person_id,
        purpose=purpose,
        from_=from_,
        to=to,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[svc.visit_public(v) for v in rows], next_cursor=nxt)


@router.get(
    "/visits/{visit_id:uuid}",
    response_model=VisitPublic,
    tags=["visits"],
    responses=error_responses(401, 403, 404),
)
async def get_visit(
    session: SessionDep, caller: Caller, visit_id: uuid.UUID, response: Response
) -> VisitPublic:
    """One visit."""
    visit = await svc.get_visit(session, caller, visit_id)
    response.headers["ETag"] = f'"{visit.version}"'
    return svc.visit_public(visit)


@router.patch(
    "/visits/{visit_id:uuid}",
    response_model=VisitPublic,
    tags=["visits"],
    responses=error_responses(401, 403, 404, 412, 422, 428),
)
async def update_visit(
    session: SessionDep,
    caller: Caller,
    visit_id: uuid.UUID,
    body: VisitUpdate,
    expected: IfMatch,
    response: Response,
) -> VisitPublic:
    """Correct a visit's purpose or notes; needs If-Match."""
    visit = await svc.update_visit(session, caller, visit_id, body, expected)
    response.headers["ETag"] = f'"{visit.version}"'
    return svc.visit_public(visit)


@router.get("/tasks", response_model=Page[TaskItem], tags=["tasks"], responses=error_responses(401, 403, 422))
async def list_tasks(
    session: SessionDep,
    caller: Caller,
    status: TaskStatus | None = None,
    kind: TaskKind | None = None,
    village_code: Annotated[str | None, Query(pattern=r"^[0-9]{12}$")] = None,
    overdue: bool | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[TaskItem]:
    """The task inbox: tasks in your scope, soonest due first, each with whom it is about."""
    rows, nxt = await tasks_svc.list_tasks(
        session,
        caller,
        status=status,
        kind=kind,
        village_code=village_code,
        overdue=overdue,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[tasks_svc.task_item(t) for t in rows], next_cursor=nxt)


@router.post(
    "/tasks/{task_id:uuid}/complete",
    response_model=TaskPublic,
    tags=["tasks"],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def complete_task(
    session: SessionDep, caller: Caller, task_id: uuid.UUID, body: TaskComplete | None = None
) -> TaskPublic:
    """Mark an open task done."""
    task = await tasks_svc.complete_task(session, caller, task_id, body.note if body else None)
    return tasks_svc.task_public(task)

"""Checkup rounds and appointments."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response

from app.core.errors import error_responses
from app.core.pagination import Cursor, Limit, Page
from app.deps import Caller, IfMatch, SessionDep, if_match
from app.models.checkups import (
    AppointmentItem,
    AppointmentPublic,
    AppointmentStatus,
    AreaFigures,
    CancelIn,
    DeclineIn,
    ExemptIn,
    RescheduleIn,
    ResultCorrection,
    ResultIn,
    RoundCreate,
    RoundCreated,
    RoundDetail,
    RoundPublic,
)
from app.services import checkups as svc

router = APIRouter(prefix="/api/v1", tags=["checkups"])

ACT_ERRORS = error_responses(401, 403, 404, 409, 422)


@router.post("/checkup-rounds", response_model=RoundCreated, status_code=201, responses=ACT_ERRORS)
async def create_round(session: SessionDep, caller: Caller, body: RoundCreate) -> RoundCreated:
    """Open a round (township, county) for an area in your scope; every due woman gets an appointment."""
    rnd, created = await svc.create_round(session, caller, body)
    return RoundCreated(**svc.round_public(rnd).model_dump(), appointments_created=created)


@router.get("/checkup-rounds", response_model=Page[RoundPublic], responses=error_responses(401, 403, 422))
async def list_rounds(
    session: SessionDep,
    caller: Caller,
    area_code: Annotated[str | None, Query(pattern=r"^[0-9]{12}$")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[RoundPublic]:
    """Rounds covering your area, newest first."""
    rows, nxt = await svc.list_rounds(session, caller, area_code=area_code, limit=limit, cursor=cursor)
    return Page(items=[svc.round_public(r) for r in rows], next_cursor=nxt)


@router.get(
    "/checkup-rounds/{round_id:uuid}", response_model=RoundDetail, responses=error_responses(401, 403, 404)
)
async def get_round(session: SessionDep, caller: Caller, round_id: uuid.UUID) -> RoundDetail:
    """A round with due / done / declined / exempted / overdue / rate for your scope."""
    rnd = await svc.get_round(session, caller, round_id)
    figures = await svc.round_figures(session, caller, rnd)
    return RoundDetail(**svc.round_public(rnd).model_dump(), **figures.model_dump())


@router.get(
    "/checkup-rounds/{round_id:uuid}/breakdown",
    response_model=list[AreaFigures],
    responses=error_responses(401, 403, 404),
)
async def breakdown(session: SessionDep, caller: Caller, round_id: uuid.UUID) -> list[AreaFigures]:
    """The round's figures per child area of your scope, worst rate first."""
    return await svc.round_breakdown(session, caller, round_id)


@router.post("/checkup-rounds/{round_id:uuid}/refresh", response_model=RoundCreated, responses=ACT_ERRORS)
async def refresh(session: SessionDep, caller: Caller, round_id: uuid.UUID) -> RoundCreated:
    """Add women who became due while the round is open without a register event (turned 15)."""
    rnd, created = await svc.refresh_round(session, caller, round_id)
    return RoundCreated(**svc.round_public(rnd).model_dump(), appointments_created=created)


@router.get(
    "/checkup-appointments", response_model=Page[AppointmentItem], responses=error_responses(401, 403, 422)
)
async def list_appointments(
    session: SessionDep,
    caller: Caller,
    round_id: uuid.UUID | None = None,
    status: AppointmentStatus | None = None,
    village_code: Annotated[str | None, Query(pattern=r"^[0-9]{12}$")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AppointmentItem]:
    """Appointments in your scope; ``overdue`` = still scheduled after the window closed."""
    rows, nxt = await svc.list_appointments(
        session,
        caller,
        round_id=round_id,
        status=status,
        village_code=village_code,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=await svc.appointment_items(session, rows), next_cursor=nxt)


@router.get(
    "/checkup-appointments/{appointment_id:uuid}",
    response_model=AppointmentPublic,
    responses=error_responses(401, 403, 404),
)
async def get_appointment(
    session: SessionDep, caller: Caller, appointment_id: uuid.UUID, response: Response
) -> AppointmentPublic:
    """One appointment (its result included)."""
    appt, rnd = await svc.get_appointment(session, caller, appointment_id)
    response.headers["ETag"] = f'"{appt.version}"'
    return svc.appointment_public(appt, rnd.closes_on)


@router.post(
    "/checkup-appointments/{appointment_id:uuid}/result",
    response_model=AppointmentPublic,
    responses=ACT_ERRORS,
)
async def record_result(
    session: SessionDep, caller: Caller, appointment_id: uuid.UUID, body: ResultIn, response: Response
) -> AppointmentPublic:
    """Record the checkup result (consent required; only the round's items)."""
    appt, rnd, _created = await svc.record_result(session, caller, appointment_id, body)
    response.headers["ETag"] = f'"{appt.version}"'
    return svc.appointment_public(appt, rnd.closes_on)


@router.patch(
    "/checkup-appointments/{appointment_id:uuid}/result",
    response_model=AppointmentPublic,
    responses=error_responses(401, 403, 404, 409, 412, 422, 428),
)
async def correct_result(
    session: SessionDep,
    caller: Caller,
    appointment_id: uuid.UUID,
    body: ResultCorrection,
    expected: IfMatch,
    response: Response,
) -> AppointmentPublic:
    """Correct a recorded result (If-Match with the appointment's version; audited)."""
    appt, rnd = await svc.correct_result(session, caller, appointment_id, body, expected)
    response.headers["ETag"] = f'"{appt.version}"'
    return svc.appointment_public(appt, rnd.closes_on)


@router.post(
    "/checkup-appointments/{appointment_id:uuid}/decline",
    response_model=AppointmentPublic,
    responses=ACT_ERRORS,
)
async def decline(
    session: SessionDep, caller: Caller, appointment_id: uuid.UUID, body: DeclineIn
) -> AppointmentPublic:
    """She declined the checkup (a valid outcome)."""
    appt, rnd = await svc.decline(session, caller, appointment_id, body)
    return svc.appointment_public(appt, rnd.closes_on)


@router.post(
    "/checkup-appointments/{appointment_id:uuid}/exempt",
    response_model=AppointmentPublic,
    responses=ACT_ERRORS,
)
async def exempt(
    session: SessionDep, caller: Caller, appointment_id: uuid.UUID, body: ExemptIn
) -> AppointmentPublic:
    """Exempt her (pregnant, postpartum, sterilised, hysterectomy, other), optionally until a date."""
    appt, rnd = await svc.exempt(session, caller, appointment_id, body)
    return svc.appointment_public(appt, rnd.closes_on)


async def optional_if_match(
    value: Annotated[
        str | None,
        Header(alias="If-Match", description='Optional: the version you read ("3"); stale → 412'),
    ] = None,
) -> int | None:
    """Like the PATCH precondition, but optional: the actions act on the current version."""
    return None if value is None else await if_match(value)


OptionalIfMatch = Annotated[int | None, Depends(optional_if_match)]


@router.post(
    "/checkup-appointments/{appointment_id:uuid}/reschedule",
    response_model=AppointmentPublic,
    responses=error_responses(401, 403, 404, 409, 412, 422),
)
async def reschedule(
    session: SessionDep,
    caller: Caller,
    appointment_id: uuid.UUID,
    body: RescheduleIn,
    expected: OptionalIfMatch,
    response: Response,
) -> AppointmentPublic:
    """Set the day (within the window, not before today; null: any day) and place she is expected."""
    appt, rnd = await svc.reschedule(session, caller, appointment_id, body, expected)
    response.headers["ETag"] = f'"{appt.version}"'
    return svc.appointment_public(appt, rnd.closes_on)


@router.post(
    "/checkup-appointments/{appointment_id:uuid}/cancel",
    response_model=AppointmentPublic,
    responses=error_responses(401, 403, 404, 409, 412, 422),
)
async def cancel(
    session: SessionDep,
    caller: Caller,
    appointment_id: uuid.UUID,
    body: CancelIn,
    expected: OptionalIfMatch,
    response: Response,
) -> AppointmentPublic:
    """Cancel an appointment with a reason (township, county); it counts in no figure."""
    appt, rnd = await svc.cancel(session, caller, appointment_id, body, expected)
    response.headers["ETag"] = f'"{appt.version}"'
    return svc.appointment_public(appt, rnd.closes_on)

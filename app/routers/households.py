"""Register endpoints: households, persons, moves, merges, births, deaths, data quality."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse

from app.core.errors import error_responses
from app.core.openapi import replayed
from app.core.pagination import Cursor, Limit, Page
from app.deps import Caller, CipherDep, IfMatch, SessionDep
from app.models.households import (
    BirthCreate,
    BirthPublic,
    DataQualityFault,
    DeathCreate,
    DeathPublic,
    DismissalPublic,
    DismissRequest,
    HouseholdCreate,
    HouseholdDetail,
    HouseholdPublic,
    HouseholdUpdate,
    MaritalStatus,
    MergePublic,
    MergeRequest,
    MoveRequest,
    PersonCreate,
    PersonDetail,
    PersonPublic,
    PersonUpdate,
    Sex,
)
from app.services import data_quality as dq
from app.services import households as svc
from app.services import rosters, vital_events
from app.services.rosters import XLSX

router = APIRouter(prefix="/api/v1", tags=["register"])

WRITE_ERRORS = error_responses(401, 403, 404, 409, 422)
PATCH_ERRORS = error_responses(401, 403, 404, 409, 412, 422, 428)


AGE_MIN = (
    "at least this age in whole years on today's date in China (born on or before today that many years ago)"
)
AGE_MAX = (
    "at most this age in whole years on today's date in China (born after today that many years + 1 ago);"
    " below age_min: 422 `invalid_range`"
)


def _etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


@router.post(
    "/households",
    response_model=HouseholdPublic,
    status_code=201,
    responses={**WRITE_ERRORS, **replayed(HouseholdPublic)},
)
async def create_household(
    session: SessionDep, caller: Caller, body: HouseholdCreate, response: Response
) -> HouseholdPublic:
    """Register a household (client may supply the id; a retry with the same content is 200)."""
    household, created = await svc.create_household(session, caller, body)
    if not created:
        response.status_code = 200
    _etag(response, household.version)
    return svc.household_public(household)


@router.get("/households", response_model=Page[HouseholdPublic], responses=error_responses(401, 403, 422))
async def list_households(
    session: SessionDep,
    caller: Caller,
    village_code: Annotated[str | None, Query(pattern=r"^[0-9]{12}$")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100, description="address contains")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[HouseholdPublic]:
    """Households in your scope."""
    rows, nxt = await svc.list_households(
        session, caller, village_code=village_code, q=q, limit=limit, cursor=cursor
    )
    return Page(items=[svc.household_public(h) for h in rows], next_cursor=nxt)


@router.get(
    "/households/{household_id:uuid}",
    response_model=HouseholdDetail,
    responses=error_responses(401, 403, 404),
)
async def get_household(
    session: SessionDep, caller: Caller, cipher: CipherDep, household_id: uuid.UUID, response: Response
) -> HouseholdDetail:
    """A household with its members (ID numbers and phones masked)."""
    household = await svc.get_household(session, caller, household_id)
    members = await svc.household_members(session, caller, household.id)
    _etag(response, household.version)
    return HouseholdDetail(
        **svc.household_public(household).model_dump(),
        members=[svc.person_public(p, cipher) for p in members],
    )


@router.patch("/households/{household_id:uuid}", response_model=HouseholdPublic, responses=PATCH_ERRORS)
async def update_household(
    session: SessionDep,
    caller: Caller,
    household_id: uuid.UUID,
    body: HouseholdUpdate,
    expected: IfMatch,
    response: Response,
) -> HouseholdPublic:
    """Change address, type or head; needs If-Match with the version you read."""
    household = await svc.update_household(session, caller, household_id, body, expected)
    _etag(response, household.version)
    return svc.household_public(household)


@router.post(
    "/persons",
    response_model=PersonPublic,
    status_code=201,
    responses={**WRITE_ERRORS, **replayed(PersonPublic)},
)
async def create_person(
    session: SessionDep, caller: Caller, cipher: CipherDep, body: PersonCreate, response: Response
) -> PersonPublic:
    """Register a person in a household (ID number optional for babies); answered masked."""
    person, created = await svc.create_person(session, caller, cipher, body)
    if not created:
        response.status_code = 200
    _etag(response, person.version)
    return svc.person_public(person, cipher)


@router.get("/persons", response_model=Page[PersonPublic], responses=error_responses(401, 403, 422))
async def list_persons(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    household_id: uuid.UUID | None = None,
    village_code: Annotated[str | None, Query(pattern=r"^[0-9]{12}$")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=50, description="name contains")] = None,
    id_number: Annotated[str | None, Query(max_length=32, description="exact match; audited")] = None,
    include_merged: bool = False,
    limit: Limit = 50,
    cursor: Cursor = None,
    sex: Sex | None = None,
    marital_status: MaritalStatus | None = None,
    age_min: Annotated[int | None, Query(ge=0, le=150, description=AGE_MIN)] = None,
    age_max: Annotated[int | None, Query(ge=0, le=150, description=AGE_MAX)] = None,
) -> Page[PersonPublic]:
    """Persons in your scope; ID numbers and phones masked. Filters combine (all must hold)."""
    rows, nxt = await svc.list_persons(
        session,
        caller,
        cipher,
        household_id=household_id,
        village_code=village_code,
        q=q,
        id_number=id_number,
        include_merged=include_merged,
        limit=limit,
        cursor=cursor,
        sex=sex,
        marital_status=marital_status,
        age_min=age_min,
        age_max=age_max,
    )
    return Page(items=[svc.person_public(p, cipher) for p in rows], next_cursor=nxt)


@router.get(
    "/persons.xlsx",
    response_class=FileResponse,
    responses={
        200: {"content": {XLSX: {}}, "description": "The 花名册 workbook"},
        **error_responses(401, 403, 422),
    },
)
async def export_persons(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    household_id: uuid.UUID | None = None,
    village_code: Annotated[str | None, Query(pattern=r"^[0-9]{12}$")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=50, description="name contains")] = None,
    id_number: Annotated[str | None, Query(max_length=32, description="exact match; audited")] = None,
    include_merged: bool = False,
    sex: Sex | None = None,
    marital_status: MaritalStatus | None = None,
    age_min: Annotated[int | None, Query(ge=0, le=150, description=AGE_MIN)] = None,
    age_max: Annotated[int | None, Query(ge=0, le=150, description=AGE_MAX)] = None,
    full_id_numbers: Annotated[
        bool, Query(description="county and admin only (403 otherwise): full ID numbers and phones; audited")
    ] = False,
) -> FileResponse:
    """The persons list as the roster workbook (花名册): the same filters and scope, every
    matching person (at most 100,000 rows, else 422 `export_too_large`); ID numbers and phones
    masked unless `full_id_numbers`. Every export is audited with its row count."""
    export = await rosters.persons_xlsx(
        session,
        caller,
        cipher,
        full_id_numbers=full_id_numbers,
        household_id=household_id,
        village_code=village_code,
        q=q,
        id_number=id_number,
        include_merged=include_merged,
        sex=sex,
        marital_status=marital_status,
        age_min=age_min,
        age_max=age_max,
    )
    return rosters.file_response(export)


@router.get(
    "/persons/{person_id:uuid}", response_model=PersonDetail, responses=error_responses(401, 403, 404)
)
async def get_person(
    session: SessionDep, caller: Caller, cipher: CipherDep, person_id: uuid.UUID, response: Response
) -> PersonDetail:
    """One person with the full ID number and phone (the read is written to the audit log)."""
    person = await svc.read_person_in_full(session, caller, person_id)
    _etag(response, person.version)
    return svc.person_detail(person, cipher)


@router.patch("/persons/{person_id:uuid}", response_model=PersonPublic, responses=PATCH_ERRORS)
async def update_person(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    person_id: uuid.UUID,
    body: PersonUpdate,
    expected: IfMatch,
    response: Response,
) -> PersonPublic:
    """Correct a person; needs If-Match with the version you read."""
    person = await svc.update_person(session, caller, cipher, person_id, body, expected)
    _etag(response, person.version)
    return svc.person_public(person, cipher)


@router.post("/persons/{person_id:uuid}/move", response_model=PersonPublic, responses=WRITE_ERRORS)
async def move_person(
    session: SessionDep, caller: Caller, cipher: CipherDep, person_id: uuid.UUID, body: MoveRequest
) -> PersonPublic:
    """Move a person to another household in your scope (kept in history)."""
    person = await svc.move_person(session, caller, person_id, body.household_id)
    return svc.person_public(person, cipher)


@router.post("/persons/{person_id:uuid}/merge", response_model=MergePublic, responses=WRITE_ERRORS)
async def merge_person(
    session: SessionDep, caller: Caller, person_id: uuid.UUID, body: MergeRequest
) -> MergePublic:
    """Township/county: this record duplicates ``into_id``; everything attached moves there."""
    merge = await svc.merge_persons(session, caller, person_id, body.into_id)
    import json

    return MergePublic(
        id=merge.id,
        merged_id=merge.merged_id,
        into_id=merge.into_id,
        moved=len(json.loads(merge.moved_refs)),
        merged_at=merge.merged_at,
    )


@router.post(
    "/births",
    response_model=BirthPublic,
    status_code=201,
    responses={**WRITE_ERRORS, **replayed(BirthPublic)},
)
async def create_birth(
    session: SessionDep, caller: Caller, cipher: CipherDep, body: BirthCreate, response: Response
) -> BirthPublic:
    """Record a birth: the child joins the mother's household; birth order is derived."""
    birth, created = await vital_events.create_birth(session, caller, cipher, body)
    if not created:
        response.status_code = 200
    return BirthPublic.model_validate(birth, from_attributes=True)


@router.post(
    "/deaths",
    response_model=DeathPublic,
    status_code=201,
    responses={**WRITE_ERRORS, **replayed(DeathPublic)},
)
async def create_death(
    session: SessionDep, caller: Caller, body: DeathCreate, response: Response
) -> DeathPublic:
    """Record a death: the person stays on record as deceased."""
    death, created = await vital_events.create_death(session, caller, body)
    if not created:
        response.status_code = 200
    return DeathPublic.model_validate(death, from_attributes=True)


@router.get(
    "/data-quality", response_model=list[DataQualityFault], responses=error_responses(401, 403, 404, 422)
)
async def data_quality(
    session: SessionDep,
    caller: Caller,
    area_code: Annotated[str | None, Query(pattern=r"^[0-9]{12}$")] = None,
    kind: Annotated[str | None, Query(pattern="^(" + "|".join(dq.KINDS) + ")$")] = None,
    include_dismissed: Annotated[
        bool, Query(description="Also the dismissed faults (with who, when and why)")
    ] = False,
) -> list[DataQualityFault]:
    """Open data-quality faults in your scope (at most 1000 per kind), each with its person and
    household."""
    faults = await dq.list_faults(
        session, caller, area_code=area_code, kind=kind, include_dismissed=include_dismissed
    )
    return await dq.add_people(session, faults)


@router.post(
    "/data-quality/dismiss",
    response_model=list[DismissalPublic],
    status_code=201,
    responses=error_responses(401, 403, 404, 422),
)
async def dismiss_fault(session: SessionDep, caller: Caller, body: DismissRequest) -> list[DismissalPublic]:
    """Township/county: set a fault aside until the fields it rests on change (a duplicate: the pair)."""
    rows = await dq.dismiss_fault(session, caller, body)
    return [dq.dismissal_public(d) for d in rows]

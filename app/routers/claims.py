"""Benefit claims: programmes and rule versions, checks, claims and their workflow."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from app.core.errors import error_responses
from app.core.openapi import replayed
from app.core.pagination import Cursor, Limit, Page
from app.deps import Caller, CipherDep, IfMatch, SessionDep
from app.models.claims import (
    CheckRequest,
    CheckResult,
    Claim,
    ClaimCreate,
    ClaimDetail,
    ClaimItem,
    ClaimPublic,
    ClaimStatus,
    ClaimUpdate,
    Comment,
    DecisionBody,
    ObjectBody,
    PayBody,
    PayeeChange,
    ProgrammeCode,
    ProgrammePublic,
    PublishBody,
    RenewalRequest,
    RenewalResult,
    RuleVersionCreate,
    RuleVersionPublic,
)
from app.services import claims as svc
from app.services import rosters
from app.services.rosters import XLSX

router = APIRouter(prefix="/api/v1", tags=["claims"])

STEP_ERRORS = error_responses(401, 403, 404, 409, 422)


def _etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


@router.get(
    "/programmes", response_model=list[ProgrammePublic], responses=error_responses(401, 403, 404, 422)
)
async def list_programmes(
    session: SessionDep,
    caller: Caller,
    area_code: Annotated[
        str | None, Query(pattern=r"^[0-9]{12}$", description="default: your county")
    ] = None,
) -> list[ProgrammePublic]:
    """The benefit programmes and their rule versions in force in an area (national and the
    county's own), with effective dates."""
    return await svc.list_programmes(session, caller, area_code)


@router.post(
    "/programmes/{code}/rules",
    response_model=RuleVersionPublic,
    status_code=201,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def add_rule_version(
    session: SessionDep, caller: Caller, code: ProgrammeCode, body: RuleVersionCreate
) -> RuleVersionPublic:
    """Admin: add a rule version for your county effective from a date (missing params carry over)."""
    version = await svc.add_rule_version(session, caller, code.value, body)
    return svc.version_public(version)


@router.post("/claims/check", response_model=CheckResult, responses=STEP_ERRORS)
async def check_claim(session: SessionDep, caller: Caller, body: CheckRequest) -> CheckResult:
    """Evaluate eligibility and amount with one reason per rule; writes nothing."""
    return await svc.check_claim(session, caller, body)


@router.post(
    "/claims", response_model=ClaimPublic, status_code=201, responses={**STEP_ERRORS, **replayed(ClaimPublic)}
)
async def create_claim(
    session: SessionDep, caller: Caller, cipher: CipherDep, body: ClaimCreate, response: Response
) -> ClaimPublic:
    """Prepare a claim (draft, evaluated). A retry with the same id and content is 200."""
    claim, created = await svc.create_claim(session, caller, cipher, body)
    if not created:
        response.status_code = 200
    _etag(response, claim.version)
    return await svc.claim_public(session, claim)


@router.get("/claims", response_model=Page[ClaimItem], responses=error_responses(401, 403, 404, 422))
async def list_claims(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    programme: ProgrammeCode | None = None,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    status: ClaimStatus | None = None,
    area_code: Annotated[str | None, Query(pattern=r"^[0-9]{12}$")] = None,
    person_id: uuid.UUID | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=50, description="the beneficiary's name contains")
    ] = None,
    id_number: Annotated[
        str | None, Query(max_length=32, description="the beneficiary's ID number, exact match; audited")
    ] = None,
) -> Page[ClaimItem]:
    """Claims in your scope, newest first, each with its beneficiary. Filters combine (all must
    hold)."""
    rows, nxt = await svc.list_claims(
        session,
        caller,
        programme=programme,
        year=year,
        status=status,
        area_code=area_code,
        person_id=person_id,
        limit=limit,
        cursor=cursor,
        q=q,
        id_number=id_number,
        cipher=cipher,
    )
    return Page(items=await svc.claim_items(session, rows), next_cursor=nxt)


@router.get(
    "/claims.xlsx",
    response_class=FileResponse,
    responses={
        200: {"content": {XLSX: {}}, "description": "The claims workbook"},
        **error_responses(401, 403, 404, 422),
    },
)
async def export_claims(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    programme: ProgrammeCode | None = None,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    status: ClaimStatus | None = None,
    area_code: Annotated[str | None, Query(pattern=r"^[0-9]{12}$")] = None,
    person_id: uuid.UUID | None = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=50, description="the beneficiary's name contains")
    ] = None,
    id_number: Annotated[
        str | None, Query(max_length=32, description="the beneficiary's ID number, exact match; audited")
    ] = None,
) -> FileResponse:
    """The claims list as a workbook: the same filters and scope, every matching claim, newest
    first (at most 100,000 rows, else 422 `export_too_large`); ID numbers and accounts masked.
    Audited with its row count."""
    export = await rosters.claims_xlsx(
        session,
        caller,
        cipher,
        programme=programme,
        year=year,
        status=status,
        area_code=area_code,
        person_id=person_id,
        q=q,
        id_number=id_number,
    )
    return rosters.file_response(export)


@router.post("/claims/renewals", response_model=RenewalResult, responses=error_responses(401, 403, 409, 422))
async def renew_claims(session: SessionDep, caller: Caller, body: RenewalRequest) -> RenewalResult:
    """County: drafts for the year after `year` (`for_year` in the answer) for the beneficiaries
    paid for `year`; lists who exits and why."""
    return await svc.renew(session, caller, body.programme, body.year)


@router.get(
    "/claims/payments.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **error_responses(401, 403, 422)},
)
async def payments_csv(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    programme: ProgrammeCode | None = None,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    status: ClaimStatus = ClaimStatus.posted,
) -> Response:
    """County: the bank file (UTF-8 with BOM; ID numbers masked)."""
    body = await svc.payments_csv(session, caller, cipher, programme=programme, year=year, status=status)
    name = f"payments-{programme.value if programme else 'all'}-{year or 'all'}-{status.value}.csv"
    return Response(
        content=body.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/claims/{claim_id:uuid}", response_model=ClaimDetail, responses=error_responses(401, 403, 404))
async def get_claim(
    session: SessionDep, caller: Caller, claim_id: uuid.UUID, response: Response
) -> ClaimDetail:
    """One claim with its history (every step: who, when, from, to, comment) and payment."""
    claim = await svc.get_claim(session, caller, claim_id)
    _etag(response, claim.version)
    return await svc.claim_detail(session, claim)


@router.patch(
    "/claims/{claim_id:uuid}",
    response_model=ClaimDetail,
    responses=error_responses(401, 403, 404, 409, 412, 422, 428),
)
async def update_claim(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    claim_id: uuid.UUID,
    body: ClaimUpdate,
    expected: IfMatch,
    response: Response,
) -> ClaimDetail:
    """Village: correct a draft or returned claim (facts, applicant, payee); it is evaluated again."""
    claim = await svc.update_claim(session, caller, cipher, claim_id, body, expected)
    _etag(response, claim.version)
    return await svc.claim_detail(session, claim)


async def _done(session: SessionDep, claim: Claim, response: Response) -> ClaimDetail:
    _etag(response, claim.version)
    return await svc.claim_detail(session, claim)


@router.post("/claims/{claim_id:uuid}/submit", response_model=ClaimDetail, responses=STEP_ERRORS)
async def submit_claim(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    claim_id: uuid.UUID,
    response: Response,
    body: Comment | None = None,
) -> ClaimDetail:
    """Village: draft|returned → submitted (evaluated again; 422 ``not_eligible`` while it fails)."""
    claim = await svc.transition(
        session, caller, cipher, claim_id, "submit", comment=body.comment if body else None
    )
    return await _done(session, claim, response)


@router.post("/claims/{claim_id:uuid}/review", response_model=ClaimDetail, responses=STEP_ERRORS)
async def review_claim(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    claim_id: uuid.UUID,
    body: DecisionBody,
    response: Response,
) -> ClaimDetail:
    """Township: submitted → reviewed | returned | rejected (not by the submitter)."""
    claim = await svc.transition(
        session, caller, cipher, claim_id, "review", decision=body.decision, comment=body.comment
    )
    return await _done(session, claim, response)


@router.post("/claims/{claim_id:uuid}/approve", response_model=ClaimDetail, responses=STEP_ERRORS)
async def approve_claim(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    claim_id: uuid.UUID,
    body: DecisionBody,
    response: Response,
) -> ClaimDetail:
    """County: reviewed → approved | returned | rejected (not by the submitter or reviewer)."""
    claim = await svc.transition(
        session, caller, cipher, claim_id, "approve", decision=body.decision, comment=body.comment
    )
    return await _done(session, claim, response)


@router.post("/claims/{claim_id:uuid}/publish", response_model=ClaimDetail, responses=STEP_ERRORS)
async def publish_claim(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    claim_id: uuid.UUID,
    request: Request,
    response: Response,
    body: PublishBody | None = None,
) -> ClaimDetail:
    """County: approved → posted for ``notice_days`` (default from the settings)."""
    claim = await svc.transition(
        session,
        caller,
        cipher,
        claim_id,
        "publish",
        notice_days=body.notice_days if body else None,
        default_notice_days=request.app.state.settings.claim_notice_days,
    )
    return await _done(session, claim, response)


@router.post("/claims/{claim_id:uuid}/object", response_model=ClaimDetail, responses=STEP_ERRORS)
async def object_claim(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    claim_id: uuid.UUID,
    body: ObjectBody,
    response: Response,
) -> ClaimDetail:
    """County: an objection while posted sends the claim back to ``reviewed``."""
    claim = await svc.transition(session, caller, cipher, claim_id, "object", comment=body.comment)
    return await _done(session, claim, response)


@router.post("/claims/{claim_id:uuid}/pay", response_model=ClaimDetail, responses=STEP_ERRORS)
async def pay_claim(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    claim_id: uuid.UUID,
    body: PayBody,
    response: Response,
) -> ClaimDetail:
    """County: posted and the notice period over → paid (the approved amount only)."""
    claim = await svc.transition(
        session,
        caller,
        cipher,
        claim_id,
        "pay",
        paid_on=body.paid_on,
        amount=body.amount,
        reference=body.reference,
    )
    return await _done(session, claim, response)


@router.post("/claims/{claim_id:uuid}/change_payee", response_model=ClaimDetail, responses=STEP_ERRORS)
async def change_payee(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    claim_id: uuid.UUID,
    body: PayeeChange,
    response: Response,
) -> ClaimDetail:
    """After submission: a new payee account, recorded, back to the township's review."""
    claim = await svc.change_payee(session, caller, cipher, claim_id, body.payee, body.comment)
    return await _done(session, claim, response)

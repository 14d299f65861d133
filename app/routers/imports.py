"""Imports of existing registers: dry run, commit, report, errors workbook, templates."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile
from fastapi import Path as PathParam

from app.core.errors import PayloadTooLarge, error_responses
from app.deps import Caller, CipherDep, SessionDep
from app.models.imports import CommitRequest, CommitResult, ImportKind, ImportReport
from app.services import imports as svc

router = APIRouter(prefix="/api/v1/imports", tags=["imports"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: The largest upload (also enforced on the body as it streams in: 413 beyond).
MAX_UPLOAD_BYTES = 32 * 1024 * 1024


def _xlsx(content: bytes, name: str) -> Response:
    return Response(
        content=content,
        media_type=XLSX,
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


@router.post(
    "",
    response_model=ImportReport,
    status_code=201,
    responses={
        200: {"model": ImportReport, "description": "The same file was imported before: that import"},
        **error_responses(401, 403, 413, 422),
    },
)
async def create_import(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    response: Response,
    file: Annotated[UploadFile, File(description=".xlsx or .csv (UTF-8, with or without BOM, or GB18030)")],
    kind: Annotated[ImportKind, Form()],
) -> ImportReport:
    """Township/county: validate a file (dry run); nothing is written but the import's report."""
    content = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(content) > MAX_UPLOAD_BYTES:
        limit = MAX_UPLOAD_BYTES
        raise PayloadTooLarge(f"The file is over {limit} bytes", code="import_too_large")
    job, created = await svc.validate_upload(
        session, caller, cipher, kind=kind, file_name=file.filename or "upload.xlsx", content=content
    )
    if not created:
        response.status_code = 200
    return svc.import_report(job)


@router.get(
    "/templates/{kind}.xlsx",
    responses={200: {"content": {XLSX: {}}}, **error_responses(401, 403, 404, 422)},
    response_class=Response,
)
async def template(caller: Caller, kind: Annotated[ImportKind, PathParam()]) -> Response:
    """The template of a kind: headers, one example row, and a sheet of allowed values."""
    svc.require_importer(caller)
    return _xlsx(svc.template_xlsx(kind), f"{kind.value}-template.xlsx")


@router.get("/{import_id}", response_model=ImportReport, responses=error_responses(401, 403, 404, 422))
async def get_import(session: SessionDep, caller: Caller, import_id: uuid.UUID) -> ImportReport:
    """An import's report."""
    return svc.import_report(await svc.get_import(session, caller, import_id))


@router.post(
    "/{import_id}/commit", response_model=CommitResult, responses=error_responses(401, 403, 404, 409, 422)
)
async def commit_import(
    session: SessionDep,
    caller: Caller,
    cipher: CipherDep,
    import_id: uuid.UUID,
    body: CommitRequest | None = None,
) -> CommitResult:
    """Write the valid rows in one transaction (a second commit writes nothing)."""
    return await svc.commit_import(
        session, caller, cipher, import_id, require_all=body.require_all if body else False
    )


@router.get(
    "/{import_id}/errors.xlsx",
    responses={200: {"content": {XLSX: {}}}, **error_responses(401, 403, 404, 422)},
    response_class=Response,
)
async def errors_workbook(
    session: SessionDep, caller: Caller, cipher: CipherDep, import_id: uuid.UUID
) -> Response:
    """The rows with errors as uploaded, with a column of reasons (the read is audited)."""
    job, content = await svc.errors_workbook(session, caller, cipher, import_id)
    return _xlsx(content, f"import-{job.id}-errors.xlsx")

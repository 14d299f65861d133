"""Health, readiness and Prometheus metrics (no token needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from app.core.errors import Forbidden, ServiceUnavailable, error_responses
from app.core.metrics import REGISTRY
from app.core.migrations import current_revisions, head_revisions

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    database: str
    schema_revision: str | None


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses=error_responses(503))
async def readyz(request: Request) -> Ready:
    """The database answers and its schema is at the migrations' head."""
    engine = request.app.state.engine
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        revs = await current_revisions(engine)
    except Exception:
        raise ServiceUnavailable("Database unreachable", code="database_unreachable") from None
    if revs != head_revisions(request.app.state.settings.database_url):
        raise ServiceUnavailable("Database schema is not current", code="schema_outdated")
    return Ready(status="ready", database="ok", schema_revision=",".join(sorted(revs)))


@router.get("/metrics", response_class=Response, responses=error_responses(403))
async def metrics(request: Request) -> Response:
    """Prometheus metrics; JIAHE_METRICS_PUBLIC=false closes it (403)."""
    if not request.app.state.settings.metrics_public:
        raise Forbidden("Metrics are not public here")
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

"""Application factory: settings, engine, routers, middleware, error handlers."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings, get_settings
from app.core.context import client_ip_var, request_id_var
from app.core.db import make_engine, make_sessionmaker
from app.core.errors import install_error_handlers, unexpected_error_response
from app.core.limits import EdgeLimitsMiddleware
from app.core.logging import configure_logging
from app.core.metrics import LATENCY, REQUESTS
from app.core.openapi import complete_openapi
from app.core.security import FieldCipher, TokenService
from app.routers import admin, auth, households, ops, sync, visits
from app.routers import checkups as checkups_router
from app.routers import claims as claims_router
from app.routers import indicators as indicators_router
from app.routers import migrants as migrants_router
from app.services.auth import AuthContext, LoginThrottle

log = logging.getLogger("jiahe.http")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")

DESCRIPTION = """REST API for county family health & welfare field work: the household register,
home visits, checkups, migrants, benefit claims and county figures. Errors are
`application/problem+json` with a stable `code`."""


def create_app(settings: Settings | None = None, engine: AsyncEngine | None = None) -> FastAPI:
    settings = settings or get_settings()
    owns_engine = engine is None
    engine = engine or make_engine(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_engine:
            await engine.dispose()

    app = FastAPI(
        title="Jiahe 家和 API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.auth = AuthContext(
        tokens=TokenService(settings),
        cipher=FieldCipher(settings),
        throttle=LoginThrottle(settings),
        grace_seconds=settings.refresh_reuse_grace_seconds,
    )
    app.state.cipher = app.state.auth.cipher

    install_error_handlers(app)
    app.openapi = lambda: complete_openapi(app)  # type: ignore[method-assign]
    for module in (
        ops,
        auth,
        admin,
        households,
        visits,
        sync,
        checkups_router,
        claims_router,
        migrants_router,
        indicators_router,
    ):
        app.include_router(module.router)

    app.add_middleware(EdgeLimitsMiddleware, settings=settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "X-Request-ID"],
        )

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        incoming = request.headers.get("x-request-id", "")
        rid = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        rid_token = request_id_var.set(rid)
        ip_token = client_ip_var.set(request.client.host if request.client else None)
        start = time.perf_counter()
        status = 500
        try:
            try:
                response = await call_next(request)
            except Exception as exc:  # rendered here so the body carries the request id
                response = unexpected_error_response(exc)
            status = response.status_code
            response.headers["X-Request-ID"] = rid
            return response
        finally:
            elapsed = time.perf_counter() - start
            route = request.scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(request.method, template, str(status)).inc()
            LATENCY.labels(request.method, template).observe(elapsed)
            actor = getattr(request.state, "actor", None)
            # Route template, never the raw URL: paths and queries may carry personal data.
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "route": template,
                    "status": status,
                    "ms": round(elapsed * 1000, 1),
                    "actor_id": str(actor.id) if actor else None,
                    "role": actor.role.value if actor else None,
                },
            )
            request_id_var.reset(rid_token)
            client_ip_var.reset(ip_token)

    return app


def _default_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


app = _default_app()

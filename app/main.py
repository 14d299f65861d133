"""Application factory: settings, engine, routers, middleware, error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings, get_settings
from app.core.db import make_engine, make_sessionmaker
from app.core.errors import install_error_handlers
from app.core.limits import EdgeLimitsMiddleware
from app.core.logging import configure_logging, install_db_error_scrubbing
from app.core.openapi import complete_openapi
from app.core.pagination import configure_cursor_key
from app.core.params import query_guard
from app.core.requestlog import RequestContextMiddleware
from app.core.security import FieldCipher, TokenService
from app.core.text import text_guard
from app.routers import admin, auth, households, ops, sync, visits
from app.routers import checkups as checkups_router
from app.routers import claims as claims_router
from app.routers import imports as imports_router
from app.routers import indicators as indicators_router
from app.routers import migrants as migrants_router
from app.services.auth import AuthContext, LoginThrottle
from app.web import install as install_web

DESCRIPTION = """REST API for county family health & welfare field work: the household register,
home visits, checkups, migrants, benefit claims and county figures. Errors are
`application/problem+json` with a stable `code`. `Accept-Language` (`zh-CN`, the default, or
`en`) chooses the language of problem texts, claim reasons, task titles, data-quality details and
CSV headers (`Content-Language` says which); codes and enum values never change."""


def create_app(settings: Settings | None = None, engine: AsyncEngine | None = None) -> FastAPI:
    settings = settings or get_settings()
    install_db_error_scrubbing()  # before anything can log a database error
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
        # Every route: no NUL or control characters in any text of the request (app/core/text.py),
        # no query parameter the route does not take (app/core/params.py).
        dependencies=[Depends(text_guard), Depends(query_guard)],
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
    configure_cursor_key(settings.blind_key())

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
        imports_router,
    ):
        app.include_router(module.router)
    install_web(app)  # the workbench under /web/ (after the API's error handlers: it wraps them)

    app.add_middleware(EdgeLimitsMiddleware, settings=settings, tokens=app.state.auth.tokens)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "X-Request-ID"],
        )

    app.add_middleware(RequestContextMiddleware, trusted_proxies=settings.trusted_proxies())

    return app


def _default_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


app = _default_app()

"""Sign in and out of the workbench.

The sign-in form has its own CSRF token before there is a session: a random value in a
short-lived ``SameSite=Strict`` cookie that the form must repeat (double submit), so another
site cannot sign a browser in under someone else's account. A successful sign-in sets
``jiahe_session`` (HttpOnly, SameSite=Strict, Secure in production, path /web) and goes to the
page that asked for it (a path under /web/ only: never an open redirect).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from app.core.context import client_ip_var
from app.core.errors import AppError
from app.core.messages import translate
from app.deps import AuthCtx, SessionDep
from app.web import sessions
from app.web.deps import WebCaller, csrf_failed
from app.web.render import page

router = APIRouter(prefix="/web", include_in_schema=False)

LOGIN_CSRF_COOKIE = "jiahe_login_csrf"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this workbench, else its home."""
    if target and target.startswith("/web/") and not target.startswith("/web//") and "\\" not in target:
        return target
    return "/web/"


def _secure(request: Request) -> bool:
    return bool(request.app.state.settings.env == "production")


def _login_form(
    request: Request, *, next_url: str, error: str = "", username: str = "", status_code: int = 200
) -> Response:
    token = secrets.token_urlsafe(24)
    response = page(
        request,
        "login.html",
        {"login_csrf": token, "next": safe_next(next_url), "error": error, "username": username},
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/web",
    )
    return response


@router.get("/login")
async def login_form(request: Request, next: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    return _login_form(request, next_url=next or "/web/")


@router.post("/login")
async def login(
    request: Request,
    session: SessionDep,
    ctx: AuthCtx,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    csrf_token: Annotated[str, Form(max_length=64)] = "",
    next: Annotated[str, Form(max_length=500)] = "/web/",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(csrf_token.encode(), expected.encode()):
        raise csrf_failed()
    if not username or not password:
        return _login_form(
            request, next_url=next, error="请输入用户名和密码", username=username, status_code=422
        )
    try:
        token, _ = await sessions.sign_in(
            session,
            ctx,
            request.app.state.settings,
            username=username,
            password=password,
            ip=client_ip_var.get(),
        )
    except AppError as exc:
        # Wrong pair (401) or throttled (429): the form again, with the reason; nothing written
        # but the throttle's count.
        response = _login_form(
            request, next_url=next, error=translate(exc.detail), username=username, status_code=exc.status
        )
        response.headers.update(exc.headers)
        return response
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        sessions.COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/web"
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/web")
    return response


@router.post("/logout")
async def logout(request: Request, session: SessionDep, caller: WebCaller) -> Response:
    signed = sessions.Signed(actor=caller, csrf_token=request.state.csrf_token)
    await sessions.sign_out(session, signed, request.cookies.get(sessions.COOKIE, ""))
    response = RedirectResponse("/web/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/web")
    return response

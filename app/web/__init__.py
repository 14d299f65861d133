"""The township and county workbench: server-rendered pages under /web/ (Jinja2 + htmx).

``install(app)`` mounts the vendored static files, adds the pages' routers (left out of the
OpenAPI document: they are not the API) and renders errors on /web/ paths as HTML: a full page,
or for an htmx request a message swapped into the page's ``#flash`` box. The status stays what
the service said (403, 404, 409…), so a forged POST is a 403 whatever it asks for.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.errors import AppError, ValidationFailed
from app.core.messages import translate
from app.web.deps import SignInRequired
from app.web.render import HERE, page
from app.web.routes import admin, auth, checkups, claims, conflicts, figures, home, migrants, notices, quality

ROUTERS = (auth, home, claims, notices, checkups, conflicts, quality, migrants, figures, admin)

STATUS_TITLES = {
    400: "请求有误",
    401: "请先登录",
    403: "无权操作",
    404: "找不到页面或记录",
    405: "不支持的操作",
    409: "操作与当前状态冲突",
    412: "记录已被他人修改",
    413: "内容太大",
    422: "填写有误",
    428: "记录版本缺失",
    429: "操作太频繁",
    503: "服务暂时不可用",
}


def is_web(request: Request) -> bool:
    path = request.url.path
    return path == "/web" or path.startswith("/web/")


def render_error(request: Request, status: int, detail: str, errors: list[str] | None = None) -> Response:
    context = {
        "status": status,
        "title": STATUS_TITLES.get(status, "出错了"),
        "detail": detail,
        "errors": errors or [],
    }
    if request.headers.get("hx-request") == "true":
        return page(
            request,
            "_flash.html",
            {"kind": "error", **context},
            status_code=status,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
        )
    return page(request, "error.html", context, status_code=status)


class EmptyFiltersMiddleware:
    """A GET form sends its empty fields too (``?programme=&year=2026``): on /web/ paths an empty
    query value means "no filter", so it is dropped before the route reads its parameters (an
    empty ``year`` would otherwise be a 422 where the user only left a field blank)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("path", "").startswith("/web/")
            and scope.get("query_string")
        ):
            pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
            kept = [(k, v) for k, v in pairs if v.strip()]
            if len(kept) != len(pairs):
                scope = dict(scope, query_string=urlencode(kept).encode("latin-1"))
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_middleware(EmptyFiltersMiddleware)
    app.mount("/web/static", StaticFiles(directory=HERE / "static"), name="web-static")
    for module in ROUTERS:
        app.include_router(module.router)

    api_app_error = app.exception_handlers[AppError]
    api_validation = app.exception_handlers[RequestValidationError]
    api_http = app.exception_handlers[StarletteHTTPException]

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        target = f"/web/login?next={exc.next_url}"
        if request.headers.get("hx-request") == "true":
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        if not is_web(request):
            return await api_app_error(request, exc)  # type: ignore[misc,no-any-return]
        errors = [f"{e.field}: {translate(e.message)}" for e in exc.errors or []]
        response = render_error(request, exc.status, translate(exc.detail), errors)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        if not is_web(request):
            return await api_validation(request, exc)  # type: ignore[misc,no-any-return]
        errors = [".".join(str(p) for p in e.get("loc", ())[1:]) or "?" for e in exc.errors()]
        detail = translate(ValidationFailed("The request has invalid fields").detail)
        return render_error(request, 422, detail, [f"{name}: 格式不正确" for name in errors])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if not is_web(request):
            return await api_http(request, exc)  # type: ignore[misc,no-any-return]
        return render_error(request, exc.status_code, STATUS_TITLES.get(exc.status_code, "出错了"))

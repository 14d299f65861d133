"""The township and county workbench: server-rendered pages under /web/ (Jinja2 + htmx).

``install(app)`` mounts the vendored static files, adds the pages' routers (left out of the
OpenAPI document: they are not the API) and renders errors on /web/ paths as HTML: a full page,
or for an htmx request a message swapped into the page's ``#flash`` box. The status stays what
the service said (403, 404, 409…), so a forged POST is a 403 whatever it asks for.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.errors import AppError, ValidationFailed
from app.core.messages import translate
from app.web.deps import SignInRequired
from app.web.render import HERE, page
from app.web.routes import auth, checkups, conflicts, home

ROUTERS = (auth, home, checkups, conflicts)

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


def install(app: FastAPI) -> None:
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

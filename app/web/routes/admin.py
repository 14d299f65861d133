"""管理 (admins only): users, machine clients and areas of the admin's county.

Every action goes through the services ``/api/v1`` uses (``app.services.users``,
``app.services.areas``), exactly as ``app/routers/admin.py`` calls them: a user change carries the
version of the row the page showed (the API's If-Match), so a change made meanwhile is a 412, and
disabling, re-roling, moving or re-passwording a user ends their logins, and with them their
workbench sessions (a web session is tied to its login). A machine client's secret is shown once,
on the page that answers its creation (not cached: ``no-store``), and never again.

Any other role gets 403 on every page and every POST, whatever it sends.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from app.authz.actor import Actor
from app.authz.policies import ADMIN_ROLES, require_role
from app.core.pagination import Cursor
from app.deps import SessionDep
from app.models.areas import AreaCreate
from app.models.users import PERSON_ROLES, ClientCreate, Role, UserCreate, UserUpdate
from app.services import areas as areas_svc
from app.services import users as users_svc
from app.web.deps import WebCaller
from app.web.render import page

router = APIRouter(prefix="/web/admin", include_in_schema=False)

PAGE = 50
M = TypeVar("M", bound=BaseModel)

AGENCY_LABELS = {"police": "公安", "market_regulation": "市场监管", "other": "其他"}
CLIENT_ROLES = (Role.partner, Role.dashboard)
LEVEL_LABELS = {"county": "县", "township": "乡镇", "village": "村"}


async def admin_caller(caller: WebCaller) -> Actor:
    require_role(caller, *ADMIN_ROLES)
    return caller


AdminCaller = Annotated[Actor, Depends(admin_caller)]


def parse(model: type[M], data: dict[str, Any]) -> M:
    """A form into the API's schema; its errors are the page's 422 (as the API's body errors)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def _back(target: str, default: str) -> str:
    return (
        target if target.startswith("/web/admin") and "//" not in target and "\\" not in target else default
    )


def _redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def _ctx(section: str, **kw: Any) -> dict[str, Any]:
    return {
        "section": section,
        "person_roles": [r.value for r in PERSON_ROLES],
        "client_roles": [r.value for r in CLIENT_ROLES],
        "agencies": AGENCY_LABELS,
        "levels": LEVEL_LABELS,
        **kw,
    }


# --- users -------------------------------------------------------------------------------------


@router.get("")
async def users(
    request: Request, session: SessionDep, caller: AdminCaller, cursor: Cursor = None
) -> Response:
    rows, nxt = await users_svc.list_users(session, caller, limit=PAGE, cursor=cursor)
    more = "/web/admin?" + urlencode({"cursor": nxt}) if nxt else None
    return page(request, "admin/users.html", _ctx("users", users=rows, more=more), active="admin")


@router.post("/users")
async def create_user(
    session: SessionDep,
    caller: AdminCaller,
    username: Annotated[str, Form(max_length=200)] = "",
    display_name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=32)] = "",
    area_code: Annotated[str, Form(max_length=32)] = "",
    password: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    body = parse(
        UserCreate,
        {
            "username": username.strip(),
            "display_name": display_name.strip(),
            "role": role,
            "area_code": area_code.strip(),
            "password": password,
        },
    )
    user = await users_svc.create_user(session, caller, body)
    return _redirect(f"/web/admin/users/{user.id}")


@router.get("/users/{user_id:uuid}")
async def user_detail(
    request: Request, session: SessionDep, caller: AdminCaller, user_id: uuid.UUID
) -> Response:
    user = await users_svc.get_user(session, caller, user_id)
    return page(request, "admin/user.html", _ctx("users", user=user), active="admin")


async def _update(
    session: SessionDep, caller: Actor, user_id: uuid.UUID, data: dict[str, Any], version: int
) -> None:
    await users_svc.update_user(session, caller, user_id, parse(UserUpdate, data), version)


VersionF = Annotated[int, Form(ge=0)]
NextF = Annotated[str, Form(max_length=300)]


@router.post("/users/{user_id:uuid}/disable")
async def disable_user(
    session: SessionDep, caller: AdminCaller, user_id: uuid.UUID, version: VersionF, next: NextF = ""
) -> Response:
    await _update(session, caller, user_id, {"disabled": True}, version)
    return _redirect(_back(next, f"/web/admin/users/{user_id}"))


@router.post("/users/{user_id:uuid}/enable")
async def enable_user(
    session: SessionDep, caller: AdminCaller, user_id: uuid.UUID, version: VersionF, next: NextF = ""
) -> Response:
    await _update(session, caller, user_id, {"disabled": False}, version)
    return _redirect(_back(next, f"/web/admin/users/{user_id}"))


@router.post("/users/{user_id:uuid}/password")
async def reset_password(
    session: SessionDep,
    caller: AdminCaller,
    user_id: uuid.UUID,
    version: VersionF,
    password: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    await _update(session, caller, user_id, {"password": password}, version)
    return _redirect(f"/web/admin/users/{user_id}")


@router.post("/users/{user_id:uuid}/placement")
async def change_placement(
    session: SessionDep,
    caller: AdminCaller,
    user_id: uuid.UUID,
    version: VersionF,
    role: Annotated[str, Form(max_length=32)] = "",
    area_code: Annotated[str, Form(max_length=32)] = "",
    display_name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    data: dict[str, Any] = {"role": role or None, "area_code": area_code.strip() or None}
    if display_name.strip():
        data["display_name"] = display_name.strip()
    await _update(session, caller, user_id, data, version)
    return _redirect(f"/web/admin/users/{user_id}")


# --- machine clients ---------------------------------------------------------------------------


@router.get("/clients")
async def clients(
    request: Request, session: SessionDep, caller: AdminCaller, cursor: Cursor = None
) -> Response:
    rows, nxt = await users_svc.list_clients(session, caller, limit=PAGE, cursor=cursor)
    more = "/web/admin/clients?" + urlencode({"cursor": nxt}) if nxt else None
    return page(request, "admin/clients.html", _ctx("clients", clients=rows, more=more), active="admin")


@router.post("/clients")
async def create_client(
    request: Request,
    session: SessionDep,
    caller: AdminCaller,
    name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form(max_length=32)] = "",
    agency: Annotated[str, Form(max_length=32)] = "",
    area_code: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    body = parse(
        ClientCreate,
        {"name": name.strip(), "role": role, "agency": agency or None, "area_code": area_code.strip()},
    )
    client, secret = await users_svc.create_client(session, caller, body)
    # The answer page is the only place the secret ever appears (the page is ``no-store``): no
    # redirect, so it is not kept anywhere to be shown again.
    return page(
        request,
        "admin/client.html",
        _ctx("clients", client=client, secret=secret),
        active="admin",
        status_code=201,
    )


@router.get("/clients/{client_id:uuid}")
async def client_detail(
    request: Request, session: SessionDep, caller: AdminCaller, client_id: uuid.UUID
) -> Response:
    client = await users_svc.get_client(session, caller, client_id)
    return page(request, "admin/client.html", _ctx("clients", client=client, secret=None), active="admin")


# --- areas -------------------------------------------------------------------------------------


@router.get("/areas")
async def areas(
    request: Request,
    session: SessionDep,
    caller: AdminCaller,
    parent_code: Annotated[str | None, Query(pattern=r"^[0-9]{12}$")] = None,
    cursor: Cursor = None,
) -> Response:
    rows, nxt = await areas_svc.list_areas(
        session, caller, parent_code=parent_code, limit=PAGE, cursor=cursor
    )
    more = None
    if nxt:
        more = "/web/admin/areas?" + urlencode({"parent_code": parent_code or "", "cursor": nxt})
    return page(
        request,
        "admin/areas.html",
        _ctx("areas", areas=rows, parent_code=parent_code or "", more=more),
        active="admin",
    )


@router.post("/areas")
async def create_area(
    session: SessionDep,
    caller: AdminCaller,
    code: Annotated[str, Form(max_length=32)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    area = await areas_svc.create_area(
        session, caller, parse(AreaCreate, {"code": code.strip(), "name": name.strip()})
    )
    target = "/web/admin/areas"
    if area.parent_code:
        target += "?" + urlencode({"parent_code": area.parent_code})
    return _redirect(target)

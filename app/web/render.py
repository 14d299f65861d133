"""Templates and what every page shares: the caller, the CSRF token, the menu for the caller's
role, Chinese labels of codes, and the response headers of a page holding personal data."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.authz.actor import Actor
from app.core import clock
from app.models.users import Role

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

# Pages show personal data: not cached anywhere, never framed, scripts only from this site (the
# chart data travels as JSON in a non-executed <script type="application/json">).
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}


@dataclass(frozen=True)
class NavItem:
    key: str
    href: str
    label: str
    roles: tuple[Role, ...]


PEOPLE = (Role.village, Role.township, Role.county, Role.admin)
STAFF = (Role.township, Role.county, Role.admin)

# The menu, in the order of the work. A role sees the pages it may use.
NAV: tuple[NavItem, ...] = (
    NavItem("home", "/web/", "工作台", PEOPLE),
    NavItem("claims", "/web/claims", "待遇申领", PEOPLE),
    NavItem("notices", "/web/notices", "公示", PEOPLE),
    NavItem("checkups", "/web/checkups", "三查", PEOPLE),
    NavItem("conflicts", "/web/conflicts", "同步冲突", PEOPLE),
    NavItem("quality", "/web/data-quality", "数据质量", STAFF),
    NavItem("migrants", "/web/migrants", "流动人口", PEOPLE),
    NavItem("figures", "/web/figures", "统计", PEOPLE),
    NavItem("admin", "/web/admin", "管理", (Role.admin,)),
)

ROLE_LABELS = {
    "village": "村级",
    "township": "乡镇",
    "county": "县级",
    "admin": "管理员",
    "partner": "协作单位",
    "dashboard": "大屏",
}

CLAIM_STATUS_LABELS = {
    "draft": "草稿",
    "submitted": "待审核",
    "reviewed": "待审批",
    "returned": "已退回",
    "rejected": "未通过",
    "approved": "已审批",
    "posted": "公示中",
    "paid": "已发放",
    "withdrawn": "已撤回",
}

PROGRAMME_LABELS = {
    "rural_reward": "农村部分计划生育家庭奖励扶助",
    "special_assistance": "计划生育家庭特别扶助",
    "childcare_subsidy": "育儿补贴",
    "only_child_parent_reward": "独生子女父母奖励",
}

SEX_LABELS = {"M": "男", "F": "女", "male": "男", "female": "女"}


def nav_for(actor: Actor) -> list[NavItem]:
    return [item for item in NAV if actor.role in item.roles]


def yuan(value: Any) -> str:
    """Money as people write it: ``1,440.00``."""
    if value is None or value == "":
        return ""
    return f"{Decimal(str(value)):,.2f}"


def label(mapping: dict[str, str], value: Any) -> str:
    key = getattr(value, "value", value)
    return mapping.get(str(key), str(key) if key is not None else "")


templates.env.filters["yuan"] = yuan
templates.env.globals["ROLE_LABELS"] = ROLE_LABELS
templates.env.globals["CLAIM_STATUS_LABELS"] = CLAIM_STATUS_LABELS
templates.env.globals["PROGRAMME_LABELS"] = PROGRAMME_LABELS
templates.env.globals["SEX_LABELS"] = SEX_LABELS
templates.env.globals["label"] = label


def page(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    active: str = "",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render a page (or an htmx fragment) with what every template may use."""
    actor: Actor | None = getattr(request.state, "actor", None)
    ctx: dict[str, Any] = {
        "caller": actor,
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "nav": nav_for(actor) if actor else [],
        "active": active,
        "today": clock.today(),
        "htmx": request.headers.get("hx-request") == "true",
    }
    ctx.update(context or {})
    response = templates.TemplateResponse(request, template, ctx, status_code=status_code)
    response.headers.update(PAGE_HEADERS)
    if headers:
        response.headers.update(headers)
    return response

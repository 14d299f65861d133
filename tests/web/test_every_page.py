"""What holds on every page of the workbench, whatever the page: a sign-in is required; a
disabled user's next page is the sign-in form; every POST form carries the CSRF token; each page
is sent with its protective headers; a role sees only its pages."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import WebClient

TOWNSHIP, COUNTY, VILLAGE = "430122100000", "430122000000", "430122100201"
AREAS = {"village": VILLAGE, "township": TOWNSHIP, "county": COUNTY, "admin": COUNTY}

# (role, path, <h1>): every page a menu entry opens, as the role that uses it.
PAGES = [
    ("village", "/web/", "工作台"),
    ("township", "/web/", "工作台"),
    ("township", "/web/claims", "待遇申领"),
    ("county", "/web/claims?status=reviewed", "待遇申领"),
    ("county", "/web/notices", "公示"),
    ("township", "/web/checkups", "三查"),
    ("township", "/web/checkups/overdue", "三查"),
    ("township", "/web/conflicts", "同步冲突"),
    ("township", "/web/data-quality", "数据质量"),
    ("township", "/web/migrants", "流动人口"),
    ("county", "/web/figures", "统计"),
    ("admin", "/web/admin", "管理"),
    ("admin", "/web/admin/clients", "管理"),
    ("admin", "/web/admin/areas", "管理"),
]
IDS = [f"{role}:{path}" for role, path, _ in PAGES]
POST_FORM = re.compile(r"<form\b[^>]*method=\"post\"[^>]*>(.*?)</form>", re.S | re.I)


@pytest.mark.parametrize(("role", "path", "title"), PAGES, ids=IDS)
async def test_each_page_needs_a_sign_in(browser_anon: WebClient, areas, role, path, title) -> None:
    r = await browser_anon.get(path)
    assert r.status_code == 303 and r.headers["location"] == f"/web/login?next={path}"


@pytest.mark.parametrize(("role", "path", "title"), PAGES, ids=IDS)
async def test_each_page_for_its_role(web_as, role, path, title) -> None:
    c = await web_as(role, AREAS[role])
    r = await c.get(path)
    assert r.status_code == 200, r.text
    assert re.search(rf"<h1[^>]*>\s*{title}", r.text), f"{path}: no <h1> {title}"
    assert r.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "<script>" not in r.text and "onclick=" not in r.text.lower()  # the CSP allows no inline code
    forms = POST_FORM.findall(r.text)
    assert all(f'name="csrf_token" value="{c.csrf}"' in body for body in forms), (
        f"{path}: a POST form without CSRF"
    )


@pytest.mark.parametrize(("role", "path", "title"), PAGES, ids=IDS)
async def test_disabling_the_user_ends_the_session_on_each_page(web_as, client_as, role, path, title) -> None:
    c = await web_as(role, AREAS[role])
    assert (await c.get(path)).status_code == 200
    admin = await client_as("admin", COUNTY)
    r = await admin.patch(f"/api/v1/users/{c.user.id}", json={"disabled": True}, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    r = await c.get(path)
    assert r.status_code == 303 and r.headers["location"].startswith("/web/login?next=")


@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("village", "/web/data-quality"),
        ("village", "/web/admin"),
        ("township", "/web/admin"),
        ("county", "/web/admin"),
    ],
)
async def test_pages_outside_the_role_are_403(web_as, role, path) -> None:
    c = await web_as(role, AREAS[role])
    r = await c.get(path)
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert 'data-status="403"' in r.text

"""Workbench page benchmark: server time of every /web/ page on a county-sized database.

    .venv/bin/python -m bench.web [--database-url URL] [--persons 700000] [--requests 100]

Steps (helpers of ``bench.register``): create the PostgreSQL database if missing, ``jiahe
migrate``, ``jiahe seed-scale`` (a no-op when the county already holds N people), create a user
per role if missing (``bench-web-<role>``), start ``jiahe serve``, sign each user in through the
sign-in form (cookie session, as a browser), then for each page of ``PAGES`` send warm-up
requests and time N sequential GETs, and print p50/p95/max of the time inside the server (from its
JSON request log, matched by ``X-Request-ID``) and of the client round trip.

Adding a page to the bench is adding a line to ``PAGES``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import unicodedata

import httpx

from bench.register import (
    PASSWORD,
    Result,
    Server,
    attach_server_times,
    ensure_database,
    ensure_user,
    measure,
    parse_counts,
    percentiles,
    run_cli,
    safe_url,
)

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/jiahe_bench"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
BUDGET_MS = 150.0  # the bar: p95 server time per page

# (page, role, path). ``{village}``, ``{township}``, ``{county}`` are the bench users' areas.
# The other pages join as they are built, e.g.
#   ("待遇申领", "township", "/web/claims?status=submitted"),
#   ("待遇申领", "county", "/web/claims?status=reviewed"),
#   ("公示", "county", "/web/notices"),
#   ("三查", "township", "/web/checkups"),
#   ("同步冲突", "township", "/web/conflicts"),
#   ("数据质量", "township", "/web/data-quality"),
#   ("流动人口", "township", "/web/migrants"),
#   ("统计", "county", "/web/figures"),
#   ("管理", "admin", "/web/admin"),
# (a detail page needs an id: give the path a placeholder and fill it in ``page_ids``).
PAGES: list[tuple[str, str, str]] = [
    ("登录", "anonymous", "/web/login"),
    ("工作台", "village", "/web/"),
    ("工作台", "township", "/web/"),
    ("工作台", "county", "/web/"),
    ("工作台", "admin", "/web/"),
    ("待遇申领", "township", "/web/claims"),
    ("待遇申领", "county", "/web/claims"),
    ("待遇申领·全部", "county", "/web/claims?status=all"),
    ("待遇申领·已发放", "county", "/web/claims?status=paid"),
    ("公示", "county", "/web/notices"),
    ("公示·打印(乡镇全部村)", "township", "/web/notices/print?programme=rural_reward&year=2026"),
    ("三查", "township", "/web/checkups"),
    ("三查", "county", "/web/checkups"),
    ("逾期未查", "county", "/web/checkups/overdue"),
    ("同步冲突", "county", "/web/conflicts"),
    ("数据质量", "township", "/web/data-quality"),
    ("数据质量", "county", "/web/data-quality"),
    ("流动人口", "township", "/web/migrants"),
    ("流动人口", "county", "/web/migrants"),
    ("统计", "township", "/web/figures"),
    ("统计", "county", "/web/figures"),
    ("管理·用户", "admin", "/web/admin"),
    ("管理·客户端", "admin", "/web/admin/clients"),
    ("管理·区划", "admin", "/web/admin/areas"),
]


class WebUser:
    """One signed-in workbench user (session cookie) over one keep-alive connection; the
    duck type of ``bench.register.Api`` that ``measure`` needs."""

    def __init__(self, base: str, username: str | None) -> None:
        self.http = httpx.Client(base_url=base, timeout=30.0)
        self.username = username
        if username:
            self.sign_in()

    def sign_in(self) -> None:
        form = self.http.get("/web/login")
        found = CSRF_RE.search(form.text)
        if form.status_code != 200 or not found:
            sys.exit(f"no sign-in form: {form.status_code} {form.text[:300]}")
        r = self.http.post(
            "/web/login",
            data={
                "username": self.username,
                "password": PASSWORD,
                "csrf_token": found.group(1),
                "next": "/web/",
            },
        )
        if r.status_code != 303 or "jiahe_session" not in self.http.cookies:
            sys.exit(f"sign-in of {self.username} failed: {r.status_code} {r.text[:300]}")

    def fresh(self) -> httpx.Client:
        return self.http


def users_for(county: str) -> dict[str, tuple[str, str]]:
    """role → (username, area code)."""
    return {
        "village": ("bench-web-village", f"{county}100201"),
        "township": ("bench-web-township", f"{county}100000"),
        "county": ("bench-web-county", f"{county}000000"),
        "admin": ("bench-web-admin", f"{county}000000"),
    }


def page_ids(users: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Values for the paths' placeholders."""
    return {"village": users["village"][1], "township": users["township"][1], "county": users["county"][1]}


def pad(text: str, width: int) -> str:
    """``text`` left-aligned in ``width`` terminal columns (a Chinese character takes two)."""
    used = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(width - used, 0)


def row(page: str, role: str, r: Result) -> str:
    srv = percentiles(r.server_ms)
    cli = percentiles(r.latencies_ms)
    flag = "  over budget" if r.server_ms and srv[1] > BUDGET_MS else ""
    figures = "".join(f" {v:>8.1f}" for v in (srv[0], srv[1], srv[3], cli[0], cli[1], cli[3]))
    return f"{pad(page, 10)}{role:<10} {len(r.latencies_ms):>5}{figures} {r.errors:>6}{flag}"


HEADER = (
    f"{'page':<10}{'role':<10} {'n':>5}"
    + "".join(f" {h:>8}" for h in ("srv p50", "srv p95", "srv max", "cli p50", "cli p95", "cli max"))
    + f" {'errors':>6}"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("JIAHE_DATABASE_URL") or DEFAULT_URL,
        help=f"SQLAlchemy async URL (default: $JIAHE_DATABASE_URL, else {DEFAULT_URL})",
    )
    parser.add_argument("--persons", type=int, default=700_000, help="people in the county (default 700000)")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=10, help="untimed requests per page first")
    parser.add_argument("--townships", type=int, default=20)
    parser.add_argument("--villages", type=int, default=20, help="villages per township")
    parser.add_argument("--county", default="430122", help="6-digit county code")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--only", default="", help="comma-separated page paths to time (default: all)")
    args = parser.parse_args(argv)

    url: str = args.database_url
    env = {**os.environ, "JIAHE_DATABASE_URL": url, "JIAHE_LOG_LEVEL": "INFO"}
    print(f"database: {safe_url(url)}")
    ensure_database(url)
    print(run_cli(env, "migrate").strip())
    t0 = time.perf_counter()
    seed_out = run_cli(
        env,
        "seed-scale",
        "--persons",
        str(args.persons),
        "--county",
        args.county,
        "--townships",
        str(args.townships),
        "--villages",
        str(args.villages),
        "--seed",
        str(args.seed),
    )
    seed_wall = time.perf_counter() - t0
    print(seed_out.strip())
    counts = parse_counts(seed_out)

    users = users_for(args.county)
    for role, (username, area) in users.items():
        ensure_user(env, username, role, area, f"基准测试 {role}")
    ids = page_ids(users)
    only = {p for p in args.only.split(",") if p}
    pages = [(name, role, path.format(**ids)) for name, role, path in PAGES if not only or path in only]

    server = Server(env, args.port)
    server.start()
    timed: list[tuple[str, str, Result]] = []
    try:
        clients: dict[str, WebUser] = {}
        for name, role, path in pages:
            if role not in clients:
                clients[role] = WebUser(server.base, None if role == "anonymous" else users[role][0])
            user = clients[role]

            def get(c: httpx.Client, _i: int, path: str = path) -> httpx.Response:
                return c.get(path)

            result = measure(f"{path} {role}", user, args.requests, args.warmup, get)  # type: ignore[arg-type]
            timed.append((name, role, result))
    finally:
        server.stop()
    attach_server_times([r for *_, r in timed], server.log.name)

    print()
    print(f"database:  {safe_url(url)}")
    print(
        f"persons:   {int(counts.get('persons_total', 0))} in county {args.county} "
        f"({int(counts.get('households_total', 0))} households)"
    )
    if not counts.get("skipped"):
        print(f"seed:      {seed_wall:.1f} s with process start")
    print(
        f"requests:  {args.requests} timed GETs per page after {args.warmup} warm-up, one client, sequential"
    )
    print("           (srv: time inside the server, from its request log; cli: client round trip; ms)")
    print()
    print(HEADER)
    for name, role, r in timed:
        print(row(name, role, r))
    failed = [(n, role, r) for n, role, r in timed if r.errors]
    for name, role, r in failed:
        print(f"  {name} ({role}): first error {r.first_error}")
    slow = [(n, role) for n, role, r in timed if r.server_ms and percentiles(r.server_ms)[1] > BUDGET_MS]
    if slow:
        print(f"over the {BUDGET_MS:.0f} ms p95 budget: {', '.join(f'{n} ({r})' for n, r in slow)}")
    missing = [(n, role) for n, role, r in timed if not r.server_ms]
    if missing:
        print(f"no server times in the log for: {missing} (is JIAHE_LOG_LEVEL above INFO?)")
    print(f"\nserver log: {server.log.name}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

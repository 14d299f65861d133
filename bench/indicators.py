"""Indicators benchmark: the county's year figures with a per-township breakdown, monthly series,
and conditional GETs, on the real server over PostgreSQL.

    .venv/bin/python -m bench.indicators [--database-url URL] [--year 2025] [--requests 30]

Needs a PostgreSQL database holding a seeded county with a year of events
(``jiahe seed-scale --persons 700000 --events-year 2025``). Steps: ``jiahe migrate``; create the
county user if missing and a new dashboard machine client (``app.services.users.create_client``;
its secret is shown once, so each run makes one); start ``jiahe serve``; then, one request at a
time after 3 warm-up requests each:

1. ``GET /api/v1/indicators?area_code=<county>&from=<year>-01-01&to=<year>-12-31&breakdown=true``
   without ``If-None-Match`` (the server computes every figure each time) — as the county user and
   as the dashboard client;
2. ``GET /api/v1/indicators/series`` of ``births`` and ``visits`` for that year (12 months);
3. the figures again with the ETag of the first answer in ``If-None-Match`` (304);

prints p50/p95 of the client round trip and of the time inside the server (JSON request log), a
few of the figures, the database size and the row counts of the main tables.

``--check`` also proves the figures exact at scale: the year's breakdown as served (maintained
tallies, issue 8) against the former live count of every source table
(``tests/indicators/live_reference.py``), per child area, in one transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
from sqlalchemy import text

from bench.register import COUNTY_USER, Api, ensure_user, run_cli, safe_url
from bench.sync import DEFAULT_PG_URL, SyncServer, pct, pg_connect

TABLES = ("person", "household", "birth", "death", "visit", "task", "migrant", "checkup_appointment", "claim")


async def _make_dashboard(url: str, county: str) -> tuple[str, str]:
    """A new dashboard client for the county: (client_id, secret)."""
    os.environ["JIAHE_DATABASE_URL"] = url
    from app.core.config import get_settings
    from app.core.db import make_engine, make_sessionmaker
    from app.models.users import ClientCreate, Role
    from app.services.users import create_client

    engine = make_engine(get_settings())
    try:
        async with make_sessionmaker(engine)() as session:
            data = ClientCreate(
                name=f"bench-indicators {time.strftime('%Y-%m-%d %H:%M:%S')}",
                role=Role.dashboard,
                area_code=f"{county}000000",
            )
            client, secret = await create_client(session, None, data)
            await session.commit()
            return client.client_id, secret
    finally:
        await engine.dispose()


async def _check_exact(url: str, county: str, year: int) -> str:
    """The served figures against the live reference, for the county's year breakdown."""
    os.environ["JIAHE_DATABASE_URL"] = url
    from app.core.config import get_settings
    from app.core.db import make_engine, make_sessionmaker
    from app.services import indicators as svc
    from tests.indicators import live_reference as ref

    engine = make_engine(get_settings())
    try:
        async with make_sessionmaker(engine)() as session:
            await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            aq = svc.AreaQuery(code=f"{county}000000", prefix=county, child_attr="township_code")
            start, end = date(year, 1, 1), date(year, 12, 31)
            t0 = time.perf_counter()
            got = await svc.compute(session, aq, start, end)
            t1 = time.perf_counter()
            want = await ref.compute(session, aq, start, end)
            t2 = time.perf_counter()
        zero = svc.Counts()
        same = {k: v for k, v in got.items() if v != zero} == {k: v for k, v in want.items() if v != zero}
        verdict = "equal" if same else "DIFFERENT"
        kept, live = 1000 * (t1 - t0), 1000 * (t2 - t1)
        return f"{verdict} ({len(want)} areas; maintained {kept:.0f} ms, live {live:.0f} ms)"
    finally:
        await engine.dispose()


async def _db_facts(url: str, name: str) -> tuple[str, dict[str, int]]:
    conn = await pg_connect(url)
    try:
        size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size($1))", name)
        counts = {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in TABLES}  # noqa: S608
        return str(size), counts
    finally:
        await conn.close()


class Dashboard(Api):
    """A machine client (client credentials) over one keep-alive connection."""

    def __init__(self, base: str, client_id: str, secret: str) -> None:
        self.client_id, self.secret = client_id, secret
        super().__init__(base, client_id)

    def login(self) -> None:
        r = self.http.post(
            "/api/v1/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.secret,
            },
        )
        if r.status_code != 200:
            sys.exit(f"client login failed: {r.status_code} {r.text}")
        self.token = r.json()["access_token"]
        self.token_at = time.monotonic()
        self.http.headers["Authorization"] = f"Bearer {self.token}"


def run(
    server: SyncServer,
    api: Api,
    tag: str,
    n: int,
    call: Callable[[httpx.Client, dict[str, str]], httpx.Response],
    expect: int = 200,
) -> tuple[list[float], list[float], httpx.Response]:
    """``n`` timed calls after 3 untimed ones: (client ms, server ms, last response), counting
    only answers with status ``expect`` (a 200 instead of a 304 means something was written in
    between, e.g. by another benchmark: it is reported and left out)."""
    for _ in range(3):
        call(api.fresh(), {})
    lat: list[float] = []
    rids: list[str] = []
    last: httpx.Response | None = None
    other: dict[int, int] = {}
    for i in range(n):
        rid = f"bench-ind-{tag}-{i}"
        client = api.fresh()
        t0 = time.perf_counter()
        last = call(client, {"X-Request-ID": rid})
        ms = (time.perf_counter() - t0) * 1000
        if last.status_code == expect:
            lat.append(ms)
            rids.append(rid)
        elif expect == 304 and last.status_code == 200:
            other[200] = other.get(200, 0) + 1
        else:
            sys.exit(f"{tag}: expected {expect}, got {last.status_code} {last.text[:300]}")
    if other:
        print(f"   {tag}: {other.get(200, 0)} of {n} answers were 200 (data changed in between)")
    srv_all = server.request_ms()
    assert last is not None
    return lat or [0.0], [srv_all[r] for r in rids if r in srv_all], last


def row(name: str, lat: list[float], srv: list[float], aim: str) -> str:
    return (
        f"{name:<52} {len(lat):>4} {pct(lat, 50):>8.1f} {pct(lat, 95):>8.1f} {max(lat):>8.1f}"
        f" {pct(srv, 50):>8.1f} {pct(srv, 95):>8.1f}  {aim}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.indicators", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("JIAHE_DATABASE_URL") or DEFAULT_PG_URL)
    parser.add_argument("--county", default="430122")
    parser.add_argument("--year", type=int, default=date.today().year - 1, help="the events year")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--port", type=int, default=8772)
    parser.add_argument("--check", action="store_true", help="compare with the live count (slow)")
    args = parser.parse_args(argv)

    url: str = args.database_url
    env = {**os.environ, "JIAHE_DATABASE_URL": url}
    county: str = args.county
    area = f"{county}000000"
    period = {"from": f"{args.year}-01-01", "to": f"{args.year}-12-31"}
    print(f"database: {safe_url(url)}")
    print(run_cli(env, "migrate").strip())
    ensure_user(env, COUNTY_USER, "county", area, "基准测试 县")
    client_id, secret = asyncio.run(_make_dashboard(url, county))

    server = SyncServer(env, args.port, 1)
    server.start()
    rows: list[str] = []
    try:
        county_api = Api(server.base, COUNTY_USER)
        dash = Dashboard(server.base, client_id, secret)
        figures = {"area_code": area, "breakdown": "true", **period}

        def cold(c: httpx.Client, h: dict[str, str]) -> httpx.Response:
            return c.get("/api/v1/indicators", params=figures, headers=h)

        lat, srv, first = run(server, county_api, "cold-county", args.requests, cold)
        rows.append(row("indicators breakdown, cold (county user)", lat, srv, "aim p95 < 300"))
        lat, srv, _ = run(server, dash, "cold-dash", args.requests, cold)
        rows.append(row("indicators breakdown, cold (dashboard client)", lat, srv, "aim p95 < 300"))
        for metric in ("births", "visits"):

            def series(c: httpx.Client, h: dict[str, str], metric: str = metric) -> httpx.Response:
                return c.get(
                    "/api/v1/indicators/series",
                    params={"area_code": area, "metric": metric, **period},
                    headers=h,
                )

            lat, srv, _ = run(server, county_api, f"series-{metric}", args.requests, series)
            rows.append(row(f"series {metric}, 12 months (county user)", lat, srv, ""))
        etag = [first.headers.get("ETag", "")]

        def conditional(c: httpx.Client, h: dict[str, str]) -> httpx.Response:
            r = c.get("/api/v1/indicators", params=figures, headers={**h, "If-None-Match": etag[0]})
            etag[0] = r.headers.get("ETag", etag[0])  # after a write, the next request revalidates
            return r

        lat, srv, _ = run(server, county_api, "etag", args.requests, conditional, expect=304)
        rows.append(row("indicators breakdown, If-None-Match → 304", lat, srv, "aim p95 < 20"))
        lat, srv, _ = run(server, dash, "etag-dash", args.requests, conditional, expect=304)
        rows.append(row("  same, dashboard client", lat, srv, "aim p95 < 20"))
    finally:
        server.stop()

    body: dict[str, Any] = first.json()
    size, counts = asyncio.run(_db_facts(url, url.rsplit("/", 1)[-1].split("?")[0]))
    claims = ", ".join(f"{k}: {v['total']}" for k, v in body["claims"].items())
    print(f"\ncounty {area} {body.get('name')}, {period['from']}..{period['to']}: ", end="")
    print(
        f"population {body['population']}, households {body['households']}, births {body['births']['total']}"
        f" (sex ratio {body['sex_ratio_at_birth']}), deaths {body['deaths']}, natural growth"
        f" {body['natural_growth_rate_per_mille']}‰, migrants {body['migrants']}, visits {body['visits']},"
        f" claims {{{claims}}},"
        f" data_quality_open {body['data_quality_open']}, children {len(body.get('children', []))}"
    )
    print(
        f"\n{'request':<52} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'srv p50':>8} {'srv p95':>8}"
    )
    print("\n".join(rows))
    print(f"\ndatabase size: {size}; rows: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    if args.check:
        verdict = asyncio.run(_check_exact(url, county, args.year))
        print(f"figures vs the live count of the source tables: {verdict}")
        if not verdict.startswith("equal"):
            return 1
    print(f"server log: {server.log.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Partner-load benchmark: partner systems posting notifications concurrently to the real server.

    .venv/bin/python -m bench.partner [--database-url URL] [--notifications 5000] [--clients 3]
                                      [--concurrency 8] [--duplicates 0.10] [--invalid 0.02]

Steps: create the PostgreSQL database if missing, ``jiahe migrate``, ``jiahe seed-scale`` (a no-op
when the county already holds N people), create an admin and a county user if missing, start
``jiahe serve``, create fresh partner machine clients (police and market regulation) through
``POST /api/v1/clients``, read some real ID numbers of the county (so part of the load matches
people), build the workload, then let every client post its share with ``--concurrency`` requests
in flight at once, all clients at the same time.

The workload: ``--notifications`` posts in all; ``--duplicates`` of them are resends of an earlier
post of the same client (same ``Idempotency-Key``, same body), ``--invalid`` of them are invalid
(bad ID-number check character, unknown area, future date), the rest unique valid notifications
of the three kinds, ~30% about people on the register, ~5% with a township-level area code
(business licences only).

Checks: every first answer is 202 (valid) or 422/403 (invalid); every resend gets exactly the
answer its original got; and the database holds exactly one notification per unique valid post
and one key per unique key. Prints throughput, latency percentiles (client round trip and time
inside the server, from its JSON request log) and the check results; exit status 1 on a failed
check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.rawhttp import RawConnection
from bench.register import (
    DEFAULT_SQLITE_URL,
    Api,
    ensure_database,
    ensure_user,
    percentiles,
    run_cli,
    safe_url,
)
from bench.sync import SyncServer

ADMIN_USER = "bench-admin"
COUNTY_USER = "bench-county"
OUTSIDE_AREAS = ("440305", "510104", "360102", "420102", "450103", "330106", "320102", "350203")
KINDS = (("residence_registered", 0.70), ("business_licensed", 0.15), ("residence_cancelled", 0.15))


@dataclass
class Post:
    client: int
    key: str
    body: dict[str, Any]
    valid: bool
    original: Post | None = None  # set on a resend
    status: int = 0
    answer: Any = None
    ms: float = 0.0
    retries: int = 0  # "retry later" answers (409 in flight, 429) before the final one


@dataclass
class Group:
    name: str
    latencies: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    errors: int = 0


# --- workload ----------------------------------------------------------------------------------


def _unknown_numbers(rng: random.Random, n: int) -> list[str]:
    from app.services.idnumber import generate_id_number

    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        born = date(1960, 1, 1) + timedelta(days=rng.randint(0, 365 * 45))
        number = generate_id_number(
            area_code=rng.choice(OUTSIDE_AREAS),
            birth_date=born,
            sex=rng.choice(("male", "female")),
            sequence=rng.randint(0, 499),
        )
        if number not in seen:
            seen.add(number)
            out.append(number)
    return out


def _invalid(rng: random.Random, body: dict[str, Any], county: str) -> dict[str, Any]:
    body = dict(body)
    fault = rng.choice(("check", "area", "future"))
    if fault == "check":
        number = body["id_number"]
        body["id_number"] = number[:-1] + ("0" if number[-1] != "0" else "1")
    elif fault == "area":
        body["area_code"] = f"{county}199999"  # no such village
    else:
        body["occurred_on"] = (date.today() + timedelta(days=rng.randint(3, 30))).isoformat()
    return body


def build_workload(
    rng: random.Random,
    *,
    total: int,
    clients: int,
    duplicates: float,
    invalid: float,
    known: list[str],
    known_share: float,
    county: str,
    townships: int,
    villages: int,
    run: str,
) -> list[list[Post]]:
    """Per client, the posts in sending order (resends land a few positions after their
    original, so some of them race it)."""
    n_dup = round(total * duplicates)
    n_invalid = round(total * invalid)
    n_first = total - n_dup
    unknown = iter(_unknown_numbers(rng, n_first))
    today = date.today()
    firsts: list[Post] = []
    for i in range(n_first):
        client = i % clients
        number = rng.choice(known) if known and rng.random() < known_share else next(unknown)
        r = rng.random()
        kind = next(k for k, share in _cumulative(KINDS) if r < share)
        area = _area(rng, kind, county, townships, villages)
        body: dict[str, Any] = {
            "kind": kind,
            "id_number": number,
            "name": "基准" + rng.choice("伟芳娜敏静丽强磊军洋"),
            "address": f"第{rng.randint(1, 30)}组{rng.randint(1, 200)}号",
            "area_code": area,
            "occurred_on": (today - timedelta(days=rng.randint(0, 60))).isoformat(),
            "reference": f"{run}-{client}-{i}",
        }
        if kind == "business_licensed":
            body["details"] = {"business_name": f"基准商店{i}", "licence_no": f"92430122MA{i:08d}"}
        firsts.append(Post(client, f"{run}-{client}-{i}", body, valid=True))
    for post in rng.sample(firsts, n_invalid):
        post.body = _invalid(rng, post.body, county)
        post.valid = False
    queues: list[list[Post]] = [[p for p in firsts if p.client == c] for c in range(clients)]
    for original in rng.choices(firsts, k=n_dup):
        queue = queues[original.client]
        at = queue.index(original) + rng.randint(1, 40)
        queue.insert(
            min(at, len(queue)), Post(original.client, original.key, original.body, original.valid, original)
        )
    return queues


def _area(rng: random.Random, kind: str, county: str, townships: int, villages: int) -> str:
    """A village of the county, or (a third of the business licences, ~5% of all posts) a
    township: only a licence may name a township."""
    t = rng.randrange(townships)
    if kind == "business_licensed" and rng.random() < 1 / 3:
        return f"{county}{100 + t:03d}000"
    return f"{county}{100 + t:03d}{201 + rng.randrange(villages):03d}"


def _cumulative(items: tuple[tuple[str, float], ...]) -> list[tuple[str, float]]:
    out, acc = [], 0.0
    for name, share in items:
        acc += share
        out.append((name, acc))
    out[-1] = (out[-1][0], 1.01)
    return out


# --- sending -----------------------------------------------------------------------------------


async def _client_token(base: str, client_id: str, secret: str) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=30.0) as http:
        r = await http.post(
            "/api/v1/auth/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        )
        if r.status_code != 200:
            sys.exit(f"client login failed: {r.status_code} {r.text}")
        return str(r.json()["access_token"])


async def _run_client(
    base: str, token: str, queue: list[Post], concurrency: int, tag: str, client: str = "raw"
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    pending = iter(enumerate(queue))

    async def worker(http: Any) -> None:
        for i, post in pending:
            t0 = time.perf_counter()
            while True:  # like a partner system: "retry later" answers are retried
                r = await http.post(
                    "/api/v1/partner/notifications",
                    json=post.body,
                    headers={"Idempotency-Key": post.key, "X-Request-ID": f"bench-partner-{tag}-{i}"},
                )
                later = r.status_code == 429 or (
                    r.status_code == 409 and r.json().get("code") == "idempotency_key_in_flight"
                )
                if not later:
                    break
                post.retries += 1
                await asyncio.sleep(min(float(r.headers.get("retry-after", "0.2")), 2.0))
            post.ms = (time.perf_counter() - t0) * 1000
            post.status = r.status_code
            post.answer = r.json()

    if client == "raw":  # one keep-alive connection per worker
        conns = [RawConnection(base, headers) for _ in range(concurrency)]
        try:
            await asyncio.gather(*(worker(c) for c in conns))
        finally:
            for c in conns:
                await c.close()
        return
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60.0, limits=limits, headers=headers) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))


async def send_all(
    base: str, tokens: list[str], queues: list[list[Post]], concurrency: int, client: str = "raw"
) -> float:
    started = time.perf_counter()
    await asyncio.gather(
        *(_run_client(base, tokens[c], queues[c], concurrency, str(c), client) for c in range(len(queues)))
    )
    return time.perf_counter() - started


async def calibrate(base: str, token: str, concurrency: int, seconds: float = 5.0) -> dict[str, float]:
    """Requests per second of two trivial endpoints at the same concurrency, on this machine
    now (other load on a shared machine shows here): ``/healthz`` (no database) and
    ``GET /api/v1/partner/notifications/{unknown}`` (token check + one indexed read)."""
    out: dict[str, float] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=60.0, limits=limits, headers=headers) as http:
        for name, path in (
            ("GET /healthz", "/healthz"),
            ("GET /partner/notifications/{id}", f"/api/v1/partner/notifications/{uuid.uuid4()}"),
        ):
            done = 0
            deadline = time.perf_counter() + seconds

            async def worker(path: str = path, deadline: float = deadline) -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    await http.get(path)
                    done += 1

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            out[name] = done / (time.perf_counter() - started)
    return out


def server_times(log_path: str) -> dict[str, float]:
    """Request id → milliseconds inside the server, from the JSON request log."""
    out: dict[str, float] = {}
    pattern = re.compile(r'"ms": ([\d.]+).*"request_id": "(bench-partner-[0-9]+-[0-9]+)"')
    for line in Path(log_path).read_text(errors="replace").splitlines():
        if '"message": "request"' in line:
            m = pattern.search(line)
            if m:
                out[m.group(2)] = float(m.group(1))
    return out


async def stored_counts(url: str, client_ids: list[str]) -> tuple[int, int, dict[str, int]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            params = {f"c{i}": uuid.UUID(c) for i, c in enumerate(client_ids)}
            names = ", ".join(f":c{i}" for i in range(len(client_ids)))
            notifications = (
                await conn.execute(
                    text(f"SELECT count(*) FROM partner_notification WHERE client_id IN ({names})"), params
                )
            ).scalar_one()
            keys = (
                await conn.execute(
                    text(f"SELECT count(*) FROM idempotency_key WHERE client_id IN ({names})"), params
                )
            ).scalar_one()
            rows = await conn.execute(
                text(
                    "SELECT status, count(*) FROM partner_notification "
                    f"WHERE client_id IN ({names}) GROUP BY status"  # noqa: S608 (placeholders only)
                ),
                params,
            )
            by_status = {str(s): int(n) for s, n in rows.all()}
    finally:
        await engine.dispose()
    return int(notifications), int(keys), by_status


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.partner", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("JIAHE_DATABASE_URL") or DEFAULT_SQLITE_URL,
        help="SQLAlchemy async URL (default: $JIAHE_DATABASE_URL, else ./bench.db)",
    )
    parser.add_argument("--persons", type=int, default=20_000, help="people in the county (seed-scale)")
    parser.add_argument("--notifications", type=int, default=5_000, help="posts in all, resends included")
    parser.add_argument("--clients", type=int, default=3, help="partner machine clients")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight per client")
    parser.add_argument("--duplicates", type=float, default=0.10, help="share of posts that are resends")
    parser.add_argument("--invalid", type=float, default=0.02, help="share of posts that are invalid")
    parser.add_argument("--known", type=float, default=0.30, help="share about people on the register")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="load generator: a lean asyncio HTTP/1.1 client (bench/rawhttp.py) or httpx, which "
        "takes ~2 ms of CPU per request from the 2 cores the server shares",
    )
    parser.add_argument("--townships", type=int, default=20)
    parser.add_argument("--villages", type=int, default=20, help="villages per township")
    parser.add_argument("--county", default="430122", help="6-digit county code")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument(
        "--keep-rate-limits",
        action="store_true",
        help="keep the server's per-token/per-address rate limits (off by default: they would "
        "throttle the load, every client being 127.0.0.1)",
    )
    args = parser.parse_args(argv)

    url: str = args.database_url
    env = {**os.environ, "JIAHE_DATABASE_URL": url}
    if not args.keep_rate_limits:
        env["JIAHE_RATE_LIMIT_PER_TOKEN_PER_MINUTE"] = "0"
    county: str = args.county
    rng = random.Random(args.seed)
    run = f"bp{int(time.time())}"

    print(f"database: {safe_url(url)}")
    ensure_database(url)
    print(run_cli(env, "migrate").strip())
    seed_out = run_cli(
        env,
        "seed-scale",
        "--persons",
        str(args.persons),
        "--county",
        county,
        "--townships",
        str(args.townships),
        "--villages",
        str(args.villages),
        "--seed",
        str(args.seed),
    )
    print(seed_out.strip())
    ensure_user(env, ADMIN_USER, "admin", f"{county}000000", "基准测试 管理员")
    ensure_user(env, COUNTY_USER, "county", f"{county}000000", "基准测试 县")

    server = SyncServer(env, args.port, args.workers)
    server.start()
    try:
        admin = Api(server.base, ADMIN_USER)
        county_api = Api(server.base, COUNTY_USER)
        agencies = ("police", "market_regulation")
        machines: list[tuple[str, str, str]] = []
        for c in range(args.clients):
            r = admin.fresh().post(
                "/api/v1/clients",
                json={
                    "name": f"{run} partner {c}",
                    "role": "partner",
                    "agency": agencies[c % 2],
                    "area_code": f"{county}000000",
                },
            )
            if r.status_code != 201:
                sys.exit(f"creating a partner client failed: {r.status_code} {r.text}")
            out = r.json()
            machines.append((out["id"], out["client_id"], out["client_secret"]))
        # real ID numbers of the county (full reads by the county user; outside the timing)
        known: list[str] = []
        for t in rng.sample(range(args.townships), min(4, args.townships)):
            village = f"{county}{100 + t:03d}{201 + rng.randrange(args.villages):03d}"
            page = county_api.get_json("/api/v1/persons", village_code=village, limit=100)
            for p in page["items"]:
                if p["id_number_masked"]:
                    known.append(county_api.get_json(f"/api/v1/persons/{p['id']}")["id_number"])
        queues = build_workload(
            rng,
            total=args.notifications,
            clients=args.clients,
            duplicates=args.duplicates,
            invalid=args.invalid,
            known=known,
            known_share=args.known,
            county=county,
            townships=args.townships,
            villages=args.villages,
            run=run,
        )
        tokens = [asyncio.run(_client_token(server.base, cid, secret)) for _, cid, secret in machines]
        calibration = asyncio.run(calibrate(server.base, tokens[0], args.clients * args.concurrency))
        wall = asyncio.run(send_all(server.base, tokens, queues, args.concurrency, args.client))
    finally:
        server.stop()

    posts = [p for q in queues for p in q]
    srv = server_times(server.log.name)
    groups = {k: Group(k) for k in ("all posts", "first sends, valid", "first sends, invalid", "resends")}
    problems: list[str] = []
    for c, q in enumerate(queues):
        for i, p in enumerate(q):
            kind = "resends" if p.original else ("first sends, valid" if p.valid else "first sends, invalid")
            for g in (groups["all posts"], groups[kind]):
                g.latencies.append(p.ms)
                ms = srv.get(f"bench-partner-{c}-{i}")
                if ms is not None:
                    g.server_ms.append(ms)
            expected_first = {202} if p.valid else {403, 422}
            if p.original is None and p.status not in expected_first:
                groups[kind].errors += 1
                problems.append(f"first send {p.key}: {p.status} {str(p.answer)[:200]}")
            if p.original is not None and (p.status, p.answer) != (p.original.status, p.original.answer):
                groups[kind].errors += 1
                problems.append(
                    f"resend {p.key}: {p.status} {str(p.answer)[:120]} vs first {p.original.status} "
                    f"{str(p.original.answer)[:120]}"
                )
    unique_valid = len({p.key for p in posts if p.valid})
    unique_keys = len({p.key for p in posts})
    notifications, keys, by_status = asyncio.run(stored_counts(url, [m[0] for m in machines]))

    n_resends = sum(1 for p in posts if p.original)
    n_invalid = sum(1 for p in posts if not p.valid and not p.original)
    print()
    print(f"database:      {safe_url(url)}")
    print(
        f"load:          {len(posts)} posts by {args.clients} partner clients × {args.concurrency} in flight "
        f"({n_resends} resends, {n_invalid} invalid, {len(known)} known ID numbers used for "
        f"~{args.known:.0%} of the rest), server workers: {args.workers}, client: {args.client}"
    )
    print(f"wall time:     {wall:.2f} s → {len(posts) / wall:.0f} notifications/s")
    retried = [p for p in posts if p.retries]
    print(
        f"retried:       {len(retried)} posts got a retry-later answer first "
        f"({sum(p.retries for p in retried)} retries; 409 in flight or 429), then their final answer"
    )
    print(
        "calibration:   "
        + ", ".join(f"{name} {rps:.0f} req/s" for name, rps in calibration.items())
        + " (same concurrency, just before the load)"
    )
    print()
    header = (
        f"{'posts':<24} {'n':>5}"
        + "".join(f" {h:>8}" for h in ("p50 ms", "p95 ms", "p99 ms", "max ms", "srv p50", "srv p95"))
        + f" {'errors':>6}"
    )
    print(header)
    for g in groups.values():
        cli = percentiles(g.latencies)
        sp = percentiles(g.server_ms)
        figures = "".join(f" {v:>8.1f}" for v in (*cli, sp[0], sp[1]))
        print(f"{g.name:<24} {len(g.latencies):>5}{figures} {g.errors:>6}")
    print()
    ok_n = notifications == unique_valid
    ok_k = keys == unique_keys
    print(
        f"stored notifications: {notifications} = unique valid posts {unique_valid}: "
        + ("OK" if ok_n else "FAILED")
    )
    print(f"stored keys:          {keys} = unique keys {unique_keys}: {'OK' if ok_k else 'FAILED'}")
    print(f"statuses after processing: {json.dumps(by_status, sort_keys=True)}")
    for line in problems[:10]:
        print("  " + line)
    print(f"\nserver log: {server.log.name}")
    return 0 if ok_n and ok_k and not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())

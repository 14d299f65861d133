"""Sync benchmark: concurrent phones pushing visits, and a village's full and incremental pull, on
the real server over PostgreSQL (issue 4).

    .venv/bin/python -m bench.sync [--database-url URL] [--phones 20] [--batch 200] [--batches-per-phone 5]

Needs a PostgreSQL database already holding a seeded county (``bench.register --persons 700000`` or
``jiahe seed-scale``). Steps: ``jiahe migrate``; create one village-cadre user per phone (each in
its own village) and one for the pull village (a village without visits or tasks yet) if missing;
then for each ``--workers`` value start ``jiahe serve --workers N`` and:

1. push: every phone (its own ``httpx.AsyncClient``, all concurrent) pushes ``--batches-per-phone``
   batches of ``--batch`` new ``visit`` ops (households of its village, random purposes, visited in
   the past year, ~20 % with ``follow_up_on``, which opens a task); prints ops/s, batch latency and
   any result that is not ``applied``;
2. (first server only) pull: pushes ``--pull-visits`` visits (``--pull-follow-ups`` of them with a
   follow-up task) dated across the past year into the pull village, then pages
   ``GET /sync/pull?limit=500`` from no cursor until ``has_more`` is false, timing the client wall,
   the server's own time per request (JSON request log) and the server's RSS; then pushes
   ``--incremental`` more visits and pulls again from the last cursor.

Finally the floor: the same number of visit rows inserted with one plain asyncpg ``executemany``
into ``visit`` inside a transaction that is rolled back.

Every subprocess runs in the project root so that it shares ``.jiahe-dev-secrets.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from bench.register import (
    PASSWORD,
    ROOT,
    Server,
    ensure_database,
    ensure_user,
    jiahe_bin,
    run_cli,
    safe_url,
)

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/jiahe_bench"
CST = timezone(timedelta(hours=8))
PURPOSES = (
    "postnatal",
    "elder_care",
    "special_family_care",
    "checkup_reminder",
    "migrant_followup",
    "claim_verification",
    "health_education",
    "other",
)
NOTES = ("家中情况良好", "已宣传政策", "老人身体健康", "需再次回访", None, None)


# --- database helpers (asyncpg, outside the app) ------------------------------------------------


async def pg_connect(url: str) -> Any:
    import asyncpg

    u = make_url(url)
    return await asyncpg.connect(
        host=u.host or "127.0.0.1",
        port=u.port or 5432,
        user=u.username or "postgres",
        password=u.password,
        database=u.database,
    )


@dataclass
class Setup:
    push_villages: list[str]
    pull_village: str
    households: dict[str, list[str]]
    persons_in_county: int
    existing_users: set[str]
    pull_before: int  # visits + tasks the pull village held before this run


async def inspect_db(url: str, county: str, townships: int, villages: int, phones: int) -> Setup:
    conn = await pg_connect(url)
    try:
        persons = await conn.fetchval("SELECT count(*) FROM person WHERE county_code = $1", county)
        codes = [f"{county}{100 + t:03d}{201 + v:03d}" for v in range(villages) for t in range(townships)]
        if phones >= len(codes):
            sys.exit(f"--phones must be below the {len(codes)} villages of the county")
        push_villages = codes[:phones]  # village v=0 of each township first: phones spread out
        # the pull village: the one with the fewest visits and tasks (none, unless other runs or
        # benchmarks have touched every village), so that the pull measures what this run pushes
        busy = {
            r["village_code"]: r["n"]
            for r in await conn.fetch(
                "SELECT village_code, count(*) AS n FROM (SELECT village_code FROM visit"
                " WHERE county_code = $1 UNION ALL SELECT village_code FROM task WHERE county_code = $1) x"
                " GROUP BY village_code",
                county,
            )
        }
        pull_village = min(reversed(codes[phones:]), key=lambda c: busy.get(c, 0))
        pull_before = busy.get(pull_village, 0)
        rows = await conn.fetch(
            "SELECT village_code, id::text AS id FROM household WHERE village_code = ANY($1::text[])",
            [*push_villages, pull_village],
        )
        households: dict[str, list[str]] = {}
        for r in rows:
            households.setdefault(r["village_code"], []).append(r["id"])
        users = {r["username"] for r in await conn.fetch('SELECT username FROM "user"')}
    finally:
        await conn.close()
    empty = [c for c in (*push_villages, pull_village) if not households.get(c)]
    if empty:
        sys.exit(f"villages without households: {', '.join(empty)}; is the county seeded?")
    return Setup(push_villages, pull_village, households, int(persons), users, pull_before)


def village_user(code: str) -> str:
    return f"bench-sync-{code}"


# --- ops -----------------------------------------------------------------------------------------


def visit_op(rng: random.Random, households: list[str], now: datetime, follow_up: bool) -> dict[str, Any]:
    visited = now - timedelta(seconds=rng.randint(3600, 365 * 86400))
    local = visited.astimezone(CST).replace(microsecond=0)
    data: dict[str, Any] = {
        "household_id": rng.choice(households),
        "visited_at": local.isoformat(),
        "purpose": rng.choice(PURPOSES),
    }
    note = rng.choice(NOTES)
    if note:
        data["notes"] = note
    if rng.random() < 0.3:
        data["location"] = {
            "lat": round(28.2 + rng.random() / 5, 6),
            "lon": round(112.9 + rng.random() / 5, 6),
            "accuracy_m": rng.choice((5.0, 10.0, 25.0)),
        }
    if follow_up:
        data["follow_up_on"] = (local.date() + timedelta(days=rng.randint(1, 30))).isoformat()
        if rng.random() < 0.5:
            data["follow_up_note"] = "复查血压"
    return {
        "op_id": uuid.uuid4().hex,
        "entity": "visit",
        "id": str(uuid.uuid4()),
        "base_version": None,
        "data": data,
    }


def make_batches(
    rng: random.Random, households: list[str], batches: int, size: int, follow_ups: int | None = None
) -> list[list[dict[str, Any]]]:
    """``batches`` lists of ``size`` visit ops; with ``follow_ups``, exactly that many carry one
    (spread over the batches), else each op has one with probability 0.2."""
    now = datetime.now(UTC)
    total = batches * size
    chosen = set(rng.sample(range(total), follow_ups)) if follow_ups is not None else None
    ops = [
        visit_op(rng, households, now, (i in chosen) if chosen is not None else rng.random() < 0.2)
        for i in range(total)
    ]
    return [ops[i : i + size] for i in range(0, total, size)]


# --- server --------------------------------------------------------------------------------------


class SyncServer(Server):
    """``jiahe serve --workers N``, plus the RSS of its processes."""

    def __init__(self, env: dict[str, str], port: int, workers: int) -> None:
        super().__init__(env, port)
        self.workers = workers

    def start(self, timeout_s: float = 120.0) -> None:
        try:
            httpx.get(self.base + "/healthz", timeout=1.0)
        except httpx.HTTPError:
            pass
        else:
            sys.exit(f"something already listens on port {self.port}; pass --port")
        self.proc = subprocess.Popen(
            [*jiahe_bin(), "serve", "--port", str(self.port), "--workers", str(self.workers)],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"the server exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if httpx.get(self.base + "/readyz", timeout=2.0).status_code == 200:
                    if self.workers == 1 or len(self.pids()) > self.workers:
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        sys.exit(f"the server did not become ready in {timeout_s:.0f} s:\n{self.tail()}")

    def pids(self) -> list[int]:
        """The server process and its descendants (uvicorn workers)."""
        assert self.proc is not None
        parent: dict[int, int] = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    stat = (d / "stat").read_text()
                except OSError:
                    continue
                parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        out = [self.proc.pid]
        for pid in out:
            out.extend(p for p, pp in parent.items() if pp == pid)
        return out

    def request_ms(self) -> dict[str, float]:
        """request id → milliseconds inside the server, from the JSON request log."""
        self.log.flush()
        out: dict[str, float] = {}
        for line in Path(self.log.name).read_text(errors="replace").splitlines():
            if '"message": "request"' not in line or '"bench-' not in line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            out[rec.get("request_id", "")] = float(rec["ms"])
        return out


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB."""
    vals = {"VmRSS": 0, "VmHWM": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in vals:
                vals[key] = int(line.split()[1])
    except OSError:
        pass
    return vals["VmRSS"], vals["VmHWM"]


class RssMonitor:
    """Polls the summed VmRSS of some processes every few milliseconds in a thread."""

    def __init__(self, pids: list[int], every_s: float = 0.005) -> None:
        self.pids = pids
        self.every_s = every_s
        self.before_kb = self.now_kb()
        self.peak_kb = self.before_kb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now_kb(self) -> int:
        return sum(rss_kb(p)[0] for p in self.pids)

    def hwm_kb(self) -> int:
        return max(rss_kb(p)[1] for p in self.pids)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.now_kb())
            time.sleep(self.every_s)

    def __enter__(self) -> RssMonitor:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, self.now_kb())


# --- client --------------------------------------------------------------------------------------


class Phone:
    """One cadre's phone: one logged-in user over one keep-alive connection."""

    def __init__(self, base: str, username: str, device_id: str) -> None:
        self.http = httpx.AsyncClient(base_url=base, timeout=600.0)
        self.username = username
        self.device_id = device_id

    async def login(self) -> None:
        r = await self.http.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": self.username, "password": PASSWORD},
        )
        if r.status_code != 200:
            sys.exit(f"login of {self.username} failed: {r.status_code} {r.text}")
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    async def push(self, ops: list[dict[str, Any]], request_id: str) -> tuple[float, list[dict[str, Any]]]:
        t0 = time.perf_counter()
        r = await self.http.post(
            "/api/v1/sync/push",
            json={"device_id": self.device_id, "ops": ops},
            headers={"X-Request-ID": request_id},
        )
        ms = (time.perf_counter() - t0) * 1000
        if r.status_code == 401:  # the access token expired during a slow run: nothing was applied
            await self.login()
            return await self.push(ops, request_id + "-again")
        if r.status_code != 200:
            sys.exit(f"push by {self.username} → {r.status_code} {r.text[:500]}")
        return ms, r.json()["results"]

    async def close(self) -> None:
        await self.http.aclose()


def pct(values: list[float], q: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[q - 1]


@dataclass
class PushRun:
    workers: int
    ops: int = 0
    wall_s: float = 0.0
    batch_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    first_bad: str = ""
    follow_ups: int = 0

    @property
    def not_applied(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != "applied")


async def push_benchmark(
    server: SyncServer, phones: list[Phone], work: list[list[list[dict[str, Any]]]], tag: str
) -> PushRun:
    run = PushRun(server.workers)
    ids: list[str] = []

    async def one_phone(i: int) -> None:
        for b, ops in enumerate(work[i]):
            rid = f"bench-{tag}-{i}-{b}"
            ids.append(rid)
            ms, results = await phones[i].push(ops, rid)
            run.batch_ms.append(ms)
            for res in results:
                run.statuses[res["status"]] += 1
                if res["status"] != "applied" and not run.first_bad:
                    run.first_bad = json.dumps(res, ensure_ascii=False)[:300]

    t0 = time.perf_counter()
    await asyncio.gather(*(one_phone(i) for i in range(len(phones))))
    run.wall_s = time.perf_counter() - t0
    run.ops = sum(len(b) for w in work for b in w)
    run.follow_ups = sum(1 for w in work for b in w for op in b if "follow_up_on" in op["data"])
    srv = server.request_ms()
    run.server_ms = [srv[r] for r in ids if r in srv]
    return run


@dataclass
class PullRun:
    pages: int = 0
    wall_s: float = 0.0
    server_ms: list[float] = field(default_factory=list)
    by_entity: Counter[str] = field(default_factory=Counter)
    deleted: int = 0
    cursor: str | None = None

    @property
    def changes(self) -> int:
        return sum(self.by_entity.values())


async def pull_all(server: SyncServer, phone: Phone, cursor: str | None, limit: int, tag: str) -> PullRun:
    run = PullRun()
    ids: list[str] = []
    t0 = time.perf_counter()
    while True:
        rid = f"bench-{tag}-{run.pages}"
        ids.append(rid)
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        r = await phone.http.get("/api/v1/sync/pull", params=params, headers={"X-Request-ID": rid})
        if r.status_code != 200:
            sys.exit(f"pull → {r.status_code} {r.text[:500]}")
        page = r.json()
        run.pages += 1
        for c in page["changes"]:
            run.by_entity[c["entity"]] += 1
            run.deleted += bool(c["deleted"])
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    run.wall_s = time.perf_counter() - t0
    run.cursor = cursor
    srv = server.request_ms()
    run.server_ms = [srv[r] for r in ids if r in srv]
    return run


# --- the floor -----------------------------------------------------------------------------------


async def floor_insert(url: str, rows: list[tuple[Any, ...]]) -> float:
    """Seconds to insert the rows into ``visit`` with one executemany (rolled back)."""
    conn = await pg_connect(url)
    try:
        tr = conn.transaction()
        await tr.start()
        try:
            t0 = time.perf_counter()
            await conn.executemany(
                "INSERT INTO visit (created_at, updated_at, version, county_code, township_code,"
                " village_code, id, household_id, person_id, visited_at, purpose, notes, lat, lon,"
                " accuracy_m, follow_up_on, follow_up_note, visitor_id)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
                rows,
            )
            return time.perf_counter() - t0
        finally:
            await tr.rollback()
    finally:
        await conn.close()


def floor_rows(work: list[list[list[dict[str, Any]]]], villages: list[str]) -> list[tuple[Any, ...]]:
    rows = []
    now = datetime.now(UTC)
    for phone, village in zip(work, villages, strict=True):
        for batch in phone:
            for op in batch:
                d = op["data"]
                loc = d.get("location") or {}
                rows.append(
                    (
                        now,
                        now,
                        1,
                        village[:6],
                        village[:9],
                        village,
                        uuid.uuid4(),  # the pushed ids exist already
                        uuid.UUID(d["household_id"]),
                        None,
                        datetime.fromisoformat(d["visited_at"]),
                        d["purpose"],
                        d.get("notes"),
                        loc.get("lat"),
                        loc.get("lon"),
                        loc.get("accuracy_m"),
                        date.fromisoformat(d["follow_up_on"]) if "follow_up_on" in d else None,
                        d.get("follow_up_note"),
                        None,
                    )
                )
    return rows


# --- main ----------------------------------------------------------------------------------------


def mb(kb: int) -> str:
    return f"{kb / 1024:.0f} MB"


async def run_server(
    args: argparse.Namespace,
    env: dict[str, str],
    setup: Setup,
    workers: int,
    rng: random.Random,
    with_pull: bool,
) -> tuple[PushRun, list[list[list[dict[str, Any]]]], dict[str, Any]]:
    server = SyncServer(env, args.port, workers)
    server.start()
    run_id = uuid.uuid4().hex[:8]
    phones = [
        Phone(server.base, village_user(v), f"bench-{run_id}-phone-{i}")
        for i, v in enumerate(setup.push_villages)
    ]
    puller = Phone(server.base, village_user(setup.pull_village), f"bench-{run_id}-puller")
    pull: dict[str, Any] = {}
    try:
        for p in [*phones, puller]:
            await p.login()
        work = [
            make_batches(rng, setup.households[v], args.batches_per_phone, args.batch)
            for v in setup.push_villages
        ]
        # warm-up: one small batch per phone (connections, caches), not timed
        warm = [make_batches(rng, setup.households[v], 1, 5) for v in setup.push_villages]
        await push_benchmark(server, phones, warm, f"warm{workers}")
        push = await push_benchmark(server, phones, work, f"push{workers}")

        if with_pull:
            seed_batches = make_batches(
                rng,
                setup.households[setup.pull_village],
                max(1, args.pull_visits // args.batch),
                args.batch,
                follow_ups=args.pull_follow_ups,
            )
            seeded = await push_benchmark(server, [puller], [seed_batches], "seedpull")
            pull["seed"] = seeded
            pids = server.pids()
            with RssMonitor(pids) as mon:
                full = await pull_all(server, puller, None, args.pull_limit, "pullfull")
            pull["full"] = full
            pull["rss"] = (mon.before_kb, mon.peak_kb, mon.hwm_kb(), len(pids))
            more = make_batches(rng, setup.households[setup.pull_village], 1, args.incremental)
            inc_push = await push_benchmark(server, [puller], [more], "incpush")
            pull["inc_push"] = inc_push
            pull["inc"] = await pull_all(server, puller, full.cursor, args.pull_limit, "pullinc")
    finally:
        for p in [*phones, puller]:
            await p.close()
        server.stop()
    pull["log"] = server.log.name
    return push, work, pull


def print_push(run: PushRun, floor_rps: float | None) -> None:
    ops_s = run.ops / run.wall_s if run.wall_s else 0.0
    bad = ", ".join(f"{s}={n}" for s, n in sorted(run.statuses.items()) if s != "applied") or "0"
    line = (
        f"  workers={run.workers}: {run.ops} ops ({run.follow_ups} with follow-up) in {run.wall_s:.1f} s"
        f" = {ops_s:,.0f} ops/s; batch p50 {pct(run.batch_ms, 50):,.0f} ms,"
        f" p95 {pct(run.batch_ms, 95):,.0f} ms"
        f" (server p50 {pct(run.server_ms, 50):,.0f}, p95 {pct(run.server_ms, 95):,.0f});"
        f" not applied: {bad}"
    )
    print(line)
    if floor_rps:
        print(f"             ratio to floor: {ops_s / floor_rps:.3f} ({ops_s:,.0f} ÷ {floor_rps:,.0f})")
    if run.first_bad:
        print(f"             first non-applied result: {run.first_bad}")


def print_pull(name: str, run: PullRun) -> None:
    ents = ", ".join(f"{e} {n}" for e, n in run.by_entity.most_common())
    print(
        f"  {name}: {run.pages} pages, {run.changes} changes ({ents or 'none'}; deleted {run.deleted});"
        f" client {run.wall_s:.2f} s; server {sum(run.server_ms) / 1000:.2f} s in total"
        f" (page p50 {pct(run.server_ms, 50):.0f} ms, max {max(run.server_ms, default=0):.0f} ms;"
        f" {len(run.server_ms)}/{run.pages} pages found in the log)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("JIAHE_DATABASE_URL") or DEFAULT_PG_URL,
        help=f"SQLAlchemy async PostgreSQL URL (default: $JIAHE_DATABASE_URL, else {DEFAULT_PG_URL})",
    )
    parser.add_argument("--phones", type=int, default=20, help="concurrent phones, one village each")
    parser.add_argument("--batch", type=int, default=200, help="ops per push (at most 500)")
    parser.add_argument("--batches-per-phone", type=int, default=5)
    parser.add_argument(
        "--workers", default="1,2", help="server worker counts to run the push with (default 1,2)"
    )
    parser.add_argument("--pull-visits", type=int, default=2000, help="visits in the pull village")
    parser.add_argument("--pull-follow-ups", type=int, default=400, help="of which with a follow-up task")
    parser.add_argument("--pull-limit", type=int, default=500)
    parser.add_argument("--incremental", type=int, default=200, help="visits pushed before the 2nd pull")
    parser.add_argument("--no-pull", action="store_true", help="push benchmark and floor only")
    parser.add_argument("--townships", type=int, default=20)
    parser.add_argument("--villages", type=int, default=20, help="villages per township")
    parser.add_argument("--county", default="430122")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]

    url: str = args.database_url
    if make_url(url).get_backend_name() != "postgresql":
        sys.exit("bench.sync needs PostgreSQL (pull ordering and the asyncpg floor)")
    env = {**os.environ, "JIAHE_DATABASE_URL": url}
    rng = random.Random(args.seed)

    print(f"database: {safe_url(url)}")
    ensure_database(url)
    print(run_cli(env, "migrate").strip())
    setup = asyncio.run(inspect_db(url, args.county, args.townships, args.villages, args.phones))
    if not setup.persons_in_county:
        sys.exit(f"county {args.county} has no people; seed it first (see bench/README.md)")
    missing = [
        v for v in (*setup.push_villages, setup.pull_village) if village_user(v) not in setup.existing_users
    ]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda v: ensure_user(env, village_user(v), "village", v, f"基准 同步 {v}"), missing))
    if missing:
        print(f"created {len(missing)} village users")

    pushes: list[PushRun] = []
    work: list[list[list[dict[str, Any]]]] = []
    pull: dict[str, Any] = {}
    logs = []
    for n, w in enumerate(workers):
        if n:
            run_cli(env, "migrate")  # others may have added a migration meanwhile; serve refuses then
        run, w_work, w_pull = asyncio.run(
            run_server(args, env, setup, w, rng, with_pull=(n == 0 and not args.no_pull))
        )
        pushes.append(run)
        logs.append(w_pull.pop("log"))
        if n == 0:
            work, pull = w_work, w_pull

    rows = floor_rows(work, setup.push_villages)
    floor_s = asyncio.run(floor_insert(url, rows))
    floor_rps = len(rows) / floor_s

    print()
    print(f"database:  {safe_url(url)}; county {args.county} with {setup.persons_in_county:,} people")
    print(
        f"push:      {args.phones} phones × {args.batches_per_phone} batches × {args.batch} new visit ops,"
        f" all phones concurrent (one AsyncClient each), after a 5-op warm-up batch per phone"
    )
    for run in pushes:
        print_push(run, floor_rps)
    print(
        f"floor:     {len(rows)} visit rows, one asyncpg executemany into visit (rolled back):"
        f" {floor_s:.2f} s = {floor_rps:,.0f} rows/s"
    )
    if pull:
        seed: PushRun = pull["seed"]
        inc_push: PushRun = pull["inc_push"]
        before, peak, hwm, nproc = pull["rss"]
        print(
            f"pull:      village {setup.pull_village} as its cadre (workers={workers[0]}),"
            f" limit={args.pull_limit};"
            f" seeded with {seed.ops} visits ({seed.follow_ups} follow-up tasks) over the past year"
            f" in {seed.wall_s:.1f} s (not applied: {seed.not_applied}); it held {setup.pull_before}"
            " visits + tasks before"
        )
        print_pull("full pull", pull["full"])
        print(
            f"  server RSS: {mb(before)} before the pull, peak {mb(peak)} during it"
            f" (+{mb(peak - before)}); VmHWM since start {mb(hwm)} ({nproc} process(es))"
        )
        print(f"  incremental: pushed {inc_push.ops} visits ({inc_push.follow_ups} follow-ups), then:")
        print_pull("incremental pull", pull["inc"])
    print(f"\nserver logs: {', '.join(logs)}")
    bad = sum(r.not_applied for r in pushes) + (
        pull["seed"].not_applied + pull["inc_push"].not_applied if pull else 0
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

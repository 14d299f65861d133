"""Load test: a mixed day of a county against ``jiahe serve`` in production settings (issue 9).

    .venv/bin/python -m bench.load [--database-url URL] [--duration 120] [--warmup 30] [--workers 2]
                                   [--cadres 400] [--township-users 20] [--dashboards 5] [--partners 3]

Needs a PostgreSQL database holding the generated county (``jiahe seed-scale --persons N
--events-year Y``; ``--persons N`` here runs it first). The server runs with ``JIAHE_ENV=production``:
the secrets of ``.jiahe-dev-secrets.json`` (or ``JIAHE_*`` secrets already in the environment) are
passed as ``JIAHE_*`` environment variables, every other setting keeps its production default
except the per-address rate limit, which is raised because every simulated client is 127.0.0.1.

Steps (in the project root, as the other benchmarks): ``jiahe migrate``; users ``bench-load-v-<village>``
(one cadre per village), ``bench-load-t-<township>`` and ``bench-county`` created if missing; fresh
dashboard and partner machine clients; ``jiahe serve --workers N``; every user logs in, every cadre
does her first full pull (her phone's stored cursor: the state of a phone that synced yesterday);
a few real ID numbers are read for the partners. Then all actors run concurrently, each with
exponential think times: ``--warmup`` seconds untimed, then ``--duration`` seconds timed.

- cadre (one per village): a sync every ~``--cadre-every`` s: with ``--push-share`` a push of 1..
  ``--max-batch`` new visits of today (~15 % with a follow-up task), then an incremental pull from
  her cursor until ``has_more`` is false; her open tasks every ~``--tasks-every`` s (completing a
  follow-up with ``--complete-share``); a household of her village every ~``--household-every`` s;
  a token refresh every ``--refresh-every`` s (first ones staggered);
- township user: one list every ~``--township-every`` s: persons, households, open tasks, visits,
  checkup appointments, claims, data-quality faults, sync conflicts, the notification inbox
  (30 % of lists also fetch their second page);
- dashboard client: every ``--dashboard-every`` s the county's figures for ``--year`` with
  ``breakdown=true`` and a monthly series, each with ``If-None-Match`` (304 when nothing changed);
  a new client-credentials token every ``--machine-token-every`` s;
- partner client: every ~``--partner-every`` s a new notification (``Idempotency-Key``), a resend of
  an earlier one (``--resend-share``, must get the identical answer) or a status read.

Prints requests/s and client round-trip p50/p95/p99 per kind and overall (and the time inside the
server from its JSON request log), every error (status >= 500, unexpected 4xx, transport errors,
sync ops not applied, resends answered differently), the server's RSS (all its processes) after
the warm-up and at the end, and CPU use. Exit status 1 on any error.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import re
import resource
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from bench.partner import KINDS, _area, _cumulative, _unknown_numbers
from bench.register import COUNTY_USER, PASSWORD, ROOT, ensure_database, run_cli, safe_url
from bench.sync import CST, DEFAULT_PG_URL, NOTES, PURPOSES, SyncServer, pg_connect, rss_kb

CADRE_PREFIX = "bench-load-v-"
TOWNSHIP_PREFIX = "bench-load-t-"
DEFAULT_ADDRESS_LIMIT = 12000  # app default of JIAHE_RATE_LIMIT_PER_ADDRESS_PER_MINUTE
SECRET_FIELDS = ("jwt_private_keys", "jwt_active_kid", "field_keys", "field_active_key_id", "blind_index_key")
API = "/api/v1"


# --- settings ------------------------------------------------------------------------------------


def production_env(url: str, address_limit: int) -> tuple[dict[str, str], str]:
    """The environment of every subprocess and of this process's own database work: production,
    with the secrets as JIAHE_* variables (from the environment, else the dev secrets file)."""
    env = dict(os.environ)
    env["JIAHE_ENV"] = "production"
    env["JIAHE_DATABASE_URL"] = url
    missing = [f for f in SECRET_FIELDS if not env.get("JIAHE_" + f.upper())]
    source = "the environment"
    if missing:
        path = Path(os.environ.get("JIAHE_DEV_SECRETS_FILE", ".jiahe-dev-secrets.json"))
        path = path if path.is_absolute() else ROOT / path
        if not path.exists():
            sys.exit(f"no secrets: set JIAHE_{missing[0].upper()} etc. or create {path} (jiahe serve once)")
        stored = json.loads(path.read_text())
        for f in missing:
            if not stored.get(f):
                sys.exit(f"{path} holds no {f}")
            env["JIAHE_" + f.upper()] = stored[f]
        source = f"{path.name}" if len(missing) == len(SECRET_FIELDS) else f"{path.name} and the environment"
    env["JIAHE_RATE_LIMIT_PER_ADDRESS_PER_MINUTE"] = str(address_limit)
    return env, source


# --- database setup (in this process, production settings) ---------------------------------------


@dataclass
class Setup:
    persons: int
    villages: list[str]  # cadre villages, spread over the townships
    townships: dict[str, list[str]]  # township area code -> its village codes
    created_users: int
    dashboards: list[tuple[str, str]] = field(default_factory=list)  # (client_id, secret)
    partners: list[tuple[str, str]] = field(default_factory=list)


async def prepare(url: str, county: str, args: argparse.Namespace, run: str) -> Setup:
    from app.core.config import get_settings
    from app.core.db import make_engine, make_sessionmaker
    from app.core.security import hash_password
    from app.models.users import Agency, ClientCreate, Role, UserCreate
    from app.services import users as users_svc

    conn = await pg_connect(url)
    try:
        persons = int(await conn.fetchval("SELECT count(*) FROM person WHERE county_code = $1", county))
        areas = await conn.fetch(
            "SELECT code, level FROM area WHERE county_code = $1 AND level IN ('township', 'village')"
            " ORDER BY code",
            county,
        )
        existing = {
            r["username"]
            for r in await conn.fetch(
                "SELECT username FROM \"user\" WHERE username LIKE 'bench-load-%' OR username = $1",
                COUNTY_USER,
            )
        }
    finally:
        await conn.close()
    townships: dict[str, list[str]] = {r["code"]: [] for r in areas if r["level"] == "township"}
    for r in areas:
        if r["level"] == "village":
            townships.setdefault(r["code"][:9] + "000", []).append(r["code"])
    # round-robin over the townships, so that fewer cadres still cover the county
    spread = [v for group in itertools.zip_longest(*townships.values()) for v in group if v]
    if args.cadres > len(spread):
        sys.exit(f"--cadres {args.cadres}: the county has only {len(spread)} villages")
    if args.township_users > len(townships):
        sys.exit(f"--township-users {args.township_users}: the county has only {len(townships)} townships")
    villages = spread[: args.cadres]
    chosen_townships = dict(list(townships.items())[: args.township_users])

    wanted: list[tuple[str, Role, str]] = [(CADRE_PREFIX + v, Role.village, v) for v in villages]
    wanted += [(TOWNSHIP_PREFIX + t, Role.township, t) for t in chosen_townships]
    wanted.append((COUNTY_USER, Role.county, f"{county}000000"))
    missing = [w for w in wanted if w[0] not in existing]

    # One argon2 hash for all new users (same password; hashing 400 times would take minutes).
    one_hash = hash_password(PASSWORD)
    engine = make_engine(get_settings())
    setup = Setup(persons, villages, chosen_townships, len(missing))
    try:
        async with make_sessionmaker(engine)() as session:
            users_svc.hash_password = lambda _password: one_hash  # type: ignore[attr-defined]
            try:
                for username, role, area in missing:
                    data = UserCreate(
                        username=username,
                        password=PASSWORD,
                        role=role,
                        area_code=area,
                        display_name=f"基准 负载 {area}",
                    )
                    await users_svc.create_user(session, None, data)
            finally:
                users_svc.hash_password = hash_password  # type: ignore[attr-defined]
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            for i in range(args.dashboards):
                client, secret = await users_svc.create_client(
                    session,
                    None,
                    ClientCreate(
                        name=f"bench-load {run} dashboard {i}",
                        role=Role.dashboard,
                        area_code=f"{county}000000",
                    ),
                )
                setup.dashboards.append((client.client_id, secret))
            for i in range(args.partners):
                client, secret = await users_svc.create_client(
                    session,
                    None,
                    ClientCreate(
                        name=f"bench-load {run} partner {i} ({stamp})",
                        role=Role.partner,
                        agency=(Agency.police, Agency.market_regulation)[i % 2],
                        area_code=f"{county}000000",
                    ),
                )
                setup.partners.append((client.client_id, secret))
            await session.commit()
    finally:
        await engine.dispose()
    return setup


# --- measuring -----------------------------------------------------------------------------------


@dataclass
class Rec:
    kind: str
    t0: float
    ms: float
    status: int
    rid: str


@dataclass
class Err:
    kind: str
    t0: float
    rid: str
    what: str  # status or "transport" / "op" / "resend"
    detail: str


_LONG_DIGITS = re.compile(r"\d{11,}[\dXx]?")


def problem_summary(r: httpx.Response) -> str:
    """code, title and detail of a problem answer (long digit runs masked: no ID numbers)."""
    try:
        body = r.json()
    except ValueError:
        return _LONG_DIGITS.sub("[…]", r.text[:160])
    if not isinstance(body, dict):
        return _LONG_DIGITS.sub("[…]", str(body)[:160])
    fields = ",".join(str(e.get("field")) for e in body.get("errors") or [] if isinstance(e, dict))
    text = f"{body.get('code')} — {body.get('title')}: {body.get('detail')}" + (
        f" [fields: {fields}]" if fields else ""
    )
    return _LONG_DIGITS.sub("[…]", text[:240])


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(stat[11]) + int(stat[12])) / tick  # utime, stime
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    vals = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    total = sum(vals[:8])
    idle = vals[3] + vals[4]
    return (total - idle) / tick, total / tick


def process_labels(pids: list[int]) -> str:
    """What the server's processes are: the supervisor, workers, multiprocessing helpers."""
    kinds: Counter[str] = Counter()
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "resource_tracker" in cmd:
            kinds["resource tracker"] += 1
        elif "multiprocessing" in cmd or "spawn_main" in cmd:
            kinds["workers"] += 1
        else:
            kinds["supervisor"] += 1
    if not kinds["workers"] and kinds["supervisor"] == 1:
        return "the server (one worker, in process)"
    return ", ".join(f"{n} {k}" if k == "workers" else k for k, n in kinds.items())


async def pg_backend_cpu(url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to the database."""
    conn = await pg_connect(url)
    try:
        pids = [
            int(r["pid"])
            for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
    finally:
        await conn.close()
    return {pid: cpu_seconds([pid]) for pid in pids}


def own_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# --- actors --------------------------------------------------------------------------------------


@dataclass
class User:
    username: str
    area: str
    access: str = ""
    refresh: str = ""
    token_at: float = 0.0
    # cadres
    cursor: str | None = None
    households: list[str] = field(default_factory=list)
    device_id: str = ""


@dataclass
class Machine:
    client_id: str
    secret: str
    token: str = ""
    token_at: float = 0.0
    etags: dict[str, str] = field(default_factory=dict)
    # what a partner sent: (Idempotency-Key, body, status, answer)
    sent: list[tuple[str, dict[str, Any], int, Any]] = field(default_factory=list)


class Runner:
    def __init__(self, args: argparse.Namespace, base: str, county: str, run: str) -> None:
        self.args = args
        self.county = county
        self.run = run
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=64, keepalive_expiry=4.0)
        # keep-alive expiry below uvicorn's 5 s, so that the client never reuses a connection the
        # server is closing
        self.http = httpx.AsyncClient(base_url=base, limits=limits, timeout=httpx.Timeout(60.0, pool=60.0))
        self.records: list[Rec] = []
        self.errors: list[Err] = []
        self.counter = itertools.count()
        self.stop = asyncio.Event()
        self.t_start = math.inf
        self.t_end = math.inf
        self.facts: Counter[str] = Counter()

    def phase(self, t0: float) -> str:
        if t0 < self.t_start:
            return "warmup"
        return "timed" if t0 < self.t_end else "after"

    def error(self, kind: str, t0: float, rid: str, what: str, detail: str) -> None:
        self.errors.append(Err(kind, t0, rid, what, detail))

    async def request(
        self,
        kind: str,
        method: str,
        path: str,
        token: str | None,
        *,
        ok: tuple[int, ...] = (200,),
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response | None:
        """One request, timed and recorded; None (and an error recorded) unless its status is in ``ok``."""
        rid = f"bench-load-{next(self.counter)}"
        h = {"X-Request-ID": rid, **(headers or {})}
        if token:
            h["Authorization"] = f"Bearer {token}"
        t0 = time.perf_counter()
        try:
            r = await self.http.request(method, API + path, headers=h, **kw)
        except httpx.HTTPError as exc:
            self.records.append(Rec(kind, t0, (time.perf_counter() - t0) * 1000, 0, rid))
            self.error(kind, t0, rid, "transport", f"{type(exc).__name__}: {str(exc)[:160]}")
            return None
        self.records.append(Rec(kind, t0, (time.perf_counter() - t0) * 1000, r.status_code, rid))
        if r.status_code not in ok:
            self.error(kind, t0, rid, str(r.status_code), problem_summary(r))
            return None
        return r

    async def pause(self, seconds: float) -> bool:
        """Sleep; False when the run is over."""
        if self.stop.is_set():
            return False
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return True
        return False

    # --- auth --------------------------------------------------------------------------------

    async def login(self, u: User, kind: str = "setup login") -> None:
        r = await self.request(
            kind,
            "POST",
            "/auth/token",
            None,
            data={"grant_type": "password", "username": u.username, "password": PASSWORD},
        )
        if r is None:
            sys.exit(f"login of {u.username} failed: {self.errors[-1].what} {self.errors[-1].detail}")
        body = r.json()
        u.access, u.refresh, u.token_at = body["access_token"], body["refresh_token"], time.perf_counter()

    async def refresh(self, u: User, kind: str) -> None:
        r = await self.request(kind, "POST", "/auth/refresh", None, json={"refresh_token": u.refresh})
        if r is not None:
            body = r.json()
            u.access, u.refresh, u.token_at = body["access_token"], body["refresh_token"], time.perf_counter()

    async def machine_token(self, m: Machine, kind: str) -> bool:
        r = await self.request(
            kind,
            "POST",
            "/auth/token",
            None,
            data={"grant_type": "client_credentials", "client_id": m.client_id, "client_secret": m.secret},
        )
        if r is None:
            return False
        m.token, m.token_at = r.json()["access_token"], time.perf_counter()
        return True

    def first_renewal(self, rng: random.Random, token_at: float, every: float) -> float:
        """When a token is first renewed: staggered over ``every`` from the start of the actors
        (a steady rate, as on a day where logins happened at all times), but always at least two
        minutes before the 15-minute access token expires."""
        return min(time.perf_counter() + rng.uniform(0, every), token_at + 13 * 60)

    # --- cadre -------------------------------------------------------------------------------

    async def pull(self, u: User, kind: str, limit: int) -> None:
        for _ in range(200):  # at most 200 pages per sync
            params: dict[str, Any] = {"limit": limit}
            if u.cursor:
                params["cursor"] = u.cursor
            r = await self.request(kind, "GET", "/sync/pull", u.access, params=params)
            if r is None:
                return
            page = r.json()
            if kind == "setup first pull":
                u.households += [
                    c["id"] for c in page["changes"] if c["entity"] == "household" and not c["deleted"]
                ]
            elif self.phase(time.perf_counter()) == "timed":
                self.facts["changes pulled"] += len(page["changes"])
            u.cursor = page["next_cursor"]
            if not page["has_more"]:
                return

    def visit_ops(self, rng: random.Random, u: User, n: int) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        ops = []
        for _ in range(n):
            visited = (now - timedelta(minutes=rng.uniform(5, 480))).astimezone(CST).replace(microsecond=0)
            data: dict[str, Any] = {
                "household_id": rng.choice(u.households),
                "visited_at": visited.isoformat(),
                "purpose": rng.choice(PURPOSES),
            }
            note = rng.choice(NOTES)
            if note:
                data["notes"] = note
            if rng.random() < 0.6:
                data["location"] = {
                    "lat": round(28.2 + rng.random() / 5, 6),
                    "lon": round(112.9 + rng.random() / 5, 6),
                    "accuracy_m": rng.choice((5.0, 10.0, 25.0)),
                }
            if rng.random() < 0.15:
                data["follow_up_on"] = (visited.date() + timedelta(days=rng.randint(3, 30))).isoformat()
            ops.append(
                {
                    "op_id": uuid.uuid4().hex,
                    "entity": "visit",
                    "id": str(uuid.uuid4()),
                    "base_version": None,
                    "data": data,
                }
            )
        return ops

    async def push(self, rng: random.Random, u: User) -> None:
        ops = self.visit_ops(rng, u, rng.randint(1, self.args.max_batch))
        t0 = time.perf_counter()
        r = await self.request(
            "cadre sync push", "POST", "/sync/push", u.access, json={"device_id": u.device_id, "ops": ops}
        )
        if r is None:
            return
        results = r.json()["results"]
        if self.phase(t0) == "timed":
            self.facts["visit ops pushed"] += len(ops)
        for res in results:
            if res["status"] != "applied":
                err = res.get("error") or {}
                self.error(
                    "cadre sync push",
                    t0,
                    r.headers.get("x-request-id", ""),
                    f"op {res['status']}",
                    f"{err.get('code')} — {err.get('detail')}"[:200],
                )
        if len(results) != len(ops):
            self.error("cadre sync push", t0, "", "op count", f"{len(results)} results for {len(ops)} ops")

    async def tasks(self, rng: random.Random, u: User) -> None:
        r = await self.request(
            "cadre tasks", "GET", "/tasks", u.access, params={"status": "open", "limit": 50}
        )
        if r is None or rng.random() >= self.args.complete_share:
            return
        follow_ups = [t for t in r.json()["items"] if t["kind"] == "follow_up"]
        if follow_ups:
            task = rng.choice(follow_ups)
            done = await self.request(
                "cadre task complete",
                "POST",
                f"/tasks/{task['id']}/complete",
                u.access,
                json={"note": "已随访"},
            )
            if done is not None and self.phase(time.perf_counter()) == "timed":
                self.facts["tasks completed"] += 1

    async def cadre(self, u: User, rng: random.Random) -> None:
        a = self.args
        now = time.perf_counter()
        due = {
            "sync": now + rng.expovariate(1 / a.cadre_every),
            "tasks": now + rng.expovariate(1 / a.tasks_every),
            "household": now + rng.expovariate(1 / a.household_every),
            "refresh": self.first_renewal(rng, u.token_at, a.refresh_every),
        }
        while True:
            what = min(due, key=lambda k: due[k])
            if not await self.pause(due[what] - time.perf_counter()):
                return
            if what == "refresh":
                await self.refresh(u, "cadre token refresh")
                due["refresh"] = time.perf_counter() + a.refresh_every
            elif what == "sync":
                if rng.random() < a.push_share:
                    await self.push(rng, u)
                await self.pull(u, "cadre sync pull", a.pull_limit)
                due["sync"] = time.perf_counter() + rng.expovariate(1 / a.cadre_every)
            elif what == "tasks":
                await self.tasks(rng, u)
                due["tasks"] = time.perf_counter() + rng.expovariate(1 / a.tasks_every)
            else:
                await self.request(
                    "cadre household", "GET", f"/households/{rng.choice(u.households)}", u.access
                )
                due["household"] = time.perf_counter() + rng.expovariate(1 / a.household_every)

    # --- township ----------------------------------------------------------------------------

    def township_list(
        self, rng: random.Random, u: User, villages: list[str]
    ) -> tuple[str, str, dict[str, Any]]:
        kinds = (
            ("persons", 3.0),
            ("households", 2.0),
            ("tasks", 2.0),
            ("visits", 2.0),
            ("appointments", 1.0),
            ("claims", 1.0),
            ("data-quality", 0.5),
            ("conflicts", 1.0),
            ("notifications", 1.0),
        )
        name = rng.choices([k for k, _ in kinds], weights=[w for _, w in kinds])[0]
        village = rng.choice(villages)
        if name == "persons":
            params: dict[str, Any] = {"limit": 50}
            if rng.random() < 0.5:
                params["village_code"] = village
            return name, "/persons", params
        if name == "households":
            params = {"limit": 50}
            if rng.random() < 0.5:
                params["village_code"] = village
            return name, "/households", params
        if name == "tasks":
            params = {"status": "open", "limit": 50}
            if rng.random() < 0.5:
                params["overdue"] = "true"
            return name, "/tasks", params
        if name == "visits":
            since = datetime.now(CST).replace(microsecond=0) - timedelta(days=rng.choice((1, 7, 30)))
            return name, "/visits", {"from": since.isoformat(), "limit": 50}
        if name == "appointments":
            return (
                name,
                "/checkup-appointments",
                {"status": rng.choice(("scheduled", "overdue")), "limit": 50},
            )
        if name == "claims":
            return name, "/claims", {"status": rng.choice(("submitted", "reviewed", "paid")), "limit": 50}
        if name == "data-quality":
            return name, "/data-quality", {"area_code": u.area}
        if name == "conflicts":
            return name, "/sync/conflicts", {"status": "open", "limit": 50}
        return name, "/migrant-notifications", {"status": "pending", "limit": 50}

    async def township(self, u: User, rng: random.Random, villages: list[str]) -> None:
        a = self.args
        next_refresh = self.first_renewal(rng, u.token_at, a.refresh_every)
        while True:
            wait = rng.expovariate(1 / a.township_every)
            if time.perf_counter() + wait >= next_refresh:
                if not await self.pause(next_refresh - time.perf_counter()):
                    return
                await self.refresh(u, "township token refresh")
                next_refresh = time.perf_counter() + a.refresh_every
                continue
            if not await self.pause(wait):
                return
            name, path, params = self.township_list(rng, u, villages)
            r = await self.request(f"township {name}", "GET", path, u.access, params=params)
            if r is not None and rng.random() < 0.3 and name != "data-quality":
                nxt = r.json().get("next_cursor")
                if nxt:
                    await self.request(
                        f"township {name}", "GET", path, u.access, params={**params, "cursor": nxt}
                    )

    # --- dashboard ---------------------------------------------------------------------------

    async def conditional(self, m: Machine, kind: str, path: str, params: dict[str, Any]) -> None:
        key = path + json.dumps(params, sort_keys=True)
        headers = {"If-None-Match": m.etags[key]} if key in m.etags else {}
        r = await self.request(kind, "GET", path, m.token, ok=(200, 304), params=params, headers=headers)
        if r is not None:
            m.etags[key] = r.headers.get("etag", m.etags.get(key, ""))
            if self.phase(time.perf_counter()) == "timed":
                self.facts[f"{kind} {r.status_code}"] += 1

    async def dashboard(self, m: Machine, rng: random.Random) -> None:
        a = self.args
        area = f"{self.county}000000"
        period = {"from": f"{a.year}-01-01", "to": f"{a.year}-12-31"}
        metrics = itertools.cycle(("births", "visits", "deaths", "inflow_new"))
        next_token = self.first_renewal(rng, m.token_at, a.machine_token_every)
        t = time.perf_counter() + rng.uniform(0, a.dashboard_every)  # dashboards poll on a fixed period
        while True:
            if t >= next_token:
                if not await self.pause(next_token - time.perf_counter()):
                    return
                await self.machine_token(m, "dashboard token")
                next_token = time.perf_counter() + a.machine_token_every
                continue
            if not await self.pause(t - time.perf_counter()):
                return
            t += a.dashboard_every
            await self.conditional(
                m, "dashboard indicators", "/indicators", {"area_code": area, "breakdown": "true", **period}
            )
            await self.conditional(
                m,
                "dashboard series",
                "/indicators/series",
                {"area_code": area, "metric": next(metrics), **period},
            )

    # --- partner -----------------------------------------------------------------------------

    def notification(
        self, rng: random.Random, known: list[str], unknown: list[str], n: int
    ) -> dict[str, Any]:
        a = self.args
        number = rng.choice(known) if known and rng.random() < a.known else unknown[n % len(unknown)]
        x = rng.random()
        kind = next(k for k, share in _cumulative(KINDS) if x < share)
        area = _area(rng, kind, self.county, a.townships, a.villages)
        body: dict[str, Any] = {
            "kind": kind,
            "id_number": number,
            "name": "基准" + rng.choice("伟芳娜敏静丽强磊军洋"),
            "address": f"第{rng.randint(1, 30)}组{rng.randint(1, 200)}号",
            "area_code": area,
            "occurred_on": (date.today() - timedelta(days=rng.randint(0, 30))).isoformat(),
            "reference": f"{self.run}-{n}",
        }
        if kind == "business_licensed":
            body["details"] = {"business_name": f"基准商店{n}", "licence_no": f"92430122MA{n % 10**8:08d}"}
        return body

    async def post(self, m: Machine, kind: str, key: str, body: dict[str, Any]) -> httpx.Response | None:
        for _ in range(20):
            r = await self.request(
                kind,
                "POST",
                "/partner/notifications",
                m.token,
                ok=(202, 409),
                json=body,
                headers={"Idempotency-Key": key},
            )
            if r is None or r.status_code == 202:
                return r
            if r.json().get("code") != "idempotency_key_in_flight":
                self.error(
                    kind, time.perf_counter(), r.headers.get("x-request-id", ""), "409", problem_summary(r)
                )
                return None
            self.facts["partner retries (409 in flight)"] += 1
            await asyncio.sleep(min(float(r.headers.get("retry-after", "0.2")), 2.0))
        return None

    async def partner(
        self, m: Machine, rng: random.Random, known: list[str], unknown: list[str], idx: int
    ) -> None:
        a = self.args
        next_token = self.first_renewal(rng, m.token_at, a.machine_token_every)
        n = idx * 1_000_000
        while True:
            wait = rng.expovariate(1 / a.partner_every)
            if time.perf_counter() + wait >= next_token:
                if not await self.pause(next_token - time.perf_counter()):
                    return
                await self.machine_token(m, "partner token")
                next_token = time.perf_counter() + a.machine_token_every
                continue
            if not await self.pause(wait):
                return
            x = rng.random()
            if m.sent and x < a.resend_share:
                key, body, status, answer = rng.choice(m.sent[-50:])
                t0 = time.perf_counter()
                r = await self.post(m, "partner resend", key, body)
                if r is not None and (r.status_code, r.json()) != (status, answer):
                    self.error(
                        "partner resend",
                        t0,
                        r.headers.get("x-request-id", ""),
                        "resend",
                        f"answer {r.status_code} differs from the first answer {status}",
                    )
            elif m.sent and x < a.resend_share + a.status_share:
                _key, _body, _status, answer = rng.choice(m.sent[-200:])
                await self.request("partner status", "GET", f"/partner/notifications/{answer['id']}", m.token)
            else:
                n += 1
                key = f"{self.run}-{idx}-{n}"
                body = self.notification(rng, known, unknown, n)
                r = await self.post(m, "partner post", key, body)
                if r is not None:
                    m.sent.append((key, body, r.status_code, r.json()))


# --- setup through the API -------------------------------------------------------------------------


async def gather_limited(n: int, coros: list[Any]) -> None:
    sem = asyncio.Semaphore(n)

    async def one(c: Any) -> None:
        async with sem:
            await c

    await asyncio.gather(*(one(c) for c in coros))


async def known_numbers(
    runner: Runner, county_user: User, rng: random.Random, villages: list[str], n: int
) -> list[str]:
    """Real ID numbers of the county (full reads by the county user, audited), for the share of
    partner notifications about people on the register. Kept in memory only."""
    out: list[str] = []
    for village in rng.sample(villages, min(6, len(villages))):
        r = await runner.request(
            "setup read", "GET", "/persons", county_user.access, params={"village_code": village, "limit": 50}
        )
        for p in r.json()["items"] if r is not None else []:
            if len(out) >= n:
                return out
            if p["id_number_masked"]:
                full = await runner.request("setup read", "GET", f"/persons/{p['id']}", county_user.access)
                if full is not None and full.json().get("id_number"):
                    out.append(full.json()["id_number"])
    return out


@dataclass
class Outcome:
    runner: Runner
    setup_s: float
    first_pull_s: float
    first_pull_requests: int
    rss_start_kb: int
    rss_end_kb: int
    rss_peak_kb: int
    nproc: int
    server_cpu_s: float
    client_cpu_s: float
    machine_busy_s: float
    pg_cpu_s: float
    window_s: float
    known: int
    processes: str


async def drive(
    args: argparse.Namespace, server: SyncServer, setup: Setup, county: str, run: str, url: str
) -> Outcome:
    rng = random.Random(args.seed)
    runner = Runner(args, server.base, county, run)
    t_setup = time.perf_counter()
    cadres = [User(CADRE_PREFIX + v, v, device_id=f"bench-load-{run}-{v}") for v in setup.villages]
    towns = [User(TOWNSHIP_PREFIX + t, t) for t in setup.townships]
    county_user = User(COUNTY_USER, f"{county}000000")
    dashboards = [Machine(cid, secret) for cid, secret in setup.dashboards]
    partners = [Machine(cid, secret) for cid, secret in setup.partners]
    try:
        # logins (argon2: ~0.1-0.3 s of server CPU each), a few at a time
        await gather_limited(4, [runner.login(u) for u in [*cadres, *towns, county_user]])
        for m in [*dashboards, *partners]:
            if not await runner.machine_token(m, "setup login"):
                sys.exit(f"machine login failed: {runner.errors[-1].detail}")
        print(
            f"  logged in {len(cadres) + len(towns) + 1} users and {len(dashboards) + len(partners)} clients"
        )

        # every phone's stored cursor: a full first pull (as a phone that synced yesterday)
        t_pull = time.perf_counter()
        n_before = len(runner.records)

        async def first_pull(u: User) -> None:
            if time.perf_counter() - u.token_at > 10 * 60:
                await runner.refresh(u, "setup refresh")
            await runner.pull(u, "setup first pull", 1000)
            if not u.households:
                sys.exit(f"village {u.area} has no households in its pull; is the county seeded?")

        await gather_limited(args.first_pull_concurrency, [first_pull(u) for u in cadres])
        first_pull_s = time.perf_counter() - t_pull
        first_pull_requests = len(runner.records) - n_before
        print(f"  first pull of {len(cadres)} villages: {first_pull_requests} pages in {first_pull_s:.0f} s")
        for u in towns + [county_user]:
            if time.perf_counter() - u.token_at > 10 * 60:
                await runner.refresh(u, "setup refresh")
        known = await known_numbers(runner, county_user, rng, setup.villages, args.known_numbers)
        unknown = _unknown_numbers(rng, 20_000)
        for m in [*dashboards, *partners]:
            if time.perf_counter() - m.token_at > 10 * 60:
                await runner.machine_token(m, "setup login")
        setup_s = time.perf_counter() - t_setup
        runner.facts.clear()

        actors = [asyncio.create_task(runner.cadre(u, random.Random(rng.random()))) for u in cadres]
        actors += [
            asyncio.create_task(runner.township(u, random.Random(rng.random()), setup.townships[u.area]))
            for u in towns
        ]
        actors += [asyncio.create_task(runner.dashboard(m, random.Random(rng.random()))) for m in dashboards]
        actors += [
            asyncio.create_task(runner.partner(m, random.Random(rng.random()), known, unknown, i))
            for i, m in enumerate(partners)
        ]
        print(f"  warm-up: {args.warmup:.0f} s of the mix, untimed")
        await asyncio.sleep(args.warmup)
        pids = server.pids()
        rss_start = sum(rss_kb(p)[0] for p in pids)
        pg0 = await pg_backend_cpu(url)
        cpu0, own0, (busy0, _) = cpu_seconds(pids), own_cpu(), machine_busy()
        runner.t_start = time.perf_counter()
        print(f"  timed window: {args.duration:.0f} s")
        peak = rss_start
        while time.perf_counter() < runner.t_start + args.duration:
            await asyncio.sleep(min(1.0, runner.t_start + args.duration - time.perf_counter()))
            peak = max(peak, sum(rss_kb(p)[0] for p in pids))
        runner.t_end = time.perf_counter()
        rss_end = sum(rss_kb(p)[0] for p in pids)
        cpu1, own1, (busy1, _) = cpu_seconds(pids), own_cpu(), machine_busy()
        runner.stop.set()
        pg1 = await pg_backend_cpu(url)
        pg_cpu = sum(v - pg0.get(pid, 0.0) for pid, v in pg1.items())
        done, pending = await asyncio.wait(actors, timeout=120)
        for t in pending:
            t.cancel()
        for t in done:
            if t.exception() is not None:
                exc = t.exception()
                runner.error("actor", runner.t_end, "", "crash", f"{type(exc).__name__}: {exc}")
    finally:
        await runner.http.aclose()
    return Outcome(
        runner,
        setup_s,
        first_pull_s,
        first_pull_requests,
        rss_start,
        rss_end,
        max(peak, rss_end),
        len(pids),
        cpu1 - cpu0,
        own1 - own0,
        busy1 - busy0,
        pg_cpu,
        runner.t_end - runner.t_start,
        len(known),
        process_labels(pids),
    )


# --- report --------------------------------------------------------------------------------------


def pcts(values: list[float]) -> tuple[float, float, float, float]:
    if not values:
        return 0.0, 0.0, 0.0, 0.0
    s = sorted(values)
    if len(s) == 1:
        return s[0], s[0], s[0], s[0]
    q = statistics.quantiles(s, n=100, method="inclusive")
    return q[49], q[94], q[98], s[-1]


ACTOR_ORDER = ("cadre", "township", "dashboard", "partner")


def server_ms(log_path: str) -> dict[str, float]:
    """Request id -> milliseconds inside the server, from its JSON request log."""
    out: dict[str, float] = {}
    for line in Path(log_path).read_text(errors="replace").splitlines():
        if '"message": "request"' in line and '"bench-load-' in line:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            out[str(rec.get("request_id"))] = float(rec["ms"])
    return out


def report(out: Outcome, log_path: str) -> list[str]:
    r = out.runner
    srv = server_ms(log_path)
    timed = [x for x in r.records if r.t_start <= x.t0 < r.t_end]
    by_kind: dict[str, list[Rec]] = defaultdict(list)
    for x in timed:
        by_kind[x.kind].append(x)
    w = out.window_s
    header = (
        f"{'kind':<34} {'n':>6} {'req/s':>7}"
        + "".join(f" {h:>8}" for h in ("p50 ms", "p95 ms", "p99 ms", "max ms", "srv p50", "srv p95"))
        + f" {'errors':>6}"
    )
    errs_by_kind = Counter(e.kind for e in r.errors if r.t_start <= e.t0 < r.t_end)

    def row(name: str, recs: list[Rec], errors: int) -> str:
        cli = pcts([x.ms for x in recs])
        sp = pcts([srv[x.rid] for x in recs if x.rid in srv])
        figures = "".join(f" {v:>8.1f}" for v in (*cli, sp[0], sp[1]))
        return f"{name:<34} {len(recs):>6} {len(recs) / w:>7.2f}{figures} {errors:>6}"

    lines = [header]
    for actor in ACTOR_ORDER:
        kinds = sorted(k for k in by_kind if k.startswith(actor + " "))
        if not kinds:
            continue
        for k in kinds:
            lines.append(row("  " + k, by_kind[k], errs_by_kind.get(k, 0)))
        recs = [x for k in kinds for x in by_kind[k]]
        lines.append(row(f"{actor} (all)", recs, sum(errs_by_kind.get(k, 0) for k in kinds)))
    lines.append(row("ALL", timed, sum(errs_by_kind.values())))
    return lines


def offered(args: argparse.Namespace) -> list[str]:
    a = args
    cad = a.cadres
    syncs = cad / a.cadre_every
    rows = [
        f"  cadre      ({cad}) sync every ~{a.cadre_every:.0f} s: {syncs:.2f} syncs/s"
        f" = {syncs * a.push_share:.2f} pushes/s (1–{a.max_batch} visit ops,"
        f" ~{syncs * a.push_share * (1 + a.max_batch) / 2:.1f} ops/s)"
        f" + ≥{syncs:.2f} pull pages/s;",
        f"               tasks every ~{a.tasks_every:.0f} s ({cad / a.tasks_every:.2f}/s,"
        f" {a.complete_share:.0%} complete a follow-up), a household every ~{a.household_every:.0f} s"
        f" ({cad / a.household_every:.2f}/s), token refresh every {a.refresh_every:.0f} s"
        f" ({cad / a.refresh_every:.2f}/s)",
        f"  township   ({a.township_users}) a list every ~{a.township_every:.0f} s:"
        f" ~{a.township_users / a.township_every * 1.3:.2f} req/s (30 % fetch a second page)",
        f"  dashboard  ({a.dashboards}) figures + a series every {a.dashboard_every:.0f} s:"
        f" {a.dashboards * 2 / a.dashboard_every:.2f} req/s",
        f"  partner    ({a.partners}) an action every ~{a.partner_every:.0f} s:"
        f" {a.partners / a.partner_every:.2f} req/s ({a.resend_share:.0%} resends,"
        f" {a.status_share:.0%} status reads, the rest new notifications)",
    ]
    total = (
        syncs * (1 + a.push_share)
        + cad * (1 / a.tasks_every * (1 + a.complete_share / 2) + 1 / a.household_every + 1 / a.refresh_every)
        + a.township_users / a.township_every * 1.3
        + a.dashboards * 2 / a.dashboard_every
        + a.partners / a.partner_every
    )
    rows.append(
        f"  ≈ {total:.1f} req/s offered in all (Poisson arrivals; more when pulls need several pages)"
    )
    return rows


def server_log_problems(path: str) -> list[str]:
    """ERROR and WARNING records of the server log (no request lines), grouped."""
    groups: Counter[str] = Counter()
    first: dict[str, str] = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            if "Traceback" in line or line.startswith("ERROR"):
                groups["(non-JSON) " + line[:120]] += 1
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        level = rec.get("level")
        if level not in ("ERROR", "WARNING", "CRITICAL") or rec.get("message") == "request":
            continue
        exc = (rec.get("exc_info") or "").strip().splitlines()
        key = f"{level} {rec.get('logger')}: {rec.get('message')}" + (f" — {exc[-1][:160]}" if exc else "")
        groups[key] += 1
        first.setdefault(key, str(rec.get("request_id")))
    return [f"  {n}× {k} (first request id {first.get(k, '-')})" for k, n in groups.most_common(20)]


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("JIAHE_DATABASE_URL") or DEFAULT_PG_URL)
    parser.add_argument("--persons", type=int, default=0, help="run seed-scale for N people first (0: no)")
    parser.add_argument("--county", default="430122")
    parser.add_argument("--townships", type=int, default=20, help="townships of the generated county")
    parser.add_argument("--villages", type=int, default=20, help="villages per township")
    parser.add_argument(
        "--year", type=int, default=date.today().year - 1, help="dashboard period (events year)"
    )
    parser.add_argument("--duration", type=float, default=120.0, help="timed seconds")
    parser.add_argument("--warmup", type=float, default=30.0, help="untimed seconds of the mix first")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--port", type=int, default=8775)
    parser.add_argument("--cadres", type=int, default=400)
    parser.add_argument("--township-users", type=int, default=20)
    parser.add_argument("--dashboards", type=int, default=5)
    parser.add_argument("--partners", type=int, default=3)
    g = parser.add_argument_group("rates (mean seconds between one actor's actions; exponential)")
    g.add_argument("--cadre-every", type=float, default=120.0, help="a cadre's syncs (push? + pull)")
    g.add_argument("--push-share", type=float, default=0.3, help="syncs that push new visits first")
    g.add_argument("--max-batch", type=int, default=20, help="visit ops per push: 1..N")
    g.add_argument("--pull-limit", type=int, default=200, help="changes per pull page")
    g.add_argument("--tasks-every", type=float, default=600.0)
    g.add_argument("--complete-share", type=float, default=0.3, help="task lists followed by a completion")
    g.add_argument("--household-every", type=float, default=300.0)
    g.add_argument("--refresh-every", type=float, default=840.0, help="people's token refresh period")
    g.add_argument("--township-every", type=float, default=20.0)
    g.add_argument("--dashboard-every", type=float, default=30.0, help="fixed polling period")
    g.add_argument("--partner-every", type=float, default=10.0)
    g.add_argument("--resend-share", type=float, default=0.10)
    g.add_argument("--status-share", type=float, default=0.10)
    g.add_argument("--known", type=float, default=0.30, help="notifications about people on the register")
    g.add_argument("--known-numbers", type=int, default=60, help="real ID numbers read for that")
    g.add_argument("--machine-token-every", type=float, default=780.0, help="machine clients' new token")
    parser.add_argument("--first-pull-concurrency", type=int, default=4)
    parser.add_argument(
        "--address-limit",
        type=int,
        default=1_000_000,
        help="JIAHE_RATE_LIMIT_PER_ADDRESS_PER_MINUTE for the run (every client is 127.0.0.1)",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    url: str = args.database_url
    if make_url(url).get_backend_name() != "postgresql":
        sys.exit("bench.load runs on PostgreSQL (pass --database-url postgresql+asyncpg://…)")
    county: str = args.county
    env, secrets_from = production_env(url, args.address_limit)
    os.environ.update(env)  # this process's own database work uses the same settings
    run = f"{int(time.time()) % 10**8:08d}"

    print(f"database: {safe_url(url)}")
    ensure_database(url)
    print(run_cli(env, "migrate").strip())
    if args.persons:
        print(
            run_cli(
                env,
                "seed-scale",
                "--persons",
                str(args.persons),
                "--county",
                county,
                "--events-year",
                str(args.year),
            ).strip()
        )
    t0 = time.perf_counter()
    setup = asyncio.run(prepare(url, county, args, run))
    if not setup.persons:
        sys.exit(f"county {county} has no people; seed it (jiahe seed-scale, see bench/README.md)")
    print(
        f"setup: {setup.created_users} users created, {args.dashboards} dashboard and {args.partners} partner"
        f" clients created in {time.perf_counter() - t0:.1f} s"
    )

    server = SyncServer(env, args.port, args.workers)
    server.start()
    try:
        out = asyncio.run(drive(args, server, setup, county, run, url))
    finally:
        server.stop()

    r = out.runner
    per_token = os.environ.get("JIAHE_RATE_LIMIT_PER_TOKEN_PER_MINUTE", "6000 (default)")
    print()
    print(f"database:   {safe_url(url)}; county {county} with {setup.persons:,} people")
    print(
        f"server:     jiahe serve --workers {args.workers}, JIAHE_ENV=production, secrets from {secrets_from}"
        " passed as JIAHE_* variables"
    )
    print(
        f"            JIAHE_RATE_LIMIT_PER_ADDRESS_PER_MINUTE raised from {DEFAULT_ADDRESS_LIMIT} to"
        f" {args.address_limit} for this run (all simulated clients are 127.0.0.1);"
        f" per token: {per_token}"
    )
    print(
        f"actors:     {args.cadres} village cadres, {args.township_users} township users, {args.dashboards}"
        f" dashboards, {args.partners} partner clients; {out.window_s:.0f} s timed after {args.warmup:.0f} s"
        f" warm-up; dashboard period {args.year}"
    )
    print(
        f"setup:      {out.setup_s:.0f} s (logins; first full pull of every village:"
        f" {out.first_pull_requests} pages in {out.first_pull_s:.0f} s; {out.known} known ID numbers read)"
    )
    logins = [x.ms for x in r.records if x.kind == "setup login"]
    pull_pages = [x.ms for x in r.records if x.kind == "setup first pull"]
    print(
        f"            {len(logins)} logins (argon2, 4 at a time): p50 {pcts(logins)[0]:.0f} ms,"
        f" p95 {pcts(logins)[1]:.0f} ms; first-pull pages (limit 1000, {args.first_pull_concurrency} at a"
        f" time): p50 {pcts(pull_pages)[0]:.0f} ms, p95 {pcts(pull_pages)[1]:.0f} ms"
    )
    print("offered:")
    print("\n".join(offered(args)))
    print()
    print("client round trip (p50..max, req/s) and time inside the server (srv, from its request log):")
    print("\n".join(report(out, server.log.name)))
    print()
    facts = ", ".join(f"{k} {v}" for k, v in sorted(r.facts.items()))
    print(f"in the window: {facts or '-'}")
    growth = (out.rss_end_kb - out.rss_start_kb) / out.rss_start_kb * 100 if out.rss_start_kb else 0.0
    print(
        f"server RSS:  {out.rss_start_kb / 1024:.0f} MB after warm-up,"
        f" {out.rss_end_kb / 1024:.0f} MB at the end ({growth:+.1f} %),"
        f" peak {out.rss_peak_kb / 1024:.0f} MB (sum of {out.nproc} processes: {out.processes})"
    )
    cores = os.cpu_count() or 1
    print(
        f"CPU:         server {out.server_cpu_s:.0f} s ({out.server_cpu_s / out.window_s:.2f} cores), load"
        f" generator {out.client_cpu_s:.0f} s ({out.client_cpu_s / out.window_s:.2f} cores), PostgreSQL"
        f" backends of this database {out.pg_cpu_s:.0f} s ({out.pg_cpu_s / out.window_s:.2f} cores);"
        f" whole machine busy {out.machine_busy_s / out.window_s:.2f} of {cores} cores"
        " (the rest: other work on the machine)"
    )
    timed = [x for x in r.records if r.t_start <= x.t0 < r.t_end]
    p95 = pcts([x.ms for x in timed])[1]
    errors = r.errors
    n_all = sum(1 for x in r.records)
    rate = len([e for e in errors if r.t_start <= e.t0 < r.t_end]) / len(timed) * 100 if timed else 0.0
    print(
        f"errors:      {len(errors)} in all ({rate:.2f} % of the timed requests;"
        f" {n_all} requests sent in all, setup included)"
    )
    groups: dict[tuple[str, str, str], list[Err]] = defaultdict(list)
    for e in errors:
        groups[(e.kind, e.what, e.detail[:120])].append(e)
    for (kind, what, detail), es in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:30]:
        phase = r.phase(es[0].t0)
        print(f"  {len(es)}× {kind}: {what} {detail} (first: {es[0].rid or '-'}, {phase})")
    problems = server_log_problems(server.log.name)
    if problems:
        print("server log warnings/errors:")
        print("\n".join(problems))
    ok = not errors
    print(
        f"aims (2-core machine): no errors {'OK' if ok else 'FAILED'}; p95 {p95:.0f} ms < 250"
        f" {'OK' if p95 < 250 else 'FAILED'}; RSS growth {growth:+.1f} % < 10 %"
        f" {'OK' if growth < 10 else 'FAILED'}"
    )
    print(f"server log: {server.log.name}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

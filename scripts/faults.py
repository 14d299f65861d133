"""Fault drills (issue 9): PostgreSQL restarted under load, and the server killed mid-sync-push.

    .venv/bin/python scripts/faults.py [--scenarios ac] [--phones 4] [--down 3] [--kills 3] [--keep]

Runs as root against a throw-away PostgreSQL cluster of its own (``pg_createcluster <version>
jiahe_faults`` on a free port from 5499, trust authentication on 127.0.0.1), never the machine's
main cluster, and drops it at the end. In the project root with its own secrets file it runs
``jiahe migrate``, ``jiahe seed-scale --persons 5000 --events-year 0`` (2 townships × 4 villages)
and creates one village cadre per phone, then serves with ``jiahe serve`` on a free port from
8797 (default pool: 10 + 10 connections, 5 s pool timeout; rate limits off).

(a) **PostgreSQL restart under load**: ``--phones`` phones (one ``httpx.AsyncClient`` each) loop
    "push 10 new visits (plus whatever is still unacknowledged in the phone's outbox), then read
    the visit list" while ``/healthz`` and ``/readyz`` are polled. After a warm-up the cluster is
    stopped (fast shutdown: running transactions are cut off), kept down ``--down`` seconds and
    started again; the server is not touched. Checks: every failed request is a 503
    problem+json with a ``code`` and ``Retry-After`` (no 500, no dropped connection), none took
    longer than the pool timeout plus 1 s, ``/healthz`` stayed 200, every phone is served again
    within 30 s of PostgreSQL accepting connections, by the same server process. Then each phone
    re-sends its outbox (as a phone would) and the whole history once more (all ``duplicate``),
    and the database must hold exactly one visit per op, with its follow-up task, change-log
    row, audit event and ``applied`` op answer (nothing half written, nothing doubled).

(c) **server killed mid-push**: 3 phones push batches of 100 new visits; in the middle of a push
    the server gets SIGKILL (``--kills`` times; before every second kill the server is frozen
    with SIGSTOP every few milliseconds until a push whose phone still waits for the answer
    shows in the database, i.e. has just committed, so that a stored batch loses its answer).
    Before restarting it, the database must hold every op a phone got ``applied`` for, each
    in-flight batch wholly or not at all, and no ``pending`` op claim. After ``jiahe serve`` is
    started again, ``POST /sync/receipts`` must agree with what the phones were told and with
    the database; re-sending every op ever sent answers ``duplicate`` for the acknowledged ones
    (same id), ``applied`` only for ops the database did not hold, and the counts are again
    exactly one visit (and task) per op.

Prints the figures and a PASS/FAIL line per check; the exit status is 1 if any check fails.
Only counts, codes and timings are printed (the data is generated; no personal data is shown).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLUSTER = "jiahe_faults"
DB_NAME = "jiahe_faults"
PASSWORD = "faults-password-2026"
COUNTY = "430122"
TOWNSHIPS, VILLAGES = 2, 4
CST = timezone(timedelta(hours=8))
PURPOSES = ("postnatal", "elder_care", "health_education", "checkup_reminder", "other")
DB_CODES = {"database_unavailable", "database_busy"}
REQUEST_TIMEOUT_S = 30.0  # a request still open after this counts as a hang
RETRY_PAUSE_S = 0.25  # phones retry faster than Retry-After, so that recovery is measured finely
OUTBOX_CAP = 60  # a phone records no new visits while this many wait in its outbox
RECOVERY_LIMIT_S = 30.0
MAX_PUSH = 500
UNHANDLED = '"message": "unhandled error"'
DB_DOWN = '"message": "database unavailable"'
TRUST = ("--auth-local=trust", "--auth-host=trust")


def now() -> float:
    return time.monotonic()


def village(t: int, v: int) -> str:
    return f"{COUNTY}{100 + t:03d}{201 + v:03d}"


def free_port(start: int, avoid: Iterable[int] = ()) -> int:
    for port in range(start, start + 200):
        if port in avoid:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    sys.exit(f"no free port from {start}")


# --- report --------------------------------------------------------------------------------------


class Report:
    def __init__(self) -> None:
        self.checks: list[tuple[str, bool, str]] = []

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append((name, ok, detail))
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}" + (f" — {detail}" if detail else ""), flush=True)
        return ok

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.checks)


def say(text: str = "") -> None:
    print(text, flush=True)


def counts(c: Counter[str]) -> str:
    return ", ".join(f"{k} × {n}" for k, n in c.most_common()) or "none"


# --- the throw-away PostgreSQL cluster -----------------------------------------------------------


class Cluster:
    def __init__(self, first_port: int) -> None:
        versions = sorted((p.name for p in Path("/usr/lib/postgresql").iterdir()), key=float)
        if not versions:
            sys.exit("no PostgreSQL server under /usr/lib/postgresql")
        self.version = versions[-1]
        self.first_port = first_port
        self.port = 0

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{DB_NAME}"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DB_NAME}"

    def exists(self) -> bool:
        return Path(f"/etc/postgresql/{self.version}/{CLUSTER}").exists()

    def run(self, *cmd: str) -> None:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")

    def create(self) -> None:
        if self.exists():  # left over by an interrupted (or --keep) run of this script
            self.drop()
        self.port = free_port(self.first_port, avoid=(5432,))
        # trust authentication: a throw-away cluster that listens on localhost only
        self.run(*f"pg_createcluster {self.version} {CLUSTER} -p {self.port} --".split(), *TRUST)
        self.run("pg_ctlcluster", self.version, CLUSTER, "start")
        self.run(*f"psql -h 127.0.0.1 -p {self.port} -U postgres -qc".split(), f"CREATE DATABASE {DB_NAME}")

    async def ctl(self, action: str, *extra: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            "pg_ctlcluster",
            self.version,
            CLUSTER,
            action,
            *extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"pg_ctlcluster {action} failed: {err.decode().strip()[-300:]}")

    def drop(self) -> None:
        self.run("pg_dropcluster", "--stop", self.version, CLUSTER)


# --- the server ----------------------------------------------------------------------------------


class Server:
    """``jiahe serve --migrate`` (one process) in the project root; ``--migrate`` because other
    work may add a migration to the project while the drill runs."""

    def __init__(self, env: dict[str, str], port: int, logdir: Path) -> None:
        self.env = env
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.logdir = logdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []

    async def start(self, timeout_s: float = 90.0) -> float:
        """Starts the server; returns the seconds until /readyz answered 200."""
        self.logs.append(self.logdir / f"server-{len(self.logs) + 1}.log")
        log = self.logs[-1].open("wb")
        t0 = now()
        self.proc = subprocess.Popen(
            [str(BIN / "jiahe"), "serve", "--migrate", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        async with httpx.AsyncClient(base_url=self.base, timeout=2.0) as http:
            while now() - t0 < timeout_s:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited ({self.proc.returncode}); see {self.logdir}")
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return now() - t0
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the server was not ready within {timeout_s:.0f} s; see {self.logdir}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def log_count(self, needle: str, since: int = 0) -> int:
        """Lines of the server logs (of the starts from ``since`` on) holding ``needle``."""
        return sum(
            line.count(needle)
            for log in self.logs[since:]
            for line in log.read_text(errors="replace").splitlines()
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- phones --------------------------------------------------------------------------------------


@dataclass
class Req:
    phone: str
    kind: str
    t0: float
    t1: float
    status: int | None  # None: no HTTP answer (connection dropped, refused, timed out)
    code: str | None = None
    retry_after: str | None = None
    problem_json: bool = False

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0

    @property
    def ok(self) -> bool:
        return self.status == 200

    def label(self) -> str:
        return f"{self.status or 'no answer'} {self.code or ''}".strip()


@dataclass
class Batch:
    op_ids: list[str]
    t0: float
    t1: float | None = None
    answered: bool = False  # a 200 came back


class Phone:
    """One village cadre's phone with an outbox of visit ops (re-sent until acknowledged)."""

    def __init__(self, name: str, village_code: str, households: list[str], base: str, seed: int) -> None:
        self.name = name
        self.username = f"faults-{name}"
        self.village = village_code
        self.households = households
        self.device_id = f"faults-{name}-{uuid.uuid4().hex[:8]}"
        self.rng = random.Random(seed)
        self.http = httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S)
        self.ops: dict[str, dict[str, Any]] = {}  # every op ever made, in order
        self.acked: dict[str, dict[str, Any]] = {}  # op id → the first applied/duplicate answer
        self.first_status: Counter[str] = Counter()  # how ops were first acknowledged
        self.bad: Counter[str] = Counter()  # answers other than applied/duplicate
        self.outbox: dict[str, None] = {}
        self.batches: list[Batch] = []
        self.reqs: list[Req] = []
        self.user_id = ""

    async def login(self) -> None:
        r = await self.http.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": self.username, "password": PASSWORD},
        )
        if r.status_code != 200:
            raise RuntimeError(f"login of {self.username} failed: {r.status_code}")
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def new_ops(self, n: int) -> None:
        stamp = datetime.now(UTC)
        for _ in range(n):
            visited = (stamp - timedelta(minutes=self.rng.randint(5, 60 * 24 * 30))).astimezone(CST)
            data: dict[str, Any] = {
                "household_id": self.rng.choice(self.households),
                "visited_at": visited.replace(microsecond=0).isoformat(),
                "purpose": self.rng.choice(PURPOSES),
                "notes": "故障演练",
            }
            if self.rng.random() < 0.3:
                data["follow_up_on"] = (visited.date() + timedelta(days=self.rng.randint(1, 30))).isoformat()
            op = {
                "op_id": uuid.uuid4().hex,
                "entity": "visit",
                "id": str(uuid.uuid4()),
                "base_version": None,
                "data": data,
            }
            self.ops[op["op_id"]] = op
            self.outbox[op["op_id"]] = None

    def _record(self, kind: str, t0: float, r: httpx.Response | None, exc: Exception | None) -> Req:
        if r is None:
            req = Req(self.name, kind, t0, now(), None, type(exc).__name__)
        else:
            req = Req(self.name, kind, t0, now(), r.status_code, retry_after=r.headers.get("retry-after"))
            if r.status_code != 200:
                req.problem_json = r.headers.get("content-type", "").startswith("application/problem+json")
                try:
                    req.code = r.json().get("code")
                except ValueError:
                    req.code = "not_json"
        self.reqs.append(req)
        return req

    async def push(self, op_ids: list[str], *, record: bool = True) -> tuple[Req, list[dict[str, Any]]]:
        """One push; acknowledged ops leave the outbox. Returns the request and the answers."""
        body = {"device_id": self.device_id, "ops": [self.ops[i] for i in op_ids]}
        batch = Batch(op_ids, now())
        if record:
            self.batches.append(batch)
        r: httpx.Response | None = None
        exc: Exception | None = None
        try:
            r = await self.http.post("/api/v1/sync/push", json=body)
        except httpx.HTTPError as e:
            exc = e
        req = self._record("push", batch.t0, r, exc)
        batch.t1 = req.t1
        results: list[dict[str, Any]] = []
        if r is not None and r.status_code == 200:
            batch.answered = True
            results = r.json()["results"]
            for res in results:
                if res["status"] in ("applied", "duplicate"):
                    if res["op_id"] not in self.acked:
                        self.acked[res["op_id"]] = res
                        self.first_status[res["status"]] += 1
                    self.outbox.pop(res["op_id"], None)
                else:
                    self.bad[f"{res['status']} {(res.get('error') or {}).get('code', '')}".strip()] += 1
        return req, results

    async def read(self) -> Req:
        t0 = now()
        try:
            r = await self.http.get("/api/v1/visits", params={"limit": 20})
        except httpx.HTTPError as e:
            return self._record("read", t0, None, e)
        return self._record("read", t0, r, None)

    async def receipts(self, op_ids: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for chunk in chunks(op_ids, MAX_PUSH):
            r = await self.http.post(
                "/api/v1/sync/receipts", json={"device_id": self.device_id, "op_ids": chunk}
            )
            if r.status_code != 200:
                raise RuntimeError(f"receipts of {self.name}: {r.status_code}")
            out.update({x["op_id"]: x for x in r.json()["receipts"]})
        return out

    async def resend_all(self) -> dict[str, dict[str, Any]]:
        """Every op ever made, in order, in pushes of at most 500: op id → answer."""
        out: dict[str, dict[str, Any]] = {}
        for chunk in chunks(list(self.ops), MAX_PUSH):
            req, results = await self.push(chunk, record=False)
            if not req.ok:
                raise RuntimeError(f"re-send by {self.name}: {req.label()}")
            out.update({x["op_id"]: x for x in results})
        return out

    async def drain(self, tries: int = 10) -> int:
        """Re-sends the outbox until it is empty; returns the pushes needed."""
        n = 0
        while self.outbox and n < tries:
            n += 1
            req, _ = await self.push(list(self.outbox)[:MAX_PUSH], record=False)
            if not req.ok:
                await asyncio.sleep(0.5)
        return n


def chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# --- database checks (asyncpg, outside the app) ----------------------------------------------------


@dataclass
class Stored:
    visits: dict[str, asyncpg.Record]
    tasks: Counter[str]
    changes: Counter[str]
    audits: Counter[str]
    sync_ops: dict[str, asyncpg.Record]
    orphan_tasks: int


async def stored(dsn: str, phone: Phone) -> Stored:
    conn = await asyncpg.connect(dsn)
    try:
        visits = {
            r["id"]: r
            for r in await conn.fetch(
                "SELECT id::text AS id, household_id::text AS household_id, purpose, follow_up_on"
                " FROM visit WHERE visitor_id = $1::uuid",
                phone.user_id,
            )
        }
        ids = list(visits)
        tasks = Counter(
            {
                r["sid"]: r["n"]
                for r in await conn.fetch(
                    "SELECT source_id::text AS sid, count(*) AS n FROM task WHERE source_entity = 'visit'"
                    " AND kind = 'follow_up' AND village_code = $1 GROUP BY source_id",
                    phone.village,
                )
            }
        )
        orphans = await conn.fetchval(
            "SELECT count(*) FROM task t WHERE t.source_entity = 'visit' AND t.village_code = $1"
            " AND NOT EXISTS (SELECT 1 FROM visit v WHERE v.id = t.source_id)",
            phone.village,
        )
        changes = Counter(
            {
                r["eid"]: r["n"]
                for r in await conn.fetch(
                    "SELECT entity_id::text AS eid, count(*) AS n FROM change WHERE entity = 'visit'"
                    " AND entity_id = ANY($1::uuid[]) GROUP BY entity_id",
                    ids,
                )
            }
        )
        audits = Counter(
            {
                r["eid"]: r["n"]
                for r in await conn.fetch(
                    "SELECT entity_id AS eid, count(*) AS n FROM audit_event WHERE entity = 'visit'"
                    " AND action = 'create' AND entity_id = ANY($1::text[]) GROUP BY entity_id",
                    ids,
                )
            }
        )
        sync_ops = {
            r["op_id"]: r
            for r in await conn.fetch(
                "SELECT op_id, status, result FROM sync_op WHERE device_id = $1", phone.device_id
            )
        }
    finally:
        await conn.close()
    return Stored(visits, tasks, changes, audits, sync_ops, int(orphans))


def consistency(phone: Phone, db: Stored, *, all_held: bool) -> list[str]:
    """Problems with what the database holds for this phone: every stored visit whole (its
    task if it asked for one, one change-log row, one audit event, its op answered ``applied``),
    nothing stored that no op asked for, nothing acknowledged missing."""
    problems: Counter[str] = Counter()
    by_visit = {op["id"]: op for op in phone.ops.values()}
    for vid, row in db.visits.items():
        op = by_visit.get(vid)
        if op is None:
            problems["visit that no op asked for (doubled?)"] += 1
            continue
        d = op["data"]
        due = row["follow_up_on"].isoformat() if row["follow_up_on"] else None
        if (row["household_id"], row["purpose"], due) != (
            d["household_id"],
            d["purpose"],
            d.get("follow_up_on"),
        ):
            problems["visit differs from its op"] += 1
        if db.tasks.get(vid, 0) != (1 if d.get("follow_up_on") else 0):
            problems["follow-up task missing or doubled"] += 1
        if db.changes.get(vid, 0) != 1:
            problems["change-log row missing or doubled"] += 1
        if db.audits.get(vid, 0) != 1:
            problems["audit event missing or doubled"] += 1
        answer = db.sync_ops.get(op["op_id"])
        if answer is None or answer["status"] != "applied" or json.loads(answer["result"]).get("id") != vid:
            problems["visit without its applied op answer"] += 1
    if db.orphan_tasks:
        problems["follow-up task without its visit"] += db.orphan_tasks
    for op_id, row in db.sync_ops.items():
        if row["status"] == "pending":
            problems["op claim left pending"] += 1
        elif op_id in phone.ops and phone.ops[op_id]["id"] not in db.visits:
            problems["op answered applied but its visit is missing"] += 1
    for op_id in phone.acked:
        if phone.ops[op_id]["id"] not in db.visits:
            problems["acknowledged op without its visit"] += 1
    if all_held:
        missing = sum(1 for op in phone.ops.values() if op["id"] not in db.visits)
        if missing:
            problems["op never stored after re-sending"] += missing
    return [f"{phone.name}: {k} × {n}" for k, n in problems.items()]


# --- setup ---------------------------------------------------------------------------------------


async def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "jiahe"),
        *args,
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(stdin.encode() if stdin else None)
    if proc.returncode != 0:
        raise RuntimeError(f"jiahe {args[0]} failed ({proc.returncode}): {out.decode()[-500:]}")
    return out.decode()


async def setup(cluster: Cluster, env: dict[str, str], phones: list[Phone]) -> None:
    await cli(env, "migrate")
    out = await cli(
        env,
        *f"seed-scale --persons 5000 --events-year 0 --townships {TOWNSHIPS}".split(),
        "--villages",
        str(VILLAGES),
    )
    seeded = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
    sem = asyncio.Semaphore(2)

    async def create(p: Phone) -> None:
        async with sem:
            args = f"users create --username {p.username} --role village --area {p.village}"
            await cli(env, *args.split(), stdin=PASSWORD + "\n")

    await asyncio.gather(*(create(p) for p in phones))
    conn = await asyncpg.connect(cluster.dsn)
    try:
        for p in phones:
            p.user_id = str(await conn.fetchval('SELECT id FROM "user" WHERE username = $1', p.username))
            rows = await conn.fetch(
                "SELECT id::text AS id FROM household WHERE village_code = $1 ORDER BY id LIMIT 200",
                p.village,
            )
            p.households = [r["id"] for r in rows]
            if not p.households:
                raise RuntimeError(f"village {p.village} has no households")
    finally:
        await conn.close()
    say(
        f"seeded county {COUNTY}: {seeded.get('persons_total')} persons in {seeded.get('households_total')}"
        f" households, {TOWNSHIPS * VILLAGES} villages; {len(phones)} village cadres created"
    )


# --- (a) PostgreSQL restart under load --------------------------------------------------------------


async def restart_scenario(
    args: argparse.Namespace, cluster: Cluster, server: Server, phones: list[Phone]
) -> Report:
    rep = Report()
    say(f"\n== (a) PostgreSQL restarted under load ({len(phones)} phones) ==")
    first_log = len(server.logs)
    await server.start()
    pid = server.pid
    for p in phones:
        await p.login()
    stop = asyncio.Event()
    health: list[Req] = []
    ready: list[Req] = []

    async def phone_loop(p: Phone) -> None:
        while not stop.is_set():
            if len(p.outbox) < OUTBOX_CAP:
                p.new_ops(args.batch)
            req, _ = await p.push(list(p.outbox)[:MAX_PUSH])
            if not req.ok:
                await asyncio.sleep(RETRY_PAUSE_S)
            if stop.is_set():
                break
            if not (await p.read()).ok:
                await asyncio.sleep(RETRY_PAUSE_S)

    async def probe_loop() -> None:
        async with httpx.AsyncClient(base_url=server.base, timeout=REQUEST_TIMEOUT_S) as http:
            while not stop.is_set():
                for path, into in (("/healthz", health), ("/readyz", ready)):
                    t0 = now()
                    try:
                        r = await http.get(path)
                        into.append(Req("probe", path, t0, now(), r.status_code))
                    except httpx.HTTPError as e:
                        into.append(Req("probe", path, t0, now(), None, type(e).__name__))
                await asyncio.sleep(0.2)

    t_origin = now()
    tasks = [asyncio.create_task(phone_loop(p)) for p in phones] + [asyncio.create_task(probe_loop())]
    await asyncio.sleep(args.warmup)
    t_stop = now()
    await cluster.ctl("stop", "-m", "fast")
    t_down = now()
    await asyncio.sleep(args.down)
    t_start = now()
    await cluster.ctl("start")
    t_up = now()

    def served_again() -> float | None:
        """Seconds after t_up when the last phone had both a push and a read succeed."""
        last = 0.0
        for p in phones:
            for kind in ("push", "read"):
                ends = [r.t1 for r in p.reqs if r.kind == kind and r.ok and r.t0 >= t_up]
                if not ends:
                    return None
                last = max(last, min(ends) - t_up)
        return last

    while served_again() is None and now() - t_up < RECOVERY_LIMIT_S + 5:
        await asyncio.sleep(0.1)
    recovery = served_again()
    await asyncio.sleep(args.after)
    stop.set()
    await asyncio.gather(*tasks)
    t_end = now()

    reqs = [r for p in phones for r in p.reqs]
    failed = [r for r in reqs if not r.ok]
    # in flight while PostgreSQL was being stopped (pg_ctlcluster takes a moment to signal it)
    in_flight = [r for r in reqs if r.t0 < t_down and r.t1 > t_stop]
    during = [r for r in reqs if r.t1 >= t_stop and r.t0 <= t_up + (recovery or 0)]
    first_ok = min((r.t1 for r in reqs if r.ok and r.t0 >= t_up), default=None)
    pool_timeout = float(server.env.get("JIAHE_DB_POOL_TIMEOUT", "5"))
    hang_limit = pool_timeout + 1.0
    say(
        f"load: each phone pushes {args.batch} new visits (+ its unacknowledged outbox), then reads"
        f" GET /api/v1/visits; retries after {RETRY_PAUSE_S} s"
    )
    say(
        f"PostgreSQL stopped (fast shutdown) at +{t_stop - t_origin:.1f} s, the stop took"
        f" {t_down - t_stop:.1f} s, down {args.down:.1f} s, start took {t_up - t_start:.1f} s"
    )
    say(f"requests: {len(reqs)} by the phones in {t_end - t_origin:.1f} s, {len(during)} during the fault")
    say(
        f"in flight while PostgreSQL was stopping: {len(in_flight)}"
        f" → {counts(Counter(f'{r.kind} {r.label()}' for r in in_flight))}"
    )
    say(f"failed: {len(failed)} → {counts(Counter(f'{r.kind} {r.label()}' for r in failed))}")
    retry_afters = Counter(r.retry_after or "missing" for r in failed)
    say(f"Retry-After of the failures: {counts(retry_afters)}")
    max_failed = max((r.seconds for r in failed), default=0.0)
    max_fault = max((r.seconds for r in during), default=0.0)
    slowest = max(during, key=lambda r: r.seconds, default=None)
    say(
        f"latency: max of a failed request {max_failed:.2f} s, max of any request during the fault"
        f" {max_fault:.2f} s ({slowest.kind if slowest else '-'} → {slowest.label() if slowest else '-'});"
        f" pool timeout {pool_timeout:g} s"
    )
    h_codes = Counter(str(r.status or r.code) for r in health if r.t1 >= t_stop and r.t0 <= t_up)
    r_down = Counter(str(r.status or r.code) for r in ready if t_down <= r.t0 <= t_start)
    r_ok = [r.t1 - t_up for r in ready if r.ok and r.t0 >= t_up]
    r_back = f"200 again {min(r_ok):.2f} s after the start" if r_ok else "never 200 again"
    say(f"/healthz during the outage: {counts(h_codes)}; /readyz: {counts(r_down)}, {r_back}")
    if first_ok is not None and recovery is not None:
        say(
            f"recovery after PostgreSQL accepted connections: first 200 after {first_ok - t_up:.2f} s,"
            f" every phone pushed and read again after {recovery:.2f} s"
        )
    late = [r for r in failed if recovery is not None and r.t0 > t_up + recovery]

    rep.check(
        "every failed request is a 503 problem+json with a database code and Retry-After",
        bool(failed)
        and all(r.status == 503 and r.problem_json and r.code in DB_CODES and r.retry_after for r in failed),
        f"{len(failed)} failed" if failed else "no request failed: the fault did not bite",
    )
    rep.check(
        "requests in flight at the stop ended (answer or 503), none dropped",
        all(r.status is not None for r in in_flight),
        f"{len(in_flight)} in flight",
    )
    rep.check(
        f"no request hung beyond the pool timeout + 1 s ({hang_limit:g} s)",
        max(max_failed, max_fault) <= hang_limit,
        f"max {max(max_failed, max_fault):.2f} s",
    )
    rep.check(
        "/healthz answered 200 throughout", all(r.status == 200 for r in health), f"{len(health)} probes"
    )
    rep.check(
        f"every phone served again within {RECOVERY_LIMIT_S:g} s, no failure afterwards",
        recovery is not None and recovery <= RECOVERY_LIMIT_S and not late,
        f"{recovery:.2f} s, {len(late)} later failures" if recovery is not None else "never",
    )
    rep.check(
        "the same server process throughout (no restart)", server.alive() and server.pid == pid, f"pid {pid}"
    )
    unhandled = server.log_count(UNHANDLED, since=first_log)
    rep.check(
        "the server logged no unhandled error (500)",
        not unhandled,
        f"{unhandled} unhandled, {server.log_count(DB_DOWN, since=first_log)} database-unavailable warnings",
    )

    # The phones re-send what is still unacknowledged, then everything once more.
    pending = {p.name: len(p.outbox) for p in phones}
    drains = [await p.drain() for p in phones]
    made = sum(len(p.ops) for p in phones)
    first = sum((p.first_status for p in phones), Counter[str]())
    bad = sum((p.bad for p in phones), Counter[str]())
    say(
        f"ops: {made} made; {sum(pending.values())} unacknowledged when the load stopped, re-sent in"
        f" {sum(drains)} pushes; first answers: {counts(first)}; other answers: {counts(bad)}"
    )
    rep.check(
        "the outboxes empty after re-sending, no op rejected",
        all(not p.outbox for p in phones) and not bad,
        f"left: {sum(len(p.outbox) for p in phones)}",
    )
    again = Counter[str]()
    wrong_id = 0
    for p in phones:
        for op_id, res in (await p.resend_all()).items():
            again[res["status"]] += 1
            wrong_id += res.get("id") != p.acked.get(op_id, {}).get("id")
    rep.check(
        "re-sending every op answers duplicate with the same id",
        set(again) == {"duplicate"} and not wrong_id,
        counts(again),
    )
    await records_check(rep, cluster, phones, all_held=True)
    server.stop()
    return rep


async def records_check(
    rep: Report, cluster: Cluster, phones: list[Phone], *, all_held: bool
) -> dict[str, Stored]:
    out: dict[str, Stored] = {}
    problems: list[str] = []
    for p in phones:
        out[p.name] = db = await stored(cluster.dsn, p)
        problems += consistency(p, db, all_held=all_held)
    visits = sum(len(s.visits) for s in out.values())
    tasks = sum(sum(s.tasks.values()) for s in out.values())
    ops = sum(len(p.ops) for p in phones)
    follow = sum(1 for p in phones for op in p.ops.values() if "follow_up_on" in op["data"])
    held_follow = sum(
        1
        for p in phones
        for op in p.ops.values()
        if "follow_up_on" in op["data"] and op["id"] in out[p.name].visits
    )
    say(
        f"database: {visits} visits for {ops} ops, {tasks} follow-up tasks for {held_follow} stored visits"
        f" asking for one ({follow} ops ask), "
        f"{sum(len(s.sync_ops) for s in out.values())} op answers"
    )
    what = (
        "exactly one whole visit per op"
        if all_held
        else "every acknowledged op stored, each stored visit whole"
    )
    rep.check(
        f"no half-written or doubled record: {what} (task, change, audit, op answer)",
        not problems,
        "; ".join(problems[:6]),
    )
    return out


# --- (c) server killed mid-push ------------------------------------------------------------------------


async def kill_scenario(
    args: argparse.Namespace, cluster: Cluster, server: Server, phones: list[Phone]
) -> Report:
    rep = Report()
    say(f"\n== (c) server killed (SIGKILL) mid-sync-push, {args.kills} times ({len(phones)} phones) ==")
    rng = random.Random(args.seed)
    first_log = len(server.logs)
    await server.start()
    for p in phones:
        await p.login()
    in_flight_total = committed_unanswered = lost = 0
    for k in range(1, args.kills + 1):
        stop = asyncio.Event()
        marks = {p.name: len(p.batches) for p in phones}

        async def loop(p: Phone, stop: asyncio.Event = stop) -> None:
            while not stop.is_set():
                p.new_ops(args.kill_batch)
                req, _ = await p.push(list(p.outbox)[:MAX_PUSH])
                if req.status is None:  # the server is gone: the phone goes offline
                    return
                if not req.ok:
                    await asyncio.sleep(RETRY_PAUSE_S)

        t0 = now()
        tasks = [asyncio.create_task(loop(p)) for p in phones]
        await asyncio.sleep(args.kill_after)
        lat = [b.t1 - b.t0 for p in phones for b in p.batches[marks[p.name] :] if b.answered and b.t1]
        typical = statistics.median(lat) if lat else 0.2
        at_commit = k % 2 == 0
        age = rng.uniform(0.2, 1.1) * typical
        if at_commit:
            when = await freeze_at_a_commit(cluster, server, phones)
        else:
            when = f"{age:.2f} s into a push"
            deadline = now() + 30
            while now() < deadline:  # in the middle of a push: one has been in flight for `age` s
                t = now()
                if any(
                    p.batches and p.batches[-1].t1 is None and t - p.batches[-1].t0 >= age for p in phones
                ):
                    break
                await asyncio.sleep(0.002)
        server.kill()
        t_kill = now()
        stop.set()
        await asyncio.gather(*tasks)
        flying = [
            (p, b) for p in phones for b in p.batches[marks[p.name] :] if not b.answered and b.t0 < t_kill
        ]
        acked_batches = sum(1 for p in phones for b in p.batches[marks[p.name] :] if b.answered)
        say(
            f"kill {k}: after {t_kill - t0:.1f} s of pushes of {args.kill_batch} visits ({acked_batches}"
            f" answered, median {typical:.2f} s), {when}; pushes in flight:"
            f" {len(flying)} ({sum(len(b.op_ids) for _, b in flying)} ops)"
        )
        # Before the server is back: acknowledged ops stored, in-flight batches all or nothing.
        snap = await records_check(rep, cluster, phones, all_held=False)
        partial = 0
        for p, b in flying:
            held = sum(1 for i in b.op_ids if p.ops[i]["id"] in snap[p.name].visits)
            in_flight_total += 1
            if held == len(b.op_ids):
                committed_unanswered += 1
            elif held == 0:
                lost += 1
            else:
                partial += 1
        rep.check(
            "each push in flight at the kill is stored wholly or not at all",
            not partial,
            f"{len(flying)} in flight, {partial} partly stored",
        )

        took = await server.start()
        say(f"server started again, ready after {took:.1f} s")
        # Receipts agree with what the phones were told and with the database.
        disagree = Counter[str]()
        for p in phones:
            db = snap[p.name]
            for op_id, rc in (await p.receipts(list(p.ops))).items():
                in_db = p.ops[op_id]["id"] in db.visits
                if op_id in p.acked and not (rc["held"] and rc.get("id") == p.acked[op_id]["id"]):
                    disagree["acknowledged but not held"] += 1
                if rc["held"] != in_db:
                    disagree["receipt differs from the database"] += 1
                if rc["held"] and rc.get("status") != "applied":
                    disagree[f"held as {rc.get('status')}"] += 1
        rep.check("receipts agree with the acknowledgements and the database", not disagree, counts(disagree))
        answers = Counter[str]()
        wrong = Counter[str]()
        for p in phones:
            db = snap[p.name]
            for op_id, res in (await p.resend_all()).items():
                answers[res["status"]] += 1
                in_db = p.ops[op_id]["id"] in db.visits
                want = "duplicate" if in_db else "applied"
                if res["status"] != want:
                    wrong[f"{'held' if in_db else 'not held'} → {res['status']}"] += 1
                elif res.get("id") != p.ops[op_id]["id"]:
                    wrong["answer with another id"] += 1
                if res["status"] in ("applied", "duplicate") and op_id not in p.acked:
                    p.acked[op_id] = res
                p.outbox.pop(op_id, None)
        say(f"re-sent every op of the phones ({sum(answers.values())}): {counts(answers)}")
        rep.check(
            "re-send: duplicate for every stored op (same id), applied only for ops not stored",
            not wrong,
            counts(wrong),
        )
        receipts_after = Counter[str]()
        for p in phones:
            for rc in (await p.receipts(list(p.ops))).values():
                receipts_after["held" if rc["held"] and rc.get("status") == "applied" else "not held"] += 1
        rep.check(
            "afterwards every op is held as applied", set(receipts_after) == {"held"}, counts(receipts_after)
        )
        await records_check(rep, cluster, phones, all_held=True)
    say(
        f"pushes in flight at the kills: {in_flight_total}; committed before the kill (answer lost):"
        f" {committed_unanswered}; not committed: {lost}"
    )
    unhandled = server.log_count(UNHANDLED, since=first_log)
    rep.check("the server logged no unhandled error (500)", not unhandled, f"{unhandled} unhandled")
    server.stop()
    return rep


async def freeze_at_a_commit(
    cluster: Cluster, server: Server, phones: list[Phone], limit_s: float = 30.0
) -> str:
    """Freezes the server (SIGSTOP) every few milliseconds and looks in the database: returns,
    leaving it frozen, once a push whose phone still waits for the answer has committed (its
    last visit is visible), so that the kill lands between the commit and the answer."""
    conn = await asyncpg.connect(cluster.dsn)
    tries = 0
    try:
        deadline = now() + limit_s
        while now() < deadline:
            waiting = [
                p.ops[p.batches[-1].op_ids[-1]]["id"]
                for p in phones
                if p.batches and p.batches[-1].t1 is None
            ]
            if waiting:
                tries += 1
                os.kill(server.pid, signal.SIGSTOP)
                if await conn.fetchval("SELECT count(*) FROM visit WHERE id = ANY($1::uuid[])", waiting):
                    return f"frozen just after a push committed (look {tries})"
                os.kill(server.pid, signal.SIGCONT)
            await asyncio.sleep(0.005)
    finally:
        await conn.close()
    return f"no commit caught in {tries} looks"


# --- main ----------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, cluster: Cluster, logdir: Path) -> bool:
    api_port = free_port(args.port, avoid=(8000, 8765))
    env = {
        **os.environ,
        "JIAHE_ENV": "development",
        "JIAHE_DATABASE_URL": cluster.url,
        "JIAHE_DEV_SECRETS_FILE": str(logdir / "secrets.json"),
        "JIAHE_RATE_LIMIT_PER_TOKEN_PER_MINUTE": "0",
        "JIAHE_LOG_LEVEL": "WARNING",
    }
    env.setdefault("JIAHE_DB_POOL_TIMEOUT", "5")
    server = Server(env, api_port, logdir)
    base = server.base
    # one village each: (a) from the first villages of the townships, (c) from the last ones
    codes = [village(t, v) for v in range(VILLAGES) for t in range(TOWNSHIPS)]
    restart_phones = [Phone(f"a{i + 1}", codes[i], [], base, args.seed + i) for i in range(args.phones)]
    kill_phones = [Phone(f"c{i + 1}", codes[-1 - i], [], base, args.seed + 100 + i) for i in range(3)]
    await setup(cluster, env, restart_phones + kill_phones)
    say(
        f"server: jiahe serve --port {api_port} (pool timeout {env['JIAHE_DB_POOL_TIMEOUT']} s),"
        f" logs in {logdir}"
    )
    reports: list[tuple[str, Report]] = []
    try:
        if "a" in args.scenarios:
            reports.append(
                ("(a) PostgreSQL restart", await restart_scenario(args, cluster, server, restart_phones))
            )
        if "c" in args.scenarios:
            reports.append(("(c) SIGKILL mid-push", await kill_scenario(args, cluster, server, kill_phones)))
    finally:
        server.stop()
        for p in restart_phones + kill_phones:
            await p.http.aclose()
    say("\n== summary ==")
    for name, rep in reports:
        passed = sum(ok for _, ok, _ in rep.checks)
        say(f"{'PASS' if rep.ok else 'FAIL'} {name}: {passed}/{len(rep.checks)} checks")
        for check, ok, detail in rep.checks:
            if not ok:
                say(f"    failed: {check} — {detail}")
    return bool(reports) and all(rep.ok for _, rep in reports)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="ac", help="which to run: a, c or ac (default)")
    parser.add_argument("--phones", type=int, default=4, help="phones in (a) (default 4)")
    parser.add_argument("--batch", type=int, default=10, help="new visits per push in (a)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before the stop")
    parser.add_argument("--down", type=float, default=3.0, help="seconds PostgreSQL stays down")
    parser.add_argument("--after", type=float, default=2.0, help="seconds of load after recovery")
    parser.add_argument(
        "--kills", type=int, default=3, help="SIGKILLs in (c); every second one as a push commits"
    )
    parser.add_argument("--kill-batch", type=int, default=100, help="new visits per push in (c)")
    parser.add_argument("--kill-after", type=float, default=3.0, help="seconds of pushes before a kill")
    parser.add_argument("--pg-port", type=int, default=5499, help="first port tried for the cluster")
    parser.add_argument("--port", type=int, default=8797, help="first port tried for the server")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--keep", action="store_true", help="keep the cluster and the logs")
    args = parser.parse_args()
    if not 1 <= args.phones <= 5:
        sys.exit("--phones must be 1 to 5 (one village each)")
    if os.geteuid() != 0:
        sys.exit("run as root: the script creates and restarts its own PostgreSQL cluster (pg_createcluster)")
    if not shutil.which("pg_createcluster"):
        sys.exit("pg_createcluster not found (postgresql-common)")
    logdir = Path(tempfile.mkdtemp(prefix="jiahe-faults-"))
    cluster = Cluster(args.pg_port)
    started = now()
    ok = False
    try:
        cluster.create()
        say(f"PostgreSQL {cluster.version} cluster {CLUSTER} (throw-away) on 127.0.0.1:{cluster.port}")
        ok = asyncio.run(run(args, cluster, logdir))
    finally:
        if args.keep:
            say(f"kept: cluster {cluster.version}/{CLUSTER} on port {cluster.port}, logs in {logdir}")
        else:
            try:
                if cluster.exists():
                    cluster.drop()
            except RuntimeError as exc:
                say(f"could not drop the cluster: {exc}")
            if ok:
                shutil.rmtree(logdir, ignore_errors=True)
            else:
                say(f"server logs kept in {logdir}")
    say(f"{'PASS' if ok else 'FAIL'} in {now() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

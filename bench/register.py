"""Register benchmark: single-client latency of the busiest register endpoints on a county-sized
database.

    .venv/bin/python -m bench.register [--database-url URL] [--persons N] [--requests 200]

Steps: create the PostgreSQL database if missing, ``jiahe migrate``, ``jiahe seed-scale`` (a no-op
when the county already holds N people), create a village and a county user if missing, start
``jiahe serve`` on a spare port with the same environment, wait for /readyz, then time each
operation sequentially (warm-up first) and print p50/p95/p99/max and requests per second.

Every subprocess runs in the project root so that seeding and the server share the development
secrets file (``.jiahe-dev-secrets.json``): the ID-number blind index depends on that key.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./bench.db"
PASSWORD = "bench-password-2026"
VILLAGE_USER = "bench-village"
COUNTY_USER = "bench-county"
TOKEN_MAX_AGE_S = 10 * 60  # access tokens live 15 minutes


def jiahe_bin() -> list[str]:
    script = Path(sys.executable).parent / "jiahe"
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        [*jiahe_bin(), *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and proc.returncode != 0:
        sys.exit(f"jiahe {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc.stdout + proc.stderr


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def _ensure_pg_database(url: str) -> None:
    import asyncpg

    u = make_url(url)
    name = u.database
    if not name:
        sys.exit("the database URL names no database")
    conn = await asyncpg.connect(
        host=u.host or "127.0.0.1",
        port=u.port or 5432,
        user=u.username or "postgres",
        password=u.password,
        database="postgres",
    )
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            quoted = '"' + name.replace('"', '""') + '"'
            await conn.execute(f"CREATE DATABASE {quoted}")
            print(f"created database {name}")
    finally:
        await conn.close()


def ensure_database(url: str) -> None:
    if make_url(url).get_backend_name() == "postgresql":
        asyncio.run(_ensure_pg_database(url))


def ensure_user(env: dict[str, str], username: str, role: str, area: str, display: str) -> None:
    out = run_cli(
        env,
        "users",
        "create",
        "--username",
        username,
        "--role",
        role,
        "--area",
        area,
        "--display-name",
        display,
        stdin=PASSWORD + "\n",
        check=False,
    )
    if "created user" not in out and "username_taken" not in out:
        sys.exit(f"could not create user {username}:\n{out}")


# --- server ------------------------------------------------------------------------------------


class Server:
    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env = env
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log = tempfile.NamedTemporaryFile(prefix="jiahe-bench-server-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0) -> None:
        try:
            httpx.get(self.base + "/healthz", timeout=1.0)
        except httpx.HTTPError:
            pass
        else:
            sys.exit(f"something already listens on port {self.port}; pass --port")
        self.proc = subprocess.Popen(
            [*jiahe_bin(), "serve", "--port", str(self.port)],
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
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        sys.exit(f"the server did not become ready in {timeout_s:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        self.log.flush()
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# --- client ------------------------------------------------------------------------------------


class Api:
    """One logged-in user over one keep-alive connection."""

    def __init__(self, base: str, username: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30.0)
        self.username = username
        self.token = ""
        self.token_at = 0.0
        self.login()

    def login(self) -> None:
        r = self.http.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": self.username, "password": PASSWORD},
        )
        if r.status_code != 200:
            sys.exit(f"login of {self.username} failed: {r.status_code} {r.text}")
        self.token = r.json()["access_token"]
        self.token_at = time.monotonic()
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    def fresh(self) -> httpx.Client:
        """The client, logged in again first if the token is getting old (outside timing)."""
        if time.monotonic() - self.token_at > TOKEN_MAX_AGE_S:
            self.login()
        return self.http

    def get_json(self, path: str, **params: Any) -> Any:
        r = self.fresh().get(path, params=params)
        if r.status_code != 200:
            sys.exit(f"GET {path} {params} → {r.status_code} {r.text[:300]}")
        return r.json()

    def pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.get_json(path, **params, **({"cursor": cursor} if cursor else {}))
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                return items


def percentiles(values: list[float]) -> tuple[float, float, float, float]:
    """(p50, p95, p99, max)."""
    lat = sorted(values)
    if not lat:
        return 0.0, 0.0, 0.0, 0.0
    if len(lat) == 1:
        return lat[0], lat[0], lat[0], lat[0]
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return q[49], q[94], q[98], lat[-1]


@dataclass
class Result:
    name: str
    slug: str
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    errors: int = 0
    first_error: str = ""

    def row(self) -> str:
        n = len(self.latencies_ms)
        rps = n / self.wall_s if self.wall_s else 0.0
        srv = percentiles(self.server_ms)
        figures = "".join(f" {v:>8.1f}" for v in (*percentiles(self.latencies_ms), rps, srv[0], srv[1]))
        return f"{self.name:<46} {n:>5}{figures} {self.errors:>6}"


HEADER = (
    f"{'operation':<46} {'n':>5}"
    + "".join(f" {h:>8}" for h in ("p50 ms", "p95 ms", "p99 ms", "max ms", "req/s", "srv p50", "srv p95"))
    + f" {'errors':>6}"
)


def measure(
    name: str,
    api: Api,
    requests: int,
    warmup: int,
    call: Callable[[httpx.Client, int], httpx.Response],
    expect: int = 200,
    on_response: Callable[[int, httpx.Response], None] | None = None,
) -> Result:
    """``call(client, i)`` for i in 0..warmup+requests-1; the first ``warmup`` are not timed.
    Timed requests carry the request id ``bench-<slug>-<i>`` so that the server's request log
    tells the time spent inside the server for each of them."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:40]
    result = Result(name, slug)
    for i in range(warmup):
        r = call(api.fresh(), i)
        if on_response:
            on_response(i, r)
    started = time.perf_counter()
    for i in range(warmup, warmup + requests):
        client = api.fresh()  # a re-login happens here, outside the timed call
        client.headers["X-Request-ID"] = f"bench-{slug}-{i}"
        t0 = time.perf_counter()
        r = call(client, i)
        result.latencies_ms.append((time.perf_counter() - t0) * 1000)
        if r.status_code != expect:
            result.errors += 1
            result.first_error = result.first_error or f"{r.status_code} {r.text[:300]}"
        elif on_response:
            on_response(i, r)
    result.wall_s = time.perf_counter() - started
    api.http.headers.pop("X-Request-ID", None)
    return result


def attach_server_times(results: list[Result], log_path: str) -> None:
    """Server-side milliseconds of each timed request, from the server's JSON request log."""
    by_slug = {r.slug: r for r in results}
    pattern = re.compile(r'"ms": ([\d.]+).*"request_id": "bench-([a-z0-9_]+)-\d+"')
    for line in Path(log_path).read_text(errors="replace").splitlines():
        if '"message": "request"' not in line:
            continue
        m = pattern.search(line)
        if m and m.group(2) in by_slug:
            by_slug[m.group(2)].server_ms.append(float(m.group(1)))


# --- main --------------------------------------------------------------------------------------


def parse_counts(out: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.register", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("JIAHE_DATABASE_URL") or DEFAULT_SQLITE_URL,
        help="SQLAlchemy async URL (default: $JIAHE_DATABASE_URL, else ./bench.db)",
    )
    parser.add_argument("--persons", type=int, default=20_000, help="people in the county (default 20000)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per operation")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests per operation first")
    parser.add_argument("--townships", type=int, default=20)
    parser.add_argument("--villages", type=int, default=20, help="villages per township")
    parser.add_argument("--county", default="430122", help="6-digit county code")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)

    url: str = args.database_url
    env = {**os.environ, "JIAHE_DATABASE_URL": url}
    county: str = args.county
    village = f"{county}100201"
    rng = random.Random(args.seed)

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
        county,
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
    seeded_now = not counts.get("skipped")

    ensure_user(env, VILLAGE_USER, "village", village, "基准测试 村专干")
    ensure_user(env, COUNTY_USER, "county", f"{county}000000", "基准测试 县")

    server = Server(env, args.port)
    server.start()
    results: list[Result] = []
    try:
        v_api = Api(server.base, VILLAGE_USER)
        c_api = Api(server.base, COUNTY_USER)
        total = args.warmup + args.requests

        # Test data, fetched through the API before timing.
        households = v_api.pages("/api/v1/households", village_code=village, limit=500)
        if not households:
            sys.exit(f"village {village} has no households; is the county seeded?")
        household_ids = [h["id"] for h in households]
        villages = [
            f"{county}{100 + t:03d}{201 + v:03d}" for t in range(args.townships) for v in range(args.villages)
        ]
        candidates: list[str] = []
        for code in rng.sample(villages, len(villages)):
            page = c_api.get_json("/api/v1/persons", village_code=code, limit=500)
            candidates.extend(p["id"] for p in page["items"] if p["id_number_masked"])
            if len(candidates) >= 10 * total:
                break
        if len(candidates) < total:
            sys.exit(f"only {len(candidates)} persons with ID numbers found; seed more people")
        person_ids = rng.sample(candidates, total)
        id_numbers: list[str] = [""] * total

        def keep_id_number(i: int, r: httpx.Response) -> None:
            id_numbers[i] = r.json()["id_number"]

        results.append(
            measure(
                "GET /households/{id} (village)",
                v_api,
                args.requests,
                args.warmup,
                lambda c, _i: c.get(f"/api/v1/households/{rng.choice(household_ids)}"),
            )
        )
        results.append(
            measure(
                "GET /persons/{id} (county, full ID number)",
                c_api,
                args.requests,
                args.warmup,
                lambda c, i: c.get(f"/api/v1/persons/{person_ids[i]}"),
                on_response=keep_id_number,
            )
        )
        known = [n for n in id_numbers if n]
        results.append(
            measure(
                "GET /persons?id_number= (county)",
                c_api,
                args.requests,
                args.warmup,
                lambda c, i: c.get("/api/v1/persons", params={"id_number": known[i % len(known)]}),
            )
        )
        results.append(
            measure(
                "GET /persons?village_code=&limit=50 (village)",
                v_api,
                args.requests,
                args.warmup,
                lambda c, _i: c.get("/api/v1/persons", params={"village_code": village, "limit": 50}),
            )
        )
        today = date.today()

        def create(c: httpx.Client, i: int) -> httpx.Response:
            sex = rng.choice(("male", "female"))
            body = {
                "household_id": rng.choice(household_ids),
                "name": f"基准{'男' if sex == 'male' else '女'}{i}",
                "sex": sex,
                "birth_date": (today - timedelta(days=rng.randint(0, 900))).isoformat(),
                "relation_to_head": "孙子" if sex == "male" else "孙女",
                "marital_status": "single",
            }
            return c.post("/api/v1/persons", json=body)

        results.append(
            measure("POST /persons (village, no ID number)", v_api, args.requests, args.warmup, create, 201)
        )
    finally:
        server.stop()
    attach_server_times(results, server.log.name)

    print()
    print(f"database:  {safe_url(url)}")
    print(
        f"persons:   {int(counts.get('persons_total', 0))} in county {county} "
        f"({int(counts.get('households_total', 0))} households) before the POSTs"
    )
    if seeded_now:
        print(
            f"seed:      {counts.get('elapsed_s', 0):.1f} s in seed-scale "
            f"({seed_wall:.1f} s with process start)"
        )
    else:
        print("seed:      already seeded (skipped)")
    print(
        f"requests:  {args.requests} timed per operation after {args.warmup} warm-up, one client, sequential"
    )
    print("           (p50..max and req/s: client round trip; srv: time inside the server, from its log)")
    print()
    print(HEADER)
    for r in results:
        print(r.row())
    failed = [r for r in results if r.errors]
    for r in failed:
        print(f"  {r.name}: first error {r.first_error}")
    print(f"\nserver log: {server.log.name}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Fuzz the API from its own OpenAPI document with schemathesis, as every role, on PostgreSQL.

What a run does:

1. creates a throw-away PostgreSQL database (``jiahe_fuzz_<pid>``), migrates it, seeds the demo
   users (every role) and a synthetic county of ``--persons`` people with a year of events, and
   opens a checkup round and a partner notification, so that there is something to find;
2. serves the API on it (``jiahe serve``), its log in a file;
3. per role: logs in, reads real ids, area codes, versions and list cursors in that role's scope
   into a pool, and runs ``schemathesis run`` with every check (``--checks all``), every phase
   (examples, coverage, fuzzing, and the stateful phase along the document's OpenAPI links),
   positive and negative data, under a time budget; ``fuzz_hooks.py`` feeds the pool in;
4. fails if any role has a failure, or if the server log holds a traceback (any 500 leaves one,
   even one no check noticed).

Every run draws a new seed and prints it first; ``--seed N`` replays a run (same seed, same
cases, same seeded county).

    .venv/bin/python scripts/fuzz.py            # CI: 30 s per role, a new seed
    .venv/bin/python scripts/fuzz.py --deep     # before a release / after a schema change: 5 min per role
    .venv/bin/python scripts/fuzz.py --seed 123456 --roles village --max-time 120   # replay one role

PostgreSQL is reached at ``JIAHE_FUZZ_PG`` (default ``postgresql://postgres@127.0.0.1:5432``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG = os.environ.get("JIAHE_FUZZ_PG", "postgresql://postgres@127.0.0.1:5432")
# Admin last: it may disable or re-role the other demo users.
PEOPLE = {
    "village": ("village-demo-2026", "430122100201"),
    "township": ("township-demo-2026", "430122100000"),
    "county": ("county-demo-2026", "430122000000"),
    "admin": ("admin-demo-2026", "430122000000"),
}
MACHINES = {
    "partner": ("demo-police", "police-demo-secret-2026"),
    "dashboard": ("demo-dashboard", "dashboard-demo-secret-2026"),
}
ROLE_ORDER = ["village", "township", "county", "partner", "dashboard", "admin"]

# Statuses a check accepts besides its defaults, each for a rule of the contract:
# 428 is the contract's answer to a missing If-Match; 412 a stale one; 409 a state conflict.
CONFIG = """
[generation]
allow-x00 = {allow_x00}

[checks.missing_required_header]
expected-statuses = [400, 401, 403, 406, 415, 422, 428]

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", 401, 403, 404, 409, 412, 422, 429, "5xx"]
"""
# (422 is accepted here and sorted by fuzz_hooks.filter_failure: only the stored-state codes pass.)


def _pg_url(name: str) -> str:
    return f"{PG.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"


async def _admin_sql(*statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{PG}/postgres")
    try:
        for s in statements:
            await conn.execute(s)
    finally:
        await conn.close()


async def _rows(name: str, sql: str, *args: Any) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(f"{PG}/{name}")
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def _jiahe(env: dict[str, str], *cmd: str) -> str:
    out = subprocess.run(
        [str(BIN / "jiahe"), *cmd], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    )
    return out.stdout


def _login(base: str, role: str) -> str:
    if role in PEOPLE:
        data = {"grant_type": "password", "username": role, "password": PEOPLE[role][0]}
    else:
        cid, secret = MACHINES[role]
        data = {"grant_type": "client_credentials", "client_id": cid, "client_secret": secret}
    r = httpx.post(base + "/api/v1/auth/token", data=data, timeout=30)
    r.raise_for_status()
    return str(r.json()["access_token"])


def _arrange(base: str) -> None:
    """A checkup round and a partner notification, so their ids exist before fuzzing."""
    township = {"Authorization": f"Bearer {_login(base, 'township')}"}
    today = date.today()
    r = httpx.post(
        base + "/api/v1/checkup-rounds",
        headers=township,
        json={
            "area_code": PEOPLE["township"][1],
            "name": "模糊测试三查",
            "opens_on": today.isoformat(),
            "closes_on": (today + timedelta(days=60)).isoformat(),
            "items": ["iud", "pregnancy", "gynecological"],
        },
        timeout=120,
    )
    if r.status_code not in (201, 409):  # 409: a kept database has it already
        r.raise_for_status()
    partner = {"Authorization": f"Bearer {_login(base, 'partner')}", "Idempotency-Key": "fuzz-arrange-1"}
    httpx.post(
        base + "/api/v1/partner/notifications",
        headers=partner,
        json={
            "kind": "residence_registered",
            "id_number": "430122199001011234",
            "name": "模糊",
            "address": "团头湖村1组",
            "area_code": PEOPLE["village"][1],
            "occurred_on": (today - timedelta(days=3)).isoformat(),
            "reference": "FUZZ-1",
        },
        timeout=30,
    )


# (pool key, table, extra condition): rows in the role's scope
ID_SOURCES = [
    ("household", "household", ""),
    ("person", "person", "AND merged_into_id IS NULL"),
    ("visit", "visit", ""),
    ("task", "task", ""),
    ("claim", "claim", ""),
    ("migrant", "migrant", ""),
    ("appointment", "checkup_appointment", ""),
    ("notification", "partner_notification", ""),
    ("conflict", "sync_conflict", ""),
]


async def _pool(db: str, base: str, role: str, token: str, list_paths: list[str]) -> dict[str, Any]:
    """Real values in the role's scope: ids (with versions), area codes, list cursors."""
    area = PEOPLE[role][1] if role in PEOPLE else "430122000000"
    column, prefix = (
        ("village_code", area)
        if not area.endswith("000")
        else ("township_code", area[:9])
        if not area.endswith("000000")
        else ("county_code", area[:6])
    )
    ids: dict[str, list[str]] = {}
    versions: dict[str, int] = {}
    for key, table, extra in ID_SOURCES:
        try:
            rows = await _rows(
                db,
                f'SELECT id, version FROM "{table}" WHERE {column} = $1 {extra} ORDER BY id LIMIT 60',
                prefix,
            )
        except Exception:  # noqa: BLE001 (a table without version or place: ids only)
            rows = await _rows(
                db, f'SELECT id, NULL AS version FROM "{table}" WHERE {column} = $1 LIMIT 60', prefix
            )
        ids[key] = [str(r["id"]) for r in rows]
        versions.update({str(r["id"]): int(r["version"]) for r in rows if r["version"] is not None})
    rounds = await _rows(db, "SELECT id FROM checkup_round ORDER BY id LIMIT 20")
    ids["round"] = [str(r["id"]) for r in rounds]
    me = {"admin", "county", "township", "village"}
    users = await _rows(db, 'SELECT id, version, username FROM "user" ORDER BY username')
    ids["user"] = [str(r["id"]) for r in users if r["username"] not in me]
    versions.update({str(r["id"]): int(r["version"]) for r in users})
    areas = await _rows(db, "SELECT code FROM area WHERE code LIKE $1 ORDER BY code LIMIT 80", prefix + "%")
    codes = [r["code"] for r in areas]
    ids["village_code"] = [c for c in codes if not c.endswith("000")] or [area]
    ids["area_code"] = codes or [area]
    actors = await _rows(db, "SELECT DISTINCT actor_id FROM audit_event WHERE actor_id IS NOT NULL LIMIT 20")
    ids["actor"] = [str(r["actor_id"]) for r in actors]
    cursors: dict[str, list[str]] = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        for path in list_paths:
            r = c.get(path, params={"limit": 1})
            if r.status_code != 200 or not r.headers.get("content-type", "").startswith("application/json"):
                continue
            if isinstance(r.json(), dict) and r.json().get("next_cursor"):
                cursors[path] = [r.json()["next_cursor"]]
    return {"ids": {k: v for k, v in ids.items() if v}, "versions": versions, "cursors": cursors}


# Where each pool list goes: schemathesis dictionaries bound to parameter names (and body fields).
BINDINGS = {
    "household": ["path.household_id", "query.household_id", "body.household_id"],
    "person": [
        "path.person_id",
        "query.person_id",
        "body.person_id",
        "body.mother_id",
        "body.father_id",
        "body.into_id",
        "body.applicant_id",
    ],
    "visit": ["path.visit_id"],
    "task": ["path.task_id"],
    "claim": ["path.claim_id"],
    "migrant": ["path.migrant_id"],
    "appointment": ["path.appointment_id"],
    "notification": ["path.notification_id"],
    "conflict": ["path.conflict_id"],
    "round": ["path.round_id", "query.round_id"],
    "user": ["path.user_id"],
    "actor": ["query.actor_id"],
    "village_code": ["query.village_code", "body.village_code", "body.current_village_code"],
    "area_code": ["query.area_code", "query.parent_code", "body.area_code", "body.hukou_area_code"],
}


def _toml(values: Any) -> str:
    return json.dumps(values, ensure_ascii=False)


def _config(pool: dict[str, Any], *, allow_x00: bool) -> str:
    lines = [CONFIG.format(allow_x00=str(allow_x00).lower())]
    for key, values in pool["ids"].items():
        lines.append(f"[dictionaries.{key}]\nvalues = {_toml(values)}\n")
    lines.append("[parameters]")
    for key, targets in BINDINGS.items():
        if key in pool["ids"]:
            for t in targets:
                lines.append(f'"{t}" = {{ dictionary = "{key}", probability = 0.8 }}')
    return "\n".join(lines) + "\n"


CASES = re.compile(r"\n\s*(\d+ generated[^\n]*)")
SCENARIOS = re.compile(r"Scenarios:\s*(\d+)")
LINKS = re.compile(r"API Links:\s*([^\n]*)")


def _summary(output: str) -> str:
    """The case counts schemathesis printed for a role: cases, stateful scenarios, links."""

    def grab(pattern: re.Pattern[str]) -> str:
        found = pattern.findall(output)
        return str(found[-1]).strip() if found else "?"

    return f"cases: {grab(CASES)}; stateful scenarios: {grab(SCENARIOS)}; links: {grab(LINKS)}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deep", action="store_true", help="5 minutes per role (before a release)")
    parser.add_argument("--max-time", type=int, default=0, help="seconds per role (default 30; --deep 300)")
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: a new seed)")
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--persons", type=int, default=3000, help="people in the seeded county")
    parser.add_argument("--roles", default=",".join(ROLE_ORDER))
    parser.add_argument("--checks", default="all")
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument(
        "--no-x00", action="store_true", help="do not generate NUL characters in strings (default: do)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    parser.add_argument(
        "--db", default=None, help="fuzz an already seeded database (kept), e.g. a --keep one"
    )
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    budget = args.max_time or (300 if args.deep else 30)
    print(f"== fuzz seed {seed} (replay: scripts/fuzz.py --seed {seed}), {budget} s per role", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="jiahe-fuzz-"))
    db = args.db or f"jiahe_fuzz_{os.getpid()}"
    env = dict(
        os.environ,
        JIAHE_DATABASE_URL=_pg_url(db),
        # beside the database's name: a kept database (--keep, --db) needs the keys it was seeded with
        JIAHE_DEV_SECRETS_FILE=str(Path(tempfile.gettempdir()) / f"{db}-secrets.json"),
        JIAHE_RATE_LIMIT_PER_TOKEN_PER_MINUTE="0",
        JIAHE_LOGIN_BLOCK_AFTER="1000000",
        JIAHE_LOGIN_SLOW_AFTER="1000000",
        JIAHE_LOG_LEVEL="WARNING",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    if not args.db:
        asyncio.run(_admin_sql(f'DROP DATABASE IF EXISTS "{db}"', f'CREATE DATABASE "{db}"'))
    server: subprocess.Popen[bytes] | None = None
    failed: list[str] = []
    counts: dict[str, str] = {}
    log_path = tmp / "server.log"
    try:
        started = time.monotonic()
        if not args.db:
            _jiahe(env, "migrate")
            _jiahe(env, "seed-demo")
            _jiahe(env, "seed-scale", "--persons", str(args.persons), "--seed", str(seed % 1000 + 1))
            print(f"== seeded {args.persons} people in {time.monotonic() - started:.0f} s", flush=True)
        server = subprocess.Popen(
            [str(BIN / "jiahe"), "serve", "--port", str(args.port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(log_path, "w"),  # noqa: SIM115
        )
        base = f"http://127.0.0.1:{args.port}"
        for _ in range(150):
            try:
                if httpx.get(base + "/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        _arrange(base)
        spec = httpx.get(base + "/openapi.json").json()
        list_paths = [p for p, ops in spec["paths"].items() if "get" in ops and "{" not in p]
        roles = [r for r in ROLE_ORDER if r in args.roles.split(",")]
        for role in roles:
            token = _login(base, role)
            pool = asyncio.run(_pool(db, base, role, token, list_paths))
            (tmp / f"pool-{role}.json").write_text(json.dumps(pool))
            (tmp / f"schemathesis-{role}.toml").write_text(_config(pool, allow_x00=not args.no_x00))
            print(f"== fuzzing as {role}", flush=True)
            cmd = [
                str(BIN / "schemathesis"),
                "--config-file",
                str(tmp / f"schemathesis-{role}.toml"),
                "run",
                base + "/openapi.json",
                "-H",
                f"Authorization: Bearer {token}",
                "--seed",
                str(seed),
                "--checks",
                args.checks,
                "--phases",
                args.phases,
                "--max-time",
                str(budget),
                "--max-failures",
                "100",
                "--exclude-path",
                "/api/v1/auth/logout",
                "--warnings",
                "off",
                # A generator's health check, not a finding: the change_payee body (payee name,
                # bank, account digits) filters many drawn examples, and Hypothesis then gives up
                # on that operation with an error whose exit code failed the whole role.
                "--suppress-health-check",
                "filter_too_much",
                "--no-color",
            ]
            run_env = dict(
                env,
                JIAHE_FUZZ_POOL=str(tmp / f"pool-{role}.json"),
                JIAHE_FUZZ_FILTERED=str(tmp / f"filtered-{role}.log"),
                SCHEMATHESIS_HOOKS="fuzz_hooks",
                PYTHONPATH=os.pathsep.join([str(ROOT / "scripts"), env["PYTHONPATH"]]),
            )
            proc = subprocess.run(cmd, cwd=tmp, env=run_env, check=False, capture_output=True, text=True)
            (tmp / f"schemathesis-{role}.log").write_text(proc.stdout + proc.stderr)
            sys.stdout.write(proc.stdout[-6000:] if proc.returncode else proc.stdout[-1500:])
            sys.stdout.flush()
            counts[role] = _summary(proc.stdout)
            if proc.returncode != 0:
                failed.append(role)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        if args.keep or args.db:
            print(f"   database kept: {db}")
        else:
            asyncio.run(_admin_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            Path(env["JIAHE_DEV_SECRETS_FILE"]).unlink(missing_ok=True)
    log = log_path.read_text() if log_path.exists() else ""
    tracebacks = log.count("Traceback (most recent call last)")
    print("== per role:")
    for role, text in counts.items():
        print(f"   {role:<10} {text}")
    print(
        f"== fuzz seed {seed}; failures for roles: {', '.join(failed) or 'none'};"
        f" server tracebacks: {tracebacks}"
    )
    print(f"   work folder (logs, pools, configs): {tmp}")
    if tracebacks:
        first = log.index("Traceback (most recent call last)")
        print(log[max(0, first - 2000) : first + 4000])
    return 1 if failed or tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())

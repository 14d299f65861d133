"""Fuzz the API from its own OpenAPI document with schemathesis, once per role.

Starts the real server on a throw-away SQLite database with the demo county, logs in as every
demo role (people and machine clients) and runs ``schemathesis run`` with a fixed seed and a
bounded number of examples per operation, so a run is reproducible.

    .venv/bin/python scripts/fuzz.py                 # short run (CI)
    .venv/bin/python scripts/fuzz.py --examples 200  # longer run
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PEOPLE = {
    "village": "village-demo-2026",
    "township": "township-demo-2026",
    "county": "county-demo-2026",
    "admin": "admin-demo-2026",
}
MACHINES = {
    "partner": ("demo-police", "police-demo-secret-2026"),
    "dashboard": ("demo-dashboard", "dashboard-demo-secret-2026"),
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=8)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--max-time", type=int, default=0, help="seconds per role (0: no budget)")
    parser.add_argument("--roles", default=",".join([*PEOPLE, *MACHINES]))
    parser.add_argument(
        "--checks",
        default="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="jiahe-fuzz-"))
    env = dict(
        os.environ,
        JIAHE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'fuzz.db'}",
        JIAHE_DEV_SECRETS_FILE=str(tmp / "secrets.json"),
        JIAHE_RATE_LIMIT_PER_TOKEN_PER_MINUTE="0",
        JIAHE_LOGIN_BLOCK_AFTER="100000",
        JIAHE_LOGIN_SLOW_AFTER="100000",
        JIAHE_LOG_LEVEL="WARNING",
    )
    for cmd in (["migrate"], ["seed-demo"]):
        subprocess.run([str(BIN / "jiahe"), *cmd], env=env, cwd=ROOT, check=True, capture_output=True)
    server = subprocess.Popen(
        [str(BIN / "jiahe"), "serve", "--port", str(args.port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "server.log", "w"),  # noqa: SIM115
    )
    base = f"http://127.0.0.1:{args.port}"
    failed: list[str] = []
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        for role in args.roles.split(","):
            if role in PEOPLE:
                data = {"grant_type": "password", "username": role, "password": PEOPLE[role]}
            else:
                cid, secret = MACHINES[role]
                data = {"grant_type": "client_credentials", "client_id": cid, "client_secret": secret}
            token = httpx.post(base + "/api/v1/auth/token", data=data).json()["access_token"]
            print(f"== fuzzing as {role}", flush=True)
            rc = subprocess.run(
                [
                    str(BIN / "schemathesis"),
                    "run",
                    base + "/openapi.json",
                    "-H",
                    f"Authorization: Bearer {token}",
                    "-n",
                    str(args.examples),
                    "--seed",
                    str(args.seed),
                    "--checks",
                    args.checks,
                    "--exclude-path",
                    "/api/v1/auth/logout",
                    "--generation-deterministic",
                    "--max-failures",
                    "50",
                    "--warnings",
                    "off",
                    *(["--max-time", str(args.max_time)] if args.max_time else []),
                ],
                cwd=ROOT,
                env=env,
                check=False,
            ).returncode
            if rc != 0:
                failed.append(role)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print("fuzz failures for roles:", ", ".join(failed) if failed else "none")
    print(f"server log: {tmp / 'server.log'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

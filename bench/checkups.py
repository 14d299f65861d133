"""Checkups benchmark: a county-wide round, results through sync push, and the round's breakdown,
on the real server over PostgreSQL.

    .venv/bin/python -m bench.checkups [--database-url URL] [--results 1000] [--batch 200]

Needs a PostgreSQL database holding a seeded county (``jiahe seed-scale --persons 700000``).
Steps: ``jiahe migrate``; delete the rounds earlier runs of this script made (name starting with
``bench-checkups``) with their appointments, tasks and change-log rows; create the county user and
one village-cadre user per village used (``--villages``) if missing; start ``jiahe serve``; then

1. ``POST /api/v1/checkup-rounds`` as the county user for the whole county (window: a week ago to
   two months ahead, all three items): seconds and ``appointments_created``;
2. each village cadre lists the round's scheduled appointments of her village
   (``GET /api/v1/checkup-appointments?round_id=&village_code=&status=scheduled``) and pushes
   ``checkup_result`` ops for them through ``POST /api/v1/sync/push`` in batches of ``--batch``,
   one batch at a time: ops/s, batch latency, and any result not ``applied``;
3. ``GET /api/v1/checkup-rounds/{id}/breakdown`` as the county user ``--requests`` times after
   5 warm-up requests: p50/p95 of the client round trip and of the time inside the server.

Every subprocess runs in the project root so that it shares ``.jiahe-dev-secrets.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections import Counter
from datetime import date, timedelta
from typing import Any

import httpx

from bench.register import COUNTY_USER, Api, ensure_user, run_cli, safe_url
from bench.sync import DEFAULT_PG_URL, SyncServer, pct, pg_connect

ROUND_PREFIX = "bench-checkups"


def village_user(code: str) -> str:
    return f"bench-ck-{code}"


async def _cleanup(url: str) -> tuple[int, int]:
    """Delete earlier bench rounds and everything they made: (rounds, appointments)."""
    conn = await pg_connect(url)
    try:
        async with conn.transaction():
            rounds = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM checkup_round WHERE name LIKE $1", ROUND_PREFIX + "%"
                )
            ]
            if not rounds:
                return 0, 0
            await conn.execute(
                "CREATE TEMP TABLE bench_appt ON COMMIT DROP AS"
                " SELECT id FROM checkup_appointment WHERE round_id = ANY($1::uuid[])",
                rounds,
            )
            await conn.execute(
                "CREATE TEMP TABLE bench_task ON COMMIT DROP AS SELECT t.id FROM task t"
                " JOIN bench_appt a ON t.source_id = a.id WHERE t.source_entity = 'checkup_appointment'"
            )
            await conn.execute(
                "DELETE FROM change c USING bench_task t WHERE c.entity = 'task' AND c.entity_id = t.id"
            )
            await conn.execute(
                "DELETE FROM change c USING bench_appt a"
                " WHERE c.entity = 'checkup_appointment' AND c.entity_id = a.id"
            )
            await conn.execute("DELETE FROM record_history r USING bench_appt a WHERE r.entity_id = a.id")
            await conn.execute("DELETE FROM task t USING bench_task b WHERE t.id = b.id")
            appts = await conn.fetchval("SELECT count(*) FROM bench_appt")
            await conn.execute("DELETE FROM checkup_appointment WHERE round_id = ANY($1::uuid[])", rounds)
            await conn.execute("DELETE FROM checkup_round WHERE id = ANY($1::uuid[])", rounds)
        await conn.execute("VACUUM ANALYZE checkup_appointment")
        await conn.execute("VACUUM ANALYZE task")
        await conn.execute("VACUUM ANALYZE change")
        return len(rounds), int(appts)
    finally:
        await conn.close()


def timed(client: httpx.Client, method: str, path: str, rid: str, **kw: Any) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    r = client.request(method, path, headers={"X-Request-ID": rid}, **kw)
    return (time.perf_counter() - t0) * 1000, r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.checkups", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("JIAHE_DATABASE_URL") or DEFAULT_PG_URL)
    parser.add_argument("--county", default="430122")
    parser.add_argument("--results", type=int, default=1000, help="checkup results pushed in total")
    parser.add_argument("--batch", type=int, default=200, help="ops per push")
    parser.add_argument("--villages", type=int, default=5, help="villages (cadres) pushing results")
    parser.add_argument("--requests", type=int, default=100, help="timed breakdown requests")
    parser.add_argument("--port", type=int, default=8771)
    args = parser.parse_args(argv)

    url: str = args.database_url
    env = {**os.environ, "JIAHE_DATABASE_URL": url}
    county: str = args.county
    print(f"database: {safe_url(url)}")
    print(run_cli(env, "migrate").strip())
    rounds, appts = asyncio.run(_cleanup(url))
    print(f"cleanup: deleted {rounds} earlier bench round(s) with {appts} appointments")

    villages = [f"{county}{100 + t:03d}202" for t in range(args.villages)]
    ensure_user(env, COUNTY_USER, "county", f"{county}000000", "基准测试 县")
    for code in villages:
        ensure_user(env, village_user(code), "village", code, f"基准测试 三查 {code}")

    per_village = -(-args.results // len(villages))
    server = SyncServer(env, args.port, 1)
    server.start()
    failed = False
    try:
        county_api = Api(server.base, COUNTY_USER)
        county_api.http.timeout = httpx.Timeout(600.0)  # opening a county round is one long request
        today = date.today()
        body = {
            "area_code": f"{county}000000",
            "name": f"{ROUND_PREFIX} {time.strftime('%Y-%m-%d %H:%M:%S')}",
            "opens_on": (today - timedelta(days=7)).isoformat(),
            "closes_on": (today + timedelta(days=60)).isoformat(),
            "items": ["iud", "pregnancy", "gynecological"],
        }
        ms, r = timed(county_api.fresh(), "POST", "/api/v1/checkup-rounds", "bench-ck-open", json=body)
        if r.status_code != 201:
            sys.exit(f"POST /checkup-rounds → {r.status_code} {r.text[:500]}")
        rnd = r.json()
        round_id = rnd["id"]
        open_srv = server.request_ms().get("bench-ck-open", 0.0)
        print(
            f"\n1. open county round: {ms / 1000:.2f} s (server {open_srv / 1000:.2f} s), "
            f"appointments_created={rnd['appointments_created']}  [aim < 10 s]"
        )

        # 2. results through sync push, one cadre (village) at a time.
        batches: list[tuple[Api, str, list[dict[str, Any]]]] = []
        for code in villages:
            cadre = Api(server.base, village_user(code))
            page = cadre.get_json(
                "/api/v1/checkup-appointments",
                round_id=round_id,
                village_code=code,
                status="scheduled",
                limit=min(500, per_village),
            )
            ops = [
                {
                    "op_id": uuid.uuid4().hex,
                    "entity": "checkup_result",
                    "id": str(uuid.uuid4()),
                    "base_version": None,
                    "data": {
                        "appointment_id": a["id"],
                        "checked_on": today.isoformat(),
                        "place": "station",
                        "consent": True,
                        "items": {"iud": "in_place"},
                    },
                }
                for a in page["items"][:per_village]
            ]
            if len(ops) < per_village:
                print(f"   note: village {code} has only {len(ops)} scheduled appointments")
            batches.extend((cadre, code, ops[i : i + args.batch]) for i in range(0, len(ops), args.batch))
        statuses: Counter[str] = Counter()
        first_bad = ""
        batch_ms: list[float] = []
        rids: list[str] = []
        t0 = time.perf_counter()
        for i, (cadre, code, ops) in enumerate(batches):
            rid = f"bench-ck-push-{i}"
            rids.append(rid)
            ms, r = timed(
                cadre.fresh(),
                "POST",
                "/api/v1/sync/push",
                rid,
                json={"device_id": f"bench-{code}", "ops": ops},
            )
            if r.status_code != 200:
                sys.exit(f"push → {r.status_code} {r.text[:500]}")
            batch_ms.append(ms)
            for res in r.json()["results"]:
                statuses[res["status"]] += 1
                if res["status"] != "applied" and not first_bad:
                    first_bad = str(res)[:300]
        wall = time.perf_counter() - t0
        ops_total = sum(len(b[2]) for b in batches)
        srv_all = server.request_ms()
        push_srv = [srv_all[r] for r in rids if r in srv_all]
        print(
            f"\n2. sync push of checkup_result: {ops_total} ops in {len(batches)} batches of ≤{args.batch}, "
            f"{wall:.2f} s → {ops_total / wall:.0f} ops/s"
        )
        print(
            f"   batch ms: p50 {pct(batch_ms, 50):.0f}  p95 {pct(batch_ms, 95):.0f}  max {max(batch_ms):.0f}"
            f"  (server p50 {pct(push_srv, 50):.0f}  p95 {pct(push_srv, 95):.0f});"
            f" per op {sum(batch_ms) / ops_total:.1f} ms"
        )
        print(f"   results: {dict(statuses)}" + (f"; first not applied: {first_bad}" if first_bad else ""))
        failed = failed or statuses.get("applied", 0) != ops_total

        # 3. the breakdown, county user.
        path = f"/api/v1/checkup-rounds/{round_id}/breakdown"
        for _ in range(5):
            county_api.fresh().get(path)
        lat: list[float] = []
        rids = []
        last: Any = None
        for i in range(args.requests):
            rid = f"bench-ck-breakdown-{i}"
            rids.append(rid)
            ms, r = timed(county_api.fresh(), "GET", path, rid)
            if r.status_code != 200:
                sys.exit(f"GET breakdown → {r.status_code} {r.text[:300]}")
            lat.append(ms)
            last = r.json()
        srv_all = server.request_ms()
        srv = [srv_all[r] for r in rids if r in srv_all]
        done = sum(a["done"] for a in last)
        due = sum(a["due"] for a in last)
        print(
            f"\n3. GET /checkup-rounds/{{id}}/breakdown (county user, {len(last)} townships, due {due}, "
            f"done {done}) ×{args.requests}:"
        )
        print(
            f"   client p50 {pct(lat, 50):.1f} ms  p95 {pct(lat, 95):.1f} ms  max {max(lat):.1f} ms;"
            f"  server p50 {pct(srv, 50):.1f} ms  p95 {pct(srv, 95):.1f} ms  [aim p95 < 200 ms]"
        )
    finally:
        server.stop()
    print(f"\nserver log: {server.log.name}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

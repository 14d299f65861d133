"""Screenshots of the workbench: a PNG of every page of ``PAGES`` in ``docs/screenshots/``.

    .venv/bin/python scripts/screenshots.py [--persons 3000] [--only home,login] [--keep]

What a run does:

1. makes a throw-away SQLite database in a temporary directory, migrates it, seeds the demo users
   (``jiahe seed-demo``: admin, county, township, village, village2 with their README passwords)
   and a small county with a year of events (``jiahe seed-scale --persons N``);
2. serves it (``jiahe serve`` on a free port) and arranges some work through the API, so that the
   pages are not empty: claims submitted by the village (one left submitted, one reviewed by the
   township, one approved by the county and one posted), a checkup round of the township, a partner
   notification for the village, a sync conflict (two phones changing the same field);
   what could not be arranged is printed and the run goes on;
3. signs in with headless Chromium (Debian's ``/usr/bin/chromium``, see tests/browser/chrome.py) as
   each page's role and writes ``docs/screenshots/<name>.png``: the whole page (up to 4,000 px
   high) at the page's width.

Runs in about half a minute. Chromium missing → exit 2 with the reason; without a Chinese font
(``fonts-noto-cjk``, which ``.ci/run`` installs with Chromium) it warns: the text would be boxes.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.chrome import missing, new_driver, sign_in, window  # noqa: E402

BIN = Path(sys.executable).parent
OUT = ROOT / "docs" / "screenshots"
MAX_HEIGHT = 4000

# The demo users of `jiahe seed-demo` (app/services/demo.py): username → password.
PASSWORDS = {
    "admin": "admin-demo-2026",
    "county": "county-demo-2026",
    "township": "township-demo-2026",
    "village": "village-demo-2026",
}
VILLAGE = "430122100201"
TOWNSHIP = "430122100000"

# (file name, role signed in (None: signed out), path, width): desktop pages at 1280, some also at
# 360. ``{name}`` in a path is an id arranged by ``arrange`` (a page whose id could not be arranged
# is skipped and said so). Adding a page is adding a line.
PAGES: list[tuple[str, str | None, str, int]] = [
    ("login", None, "/web/login", 1280),
    ("home", "township", "/web/", 1280),
    ("home-county", "county", "/web/", 1280),
    ("home-phone", "township", "/web/", 360),
    ("claims", "township", "/web/claims", 1280),
    ("claims-county", "county", "/web/claims?status=reviewed", 1280),
    ("claim-detail", "county", "/web/claims/{claim_reviewed}", 1280),
    ("claims-phone", "township", "/web/claims", 360),
    ("notices", "county", "/web/notices", 1280),
    ("notice-print", "township", "/web/notices/print?programme={posted_programme}&year={posted_year}", 1280),
    ("checkups", "township", "/web/checkups", 1280),
    ("checkup-round", "township", "/web/checkups/rounds/{round}", 1280),
    ("checkups-overdue", "county", "/web/checkups/overdue", 1280),
    ("conflicts", "township", "/web/conflicts", 1280),
    ("conflicts-phone", "township", "/web/conflicts", 360),
    ("data-quality", "township", "/web/data-quality", 1280),
    ("migrants", "township", "/web/migrants", 1280),
    ("figures", "county", "/web/figures", 1280),
    ("figures-phone", "county", "/web/figures", 360),
    ("admin-users", "admin", "/web/admin", 1280),
    ("admin-clients", "admin", "/web/admin/clients", 1280),
    ("admin-areas", "admin", "/web/admin/areas", 1280),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def jiahe(env: dict[str, str], *cmd: str) -> str:
    proc = subprocess.run(
        [str(BIN / "jiahe"), *cmd], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"jiahe {' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


# --- arranging work through the API -------------------------------------------------------------


class Api:
    def __init__(self, base: str, username: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=60)
        r = self.http.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": username, "password": PASSWORDS[username]},
        )
        r.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def post(self, path: str, body: dict[str, Any], expect: tuple[int, ...] = (200, 201)) -> Any:
        r = self.http.post(path, json=body)
        if r.status_code not in expect:
            raise RuntimeError(f"POST {path} → {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return r.json()


def _eligible_claims(village: Api, year: int, wanted: int) -> list[dict[str, Any]]:
    """Drafts for people of the demo village who pass a programme's rules (checked first)."""
    facts = {
        "hukou_rural": True,
        "births_within_policy_1973_2001": True,
        "only_child_certificate": True,
    }
    people = village.get("/api/v1/persons", village_code=VILLAGE, limit=500)["items"]
    made: list[dict[str, Any]] = []
    checks = 0
    for programme in ("childcare_subsidy", "rural_reward", "only_child_parent_reward"):
        for person in people:
            if len(made) >= wanted or checks > 400:
                return made
            body = {"programme": programme, "person_id": person["id"], "year": year, "facts": facts}
            checks += 1
            r = village.http.post("/api/v1/claims/check", json=body)
            if r.status_code != 200 or not r.json().get("eligible"):
                continue
            payee = {
                "name": person.get("name") or "户主",
                "bank": "长沙农村商业银行",
                "account": "6230901234567890",
            }
            r = village.http.post("/api/v1/claims", json={**body, "payee": payee})
            if r.status_code == 201:
                made.append(r.json())
    return made


def arrange(base: str) -> tuple[dict[str, str], list[str]]:
    """Work for the pages; ({name: id} for paths, what could not be arranged)."""
    ids: dict[str, str] = {}
    notes: list[str] = []

    def step(name: str, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 (a screenshot run goes on without it)
            notes.append(f"{name}: {exc}")

    village, township, county = (Api(base, u) for u in ("village", "township", "county"))
    today = date_today()

    def claims() -> None:
        made = _eligible_claims(village, today.year, 4)
        if not made:
            raise RuntimeError("no eligible person found in the demo village")
        for c in made:
            village.post(f"/api/v1/claims/{c['id']}/submit", {})
        ids["claim_submitted"] = made[0]["id"]
        for c in made[1:]:
            township.post(f"/api/v1/claims/{c['id']}/review", {"decision": "approve", "comment": "材料齐全"})
        if len(made) > 1:
            ids["claim_reviewed"] = made[1]["id"]
        for c in made[2:]:
            county.post(f"/api/v1/claims/{c['id']}/approve", {"decision": "approve", "comment": "同意"})
        if len(made) > 2:
            ids["claim_approved"] = made[2]["id"]
        for c in made[3:]:
            county.post(f"/api/v1/claims/{c['id']}/publish", {"notice_days": 7})
        if len(made) > 3:
            ids["claim_posted"] = made[3]["id"]
            ids["posted_programme"] = made[3]["programme"]
            ids["posted_year"] = str(made[3]["year"])
        if len(made) < 4:
            notes.append(f"claims: only {len(made)} eligible people found (of 4 wanted)")

    def round_() -> None:
        r = township.post(
            "/api/v1/checkup-rounds",
            {
                "area_code": TOWNSHIP,
                "name": f"{today.year}年第四季度三查",
                "opens_on": (today - timedelta(days=20)).isoformat(),
                "closes_on": (today + timedelta(days=40)).isoformat(),
                "items": ["iud", "pregnancy", "gynecological"],
            },
        )
        ids["round"] = r["id"]

    def notification() -> None:
        r = httpx.post(
            base + "/api/v1/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "demo-police",
                "client_secret": "police-demo-secret-2026",
            },
            timeout=30,
        )
        r.raise_for_status()
        headers = {"Authorization": f"Bearer {r.json()['access_token']}", "Idempotency-Key": "shots-1"}
        r = httpx.post(
            base + "/api/v1/partner/notifications",
            headers=headers,
            json={
                "kind": "residence_registered",
                "id_number": id_number("43012219900101123"),
                "name": "陈晓燕",
                "address": "团头湖村3组",
                "area_code": VILLAGE,
                "occurred_on": (today - timedelta(days=3)).isoformat(),
                "reference": "GA2026-0001",
            },
            timeout=30,
        )
        if r.status_code != 202:
            raise RuntimeError(f"{r.status_code} {r.text[:300]}")

    def conflict() -> None:
        household = village.get("/api/v1/households", village_code=VILLAGE, limit=1)["items"][0]
        version = household["version"]

        def push(device: str, address: str) -> dict[str, Any]:
            op = {
                "op_id": str(uuid.uuid4()),
                "entity": "household",
                "id": household["id"],
                "base_version": version,
                "data": {"address": address},
            }
            result: dict[str, Any] = village.post("/api/v1/sync/push", {"device_id": device, "ops": [op]})
            return result["results"][0]

        push("phone-a", household["address"] + "（东）")
        second = push("phone-b", household["address"] + "（西）")
        if second["status"] != "conflict":
            raise RuntimeError(f"the second push was {second['status']}, not a conflict")
        conflicts = township.get("/api/v1/sync/conflicts")
        items = conflicts["items"] if isinstance(conflicts, dict) else conflicts
        if items:
            ids["conflict"] = items[0]["id"]

    step("claims", claims)
    step("checkup round", round_)
    step("partner notification", notification)
    step("sync conflict", conflict)
    return ids, notes


def id_number(first17: str) -> str:
    from app.services.idnumber import check_char

    return first17 + check_char(first17)


def date_today() -> Any:
    from app.core import clock

    return clock.today()


# --- screenshots ----------------------------------------------------------------------------------


def shoot(driver: Any, base: str, ids: dict[str, str], only: set[str]) -> list[str]:
    from selenium.webdriver.common.by import By

    written: list[str] = []
    signed_in_as: str | None = None
    OUT.mkdir(parents=True, exist_ok=True)
    for name, role, path, width in PAGES:
        if only and name not in only:
            continue
        try:
            url = path.format(**ids)
        except KeyError as exc:
            print(f"  skip {name}: nothing arranged for {exc}")
            continue
        size = "phone" if width <= 360 else "desktop"
        window(driver, size)
        if role != signed_in_as:
            driver.get(base + "/web/login")
            driver.delete_all_cookies()
            if role is not None:
                sign_in(driver, base, role, PASSWORDS[role])
            signed_in_as = role
        driver.get(base + url)
        driver.find_element(By.TAG_NAME, "h1")
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        window(driver, size, height=min(max(height, 740 if size == "phone" else 800), MAX_HEIGHT))
        time.sleep(0.3)  # charts draw after load
        target = OUT / f"{name}.png"
        driver.save_screenshot(str(target))
        written.append(f"{target.relative_to(ROOT)} ({width} px, {role or 'signed out'}: {url})")
    return written


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=3000, help="people in the seeded county")
    parser.add_argument("--only", default="", help="comma-separated page names (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    reason = missing()
    if reason:
        print(f"no browser: {reason}", file=sys.stderr)
        return 2

    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False).stdout
    if not fonts.strip():
        print(
            "warning: no Chinese font (apt-get install fonts-noto-cjk): the text will be boxes",
            file=sys.stderr,
        )
    tmp = Path(tempfile.mkdtemp(prefix="jiahe-shots-"))
    env = dict(
        os.environ,
        JIAHE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'shots.db'}",
        JIAHE_DEV_SECRETS_FILE=str(tmp / "secrets.json"),
        JIAHE_RATE_LIMIT_PER_TOKEN_PER_MINUTE="0",
        JIAHE_LOG_LEVEL="WARNING",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    started = time.monotonic()
    jiahe(env, "migrate")
    jiahe(env, "seed-demo")
    # The demo county's 3 townships × 3 villages (seed-demo's areas), so its villages are well filled.
    jiahe(env, "seed-scale", "--persons", str(args.persons), "--townships", "3", "--villages", "3")
    print(f"== seeded {args.persons} people in {time.monotonic() - started:.0f} s", flush=True)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(tmp / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [str(BIN / "jiahe"), "serve", "--port", str(port)], env=env, cwd=ROOT, stdout=log, stderr=log
    )
    driver = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the server did not start; see {tmp / 'server.log'}")
            time.sleep(0.2)
        ids, notes = arrange(base)
        print(f"== arranged: {', '.join(sorted(ids)) or 'nothing'}")
        for note in notes:
            print(f"   not arranged: {note}")
        driver = new_driver()
        for line in shoot(driver, base, ids, {n for n in args.only.split(",") if n}):
            print(f"   wrote {line}")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        if args.keep:
            print(f"kept {tmp}")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    print(f"== done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Issue 15, "done when": a cadre's, a township's and a county's whole day, walked through the API
without a dead end, on one clock (the host in UTC, the day beginning at 00:30 China time).

The village cadre works offline and pushes her day in one batch: a checkup result entered at
00:30 (China's 8 December, the host's 7th), a decline, an exemption, a follow-up done, a
migrant's departure, a benefit claim drafted and submitted — and an op her old app version
sends with an entity the server does not know, which is rejected alone. The woman who declined
changes her mind and is checked the same evening; another woman is given a day and a place.
The township reviews the claim, merges a woman registered twice (both records hold an
appointment of the round), dismisses a look-alike that is not a duplicate, cancels the
appointment of a woman who left. The county approves, posts and (another county user) pays,
and reads the figures. Every list names the people it is about, in Chinese by default."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.core import clock
from app.models.checkups import CheckupAppointment
from tests.claims.test_api import RURAL_FACTS, elder, payee
from tests.claims.test_api import programmes as programmes  # noqa: F401,PLC0414  (autouse: rule versions)
from tests.factories import id_number
from tests.households.test_api import COUNTY, TS1, V1, V2, mk_household, mk_person, problem
from tests.migrants.test_api import inflow_body
from tests.sync.test_actions import pull_until
from tests.sync.test_api import op, push

CST = ZoneInfo("Asia/Shanghai")
EVE = datetime(2026, 12, 7, 10, 0, tzinfo=CST)  # the day before: the register and the round
MORNING = datetime(2026, 12, 8, 0, 30, tzinfo=CST)  # the host (UTC) is still on the 7th
EVENING = datetime(2026, 12, 8, 23, 30, tzinfo=CST)  # the host is on the 8th already
NEXT_DAY = datetime(2026, 12, 9, 10, 0, tzinfo=CST)
PAY_DAY = datetime(2026, 12, 17, 10, 0, tzinfo=CST)
DAY = date(2026, 12, 8)


@contextmanager
def host_in_utc() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


async def ok(r, status: int = 200) -> dict:
    assert r.status_code == status, r.text
    return r.json()


async def test_a_whole_day_without_dead_ends(client_as, db) -> None:
    with host_in_utc():
        cadre = await client_as("village", V1)
        cadre2 = await client_as("village", V2)
        township = await client_as("township", TS1)
        county = await client_as("county", COUNTY)
        treasurer = await client_as("county", COUNTY)

        # --- the day before: the register as it stands, and the township's round ----------------
        with clock.freeze(EVE):
            home = await mk_household(cadre, address="团头湖村3组12号")
            fang = await mk_person(cadre, home["id"], name="王芳", born=date(1990, 4, 4))
            li = await mk_person(
                cadre, home["id"], name="李丽", born=date(1992, 5, 5), relation_to_head="配偶"
            )
            hong = await mk_person(
                cadre, home["id"], name="赵红", born=date(1988, 6, 6), relation_to_head="其他"
            )
            # 王芳 registered a second time, without her ID number, in another household
            other_home = await mk_household(cadre, address="团头湖村4组2号")
            fang_again = await mk_person(
                cadre, other_home["id"], name="王芳", sex="female", born=date(1990, 4, 4), with_id=False
            )
            # two women of one name and birthday in two villages: look-alikes, not one person
            mei = await mk_person(
                cadre, other_home["id"], name="陈梅", born=date(1991, 7, 7), relation_to_head="配偶"
            )
            v2_home = await mk_household(cadre2, V2, address="乔口村1组1号")
            mei2 = await mk_person(
                cadre2, v2_home["id"], name="陈梅", sex="female", born=date(1991, 7, 7), with_id=False
            )
            mother = await elder(cadre, name="周桂英")
            visit = await ok(
                await cadre.post(
                    "/api/v1/visits",
                    json={
                        "household_id": home["id"],
                        "person_id": li["id"],
                        "visited_at": "2026-12-07T09:00:00+08:00",
                        "purpose": "health_education",
                        "follow_up_on": "2026-12-08",
                        "follow_up_note": "送叶酸",
                    },
                ),
                201,
            )
            arrival = await ok(
                await cadre.post("/api/v1/migrants", json=inflow_body(id_number(date(1985, 1, 1), "male"))),
                201,
            )
            rnd = await ok(
                await township.post(
                    "/api/v1/checkup-rounds",
                    json={
                        "area_code": TS1,
                        "name": "2026年冬季三查",
                        "opens_on": "2026-12-07",
                        "closes_on": "2027-01-31",
                        "items": ["iud", "pregnancy", "gynecological"],
                    },
                ),
                201,
            )
            assert rnd["appointments_created"] == 6  # 王芳 twice, 李丽, 赵红, 陈梅 twice
            # a second round over the same items and an overlapping window is refused (one woman,
            # one appointment per item)
            problem(
                await county.post(
                    "/api/v1/checkup-rounds",
                    json={
                        "area_code": COUNTY,
                        "name": "全县三查",
                        "opens_on": "2026-12-20",
                        "closes_on": "2027-02-28",
                        "items": ["pregnancy"],
                    },
                ),
                409,
                "round_overlaps",
            )
            listed = await ok(
                await township.get(
                    "/api/v1/checkup-appointments", params={"round_id": rnd["id"], "limit": 50}
                )
            )
            appt = {a["person"]["id"]: a for a in listed["items"]}
            assert appt[fang["id"]]["person"]["name"] == "王芳"
            assert appt[fang["id"]]["household"] == {"id": home["id"], "address": "团头湖村3组12号"}
            follow_up = next(
                t
                for t in (await ok(await cadre.get("/api/v1/tasks", params={"kind": "follow_up"})))["items"]
                if t["source_id"] == visit["id"]
            )

        # --- 00:30: the cadre's phone pushes her morning's work in one batch ----------------------
        with clock.freeze(MORNING):
            assert clock.today() == DAY and clock.now().date() == date(2026, 12, 7)  # UTC: still the 7th
            claim_id = str(uuid.uuid4())
            ops = [
                op(
                    "checkup_result",
                    {
                        "appointment_id": appt[fang["id"]]["id"],
                        "checked_on": DAY.isoformat(),  # China's today: not "in the future"
                        "place": "station",
                        "consent": True,
                        "items": {"iud": "in_place", "pregnancy": "negative", "gynecological": "normal"},
                    },
                ),
                op("checkup_decline", {"reason": "外出务工，过几天回来"}, rid=appt[li["id"]]["id"]),
                op("checkup_exempt", {"reason": "pregnant"}, rid=appt[hong["id"]]["id"]),
                op("task_completion", {"note": "叶酸已送到"}, rid=follow_up["id"]),
                op("migrant_close", {"closed_on": DAY.isoformat(), "reason": "moved_on"}, rid=arrival["id"]),
                op(
                    "claim",
                    {
                        "programme": "rural_reward",
                        "person_id": mother["id"],
                        "year": 2026,
                        "facts": RURAL_FACTS,
                        "payee": payee("周桂英"),
                        "submit": True,
                    },
                    rid=claim_id,
                ),
                op("household_photo", {"household_id": home["id"]}),  # an op of a newer app version
            ]
            first = await push(cadre, ops)
            assert [x["status"] for x in first] == ["applied"] * 6 + ["rejected"], first
            assert first[-1]["error"]["code"] == "unsupported_entity"
            assert first[-1]["error"]["errors"][0]["message"].startswith("须为以下之一：household")
            # the signal drops, the phone sends it all again: nothing twice
            again = await push(cadre, ops)
            assert [x["status"] for x in again[:6]] == ["duplicate"] * 6, again
            changes = await pull_until(
                cadre,
                None,
                {
                    ("checkup_appointment", appt[fang["id"]]["id"]),
                    ("task", follow_up["id"]),
                    ("migrant", arrival["id"]),
                    ("claim", claim_id),
                },
            )
            seen = {(c["entity"], c["id"]): c["data"] for c in changes if not c["deleted"]}
            assert seen[("checkup_appointment", appt[fang["id"]]["id"])]["status"] == "done"
            assert seen[("checkup_appointment", appt[li["id"]]["id"])]["status"] == "declined"
            assert seen[("checkup_appointment", appt[hong["id"]]["id"])]["status"] == "exempted"
            assert seen[("task", follow_up["id"])]["status"] == "done"
            assert seen[("migrant", arrival["id"])]["status"] == "closed"
            assert seen[("claim", claim_id)]["status"] == "submitted"

        # --- 23:30: 李丽 changed her mind; 陈梅 is given a day and a place -----------------------
        with clock.freeze(EVENING):
            done = await ok(
                await cadre.post(
                    f"/api/v1/checkup-appointments/{appt[li['id']]['id']}/result",
                    json={
                        "checked_on": DAY.isoformat(),
                        "place": "mobile_clinic",
                        "consent": True,
                        "items": {"iud": "absent", "pregnancy": "negative", "gynecological": "normal"},
                    },
                )
            )
            assert done["status"] == "done" and done["decline_reason"] == "外出务工，过几天回来"
            assert [e["action"] for e in done["history"]] == ["declined", "done"]
            moved = await ok(
                await cadre.post(
                    f"/api/v1/checkup-appointments/{appt[mei['id']]['id']}/reschedule",
                    json={"scheduled_on": "2026-12-10", "place": "团头湖村卫生室"},
                )
            )
            assert (moved["scheduled_on"], moved["place"]) == ("2026-12-10", "团头湖村卫生室")
            inbox = (await ok(await cadre.get("/api/v1/tasks", params={"status": "open"})))["items"]
            assert inbox[0]["source_id"] == appt[mei["id"]]["id"]  # the day she is expected comes first
            assert inbox[0]["title"].startswith("三查到期：陈梅")
            assert inbox[0]["person"]["name"] == "陈梅"
            english = await cadre.get(
                "/api/v1/tasks", params={"status": "open"}, headers={"Accept-Language": "en"}
            )
            assert english.json()["items"][0]["title"].startswith("Checkup due: 陈梅")
            # a filter she reached for, and one that does not exist
            women = (await ok(await cadre.get("/api/v1/persons", params={"sex": "female", "limit": 100})))[
                "items"
            ]
            assert women and all(p["sex"] == "female" for p in women)
            problem(await cadre.get("/api/v1/persons", params={"gender": "female"}), 422, "unknown_parameter")

        # --- the township's morning ---------------------------------------------------------------
        with clock.freeze(NEXT_DAY):
            waiting = (await ok(await township.get("/api/v1/claims", params={"status": "submitted"})))[
                "items"
            ]
            assert [(c["id"], c["person"]["name"]) for c in waiting] == [(claim_id, "周桂英")]
            assert waiting[0]["person"]["village_name"] and "*" in waiting[0]["person"]["id_number_masked"]
            await ok(
                await township.post(
                    f"/api/v1/claims/{claim_id}/review", json={"decision": "approve", "comment": "核实无误"}
                )
            )
            faults = await ok(await township.get("/api/v1/data-quality", params={"kind": "likely_duplicate"}))
            flagged = {f["id"] for f in faults}
            assert {fang_again["id"], mei["id"], mei2["id"]} <= flagged
            # 王芳 registered twice, both records with an appointment of the round: merged, the
            # checked one kept, the other cancelled as merged
            await ok(
                await township.post(f"/api/v1/persons/{fang_again['id']}/merge", json={"into_id": fang["id"]})
            )
            stored = {
                a.id: a
                for a in (
                    await db.execute(select(CheckupAppointment).execution_options(populate_existing=True))
                ).scalars()
            }
            kept = stored[uuid.UUID(appt[fang["id"]]["id"])]
            gone = stored[uuid.UUID(appt[fang_again["id"]]["id"])]
            assert (kept.status, str(kept.person_id)) == ("done", fang["id"])
            assert (gone.status, gone.cancel_reason) == ("cancelled", "merged")
            await db.rollback()  # end this read: the app writes next
            # the two 陈梅 are two women: the fault is dismissed and stays so
            await ok(
                await township.post(
                    "/api/v1/data-quality/dismiss",
                    json={
                        "kind": "likely_duplicate",
                        "entity": "person",
                        "id": mei["id"],
                        "reason": "同名同生日，不是同一人",
                    },
                ),
                201,
            )
            left = {
                f["id"]
                for f in await ok(
                    await township.get("/api/v1/data-quality", params={"kind": "likely_duplicate"})
                )
            }
            assert not {mei["id"], mei2["id"]} & left
            shown = await ok(
                await township.get(
                    "/api/v1/data-quality", params={"kind": "likely_duplicate", "include_dismissed": "true"}
                )
            )
            assert any(
                f["id"] == mei["id"] and f["dismissed"]["reason"] == "同名同生日，不是同一人" for f in shown
            )
            # the other 陈梅 has left for good: her appointment is cancelled, not overdue forever
            cancelled = await ok(
                await township.post(
                    f"/api/v1/checkup-appointments/{appt[mei2['id']]['id']}/cancel",
                    json={"reason": "已迁往外省"},
                )
            )
            assert cancelled["status"] == "cancelled"
            figures = await ok(await township.get(f"/api/v1/checkup-rounds/{rnd['id']}"))
            assert (figures["done"], figures["declined"], figures["exempted"]) == (2, 0, 1)
            assert figures["due"] == 4  # 王芳, 李丽, 赵红, 陈梅 of V1: no cancelled one counts

            # --- the county: approve and post ----------------------------------------------------
            await ok(
                await county.post(
                    f"/api/v1/claims/{claim_id}/approve", json={"decision": "approve", "comment": "同意"}
                )
            )
            posted = await ok(
                await county.post(f"/api/v1/claims/{claim_id}/publish", json={"notice_days": 7})
            )
            assert posted["posted_on"] == "2026-12-09"

        with clock.freeze(PAY_DAY):
            paid = await ok(
                await treasurer.post(
                    f"/api/v1/claims/{claim_id}/pay",
                    json={
                        "paid_on": "2026-12-17",
                        "amount": posted["approved_amount"],
                        "reference": "BANK-20261217",
                    },
                )
            )
            assert paid["status"] == "paid"
            twice = await treasurer.post(
                f"/api/v1/claims/{claim_id}/pay",
                json={
                    "paid_on": "2026-12-17",
                    "amount": posted["approved_amount"],
                    "reference": "BANK-20261217",
                },
                headers={"Accept-Language": "en"},
            )
            body = problem(twice, 409, "invalid_transition")
            assert body["title"].isascii()
            year = await ok(
                await county.get(
                    "/api/v1/indicators",
                    params={"area_code": COUNTY, "from": "2026-01-01", "to": "2026-12-31"},
                )
            )
            assert year["claims"]["rural_reward"]["total"] == 1
            assert year["claims"]["rural_reward"]["amount"] == posted["approved_amount"]

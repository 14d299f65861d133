"""Keeping the figures' state exact in the writing transaction (issue 8).

The county figures must answer a 700,000-person county in a fraction of a second and never be
staler than the write that just committed. Counting the register on every read cannot do the
first; this module keeps what the figures read up to date *inside every writing transaction*, so
that a commit makes data and figures visible together.

Three kinds of state (tables in ``app.models.indicators``):

1. **Tallies** (``indicator_tally``): counts that are sums of one number per source row
   (a living person counts 1 in the bucket of her birth year, a visit 1 in its local month, an
   inflow 1 in the month it began and 1 in the month it ended, a birth 1 in its month and in
   its order's and sex's, a payment its amount in its month...). They are maintained by
   *deltas*: for every tracked row the transaction touches we know its state before the
   transaction (read from the database under the row lock, ``FOR NO KEY UPDATE`` on
   PostgreSQL, the first time the transaction flushes a change to it) and after (read back
   at commit). The delta ``contributions(after) - contributions(before)`` is added to the
   village row and to the township row. Increments commute, so concurrent transactions need
   no lock beyond the row locks of the increments, which are taken last and in one sorted
   order (no deadlock).
   Savepoints: a snapshot taken inside a savepoint that is rolled back is dropped with it (the
   row lock went with the savepoint, so the row may have changed since).

2. **Derived rows** that depend on *other* rows: the data-quality flags (a duplicate needs a
   second person, an empty household needs its members, a child's fault needs the mother), the
   inflow women (the movement plus the woman's birth date) and the benefit beneficiaries (a
   person paid in a year, counted once however many payments, and whether also paid the year
   before and after: the new / continuing / exited counts). Deltas cannot keep those exact
   under concurrency (two transactions each see the other's old rows), so they are *recomputed
   from the source* for the keys the transaction touched, old keys and new, under a
   transaction-scoped advisory lock per key (duplicate group, household, mother, migrant
   person, programme and beneficiary), taken in sorted order before anything is read; READ
   COMMITTED gives every statement after the lock the data committed by the previous holder.
   Recomputing is idempotent, so touching more keys than needed is harmless. The recompute
   reuses the live fault queries of ``data_quality`` restricted to the touched ids, so flags
   and the live list cannot drift apart. The beneficiaries' tallies change by the difference
   between the derived rows before and after, read under that lock.

3. **The data version** (``data_version``): every committing transaction that wrote an audited
   row bumps a counter of each county it wrote in (``""`` when the row has no county). The
   figures' ETag is built from it: unlike the latest audit timestamp, a counter bumped under
   its row lock at commit cannot be overtaken by a transaction that wrote earlier and commits
   later. Eight shards per county keep concurrent writers from queueing on one row.

Everything runs in ``before_commit`` of the outermost transaction, after a final flush. On
SQLite writers are serialized by ``BEGIN IMMEDIATE``, so the locks are PostgreSQL only.

Writes that bypass the ORM (``seed-scale``'s Core inserts, hand-written SQL) are not seen:
``rebuild`` recomputes a county's state from scratch (seed-scale calls it at its end, the
migration that created these tables ran it once).
"""

from __future__ import annotations

import random
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Connection,
    Integer,
    and_,
    bindparam,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, SessionTransaction

from app.core import clock
from app.models.claims import Claim, Payment
from app.models.households import Birth, Death, Household, Person
from app.models.indicators import (
    DataQualityFlag,
    DataVersion,
    IndicatorBeneficiary,
    IndicatorInflowWoman,
    IndicatorTally,
)
from app.models.migrants import HIDDEN_PERSON, Migrant
from app.models.visits import Visit
from app.services.audit import NOT_AUDITED

PERSON: Any = Person.__table__  # type: ignore[attr-defined]
HOUSEHOLD: Any = Household.__table__  # type: ignore[attr-defined]
VISIT: Any = Visit.__table__  # type: ignore[attr-defined]
MIGRANT: Any = Migrant.__table__  # type: ignore[attr-defined]
TALLY: Any = IndicatorTally.__table__  # type: ignore[attr-defined]
FLAG: Any = DataQualityFlag.__table__  # type: ignore[attr-defined]
INFLOW_WOMAN: Any = IndicatorInflowWoman.__table__  # type: ignore[attr-defined]
VERSION: Any = DataVersion.__table__  # type: ignore[attr-defined]
BENEFICIARY: Any = IndicatorBeneficiary.__table__  # type: ignore[attr-defined]
BIRTH: Any = Birth.__table__  # type: ignore[attr-defined]
DEATH: Any = Death.__table__  # type: ignore[attr-defined]
PAYMENT: Any = Payment.__table__  # type: ignore[attr-defined]
CLAIM: Any = Claim.__table__  # type: ignore[attr-defined]

# Migrant records that count in no figure: an inflow waiting for the person's release, or
# refused by her place. A confirmed request (``open``) counts from its ``moved_on`` on.
UNCOUNTED_MIGRANTS = tuple(s.value for s in HIDDEN_PERSON)
PLACE = ("county_code", "township_code", "village_code")
# The columns whose values the tallies and derived rows depend on, per tracked table.
TRACKED: dict[str, tuple[str, ...]] = {
    "person": (
        *PLACE,
        "household_id",
        "name",
        "sex",
        "birth_date",
        "marital_status",
        "id_number_hash",
        "mother_id",
        "current_village_code",
        "death_date",
        "merged_into_id",
    ),
    "household": (*PLACE, "head_person_id"),
    "visit": (*PLACE, "visited_at"),
    "migrant": (*PLACE, "person_id", "direction", "status", "moved_on", "closed_on"),
    "birth": (*PLACE, "birth_date", "birth_order", "sex"),
    "death": (*PLACE, "death_date"),
    "payment": (*PLACE, "claim_id", "paid_on", "amount_fen"),
    "claim": ("programme", "person_id"),
}
TABLES: dict[str, Any] = {
    "person": PERSON,
    "household": HOUSEHOLD,
    "visit": VISIT,
    "migrant": MIGRANT,
    "birth": BIRTH,
    "death": DEATH,
    "payment": PAYMENT,
    "claim": CLAIM,
}
# The data-quality kinds kept as flags; the other two depend on today's date and stay live.
FLAGGED_KINDS = (
    "likely_duplicate",
    "child_born_before_mother_15",
    "household_without_head",
    "household_no_living_member",
    "village_mismatch",
)
VERSION_SHARDS = 8
LOCK_NAMESPACE = 0x6A68  # first key of the two-key advisory locks ("jh")
CHUNK = 500
_INFO_KEY = "_indicator_upkeep"

Row = dict[str, Any]


# --- what a row contributes to the tallies ------------------------------------------------------


def month_of(d: date) -> int:
    return d.year * 100 + d.month


def local_month(ts: datetime) -> int:
    """The business month (``app.core.clock``) of a stored UTC timestamp (naive: UTC)."""
    return clock.local_month(ts)


def contributions(table: str, row: Row | None) -> list[tuple[str, int, int]]:
    """(metric, bucket, amount) a row adds (at its village and its township): 1 for counts."""
    if row is None:
        return []
    if table == "person":
        if row["merged_into_id"] is not None or row["death_date"] is not None:
            return []
        out = [("alive", 0, 1), ("alive", row["birth_date"].year, 1)]
        if row["sex"] == "female" and row["marital_status"] == "married":
            out.append(("alive_fm", row["birth_date"].year, 1))
        return out
    if table == "household":
        return [("households", 0, 1)]
    if table == "visit":
        return [("visits", local_month(row["visited_at"]), 1)]
    if table == "migrant":
        if row["status"] in UNCOUNTED_MIGRANTS:
            return []  # a request waiting for release, or refused: no movement (yet)
        d = "in" if row["direction"] == "inflow" else "out"
        out = [(f"{d}_entry", 0, 1), (f"{d}_entry", month_of(row["moved_on"]), 1)]
        if row["closed_on"] is not None:
            gone = max(row["moved_on"], row["closed_on"])
            out += [(f"{d}_exit", 0, 1), (f"{d}_exit", month_of(gone), 1)]
        return out
    if table == "birth":
        month, order = month_of(row["birth_date"]), row["birth_order"]
        out = [("births", month, 1)]
        if order in (1, 2) or order >= 3:
            out.append((BIRTH_ORDER_METRICS[min(order, 3)], month, 1))
        if row["sex"] in ("male", "female"):
            out.append(("births_" + row["sex"], month, 1))
        return out
    if table == "death":
        return [("deaths", month_of(row["death_date"]), 1)]
    if table == "payment":
        return [("paid_fen", month_of(row["paid_on"]), int(row["amount_fen"]))]
    return []


BIRTH_ORDER_METRICS = {1: "births_first", 2: "births_second", 3: "births_third"}
TallyKey = tuple[str, str, int, str]  # metric, area_code, bucket, parent_code


def add_contributions(deltas: dict[TallyKey, int], table: str, row: Row | None, sign: int) -> None:
    if row is None or table == "claim":
        return
    village, township, county = row["village_code"], row["township_code"], row["county_code"]
    for metric, bucket, amount in contributions(table, row):
        deltas[(metric, village, bucket, township)] += sign * amount
        deltas[(metric, township, bucket, county)] += sign * amount


# --- per-transaction state ------------------------------------------------------------------------


@dataclass
class _Snapshot:
    before: Row | None
    taken_in: SessionTransaction | None


@dataclass
class _State:
    snaps: dict[tuple[str, uuid.UUID], _Snapshot] = field(default_factory=dict)
    counties: set[str] = field(default_factory=set)


def _state(session: Session) -> _State:
    st = session.info.get(_INFO_KEY)
    if st is None:
        st = session.info[_INFO_KEY] = _State()
    return st


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _chunks(items: list[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _read_rows(conn: Connection, table: str, ids: Iterable[uuid.UUID], *, lock: bool) -> dict[uuid.UUID, Row]:
    t = TABLES[table]
    cols = [t.c.id, *(t.c[c] for c in TRACKED[table])]
    out: dict[uuid.UUID, Row] = {}
    for part in _chunks(sorted(set(ids))):
        stmt = select(*cols).where(t.c.id.in_(part))
        if lock and _is_pg(conn):
            # FOR NO KEY UPDATE: the lock the UPDATE itself takes, which (unlike FOR UPDATE)
            # does not wait for transactions inserting rows that reference this one.
            stmt = stmt.with_for_update(key_share=True)
        for r in conn.execute(stmt).mappings():
            out[r["id"]] = dict(r)
    return out


def _relevant_change(obj: Any, columns: tuple[str, ...]) -> bool:
    attrs = inspect(obj).attrs
    return any(attrs[c].history.has_changes() for c in columns if c in attrs)


def _county_of(obj: Any) -> str:
    county = getattr(obj, "county_code", None)
    if county:
        return str(county)
    code = getattr(obj, "code", None)
    return str(code)[:6] if isinstance(code, str) else ""


def wrote_in(session: Any, county_code: str) -> None:
    """A write the ORM did not see (a Core INSERT of an audited row) in this county: its data
    version is bumped at commit like for the ORM's writes. (Untracked tables only: tallied rows
    must go through the ORM.)"""
    target = getattr(session, "sync_session", session)
    _state(target).counties.add(county_code)


@event.listens_for(Session, "before_flush")
def _snapshot_before_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    st = _state(session)
    tag = session.get_nested_transaction() or session.get_transaction()
    to_read: dict[str, list[uuid.UUID]] = defaultdict(list)
    for obj in session.new:
        table = getattr(obj, "__tablename__", "")
        if table not in NOT_AUDITED:
            st.counties.add(_county_of(obj))
        if table in TRACKED and (table, obj.id) not in st.snaps:
            st.snaps[(table, obj.id)] = _Snapshot(None, tag)
    for obj in session.dirty:
        table = getattr(obj, "__tablename__", "")
        if not session.is_modified(obj, include_collections=False):
            continue
        if table not in NOT_AUDITED:
            st.counties.add(_county_of(obj))
        if table in TRACKED and (table, obj.id) not in st.snaps and _relevant_change(obj, TRACKED[table]):
            to_read[table].append(obj.id)
    for obj in session.deleted:
        table = getattr(obj, "__tablename__", "")
        if table not in NOT_AUDITED:
            st.counties.add(_county_of(obj))
        if table in TRACKED and (table, obj.id) not in st.snaps:
            to_read[table].append(obj.id)
    if not to_read:
        return
    conn = session.connection()
    for table, ids in to_read.items():
        # The row as committed before this transaction touched it; the row lock waits for a
        # concurrent writer of the same row and then returns its committed version.
        rows = _read_rows(conn, table, ids, lock=True)
        for ident in ids:
            st.snaps[(table, ident)] = _Snapshot(rows.get(ident), tag)


def _within(tag: SessionTransaction | None, txn: SessionTransaction) -> bool:
    while tag is not None:
        if tag is txn:
            return True
        tag = tag.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous: SessionTransaction) -> None:
    st = session.info.get(_INFO_KEY)
    if st is None:
        return
    if previous.parent is None:
        session.info.pop(_INFO_KEY, None)
        return
    for key in [k for k, s in st.snaps.items() if _within(s.taken_in, previous)]:
        del st.snaps[key]


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # committed (already applied), rolled back or closed
        session.info.pop(_INFO_KEY, None)
        session.info.pop(_REBUILD_KEY, None)


_REBUILD_KEY = "_indicator_upkeep_rebuild"


def rebuild_at_commit(session: Session, county_code: str) -> None:
    """Have this transaction's commit ``rebuild`` the county's state instead of applying
    per-row deltas: for a bulk write (an import of tens of thousands of people) the per-key
    advisory locks of the deltas would exceed PostgreSQL's lock table, and one set-based
    recompute is faster. Like ``seed-scale``, meant for the big first load of a county."""
    session.info.setdefault(_REBUILD_KEY, set()).add(county_code)


@event.listens_for(Session, "before_commit")
def _apply_before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint is released; the outermost commit applies everything
    if session.new or session.dirty or session.deleted:
        session.flush()
    counties = session.info.pop(_REBUILD_KEY, None)
    if counties:
        session.info.pop(_INFO_KEY, None)
        if _is_pg(session.connection()):
            # the planner's statistics predate the bulk write (a first load: empty tables);
            # ANALYZE sees this transaction's rows, and the rebuild's joins need them
            session.connection().execute(text("ANALYZE person, household"))
        for county in sorted(counties):
            rebuild(session.connection(), county)
        return
    st = session.info.pop(_INFO_KEY, None)
    if st is None or (not st.snaps and not st.counties):
        return
    apply_changes(session.connection(), st)


# --- applying a transaction's changes -------------------------------------------------------------


def _lock_keys(conn: Connection, keys: set[str]) -> None:
    """Transaction-scoped advisory locks, in one sorted order (PostgreSQL only)."""
    if not keys or not _is_pg(conn):
        return
    ints = sorted({_lock_int(k) for k in keys})
    stmt = text(
        "SELECT count(pg_advisory_xact_lock(:ns, k)) "
        "FROM (SELECT k FROM unnest(CAST(:keys AS integer[])) AS t(k) ORDER BY k) AS s"
    ).bindparams(bindparam("keys", type_=ARRAY(Integer)))
    conn.execute(stmt, {"ns": LOCK_NAMESPACE, "keys": ints})


def _lock_int(key: str) -> int:
    h = zlib.crc32(key.encode())
    return h - (1 << 32) if h >= 1 << 31 else h


def apply_changes(conn: Connection, st: _State) -> None:
    by_table: dict[str, list[uuid.UUID]] = defaultdict(list)
    for table, ident in st.snaps:
        by_table[table].append(ident)
    after: dict[tuple[str, uuid.UUID], Row | None] = {}
    for table, ids in by_table.items():
        rows = _read_rows(conn, table, ids, lock=False)
        for ident in ids:
            after[(table, ident)] = rows.get(ident)

    deltas: dict[TallyKey, int] = defaultdict(int)
    persons: set[uuid.UUID] = set()
    households: set[uuid.UUID] = set()
    dup_groups: set[tuple[str, str, date]] = set()
    mothers: set[uuid.UUID] = set()
    hh_members: set[uuid.UUID] = set()
    migrant_persons: set[uuid.UUID] = set()
    paid_claims: set[uuid.UUID] = set()
    beneficiaries: set[tuple[str, uuid.UUID]] = set()
    for (table, ident), snap in st.snaps.items():
        new = after[(table, ident)]
        add_contributions(deltas, table, snap.before, -1)
        add_contributions(deltas, table, new, +1)
        states = [s for s in (snap.before, new) if s is not None]
        if table == "person":
            persons.add(ident)
            mothers.add(ident)
            if snap.before is not None and (
                new is None or any(snap.before[c] != new[c] for c in ("sex", "birth_date"))
            ):
                migrant_persons.add(ident)  # her inflow records carry her sex and birth date
            for s in states:
                dup_groups.add((s["county_code"], s["name"], s["birth_date"]))
                hh_members.add(s["household_id"])
                if s["mother_id"] is not None:
                    mothers.add(s["mother_id"])
        elif table == "household":
            households.add(ident)
            hh_members.add(ident)
        elif table == "migrant":
            migrant_persons.update(s["person_id"] for s in states)
        elif table == "payment":
            paid_claims.update(s["claim_id"] for s in states)
        elif table == "claim":
            beneficiaries.update((s["programme"], s["person_id"]) for s in states)
    beneficiaries |= _claim_persons(conn, paid_claims)

    _lock_keys(
        conn,
        {f"dup:{c}:{n}:{b.isoformat()}" for c, n, b in dup_groups}
        | {f"mom:{m}" for m in mothers}
        | {f"hh:{h}" for h in hh_members}
        | {f"mig:{p}" for p in migrant_persons}
        | {f"ben:{prog}:{p}" for prog, p in beneficiaries},
    )
    if persons or households:
        dup_members, children = _related(conn, dup_groups, mothers)
        dup_members |= persons
        children |= persons
        recompute_flags(
            conn,
            {
                "likely_duplicate": dup_members,
                "child_born_before_mother_15": children,
                "village_mismatch": persons,
                "household_without_head": households,
                "household_no_living_member": hh_members,
            },
        )
    if migrant_persons:
        recompute_inflow_women(conn, migrant_persons)
    for programme, person_id in sorted(beneficiaries):
        recompute_beneficiary(conn, programme, person_id, deltas)
    apply_tally_deltas(conn, deltas)
    bump_versions(conn, st.counties)


def _claim_persons(conn: Connection, claim_ids: set[uuid.UUID]) -> set[tuple[str, uuid.UUID]]:
    """(programme, person) of the claims whose payments changed. FOR SHARE: a concurrent change
    of a claim's person (a merge) commits first, so the key read is the one that will hold."""
    out: set[tuple[str, uuid.UUID]] = set()
    for part in _chunks(sorted(claim_ids)):
        stmt = select(CLAIM.c.programme, CLAIM.c.person_id).where(CLAIM.c.id.in_(part))
        if _is_pg(conn):
            stmt = stmt.with_for_update(read=True)
        out.update((r[0], r[1]) for r in conn.execute(stmt))
    return out


# --- benefit beneficiaries ------------------------------------------------------------------------

BeneficiaryKey = tuple[int, str, str]  # year, level, area_code


def beneficiary_rows(payments: Iterable[Any]) -> dict[BeneficiaryKey, Row]:
    """The ``indicator_beneficiary`` rows of one programme and person, from all their payments
    (``paid_on``, ``amount_fen`` and the payment's place)."""
    rows: dict[BeneficiaryKey, Row] = {}
    years: dict[tuple[str, str], set[int]] = defaultdict(set)  # (level, request area) -> years
    for p in payments:
        year, fen = p["paid_on"].year, int(p["amount_fen"])
        county, township, village = p["county_code"], p["township_code"], p["village_code"]
        for level, area, parent, scope in (
            ("c", township, county, county),
            ("t", village, township, township),
            ("v", village, township, village),
        ):
            row = rows.setdefault(
                (year, level, area), {"parent_code": parent, "amount_fen": 0, "scope": scope}
            )
            row["amount_fen"] += fen
            years[(level, scope)].add(year)
    for (year, level, _area), row in rows.items():
        paid_in = years[(level, row.pop("scope"))]
        row["continuing"] = year - 1 in paid_in
        row["stays"] = year + 1 in paid_in
    return rows


def add_beneficiary(
    deltas: dict[TallyKey, int], programme: str, key: BeneficiaryKey, row: Row, sign: int
) -> None:
    """A beneficiary row's counts: ``bt`` paid persons and ``ba`` amount (levels c and t; a
    village on its own reads its level-t row), ``bc`` continuing, ``bx`` exited (a year later)."""
    year, level, area = key
    parent = row["parent_code"]
    if level != "v":
        deltas[(f"bt{level}:{programme}", area, year, parent)] += sign
        deltas[(f"ba{level}:{programme}", area, year, parent)] += sign * int(row["amount_fen"])
    if row["continuing"]:
        deltas[(f"bc{level}:{programme}", area, year, parent)] += sign
    if not row["stays"]:
        deltas[(f"bx{level}:{programme}", area, year + 1, parent)] += sign


def _payments_where(where: Any) -> Any:
    p = PAYMENT.c
    return (
        select(
            CLAIM.c.programme,
            CLAIM.c.person_id,
            p.paid_on,
            p.amount_fen,
            p.county_code,
            p.township_code,
            p.village_code,
        )
        .select_from(PAYMENT.join(CLAIM, CLAIM.c.id == p.claim_id))
        .where(where)
    )


def recompute_beneficiary(
    conn: Connection, programme: str, person_id: uuid.UUID, deltas: dict[TallyKey, int]
) -> None:
    b = BENEFICIARY.c
    mine = and_(b.programme == programme, b.person_id == person_id)
    for r in conn.execute(select(BENEFICIARY).where(mine)).mappings():
        add_beneficiary(deltas, programme, (r["year"], r["level"], r["area_code"]), dict(r), -1)
    conn.execute(delete(BENEFICIARY).where(mine))
    paid = _payments_where(and_(CLAIM.c.programme == programme, CLAIM.c.person_id == person_id))
    rows = beneficiary_rows(conn.execute(paid).mappings())
    for key, row in rows.items():
        add_beneficiary(deltas, programme, key, row, +1)
    if rows:
        conn.execute(
            insert(BENEFICIARY),
            [
                {
                    "programme": programme,
                    "person_id": person_id,
                    "year": y,
                    "level": lv,
                    "area_code": a,
                    **row,
                }
                for (y, lv, a), row in rows.items()
            ],
        )


def _related(
    conn: Connection, groups: set[tuple[str, str, date]], mothers: set[uuid.UUID]
) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """(members of these duplicate groups, children of these mothers), in one round trip."""
    members: set[uuid.UUID] = set()
    children: set[uuid.UUID] = set()
    group_parts, mother_parts = list(_chunks(sorted(groups))), list(_chunks(sorted(mothers)))
    for i in range(max(len(group_parts), len(mother_parts))):
        selects = []
        if i < len(group_parts):
            same = or_(
                *(
                    and_(PERSON.c.county_code == c, PERSON.c.name == n, PERSON.c.birth_date == b)
                    for c, n, b in group_parts[i]
                )
            )
            selects.append(select(literal("g"), PERSON.c.id).where(same))
        if i < len(mother_parts):
            selects.append(select(literal("c"), PERSON.c.id).where(PERSON.c.mother_id.in_(mother_parts[i])))
        for what, ident in conn.execute(union_all(*selects)):
            (members if what == "g" else children).add(ident)
    return members, children


def recompute_flags(conn: Connection, entities: dict[str, set[uuid.UUID]]) -> None:
    """Delete and re-derive the flags of these kinds for these records, with the live queries
    of ``data_quality`` narrowed to the records: one DELETE and one INSERT ... SELECT for all
    kinds (per 500 records of each), built once per dialect (only the id lists vary)."""
    delete_stmt, insert_stmt = _flag_statements(conn.dialect.name)
    parts = {kind: list(_chunks(sorted(entities.get(kind, ())))) for kind in FLAGGED_KINDS}
    for i in range(max((len(p) for p in parts.values()), default=0)):
        ids = {f"ids_{n}": p[i] if i < len(p) else [] for n, p in enumerate(parts.values())}
        conn.execute(delete_stmt, ids)
        conn.execute(insert_stmt, ids)


_FLAG_STATEMENTS: dict[str, tuple[Any, Any]] = {}


def _flag_statements(dialect: str) -> tuple[Any, Any]:
    if dialect not in _FLAG_STATEMENTS:
        from app.services.data_quality import fault_queries

        deletes: list[Any] = []
        selects: list[Any] = []
        for n, kind in enumerate(FLAGGED_KINDS):
            listed: Any = bindparam(f"ids_{n}", expanding=True)
            deletes.append(and_(FLAG.c.kind == kind, FLAG.c.entity_id.in_(listed)))

            def narrow(stmt: Any, model: Any, listed: Any = listed) -> Any:
                return stmt.where(model.id.in_(listed))

            stmt = next(s for k, _e, s, _d in fault_queries(narrow, dialect, clock.today()) if k == kind)
            selects.append(_flag_rows(kind, stmt))
        _FLAG_STATEMENTS[dialect] = (
            delete(FLAG).where(or_(*deletes)),
            insert(FLAG).from_select(FLAG_COLUMNS, union_all(*selects)),
        )
    return _FLAG_STATEMENTS[dialect]


FLAG_COLUMNS = ["kind", "entity_id", "county_code", "township_code", "village_code"]


def _flag_rows(kind: str, stmt: Any) -> Any:
    sub = stmt.subquery()
    return select(literal(kind), sub.c.id, func.substr(sub.c.t, 1, 6), sub.c.t, sub.c.v).distinct()


def _inflow_women_rows(where: Any) -> Any:
    return (
        select(
            MIGRANT.c.id,
            MIGRANT.c.person_id,
            MIGRANT.c.county_code,
            MIGRANT.c.township_code,
            MIGRANT.c.village_code,
            MIGRANT.c.moved_on,
            MIGRANT.c.closed_on,
            PERSON.c.birth_date,
        )
        .select_from(MIGRANT.join(PERSON, PERSON.c.id == MIGRANT.c.person_id))
        .where(
            MIGRANT.c.direction == "inflow",
            MIGRANT.c.status.not_in(UNCOUNTED_MIGRANTS),
            PERSON.c.sex == "female",
            where,
        )
    )


INFLOW_WOMAN_COLUMNS = [
    "migrant_id",
    "person_id",
    "county_code",
    "township_code",
    "village_code",
    "moved_on",
    "closed_on",
    "birth_date",
]


def recompute_inflow_women(conn: Connection, person_ids: set[uuid.UUID]) -> None:
    for part in _chunks(sorted(person_ids)):
        conn.execute(delete(INFLOW_WOMAN).where(INFLOW_WOMAN.c.person_id.in_(part)))
        conn.execute(
            insert(INFLOW_WOMAN).from_select(
                INFLOW_WOMAN_COLUMNS, _inflow_women_rows(MIGRANT.c.person_id.in_(part))
            )
        )


def _upsert(
    conn: Connection, table: Any, rows: list[Row], index: list[str], set_: Callable[[Any], dict[str, Any]]
) -> None:
    ins: Any = pg_insert(table) if _is_pg(conn) else sqlite_insert(table)
    for part in _chunks(rows):
        stmt = ins.values(part)
        conn.execute(stmt.on_conflict_do_update(index_elements=index, set_=set_(stmt.excluded)))


def apply_tally_deltas(conn: Connection, deltas: dict[TallyKey, int]) -> None:
    rows = [
        {"metric": m, "area_code": a, "bucket": b, "parent_code": p, "n": n}
        for (m, a, b, p), n in sorted(deltas.items())
        if n
    ]
    if rows:
        _upsert(
            conn,
            TALLY,
            rows,
            ["metric", "area_code", "bucket"],
            lambda excluded: {"n": TALLY.c.n + excluded.n},
        )


def bump_versions(conn: Connection, counties: set[str]) -> None:
    if not counties:
        return
    shard = random.randrange(VERSION_SHARDS)  # noqa: S311  (spreading writers, not a secret)
    rows = [{"county_code": c, "shard": shard, "n": 1} for c in sorted(counties)]
    _upsert(
        conn,
        VERSION,
        rows,
        ["county_code", "shard"],
        lambda excluded: {"n": VERSION.c.n + excluded.n},
    )


# --- rebuilding from scratch ----------------------------------------------------------------------


def _year(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return func.cast(func.extract("year", column), Integer)
    return func.cast(func.strftime("%Y", column), Integer)


def _month(column: Any, dialect: str, *, timestamp: bool = False) -> Any:
    if timestamp:  # the business month, whatever the session's or host's time zone
        return clock.sql_local_month_number(column, dialect)
    if dialect == "postgresql":
        return func.cast(func.extract("year", column) * 100 + func.extract("month", column), Integer)
    return func.cast(func.strftime("%Y%m", column), Integer)


def _tally_sources(dialect: str) -> list[tuple[str, Any, Any, Any, Any]]:
    """(metric, table, bucket expression, condition, value) of every additive village-level
    tally: the set-based twin of ``contributions``."""
    p, m, b = PERSON.c, MIGRANT.c, BIRTH.c
    living = and_(p.merged_into_id.is_(None), p.death_date.is_(None))
    fm = and_(living, p.sex == "female", p.marital_status == "married")
    ended = func.max if dialect == "sqlite" else func.greatest
    gone = ended(m.moved_on, m.closed_on)
    count = func.count()
    birth_month = _month(b.birth_date, dialect)
    out: list[tuple[str, Any, Any, Any, Any]] = [
        ("alive", PERSON, literal(0), living, count),
        ("alive", PERSON, _year(p.birth_date, dialect), living, count),
        ("alive_fm", PERSON, _year(p.birth_date, dialect), fm, count),
        ("households", HOUSEHOLD, literal(0), literal(True), count),
        ("visits", VISIT, _month(VISIT.c.visited_at, dialect, timestamp=True), literal(True), count),
        ("births", BIRTH, birth_month, literal(True), count),
        ("births_first", BIRTH, birth_month, b.birth_order == 1, count),
        ("births_second", BIRTH, birth_month, b.birth_order == 2, count),
        ("births_third", BIRTH, birth_month, b.birth_order >= 3, count),
        ("births_male", BIRTH, birth_month, b.sex == "male", count),
        ("births_female", BIRTH, birth_month, b.sex == "female", count),
        ("deaths", DEATH, _month(DEATH.c.death_date, dialect), literal(True), count),
        (
            "paid_fen",
            PAYMENT,
            _month(PAYMENT.c.paid_on, dialect),
            literal(True),
            func.sum(PAYMENT.c.amount_fen),
        ),
    ]
    for d, direction in (("in", "inflow"), ("out", "outflow")):
        is_d = and_(m.direction == direction, m.status.not_in(UNCOUNTED_MIGRANTS))
        out += [
            (f"{d}_entry", MIGRANT, literal(0), is_d, count),
            (f"{d}_entry", MIGRANT, _month(m.moved_on, dialect), is_d, count),
            (f"{d}_exit", MIGRANT, literal(0), and_(is_d, m.closed_on.is_not(None)), count),
            (f"{d}_exit", MIGRANT, _month(gone, dialect), and_(is_d, m.closed_on.is_not(None)), count),
        ]
    return out


def rebuild(conn: Connection, county_code: str | None = None) -> None:
    """Recompute tallies, flags and inflow women of one county (all counties when None) from
    the source tables, set-based, and bump the county's data version. For writes made around
    the ORM (seeding, migrations); runs in the caller's transaction."""
    from app.services.data_quality import fault_queries

    dialect = conn.dialect.name

    def where_county(t: Any) -> Any:
        return t.c.county_code == county_code if county_code else literal(True)

    area = TALLY.c.area_code
    conn.execute(delete(TALLY).where(area.like(f"{county_code}%") if county_code else literal(True)))
    for metric, table, bucket, cond, value in _tally_sources(dialect):
        b = bucket.label("bucket")
        stmt = (
            select(literal(metric), table.c.village_code, b, table.c.township_code, value)
            .where(cond, where_county(table))
            .group_by(table.c.village_code, table.c.township_code, b)
        )
        conn.execute(insert(TALLY).from_select(["metric", "area_code", "bucket", "parent_code", "n"], stmt))
    villages = select(
        TALLY.c.metric,
        func.substr(area, 1, 9).label("t"),
        TALLY.c.bucket,
        func.substr(area, 1, 6).label("c"),
        func.sum(TALLY.c.n),
    ).where(func.length(area) == 12)
    if county_code:
        villages = villages.where(area.like(f"{county_code}%"))
    villages = villages.group_by(TALLY.c.metric, "t", TALLY.c.bucket, "c")
    conn.execute(insert(TALLY).from_select(["metric", "area_code", "bucket", "parent_code", "n"], villages))

    # Beneficiaries are per person, not sums of villages: derived and tallied per level.
    conn.execute(delete(BENEFICIARY).where(BENEFICIARY.c.area_code.like(f"{county_code or ''}%")))
    payments: dict[tuple[str, uuid.UUID], list[Row]] = defaultdict(list)
    for r in conn.execute(_payments_where(where_county(PAYMENT))).mappings():
        payments[(r["programme"], r["person_id"])].append(dict(r))
    deltas: dict[TallyKey, int] = defaultdict(int)
    new_rows = []
    for (programme, person_id), paid in payments.items():
        for (y, lv, a), row in beneficiary_rows(paid).items():
            add_beneficiary(deltas, programme, (y, lv, a), row, +1)
            new_rows.append(
                {
                    "programme": programme,
                    "person_id": person_id,
                    "year": y,
                    "level": lv,
                    "area_code": a,
                    **row,
                }
            )
    for part in _chunks(new_rows, 5000):
        conn.execute(insert(BENEFICIARY), part)
    apply_tally_deltas(conn, deltas)

    conn.execute(delete(FLAG).where(where_county(FLAG)))

    def narrow(stmt: Any, model: Any) -> Any:
        return stmt.where(model.county_code == county_code) if county_code else stmt

    for kind, _entity, stmt, _detail in fault_queries(narrow, dialect, clock.today()):
        if kind in FLAGGED_KINDS:
            conn.execute(insert(FLAG).from_select(FLAG_COLUMNS, _flag_rows(kind, stmt)))

    conn.execute(delete(INFLOW_WOMAN).where(where_county(INFLOW_WOMAN)))
    conn.execute(
        insert(INFLOW_WOMAN).from_select(INFLOW_WOMAN_COLUMNS, _inflow_women_rows(where_county(MIGRANT)))
    )
    bump_versions(conn, {county_code or "", ""})

"""Benefit claims: programmes and rule versions, checks, claims, the workflow, payee changes,
renewals and the bank file.

Rules enforced here (domain brief, "Benefit claims"; contract, "Benefit claims"):
- eligibility is the pure ``claim_rules.evaluate`` over register facts read here; the version it
  used is stamped on the claim, and a claim is evaluated again only while the village can still
  change it (create, correction, submit) — approved claims keep their version and amount;
- one claim per person, programme and year: a unique constraint decides, also under races;
- every status change goes through ``claim_rules.TRANSITIONS`` (one table): the caller's role,
  scope (404 outside) and separation of duties (the submitter — or whoever changed the payee —
  neither reviews nor approves; the reviewer does not approve; the approver does not pay) are
  checked on every step, and the step is written to ``claim_history`` (insert-only);
- rule versions are national (shipped with the migrations) or a county's own (added by its
  admin); a claim is evaluated with those of its county only, the most specific in force on the
  date deciding (``claim_rules.version_on``);
- payees are the beneficiary's own account (the applicant parent's for the childcare subsidy);
  account numbers are stored encrypted; changing the payee after submission sends the claim back
  to the township's review; a payment snapshots the account;
- ``pay`` only after the posting period and only the approved amount.

Eligibility reads the beneficiary's family (children, spouse) across scope: a child who moved to
another village still counts. Only derived facts (counts, dates) appear in the reasons.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from sqlalchemy import event, func, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from app.authz.actor import Actor, scope_prefix
from app.authz.policies import ADMIN_ROLES, COUNTY_ROLES, FIELD_ROLES, require_role
from app.authz.scope import area_clause, ensure_area_in_scope, ensure_can_place, scope_clause, scoped
from app.core.csvout import csv_text
from app.core.db import today, utcnow
from app.core.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidTransition,
    NotFound,
    OutOfScope,
    ValidationFailed,
)
from app.core.messages import MESSAGES, Ref, both, translate
from app.core.pagination import paginate
from app.core.security import FieldCipher
from app.models.areas import AreaLevel
from app.models.claims import (
    CheckRequest,
    CheckResult,
    Claim,
    ClaimCreate,
    ClaimDetail,
    ClaimFacts,
    ClaimHistory,
    ClaimItem,
    ClaimPublic,
    ClaimStatus,
    ClaimUpdate,
    Decision,
    HistoryPublic,
    Payee,
    PayeePublic,
    Payment,
    PaymentPublic,
    Programme,
    ProgrammeCode,
    ProgrammePublic,
    Reason,
    RenewalExit,
    RenewalResult,
    RuleVersion,
    RuleVersionCreate,
    RuleVersionPublic,
    RuleVersionRef,
)
from app.models.common import place_columns
from app.models.households import Household, Person
from app.models.users import Role
from app.models.visits import TaskKind
from app.services import audit
from app.services import claim_rules as rules
from app.services import households as hh
from app.services.areas import level_of
from app.services.records import check_version, existing_by_id, replay_or_conflict, touch
from app.services.summaries import load_people, with_people
from app.services.tasks import cancel_tasks_for, open_task

hh.register_person_ref(Claim, "person_id")
hh.register_person_ref(Claim, "applicant_id")

TASK_DAYS = 7
ACCOUNT_CONTEXT = b"bank_account"


@event.listens_for(ClaimHistory, "before_update")
@event.listens_for(ClaimHistory, "before_delete")
def _history_is_insert_only(*_args: Any) -> None:
    raise RuntimeError("claim_history is insert-only")


# --- programmes and rule versions -------------------------------------------------------------


def county_area(county_code: str) -> str:
    """A county's 12-digit area code, the ``area_code`` of its own rule versions."""
    return county_code[:6] + "000000"


async def _versions(session: AsyncSession, programme: str, county_code: str) -> list[RuleVersion]:
    """The candidates in one county: the national versions and the county's own, never another
    county's (``rules.version_on`` then picks the most specific in force on a date)."""
    stmt = (
        select(RuleVersion)
        .where(
            RuleVersion.programme_code == programme,
            or_(col(RuleVersion.area_code).is_(None), col(RuleVersion.area_code) == county_area(county_code)),
        )
        .order_by(col(RuleVersion.effective_from), col(RuleVersion.id))
    )
    return list((await session.execute(stmt)).scalars())


def _as_rule(v: RuleVersion) -> rules.Version:
    return rules.Version(id=v.id, effective_from=v.effective_from, params=v.params, area_code=v.area_code)


def version_public(v: RuleVersion) -> RuleVersionPublic:
    return RuleVersionPublic.model_validate(v, from_attributes=True)


def _programmes_area(actor: Actor, area_code: str | None) -> str:
    """The county whose rules ``GET /programmes`` shows: the caller's by default; an area in the
    caller's scope, or one containing it (a village cadre may name her township or county),
    shows its county's; any other area is 404 like every area filter outside scope."""
    if area_code is None:
        return actor.county_code
    prefix = scope_prefix(area_code)
    if not (prefix.startswith(actor.prefix) or actor.prefix.startswith(prefix)):
        raise NotFound("No such area in your scope")
    return area_code[:6]


async def list_programmes(
    session: AsyncSession, actor: Actor, area_code: str | None = None
) -> list[ProgrammePublic]:
    """Each programme with the versions in force in one county, oldest first: the national
    versions up to the county's first own version, then the county's own (each marked with its
    ``area_code``). Another county's versions are never shown."""
    require_role(actor, *FIELD_ROLES)
    county = _programmes_area(actor, area_code)
    programmes = (await session.execute(select(Programme).order_by(col(Programme.code)))).scalars().all()
    out = []
    for p in programmes:
        versions = rules.versions_in_force(await _versions(session, p.code, county))
        out.append(
            ProgrammePublic(
                code=ProgrammeCode(p.code),
                name=p.name,
                basis=p.basis,
                versions=[version_public(v) for v in versions],
            )
        )
    return out


def _rule_version_area(actor: Actor, data: RuleVersionCreate) -> str:
    """The county a new version applies in: ``area_code`` if given (a county code: a township,
    village, city or province code is 422), else the admin's own county. An admin writes only
    its own county's versions (another county → 403 ``out_of_scope``); national versions ship
    with the migrations, so an explicit ``null`` is 422 rather than silently the admin's county."""
    if "area_code" in data.model_fields_set and data.area_code is None:
        raise hh.invalid("area_code", "must be your county's code; national versions ship with the service")
    if data.area_code is None:
        return county_area(actor.county_code)
    if level_of(data.area_code) is not AreaLevel.county:
        raise hh.invalid("area_code", "must be a county's code (12 digits ending in 000000)")
    if data.area_code != county_area(actor.county_code):
        raise OutOfScope("You add rule versions only for your own county")
    return data.area_code


async def add_rule_version(
    session: AsyncSession, actor: Actor, code: str, data: RuleVersionCreate
) -> RuleVersion:
    """Admins add a version for their own county, effective from a date; it applies inside the
    county only and overrides the national versions there (``rules.version_on``). Parameters not
    given carry over from the version in force in the county the day before; the result is
    validated for the programme. Claims already approved keep the version they were stamped
    with."""
    require_role(actor, *ADMIN_ROLES)
    area = _rule_version_area(actor, data)
    programme = await session.get(Programme, code)
    if programme is None:
        raise NotFound("No programme with this code")
    versions = [_as_rule(v) for v in await _versions(session, code, area)]
    previous = rules.version_on(versions, data.effective_from - timedelta(days=1))
    merged = {**(dict(previous.params) if previous else {}), **data.params}
    params = rules.validate_params(ProgrammeCode(code), merged)
    version = RuleVersion(
        programme_code=code,
        area_code=area,
        effective_from=data.effective_from,
        params=params,
        note=data.note,
        created_by=actor.id,
    )
    try:
        async with session.begin_nested():
            session.add(version)
            await session.flush()
    except IntegrityError:
        raise Conflict(
            "The programme already has a version for this county effective from this date",
            code="rule_version_exists",
        ) from None
    return version


# --- register facts ---------------------------------------------------------------------------


def _member(p: Person) -> rules.Member:
    return rules.Member(
        id=p.id,
        sex=str(p.sex),
        birth_date=p.birth_date,
        death_date=p.death_date,
        household_id=p.household_id,
        mother_id=p.mother_id,
        father_id=p.father_id,
    )


SPOUSE_RELATIONS = ("配偶", "妻", "夫", "妻子", "丈夫", "spouse", "wife", "husband")


async def _spouse(session: AsyncSession, person: Person, children: list[Person]) -> Person | None:
    """The other parent of the person's children (the eldest first), else a married household
    member of the other sex recorded as the head's spouse."""
    for child in sorted(children, key=lambda c: c.birth_date):
        other = child.father_id if child.mother_id == person.id else child.mother_id
        if other is not None:
            found = await session.get(Person, other)
            if found is not None and found.merged_into_id is None:
                return found
    members = (
        (
            await session.execute(
                select(Person).where(
                    Person.household_id == person.household_id,
                    Person.id != person.id,
                    col(Person.merged_into_id).is_(None),
                    Person.sex != person.sex,
                )
            )
        )
        .scalars()
        .all()
    )
    household = await session.get(Household, person.household_id)
    head = household.head_person_id if household else None
    for m in members:
        if (person.id == head and m.relation_to_head in SPOUSE_RELATIONS) or (
            m.id == head and person.relation_to_head in SPOUSE_RELATIONS
        ):
            return m
    return None


async def _family(session: AsyncSession, person: Person, applicant: Person | None) -> rules.Family:
    household = await session.get(Household, person.household_id)
    children = list(
        (
            await session.execute(
                select(Person).where(
                    or_(col(Person.mother_id) == person.id, col(Person.father_id) == person.id),
                    col(Person.merged_into_id).is_(None),
                )
            )
        ).scalars()
    )
    spouse = await _spouse(session, person, children)
    return rules.Family(
        person=_member(person),
        household_type=str(household.household_type) if household else "rural",
        children=tuple(_member(c) for c in children),
        spouse=_member(spouse) if spouse else None,
        applicant=_member(applicant) if applicant else None,
    )


async def _person_in_scope(session: AsyncSession, actor: Actor, person_id: uuid.UUID, field: str) -> Person:
    person = (
        await session.execute(scoped(select(Person), actor).where(Person.id == person_id))
    ).scalar_one_or_none()
    if person is None or person.merged_into_id is not None:
        if field == "person_id":
            raise NotFound("No person with this id")
        raise hh.invalid(field, "no such person in your area")
    return person


async def _applicant(
    session: AsyncSession,
    actor: Actor,
    programme: ProgrammeCode,
    person: Person,
    applicant_id: uuid.UUID | None,
) -> Person | None:
    """The childcare subsidy is claimed by a parent for the child; the other programmes by the
    beneficiary (``applicant_id`` absent or the person)."""
    if programme != ProgrammeCode.childcare_subsidy:
        if applicant_id is not None and applicant_id != person.id:
            raise hh.invalid("applicant_id", "only the childcare subsidy is claimed by another person")
        return None
    if applicant_id is None:
        raise hh.invalid("applicant_id", "the childcare subsidy needs the parent applying")
    return await _person_in_scope(session, actor, applicant_id, "applicant_id")


async def _evaluate(
    session: AsyncSession,
    programme: ProgrammeCode,
    year: int,
    person: Person,
    applicant: Person | None,
    facts: ClaimFacts,
    *,
    county_code: str,
) -> rules.Evaluation:
    """Evaluate with the versions of the claim's county (the national ones and its own)."""
    versions = [_as_rule(v) for v in await _versions(session, programme.value, county_code)]
    family = await _family(session, person, applicant)
    return rules.evaluate(programme, year, family, facts, versions)


def _ref(version: rules.Version) -> RuleVersionRef:
    return RuleVersionRef(id=version.id, area_code=version.area_code, effective_from=version.effective_from)


async def check_claim(session: AsyncSession, actor: Actor, data: CheckRequest) -> CheckResult:
    """Evaluate without writing anything."""
    require_role(actor, *FIELD_ROLES)
    person = await _person_in_scope(session, actor, data.person_id, "person_id")
    applicant = await _applicant(session, actor, data.programme, person, data.applicant_id)
    ev = await _evaluate(
        session, data.programme, data.year, person, applicant, data.facts, county_code=person.county_code
    )
    return CheckResult(
        eligible=ev.eligible,
        amount=rules.yuan(ev.amount_fen),
        rule_version=_ref(ev.version),
        reasons=[Reason.model_validate(rules.localized(r)) for r in ev.reasons],
        months=ev.months,
        category=ev.category,
    )


# --- views ------------------------------------------------------------------------------------


def _payee_public(name: str | None, bank: str | None, masked: str | None) -> PayeePublic | None:
    if name is None or bank is None or masked is None:
        return None
    return PayeePublic(name=name, bank=bank, account_masked=masked)


async def claim_public(session: AsyncSession, c: Claim) -> ClaimPublic:
    version = await session.get(RuleVersion, c.rule_version_id)
    assert version is not None
    ref = RuleVersionRef(id=version.id, area_code=version.area_code, effective_from=version.effective_from)
    return claim_view(c, ref)


def claim_view(c: Claim, rule_version: RuleVersionRef) -> ClaimPublic:
    """The claim as the API shows it, its rule version already read (``claim_public``; the sync
    pull reads a page's versions at once)."""
    ev = c.evaluation or {}
    return ClaimPublic(
        id=c.id,
        programme=ProgrammeCode(c.programme),
        person_id=c.person_id,
        applicant_id=c.applicant_id,
        year=c.year,
        status=ClaimStatus(c.status),
        village_code=c.village_code,
        facts=ClaimFacts.model_validate(c.facts),
        eligible=c.eligible,
        amount=rules.yuan(c.amount_fen),
        approved_amount=rules.yuan(c.approved_amount_fen) if c.approved_amount_fen is not None else None,
        rule_version=rule_version,
        reasons=[Reason.model_validate(rules.localized(r)) for r in ev.get("reasons", [])],
        months=list(ev.get("months", [])),
        category=ev.get("category"),
        payee=_payee_public(c.payee_name, c.payee_bank, c.payee_account_masked),
        submitted_by=c.submitted_by,
        submitted_at=c.submitted_at,
        reviewed_by=c.reviewed_by,
        approved_by=c.approved_by,
        posted_on=c.posted_on,
        notice_until=c.notice_until,
        renewed_from_id=c.renewed_from_id,
        version=c.version,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


async def claim_items(session: AsyncSession, claims: list[Claim]) -> list[ClaimItem]:
    """A page of claims with each beneficiary and her household: the page's rule versions and
    people are read by one query each (``claim_public`` then finds the versions loaded)."""
    ids = {c.rule_version_id for c in claims}
    # held while the views are built: the identity map keeps loaded objects only by weak reference
    versions = (
        (await session.execute(select(RuleVersion).where(col(RuleVersion.id).in_(ids)))).scalars().all()
        if ids
        else []
    )
    people = await load_people(session, person_ids=(c.person_id for c in claims))
    items = [with_people(ClaimItem, await claim_public(session, c), people.of(c.person_id)) for c in claims]
    del versions
    return items


async def claim_detail(session: AsyncSession, c: Claim) -> ClaimDetail:
    base = await claim_public(session, c)
    steps = (
        await session.execute(
            select(ClaimHistory)
            .where(ClaimHistory.claim_id == c.id)
            .order_by(col(ClaimHistory.at), col(ClaimHistory.id))
        )
    ).scalars()
    history = [
        HistoryPublic(
            action=h.action,
            from_status=ClaimStatus(h.from_status) if h.from_status else None,
            to_status=ClaimStatus(h.to_status),
            actor_id=h.actor_id,
            actor_role=h.actor_role,
            at=h.at,
            comment=h.comment,
        )
        for h in steps
    ]
    pay = (await session.execute(select(Payment).where(Payment.claim_id == c.id))).scalar_one_or_none()
    payment = None
    if pay is not None:
        payment = PaymentPublic(
            paid_on=pay.paid_on,
            amount=rules.yuan(pay.amount_fen),
            reference=pay.reference,
            payee=PayeePublic(
                name=pay.payee_name, bank=pay.payee_bank, account_masked=pay.payee_account_masked
            ),
            recorded_by=pay.recorded_by,
            recorded_at=pay.recorded_at,
        )
    return ClaimDetail(**base.model_dump(), history=history, payment=payment)


# --- claims -----------------------------------------------------------------------------------


def mask_account(account: str) -> str:
    return "*" * (len(account) - 4) + account[-4:]


def _apply_evaluation(claim: Claim, ev: rules.Evaluation) -> None:
    claim.eligible = ev.eligible
    claim.amount_fen = ev.amount_fen
    claim.rule_version_id = ev.version.id
    claim.evaluation = ev.as_json()
    claim.evaluated_at = utcnow()


def _check_payee(claim_person: Person, applicant: Person | None, payee: Payee) -> None:
    """The account must be the beneficiary's own (the applicant parent's for the childcare
    subsidy): the account holder's name must be theirs."""
    holder = applicant or claim_person
    if payee.name != holder.name:
        raise ValidationFailed(
            "The payee must be the beneficiary's own account",
            code="payee_mismatch",
            errors=[FieldError(field="payee.name", message=f"must be the account of {holder.name}")],
        )


def _set_payee(claim: Claim, cipher: FieldCipher, payee: Payee) -> None:
    claim.payee_name = payee.name
    claim.payee_bank = payee.bank
    claim.payee_account_enc = cipher.encrypt(payee.account, context=ACCOUNT_CONTEXT)
    claim.payee_account_masked = mask_account(payee.account)


def _payee_account(claim: Claim, cipher: FieldCipher) -> str | None:
    if claim.payee_account_enc is None:
        return None
    return cipher.decrypt(claim.payee_account_enc, context=ACCOUNT_CONTEXT)


def _record(
    session: AsyncSession,
    claim: Claim,
    actor: Actor,
    action: str,
    from_status: ClaimStatus | None,
    to_status: ClaimStatus,
    comment: str | None = None,
) -> None:
    session.add(
        ClaimHistory(
            claim_id=claim.id,
            action=action,
            from_status=from_status.value if from_status else None,
            to_status=to_status.value,
            actor_id=actor.id,
            actor_role=actor.role.value,
            comment=comment,
        )
    )


def _same_claim(c: Claim, data: ClaimCreate, cipher: FieldCipher) -> bool:
    payee = data.payee
    return (
        c.programme == data.programme.value
        and c.person_id == data.person_id
        and c.year == data.year
        and c.applicant_id
        == (data.applicant_id if data.programme == ProgrammeCode.childcare_subsidy else None)
        and ClaimFacts.model_validate(c.facts) == data.facts
        and (c.payee_name, c.payee_bank, _payee_account(c, cipher))
        == ((payee.name, payee.bank, payee.account) if payee else (None, None, None))
    )


def _claim_exists(actor: Actor, other: Claim | None) -> Conflict:
    extra = {"claim_id": str(other.id)} if other is not None and actor.covers(other.village_code) else None
    return Conflict(
        "This person already has a claim for this programme and year", code="claim_exists", extra=extra
    )


async def _existing_claim(
    session: AsyncSession, person_id: uuid.UUID, programme: str, year: int
) -> Claim | None:
    stmt = select(Claim).where(
        Claim.person_id == person_id,
        Claim.programme == programme,
        Claim.year == year,
        col(Claim.status) != ClaimStatus.withdrawn.value,
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def _insert_claim(session: AsyncSession, actor: Actor, claim: Claim) -> None:
    """Insert under the unique (person, programme, year): a concurrent twin gets 409."""
    try:
        async with session.begin_nested():
            session.add(claim)
            await session.flush()
    except IntegrityError:
        other = await _existing_claim(session, claim.person_id, claim.programme, claim.year)
        raise _claim_exists(actor, other) from None


async def create_claim(
    session: AsyncSession, actor: Actor, cipher: FieldCipher, data: ClaimCreate
) -> tuple[Claim, bool]:
    """A draft with its evaluation. Same id and content again → the existing claim."""
    require_role(actor, *FIELD_ROLES)
    existing = await existing_by_id(session, Claim, data.id)
    if existing is not None:
        replay_or_conflict(actor.covers(existing.village_code) and _same_claim(existing, data, cipher))
        return existing, False
    person = await _person_in_scope(session, actor, data.person_id, "person_id")
    ensure_can_place(actor, person.village_code)
    if person.death_date is not None:
        raise Conflict("The person is deceased; no new claims", code="person_deceased")
    applicant = await _applicant(session, actor, data.programme, person, data.applicant_id)
    other = await _existing_claim(session, person.id, data.programme.value, data.year)
    if other is not None:
        raise _claim_exists(actor, other)
    ev = await _evaluate(
        session, data.programme, data.year, person, applicant, data.facts, county_code=person.county_code
    )
    if data.payee is not None:
        _check_payee(person, applicant, data.payee)
    claim = Claim(
        id=data.id or uuid.uuid4(),
        programme=data.programme.value,
        person_id=person.id,
        applicant_id=applicant.id if applicant else None,
        year=data.year,
        status=ClaimStatus.draft,
        facts=data.facts.model_dump(mode="json"),
        eligible=ev.eligible,
        amount_fen=ev.amount_fen,
        rule_version_id=ev.version.id,
        evaluation=ev.as_json(),
        created_by=actor.id,
        **place_columns(person.village_code),
    )
    if data.payee is not None:
        _set_payee(claim, cipher, data.payee)
    await _insert_claim(session, actor, claim)
    _record(session, claim, actor, "create", None, ClaimStatus.draft)
    await session.flush()
    return claim, True


async def get_claim(session: AsyncSession, actor: Actor, claim_id: uuid.UUID, *, lock: bool = False) -> Claim:
    require_role(actor, *FIELD_ROLES)
    stmt = scoped(select(Claim), actor).where(Claim.id == claim_id)
    if lock:
        stmt = stmt.with_for_update()
    claim = (await session.execute(stmt)).scalar_one_or_none()
    if claim is None:
        raise NotFound("No claim with this id")
    return claim


async def list_claims(
    session: AsyncSession,
    actor: Actor,
    *,
    programme: ProgrammeCode | None,
    year: int | None,
    status: ClaimStatus | None,
    area_code: str | None,
    person_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
    q: str | None = None,
    id_number: str | None = None,
    cipher: FieldCipher | None = None,
    payable: bool = False,
) -> tuple[list[Claim], str | None]:
    """Claims in scope, newest first (``claims_query`` reads the filters)."""
    stmt = claims_query(
        session,
        actor,
        programme=programme,
        year=year,
        status=status,
        area_code=area_code,
        person_id=person_id,
        q=q,
        id_number=id_number,
        cipher=cipher,
        payable=payable,
    )
    return await paginate(session, stmt, order=CLAIM_ORDER, limit=limit, cursor=cursor, descending=True)


CLAIM_ORDER = [Claim.created_at, Claim.id]


def claims_query(
    session: AsyncSession,
    actor: Actor,
    *,
    programme: ProgrammeCode | None,
    year: int | None,
    status: ClaimStatus | None,
    area_code: str | None,
    person_id: uuid.UUID | None,
    q: str | None = None,
    id_number: str | None = None,
    cipher: FieldCipher | None = None,
    payable: bool = False,
) -> SelectOfScalar[Claim]:
    """The claims in scope matching the filters of ``GET /claims`` (and of its export), unordered.

    ``q``: the beneficiary's (``person_id``'s) name contains it; ``id_number``: the beneficiary's
    ID number, exact, through its blind index (needs ``cipher``; audited, like the persons
    lookup). Both test the claim's person in a subquery, not in the caller's scope: the claim's
    own place decides what the caller sees (a beneficiary who moved away keeps her claims).
    ``payable``: posted claims whose notice period is over (the workbench's 待发放 queue)."""
    require_role(actor, *FIELD_ROLES)
    stmt = scoped(select(Claim), actor)
    if payable:
        stmt = stmt.where(*_payable_clauses())
    if q:
        named = select(Person.id).where(col(Person.name).contains(q, autoescape=True))
        stmt = stmt.where(col(Claim.person_id).in_(named))
    if id_number is not None:
        if cipher is None:
            raise TypeError("an id_number lookup needs the cipher")
        numbered = select(Person.id).where(Person.id_number_hash == hh.id_number_index(cipher, id_number))
        stmt = stmt.where(col(Claim.person_id).in_(numbered))
        audit.record(session, actor, "lookup", "claim", None, "by id_number")
    if programme:
        stmt = stmt.where(Claim.programme == programme.value)
    if year:
        stmt = stmt.where(Claim.year == year)
    if status:
        stmt = stmt.where(Claim.status == status.value)
    if person_id:
        stmt = stmt.where(Claim.person_id == person_id)
    if area_code:
        ensure_area_in_scope(actor, area_code)
        stmt = stmt.where(area_clause(Claim, area_code))
    return stmt


async def _claim_people(session: AsyncSession, claim: Claim) -> tuple[Person, Person | None]:
    person = hh.require_person_found(await session.get(Person, claim.person_id))
    applicant = await session.get(Person, claim.applicant_id) if claim.applicant_id else None
    return person, applicant


async def update_claim(
    session: AsyncSession,
    actor: Actor,
    cipher: FieldCipher,
    claim_id: uuid.UUID,
    data: ClaimUpdate,
    expected: int,
) -> Claim:
    """The village corrects a draft or returned claim (facts, applicant, payee); it is evaluated
    again on the current register."""
    claim = await get_claim(session, actor, claim_id, lock=True)
    require_role(actor, Role.village)
    check_version(claim.version, expected, (await claim_public(session, claim)).model_dump(mode="json"))
    if claim.status not in (ClaimStatus.draft, ClaimStatus.returned):
        raise InvalidTransition(
            f"A {claim.status} claim cannot be corrected; after submission use change_payee"
        )
    changes = data.model_dump(exclude_unset=True)
    person, applicant = await _claim_people(session, claim)
    programme = ProgrammeCode(claim.programme)
    if "applicant_id" in changes:
        applicant = await _applicant(session, actor, programme, person, data.applicant_id)
        claim.applicant_id = applicant.id if applicant else None
    if data.facts is not None:
        claim.facts = data.facts.model_dump(mode="json")
    if data.payee is not None:
        _check_payee(person, applicant, data.payee)
        _set_payee(claim, cipher, data.payee)
    ev = await _evaluate(
        session,
        programme,
        claim.year,
        person,
        applicant,
        ClaimFacts.model_validate(claim.facts),
        county_code=claim.county_code,
    )
    _apply_evaluation(claim, ev)
    touch(claim)
    await session.flush()
    return claim


# --- the workflow -----------------------------------------------------------------------------


def _move(actor: Actor, claim: Claim, action: str, decision: Decision | None) -> rules.Transition:
    """The one gate of every step: role (403), status (409), separation of duties (403)."""
    move = rules.TRANSITIONS[(action, decision)]
    if actor.role not in move.roles:
        raise Forbidden(f"A {actor.role.value} user may not {action.replace('_', ' ')} claims")
    current = ClaimStatus(claim.status)
    if current not in move.sources:
        raise InvalidTransition(
            f"A {current.value} claim cannot {action.replace('_', ' ')}",
            extra={"claim_status": current.value, "allowed_actions": rules.allowed_actions(current)},
        )
    for attr in move.separate_from:
        if getattr(claim, attr) == actor.id:
            raise Forbidden(
                "You took an earlier step of this claim; another person must do this one",
                code="separation_of_duties",
            )
    return move


async def open_tasks_after(
    session: AsyncSession, claim: Claim, status: ClaimStatus, *, comment: str | None = None, by: str = ""
) -> None:
    """A submitted claim waits in the township's inbox (the task is placed at the township, so
    the village's inbox stays the village's work); a returned one in the village's, its title
    carrying the returning level's (``by``: the action) comment."""
    await cancel_tasks_for(session, "claim", claim.id)
    if status not in (ClaimStatus.submitted, ClaimStatus.returned):
        return
    person = await session.get(Person, claim.person_id)
    label = {
        "programme": _programme_name(claim.programme),
        "year": claim.year,
        "name": person.name if person is not None else "",
    }
    if status == ClaimStatus.submitted:
        open_task(
            session,
            kind=TaskKind.claim_review,
            title=both("task.claim_review", **label),
            due_on=today() + timedelta(days=TASK_DAYS),
            village_code=claim.township_code + "000",
            person_id=claim.person_id,
            source_entity="claim",
            source_id=claim.id,
        )
    elif status == ClaimStatus.returned:
        open_task(
            session,
            kind=TaskKind.claim_correction,
            title=both(
                "task.claim_correction.county" if by == "approve" else "task.claim_correction.township",
                comment=comment or "",
                **label,
            ),
            due_on=today() + timedelta(days=TASK_DAYS),
            village_code=claim.village_code,
            person_id=claim.person_id,
            source_entity="claim",
            source_id=claim.id,
        )


async def _before_submit(session: AsyncSession, claim: Claim) -> None:
    """Evaluated again on the current register; refused while it fails or without a payee."""
    person, applicant = await _claim_people(session, claim)
    ev = await _evaluate(
        session,
        ProgrammeCode(claim.programme),
        claim.year,
        person,
        applicant,
        ClaimFacts.model_validate(claim.facts),
        county_code=claim.county_code,
    )
    if not ev.eligible:
        failed = [FieldError(field=r["rule"], message=r["detail"]) for r in ev.reasons if not r["passed"]]
        raise ValidationFailed(
            "The claim does not meet the rules",
            code="not_eligible",
            errors=failed,
            extra={"reasons": [rules.localized(r) for r in ev.reasons]},
        )
    if claim.payee_name is None:
        raise hh.invalid("payee", "a payee account is required before submitting", "payee_required")
    holder = applicant or person
    if claim.payee_name != holder.name:
        raise hh.invalid("payee.name", f"must be the account of {holder.name}", "payee_mismatch")
    _apply_evaluation(claim, ev)


async def transition(
    session: AsyncSession,
    actor: Actor,
    cipher: FieldCipher,
    claim_id: uuid.UUID,
    action: str,
    *,
    decision: Decision | None = None,
    comment: str | None = None,
    notice_days: int | None = None,
    default_notice_days: int = 7,
    paid_on: date | None = None,
    amount: Any = None,
    reference: str | None = None,
) -> Claim:
    """One step of the workflow (see ``claim_rules.TRANSITIONS``), written to the history."""
    claim = await get_claim(session, actor, claim_id, lock=True)
    move = _move(actor, claim, action, decision)
    current = ClaimStatus(claim.status)
    comment = comment.strip() if comment and comment.strip() else None
    if decision in (Decision.return_, Decision.reject) and comment is None:
        raise hh.invalid("comment", "a reason is required to return or reject a claim")
    if action == "submit":
        await _before_submit(session, claim)
        claim.submitted_by = actor.id
        claim.submitted_at = utcnow()
        claim.reviewed_by = claim.approved_by = None
        claim.approved_amount_fen = None
    elif action == "review" and decision == Decision.approve:
        claim.reviewed_by = actor.id
    elif action == "approve" and decision == Decision.approve:
        claim.approved_by = actor.id
        claim.approved_amount_fen = claim.amount_fen
    elif action == "publish":
        days = notice_days or default_notice_days
        claim.posted_on = today()
        claim.notice_until = claim.posted_on + timedelta(days=days - 1)
        comment = comment or f"posted for {days} days, until {claim.notice_until}"
    elif action == "object":
        claim.posted_on = claim.notice_until = None
        claim.approved_by = claim.approved_amount_fen = None
    elif action == "pay":
        assert paid_on is not None
        assert reference is not None
        _record_payment(session, actor, cipher, claim, paid_on, amount, reference)
        comment = (
            comment or f"paid {rules.yuan(claim.approved_amount_fen or 0)} on {paid_on}, ref {reference}"
        )
    claim.status = move.target
    _record(session, claim, actor, action, current, move.target, comment)
    await open_tasks_after(session, claim, move.target, comment=comment, by=action)
    touch(claim)
    await session.flush()
    return claim


def _record_payment(
    session: AsyncSession,
    actor: Actor,
    cipher: FieldCipher,
    claim: Claim,
    paid_on: date,
    amount: Any,
    reference: str,
) -> None:
    """Only after the posting period, only the approved amount, to the account on the claim
    (copied into the payment, so a later change of payee cannot rewrite what was paid)."""
    now = today()
    if claim.notice_until is None or now <= claim.notice_until:
        raise Conflict(
            f"The claim is publicly posted until {claim.notice_until}; pay after that",
            code="notice_period_running",
        )
    if paid_on <= claim.notice_until or paid_on > now:
        raise hh.invalid("paid_on", f"must be after {claim.notice_until} and not in the future")
    if claim.approved_amount_fen is None or rules.to_fen(amount) != claim.approved_amount_fen:
        approved = rules.yuan(claim.approved_amount_fen or 0)
        raise hh.invalid("amount", f"must be the approved amount {approved}", "amount_mismatch")
    account = _payee_account(claim, cipher)
    if account is None or claim.payee_name is None or claim.payee_bank is None:
        raise hh.invalid("payee", "the claim has no payee account", "payee_required")
    session.add(
        Payment(
            claim_id=claim.id,
            paid_on=paid_on,
            amount_fen=claim.approved_amount_fen,
            reference=reference,
            payee_name=claim.payee_name,
            payee_bank=claim.payee_bank,
            payee_account_enc=cipher.encrypt(account, context=ACCOUNT_CONTEXT),
            payee_account_masked=mask_account(account),
            recorded_by=actor.id,
            **place_columns(claim.village_code),
        )
    )


async def change_payee(
    session: AsyncSession,
    actor: Actor,
    cipher: FieldCipher,
    claim_id: uuid.UUID,
    payee: Payee,
    comment: str | None,
) -> Claim:
    """A new payee after submission: recorded (old and new account, masked, in the history) and
    back to ``submitted`` for the township's review; whoever changed it may not review or approve
    it, and a posting starts again after the new approval. Before submission, PATCH the claim."""
    claim = await get_claim(session, actor, claim_id, lock=True)
    move = _move(actor, claim, "change_payee", None)
    current = ClaimStatus(claim.status)
    person, applicant = await _claim_people(session, claim)
    _check_payee(person, applicant, payee)
    before = f"{claim.payee_name} {claim.payee_bank} {claim.payee_account_masked}"
    _set_payee(claim, cipher, payee)
    after = f"{claim.payee_name} {claim.payee_bank} {claim.payee_account_masked}"
    claim.submitted_by = actor.id
    claim.submitted_at = utcnow()
    claim.reviewed_by = claim.approved_by = None
    claim.approved_amount_fen = None
    claim.posted_on = claim.notice_until = None
    claim.status = move.target
    note = f"payee changed from {before} to {after}"
    if comment and comment.strip():
        note += f": {comment.strip()}"
    _record(session, claim, actor, "change_payee", current, move.target, note[:1000])
    await open_tasks_after(session, claim, move.target)
    touch(claim)
    await session.flush()
    return claim


# --- renewals ---------------------------------------------------------------------------------


async def renew(session: AsyncSession, actor: Actor, programme: ProgrammeCode, year: int) -> RenewalResult:
    """Drafts for the year after ``year`` (``for_year``) for ``year``'s paid beneficiaries in
    scope, evaluated on today's register with the same declared facts and payee; the others leave
    with the reason."""
    require_role(actor, *COUNTY_ROLES)
    next_year = year + 1
    # The drafts are the caller's county's (beneficiaries who moved out leave below), so its
    # versions decide.
    versions = [_as_rule(v) for v in await _versions(session, programme.value, actor.county_code)]
    if rules.version_on(versions, date(next_year, 12, 31)) is None:
        raise Conflict(f"The programme has no rule version in force for {next_year}", code="no_rule_version")
    paid = (
        (
            await session.execute(
                scoped(select(Claim), actor)
                .where(
                    Claim.programme == programme.value,
                    Claim.year == year,
                    Claim.status == ClaimStatus.paid.value,
                )
                .order_by(col(Claim.village_code), col(Claim.id))
            )
        )
        .scalars()
        .all()
    )
    drafted: list[Claim] = []
    exits: list[RenewalExit] = []
    already: list[uuid.UUID] = []
    for old in paid:
        person, applicant = await _claim_people(session, old)

        def leave(reason: str, detail: str, old: Claim = old, person: Person = person) -> None:
            exits.append(
                RenewalExit(
                    person_id=person.id, previous_claim_id=old.id, reason=reason, detail=translate(detail)
                )
            )

        if person.death_date is not None:
            leave("died", f"died on {person.death_date}")
            continue
        if not actor.covers(person.village_code):
            leave("moved_away", "the beneficiary now lives outside your area")
            continue
        if await _existing_claim(session, person.id, programme.value, next_year) is not None:
            already.append(person.id)
            continue
        facts = ClaimFacts.model_validate(old.facts)
        family = await _family(session, person, applicant)
        ev = rules.evaluate(programme, next_year, family, facts, versions)
        if not ev.eligible:
            leave(*rules.exit_reason(programme, family, ev))
            continue
        claim = Claim(
            programme=programme.value,
            person_id=person.id,
            applicant_id=old.applicant_id,
            year=next_year,
            status=ClaimStatus.draft,
            facts=old.facts,
            eligible=ev.eligible,
            amount_fen=ev.amount_fen,
            rule_version_id=ev.version.id,
            evaluation=ev.as_json(),
            payee_name=old.payee_name,
            payee_bank=old.payee_bank,
            payee_account_enc=old.payee_account_enc,
            payee_account_masked=old.payee_account_masked,
            created_by=actor.id,
            renewed_from_id=old.id,
            **place_columns(person.village_code),
        )
        await _insert_claim(session, actor, claim)
        _record(
            session, claim, actor, "renew", None, ClaimStatus.draft, f"renewal of the {year} claim {old.id}"
        )
        drafted.append(claim)
    await session.flush()
    return RenewalResult(
        programme=programme,
        year=year,
        for_year=next_year,
        drafted=[await claim_public(session, c) for c in drafted],
        exits=exits,
        already_claimed=already,
    )


# --- the bank file ----------------------------------------------------------------------------

CSV_STATUSES = (ClaimStatus.approved, ClaimStatus.posted, ClaimStatus.paid)
CSV_HEADER = [
    "claim_id",
    "programme",
    "year",
    "village_code",
    "beneficiary_name",
    "id_number_masked",
    "payee_name",
    "payee_bank",
    "payee_account",
    "amount",
    "status",
]


async def payments_csv(
    session: AsyncSession,
    actor: Actor,
    cipher: FieldCipher,
    *,
    programme: ProgrammeCode | None,
    year: int | None,
    status: ClaimStatus,
) -> str:
    """The bank file: approved amounts of the claims in scope with that status (posted by
    default), beneficiaries' ID numbers masked, the payee's account in full for the bank. UTF-8
    with a BOM so that Excel opens the Chinese names. The export is audited."""
    require_role(actor, *COUNTY_ROLES)
    if status not in CSV_STATUSES:
        raise hh.invalid("status", "must be approved, posted or paid")
    stmt = (
        select(Claim, Person)
        .join(Person, col(Person.id) == col(Claim.person_id))
        .where(scope_clause(Claim, actor), Claim.status == status.value)
    )
    if programme:
        stmt = stmt.where(Claim.programme == programme.value)
    if year:
        stmt = stmt.where(Claim.year == year)
    rows = (await session.execute(stmt.order_by(col(Claim.village_code), col(Claim.id)))).all()
    lines: list[list[object]] = []
    for claim, person in rows:
        name, bank, account, amount = (
            claim.payee_name,
            claim.payee_bank,
            _payee_account(claim, cipher),
            claim.approved_amount_fen,
        )
        if status == ClaimStatus.paid:
            pay = (
                await session.execute(select(Payment).where(Payment.claim_id == claim.id))
            ).scalar_one_or_none()
            if pay is not None:
                name, bank, amount = pay.payee_name, pay.payee_bank, pay.amount_fen
                account = cipher.decrypt(pay.payee_account_enc, context=ACCOUNT_CONTEXT)
        lines.append(
            [
                claim.id,
                claim.programme,
                claim.year,
                claim.village_code,
                person.name,
                person.id_number_masked or "",
                name,
                bank,
                account,
                rules.yuan(amount if amount is not None else claim.amount_fen),
                claim.status,
            ]
        )
    audit.record(
        session,
        actor,
        "export",
        "claim",
        None,
        f"payments.csv {programme or '*'} {year or '*'} {status.value} rows={len(rows)}",
    )
    return csv_text(CSV_HEADER, lines)


def _programme_name(code: str) -> str:
    """A programme as task titles name it (its catalogue name; the code if it has none)."""
    return Ref(f"programme.{code}") if f"programme.{code}" in MESSAGES else code


# --- a beneficiary who moves -------------------------------------------------------------------

PENDING = (
    ClaimStatus.draft,
    ClaimStatus.submitted,
    ClaimStatus.reviewed,
    ClaimStatus.returned,
    ClaimStatus.approved,
    ClaimStatus.posted,
)


async def _follow_relocation(
    session: AsyncSession, person: Person, from_village: str, to_village: str
) -> None:
    """Pending claims of a beneficiary whose move was confirmed follow her, and the receiving
    township gets a review task for each (its staff decide whether the claim still stands
    under their programme rules); paid and rejected claims stay where they were decided."""
    del from_village
    rows = await session.execute(
        select(Claim).where(Claim.person_id == person.id, col(Claim.status).in_([s.value for s in PENDING]))
    )
    for claim in rows.scalars():
        for key, value in place_columns(to_village).items():
            setattr(claim, key, value)
        touch(claim)
        await cancel_tasks_for(session, "claim", claim.id)
        open_task(
            session,
            kind=TaskKind.claim_review,
            title=both(
                "task.claim_moved_in",
                programme=_programme_name(claim.programme),
                year=claim.year,
                name=person.name,
            ),
            due_on=today() + timedelta(days=TASK_DAYS),
            village_code=claim.township_code + "000",
            person_id=claim.person_id,
            source_entity="claim",
            source_id=claim.id,
        )
    await session.flush()


# --- a merge of two records of one person ----------------------------------------------------


@hh.on_merge
async def settle_merge(
    session: AsyncSession, actor: Actor, dup: Person, keep: Person
) -> list[dict[str, str]]:
    """Both records hold a claim of one programme and year: a draft gives way (``withdrawn``,
    history action ``withdraw`` with the comment ``merged``, its open tasks cancelled) to a claim
    past draft, or, both drafts, to the earlier one. Two claims past draft (submitted or any
    later step, returned and rejected included: each is a decision on record) are 409
    ``merge_conflict``: a person decides which one stands. Withdrawn claims move with the rest."""
    rows = (
        await session.execute(
            select(Claim)
            .where(
                col(Claim.person_id).in_([dup.id, keep.id]), col(Claim.status) != ClaimStatus.withdrawn.value
            )
            .order_by(col(Claim.created_at), col(Claim.id))
        )
    ).scalars()
    by_key: dict[tuple[str, int], list[Claim]] = {}
    for claim in rows:
        by_key.setdefault((claim.programme, claim.year), []).append(claim)
    clashes = [pair for pair in by_key.values() if len(pair) > 1]
    for pair in clashes:
        if all(c.status != ClaimStatus.draft.value for c in pair):
            programme, year = pair[0].programme, pair[0].year
            raise Conflict(
                f"Both records hold a claim past draft for {programme} {year}; settle one before merging",
                code="merge_conflict",
            )
    settled: list[dict[str, str]] = []
    for pair in clashes:
        kept = next((c for c in pair if c.status != ClaimStatus.draft.value), pair[0])
        for claim in pair:
            if claim is kept:
                continue
            claim.status = ClaimStatus.withdrawn
            settled.append({"table": "claim", "column": "status", "id": str(claim.id)})
            if claim.person_id == dup.id:  # moved here, so that it changes version once
                claim.person_id = keep.id
                settled.append({"table": "claim", "column": "person_id", "id": str(claim.id)})
            touch(claim)
            _record(session, claim, actor, "withdraw", ClaimStatus.draft, ClaimStatus.withdrawn, "merged")
            await cancel_tasks_for(session, "claim", claim.id)
    await session.flush()
    return settled


def _register_relocation() -> None:
    from app.services import migrants

    migrants.on_relocation(_follow_relocation)


_register_relocation()


# --- the workbench's queues and public notices ------------------------------------------------


def _payable_clauses() -> tuple[Any, ...]:
    """Posted and the notice period over: the claims that may be paid today."""
    return (Claim.status == ClaimStatus.posted.value, col(Claim.notice_until) < today())


async def count_claims(
    session: AsyncSession, actor: Actor, *, status: ClaimStatus | None = None, payable: bool = False
) -> int:
    """How many claims in scope ``list_claims`` lists with the same filters (a queue's count)."""
    require_role(actor, *FIELD_ROLES)
    stmt = scoped(select(func.count()).select_from(Claim), actor, Claim)
    if status is not None:
        stmt = stmt.where(Claim.status == status.value)
    if payable:
        stmt = stmt.where(*_payable_clauses())
    return int((await session.execute(stmt)).scalar_one())


NOTICE_MAX = 5000  # one township's posted claims of a programme and year, printed at once


async def posted_claims(
    session: AsyncSession, actor: Actor, *, programme: ProgrammeCode, year: int, area_code: str
) -> list[Claim]:
    """The posted (公示中) claims of a programme and year in an area of the caller's scope, by
    village then date of posting: what a public notice lists. An area outside the scope is 404."""
    require_role(actor, *FIELD_ROLES)
    ensure_area_in_scope(actor, area_code)
    stmt = (
        scoped(select(Claim), actor)
        .where(
            Claim.status == ClaimStatus.posted.value,
            Claim.programme == programme.value,
            Claim.year == year,
            area_clause(Claim, area_code),
        )
        .order_by(col(Claim.village_code), col(Claim.posted_on), col(Claim.created_at), col(Claim.id))
        .limit(NOTICE_MAX)
    )
    return list((await session.execute(stmt)).scalars().all())

"""The disclosure register: every research loan and every other disclosure (e.g. to the police or another
authority when a case requires it), with its legal basis, items, dates and status, for auditors.

A disclosure other than a loan is recorded by the manager or caseworker who made it, and only to a kind of
recipient the register's privacy notice names (HSY's notice names authorities and the police): a disclosure the
notice does not announce is refused, so the register cannot quietly record one the data subjects were never told
of.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import func, select

from services.export.loans import LIST_BODY_LIMIT, Authorized, actor, audit
from services.export.models import Disclosure, Loan, LoanItem
from services.export.schemas import DisclosureCreate, DisclosureEntry, DisclosureRegister
from shared.app import runtime
from shared.audit.chain import Action
from shared.platform.errors import ApiError
from shared.platform.http import json_body, json_body_openapi, problem_responses
from shared.policy.registry import PolicyRegistry

router = APIRouter(prefix="/v1", tags=["disclosures"])

# Strict days in the query: an unparseable one is refused by the pattern, never echoed back.
Day = Annotated[str | None, Query(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]


def _day(value: str | None, field: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError.field(422, field, "not a calendar day (YYYY-MM-DD)") from None


@router.post(
    "/disclosures",
    status_code=201,
    response_model=DisclosureEntry,
    summary="Record a disclosure outside research loans, to a recipient the register's privacy notice names",
    responses=problem_responses(401, 403, 413, 415, 422),
    openapi_extra=json_body_openapi(DisclosureCreate),
)
async def record_disclosure(request: Request, principal: Authorized) -> DisclosureEntry:
    body = await json_body(request, DisclosureCreate, limit=LIST_BODY_LIMIT)
    policies: PolicyRegistry = request.app.state.policies
    if body.register_id not in policies:
        raise ApiError.field(422, "body.register", "no such register")
    kinds = {recipient.kind.value for recipient in policies.latest(body.register_id).recipients}
    if body.recipient_kind not in kinds:
        raise ApiError.field(
            422, "body.recipient_kind", "the register's privacy notice names no such recipient"
        )
    if body.recipient_kind == "research_institute":
        raise ApiError.field(422, "body.recipient_kind", "research institutes receive recordings as loans")
    now = runtime(request).clock.now()
    async with runtime(request).sessionmaker() as session:
        disclosure = Disclosure(
            disclosure_id=uuid.uuid4(),
            register=body.register_id,
            recipient=body.recipient,
            recipient_kind=body.recipient_kind,
            legal_basis=body.legal_basis,
            case_reference=body.case_reference,
            disclosed_on=body.disclosed_on,
            contact_refs=sorted(set(body.contact_refs)),
            description=body.description,
            recorded_by=actor(request, principal),
            recorded_at=now,
        )
        session.add(disclosure)
        await session.flush()
        await audit(
            request,
            session,
            principal,
            Action.EXPORT_STEP,
            [disclosure.disclosure_id],
            object_type="disclosure",
        )
        # The contacts disclosed, by pseudonym: the trail shows whose data left, never who they are.
        await audit(
            request,
            session,
            principal,
            Action.EXPORT_STEP,
            disclosure.contact_refs,
            object_type="contact",
            reason="disclosed",
        )
        await session.commit()
    return _entry(disclosure)


def _entry(disclosure: Disclosure) -> DisclosureEntry:
    return DisclosureEntry(
        kind="disclosure",
        id=disclosure.disclosure_id,
        registers=[disclosure.register],
        recipient=disclosure.recipient,
        recipient_kind=disclosure.recipient_kind,
        legal_basis=disclosure.legal_basis,
        reference=disclosure.case_reference,
        disclosed_on=disclosure.disclosed_on,
        due_on=None,
        items=len(disclosure.contact_refs),
        status="disclosed",
    )


@router.get(
    "/disclosures",
    response_model=DisclosureRegister,
    summary="The disclosure register: research loans delivered and other disclosures, newest first",
    responses=problem_responses(401, 403, 422),
)
async def disclosure_register(
    request: Request,
    principal: Authorized,
    register: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")] = None,
    disclosed_from: Day = None,
    disclosed_to: Day = None,
) -> DisclosureRegister:
    first, last = _day(disclosed_from, "disclosed_from"), _day(disclosed_to, "disclosed_to")
    async with runtime(request).sessionmaker() as session:
        # Loans enter the register when they are delivered: until then nothing has left.
        counts = (
            select(
                LoanItem.loan_id,
                func.array_agg(func.distinct(LoanItem.register)).label("registers"),
                func.count()
                .filter(LoanItem.status.in_(("lent", "returned", "destroyed")))
                .label("lent_items"),
                func.count().filter(LoanItem.status.in_(("returned", "destroyed"))).label("accounted"),
            )
            .group_by(LoanItem.loan_id)
            .subquery()
        )
        loans = select(Loan, counts.c.registers, counts.c.lent_items, counts.c.accounted).join(
            counts, counts.c.loan_id == Loan.loan_id
        )
        loans = loans.where(Loan.lent_on.is_not(None))
        others = select(Disclosure)
        if register is not None:
            loans = loans.where(func.array_position(counts.c.registers, register).is_not(None))
            others = others.where(Disclosure.register == register)
        if first is not None:
            loans = loans.where(Loan.lent_on >= first)
            others = others.where(Disclosure.disclosed_on >= first)
        if last is not None:
            loans = loans.where(Loan.lent_on <= last)
            others = others.where(Disclosure.disclosed_on <= last)
        entries = [
            DisclosureEntry(
                kind="research_loan",
                id=loan.loan_id,
                registers=sorted(registers),
                recipient=loan.institute_name,
                recipient_kind="research_institute",
                legal_basis=loan.legal_basis,
                reference=loan.agreement_ref,
                disclosed_on=loan.lent_on,
                due_on=loan.due_on,
                items=items,
                status=loan.status,
                accounted=accounted,
            )
            for loan, registers, items, accounted in (await session.execute(loans)).all()
        ]
        entries += [_entry(disclosure) for disclosure in (await session.scalars(others)).all()]
        entries.sort(key=lambda entry: (entry.disclosed_on or date.min, str(entry.id)), reverse=True)
        await audit(
            request,
            session,
            principal,
            Action.READ,
            [entry.id for entry in entries],
            object_type="disclosure",
            reason="disclosure_register",
        )
        await session.commit()
    return DisclosureRegister(entries=entries, total=len(entries))

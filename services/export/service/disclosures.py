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

from sqlalchemy.ext.asyncio import AsyncSession

from services.export import repository
from services.export.models import Disclosure
from services.export.schemas import DisclosureCreate, DisclosureEntry, DisclosureRegister
from shared.app import Caller
from shared.audit.chain import Action
from shared.platform.errors import ApiError
from shared.policy.registry import PolicyRegistry


def _check_recipient(policies: PolicyRegistry, body: DisclosureCreate) -> None:
    if body.register_id not in policies:
        raise ApiError.field(422, "body.register", "no such register")
    kinds = {recipient.kind.value for recipient in policies.latest(body.register_id).recipients}
    if body.recipient_kind not in kinds:
        raise ApiError.field(
            422, "body.recipient_kind", "the register's privacy notice names no such recipient"
        )
    if body.recipient_kind == "research_institute":
        raise ApiError.field(422, "body.recipient_kind", "research institutes receive recordings as loans")


async def record_disclosure(
    session: AsyncSession, caller: Caller, body: DisclosureCreate, *, policies: PolicyRegistry
) -> DisclosureEntry:
    _check_recipient(policies, body)
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
        recorded_by=caller.actor,
        recorded_at=caller.now(),
    )
    session.add(disclosure)
    await session.flush()
    await caller.audit(session, Action.EXPORT_STEP, "disclosure", [disclosure.disclosure_id])
    # The contacts disclosed, by pseudonym: the trail shows whose data left, never who they are.
    await caller.audit(session, Action.EXPORT_STEP, "contact", disclosure.contact_refs, reason="disclosed")
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


async def disclosure_register(
    session: AsyncSession, caller: Caller, *, register: str | None, first: date | None, last: date | None
) -> DisclosureRegister:
    """Research loans delivered and other disclosures, newest first. Loans enter the register when they are
    delivered: until then nothing has left."""
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
        for loan, registers, items, accounted in await repository.delivered_loans(
            session, register=register, first=first, last=last
        )
    ]
    entries += [
        _entry(disclosure)
        for disclosure in await repository.disclosures(session, register=register, first=first, last=last)
    ]
    entries.sort(key=lambda entry: (entry.disclosed_on or date.min, str(entry.id)), reverse=True)
    await caller.audit(
        session,
        Action.READ,
        "disclosure",
        [entry.id for entry in entries],
        reason="disclosure_register",
    )
    return DisclosureRegister(entries=entries, total=len(entries))

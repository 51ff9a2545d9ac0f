"""A loan's life: the agreement and its approval by a second person, the selection of recordings, the delivery,
the institute's attestations, discrepancies and the close-out. The statuses a step needs and moves the loan to
are in services.export.service.lifecycle; every step is audited and every change of status announced on the
export events topic through the outbox, in the step's transaction.
"""

from __future__ import annotations

import collections
import contextlib
import uuid
from datetime import date
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.export import repository
from services.export.models import Attestation, Loan, LoanItem
from services.export.schemas import (
    AttestationCreate,
    AttestationList,
    AttestationRead,
    Discrepancies,
    Discrepancy,
    ItemList,
    ItemRead,
    LoanCreate,
    LoanList,
    LoanRead,
    SelectionCreate,
    SelectionRead,
)
from services.export.selection import RECORDING, Criteria, Override, lending_registers, select_items
from services.export.service import lifecycle
from services.export.service.common import announce, load_loan
from shared.app import Caller
from shared.audit.chain import Action
from shared.platform.clock import HELSINKI
from shared.platform.errors import ApiError
from shared.policy.registry import PolicyRegistry
from shared.security.access import apply_record_rules
from shared.security.auth import Role
from shared.storage.blobstore import BlobStore


def _read(loan: Loan) -> LoanRead:
    return LoanRead.model_validate(loan, from_attributes=True)


def _status_changed(loan: Loan, previous: str) -> dict[str, Any]:
    return {
        "loan_id": loan.loan_id,
        "institute_id": loan.institute_id,
        "status": loan.status,
        "previous_status": previous,
    }


def _items_event(loan: Loan, items: list[LoanItem], status: str) -> dict[str, Any]:
    return {
        "loan_id": loan.loan_id,
        "institute_id": loan.institute_id,
        "institute_name": loan.institute_name,
        "agreement_ref": loan.agreement_ref,
        "lent_on": loan.lent_on,
        "due_on": loan.due_on,
        "status": status,
        "items": [{"contact_ref": item.contact_ref, "artifact_class": item.artifact_class} for item in items],
    }


# -- the agreement ---------------------------------------------------------------------------------------------


async def create_loan(session: AsyncSession, caller: Caller, body: LoanCreate) -> LoanRead:
    loan = Loan(
        loan_id=uuid.uuid4(),
        institute_id=body.institute_id,
        agreement_ref=body.agreement_ref,
        purpose=body.purpose,
        study_ends_on=body.study_ends_on,
        institute_name=body.institute_name,
        contact_person=body.contact_person,
        legal_basis=body.legal_basis,
        commitment=body.commitment,
        status=lifecycle.DRAFT,
        created_by=caller.actor,
    )
    session.add(loan)
    await session.flush()
    await caller.audit(session, Action.CREATE, "loan", [loan.loan_id])
    await session.refresh(loan)  # created_at is the database's
    return _read(loan)


async def list_loans(session: AsyncSession, caller: Caller) -> LoanList:
    await apply_record_rules(session, caller.principal)
    loans = await repository.loans_of(session, caller.principal)
    await caller.audit(session, Action.SEARCH, "loan", [loan.loan_id for loan in loans])
    return LoanList(loans=[_read(loan) for loan in loans])


async def get_loan(session: AsyncSession, caller: Caller, loan_id: UUID) -> LoanRead:
    await apply_record_rules(session, caller.principal)
    loan = await load_loan(session, caller, loan_id)
    await caller.audit(session, Action.READ, "loan", [loan.loan_id])
    return _read(loan)


async def approve_loan(session: AsyncSession, caller: Caller, loan_id: UUID) -> LoanRead:
    """Approve a draft: by a second research officer, never the one who set it up (four eyes)."""
    loan = await load_loan(session, caller, loan_id, lock=True)
    lifecycle.check(lifecycle.APPROVE, loan)
    if loan.created_by == caller.actor:
        # Nothing leaves on one person's word: the agreement is checked by a second authorised person.
        raise ApiError.field(409, "approver", "the loan must be approved by someone other than who set it up")
    now = caller.now()
    previous = lifecycle.move(lifecycle.APPROVE, loan)
    loan.approved_by = caller.actor
    loan.approved_at = now
    await session.flush()
    await announce(session, loan, "export.loan_changed", _status_changed(loan, previous), now=now)
    await caller.audit(session, Action.EXPORT_STEP, "loan", [loan.loan_id])
    await session.refresh(loan)
    return _read(loan)


# -- selection -------------------------------------------------------------------------------------------------


def _check_registers(policies: PolicyRegistry, registers: list[str]) -> None:
    allowed = set(lending_registers(policies))
    for index, register in enumerate(registers):
        if register not in allowed:
            raise ApiError.field(
                422,
                f"body.registers.{index}",
                "the register's privacy notice allows no research loans"
                if register in policies
                else "no such register",
            )


async def select_recordings(
    session: AsyncSession,
    caller: Caller,
    loan_id: UUID,
    body: SelectionCreate,
    *,
    policies: PolicyRegistry,
    blobs: BlobStore,
) -> SelectionRead:
    """Select the recordings of an approved loan; a new selection replaces the earlier one and its package.

    Commits itself (the exception among these steps): the package the earlier selection was built into is
    deleted from the blob store only once the loan no longer points at it, and a blob store cannot join the
    database's transaction.
    """
    _check_registers(policies, list(body.registers))
    now = caller.now()
    loan = await load_loan(session, caller, loan_id, lock=True)
    lifecycle.check(lifecycle.SELECT, loan)
    criteria = Criteria(
        registers=list(body.registers),
        channels=list(body.channels),
        started_from=body.started_from,
        started_to=body.started_to,
        agent_ids=list(body.agent_ids),
        contact_refs=list(body.contact_refs),
        sample_size=body.sample_size,
        seed=body.seed,
    )
    overrides = [Override(contact_ref=o.contact_ref, justification=o.justification) for o in body.overrides]
    selection = await select_items(session, criteria, study_ends_on=loan.study_ends_on, overrides=overrides)
    if selection.refused_overrides:
        position = {o.contact_ref: i for i, o in enumerate(body.overrides)}
        ref, reason = min(selection.refused_overrides.items(), key=lambda pair: position[pair[0]])
        raise ApiError.field(
            409,
            f"body.overrides.{position[ref]}.contact_ref",
            f"a contact excluded as {reason} cannot be lent (GDPR Art. 17, 18(2))",
        )
    # A new selection replaces the earlier one, and with it any package built from it.
    old_package = loan.package_blob_key
    await repository.replace_items(
        session,
        loan.loan_id,
        [
            {
                "contact_ref": chosen.contact_ref,
                "artifact_class": RECORDING,
                "register": chosen.register,
                "overridden_exclusion": chosen.overridden_exclusion,
                "override_justification": chosen.override_justification,
                "override_by": caller.actor if chosen.overridden_exclusion else None,
                "status": "selected",
            }
            for chosen in selection.chosen
        ],
    )
    loan.selection = selection.summary(criteria)
    loan.selected_at = now
    loan.package_blob_key = loan.package_sha256 = None
    loan.package_bytes = loan.package_key = loan.manifest = loan.packaged_at = None
    await session.flush()
    await caller.audit(session, Action.EXPORT_STEP, "loan", [loan.loan_id], reason="selection")
    # Which contacts a loan may disclose is itself worth a trail: their pseudonyms, never who they are.
    chosen_refs = [chosen.contact_ref for chosen in selection.chosen]
    if chosen_refs:
        await caller.audit(session, Action.EXPORT_STEP, "contact", chosen_refs, reason="selected_for_loan")
    await session.commit()
    if old_package is not None:
        with contextlib.suppress(Exception):  # unreadable without its key, which the row no longer holds
            await blobs.delete(old_package)
    return SelectionRead(
        loan_id=loan_id,
        selected=len(selection.chosen),
        candidates=selection.candidates,
        excluded=selection.excluded,
        overridden=selection.overridden,
        seed=selection.seed,
        selected_at=now,
    )


async def list_items(session: AsyncSession, caller: Caller, loan_id: UUID) -> ItemList:
    """The loan's items and their status; an institute sees only the items' pseudonyms."""
    await apply_record_rules(session, caller.principal)
    loan = await load_loan(session, caller, loan_id)
    items = await repository.items_of(session, loan.loan_id)
    await caller.audit(session, Action.READ, "loan", [loan.loan_id], reason="items")
    institute = caller.principal.role is Role.INSTITUTE
    return ItemList(
        loan_id=loan_id,
        items=[
            ItemRead(
                item_id=item.item_id,
                status=item.status,
                duration_ms=item.duration_ms,
                sha256=item.sha256,
                accounted_at=item.accounted_at,
                **(
                    {}
                    if institute
                    else {
                        "contact_ref": item.contact_ref,
                        "register_id": item.register,
                        "overridden_exclusion": item.overridden_exclusion,
                        "override_justification": item.override_justification,
                    }
                ),
            )
            for item in items
        ],
        counts=dict(collections.Counter(item.status for item in items)),
    )


# -- delivery, attestations, close-out -------------------------------------------------------------------------


async def deliver(session: AsyncSession, caller: Caller, loan_id: UUID) -> LoanRead:
    """The package was handed to the institute: its items are lent until the study ends."""
    now = caller.now()
    loan = await load_loan(session, caller, loan_id, lock=True)
    lifecycle.check(lifecycle.DELIVER, loan)
    if loan.package_blob_key is None:
        raise ApiError.field(409, "package", "build the loan's package before delivering it")
    items = await repository.selected_items(session, loan.loan_id)
    if not items:
        raise ApiError.field(409, "items", "the loan has no selected items left to deliver")
    # An item withdrawn after the package was built (restricted, erased, its retention ended) is still in the
    # package: it must be built again without it before anything is handed over.
    packed = {str(entry["item_id"]) for entry in (loan.manifest or {}).get("items", [])}
    if stale := len(packed - {str(item.item_id) for item in items}):
        raise ApiError.field(
            409, "package", f"{stale} item(s) in the package were withdrawn since; build the package again"
        )
    previous = lifecycle.move(lifecycle.DELIVER, loan)
    loan.delivered_at = now
    loan.lent_on = now.astimezone(HELSINKI).date()
    loan.due_on = loan.study_ends_on
    for item in items:
        item.status = "lent"
    await session.flush()
    await announce(session, loan, "export.items_lent", _items_event(loan, items, "lent"), now=now)
    await announce(session, loan, "export.loan_changed", _status_changed(loan, previous), now=now)
    await caller.audit(session, Action.EXPORT_STEP, "loan", [loan.loan_id], reason="delivered")
    await session.refresh(loan)
    return _read(loan)


def _checked_attestation(body: AttestationCreate, loan: Loan, today: date) -> None:
    if body.outcome == "destroyed":
        for name in ("destroyed_on", "method", "tool"):
            if getattr(body, name) is None:
                raise ApiError.field(422, f"body.{name}", "required when the items were destroyed")
        assert body.destroyed_on is not None
        if body.destroyed_on > today:
            raise ApiError.field(422, "body.destroyed_on", "cannot be in the future")
        if loan.lent_on is not None and body.destroyed_on < loan.lent_on:
            raise ApiError.field(422, "body.destroyed_on", "is before the items were lent")
    elif body.destroyed_on is not None or body.method is not None:
        raise ApiError.field(422, "body.outcome", "returned items have no destruction date or method")


async def attest(
    session: AsyncSession, caller: Caller, loan_id: UUID, body: AttestationCreate
) -> AttestationRead:
    """The institute attests that items (or the whole loan) were returned or destroyed."""
    now = caller.now()
    await apply_record_rules(session, caller.principal)
    loan = await load_loan(session, caller, loan_id)
    lifecycle.check(lifecycle.ATTEST, loan)
    _checked_attestation(body, loan, now.astimezone(HELSINKI).date())
    items = await repository.items_to_attest(session, loan.loan_id, body.items)
    if body.items is not None:
        if unknown := len(set(body.items)) - len(items):
            raise ApiError.field(422, "body.items", f"{unknown} item(s) are not part of this loan")
        if accounted := sum(1 for item in items if item.status != "lent"):
            raise ApiError.field(409, "body.items", f"{accounted} item(s) are already accounted for")
    items = [item for item in items if item.status == "lent"]
    if not items:
        raise ApiError.field(409, "items", "every item of the loan is already accounted for")
    attestation = Attestation(
        attestation_id=uuid.uuid4(),
        loan_id=loan.loan_id,
        outcome=body.outcome,
        destroyed_on=body.destroyed_on,
        method=body.method,
        tool=body.tool,
        signer=body.signer,
        whole_loan=body.items is None,
        item_count=len(items),
        attested_by=caller.actor,
        attested_at=now,
    )
    session.add(attestation)
    for item in items:
        item.status = body.outcome
        item.accounted_at = now
        item.attestation_id = attestation.attestation_id
    await session.flush()
    await announce(session, loan, "export.items_accounted", _items_event(loan, items, body.outcome), now=now)
    await caller.audit(
        session,
        Action.EXPORT_STEP,
        "loan",
        [loan.loan_id, attestation.attestation_id],
        reason=f"attested_{body.outcome}",
    )
    return AttestationRead.model_validate(attestation, from_attributes=True)


async def list_attestations(session: AsyncSession, caller: Caller, loan_id: UUID) -> AttestationList:
    await apply_record_rules(session, caller.principal)
    loan = await load_loan(session, caller, loan_id)
    attestations = await repository.attestations_of(session, loan.loan_id)
    outstanding = await repository.count_lent(session, loan.loan_id)
    await caller.audit(session, Action.READ, "loan", [loan.loan_id], reason="attestations")
    return AttestationList(
        loan_id=loan_id,
        attestations=[AttestationRead.model_validate(a, from_attributes=True) for a in attestations],
        outstanding=outstanding,
    )


async def discrepancies(session: AsyncSession, caller: Caller, loan_id: UUID) -> Discrepancies:
    """Items not yet attested, and notices the institute has not acknowledged."""
    today = caller.now().astimezone(HELSINKI).date()
    loan = await load_loan(session, caller, loan_id)
    lent = await repository.lent_items(session, loan.loan_id)
    unacknowledged = await repository.unacknowledged_notices(session, loan.loan_id)
    await caller.audit(session, Action.READ, "loan", [loan.loan_id], reason="discrepancies")
    found = [Discrepancy(item_id=item.item_id, status=item.status, problem="not_attested") for item in lent]
    found += [
        Discrepancy(item_id=item_id, status=status, problem="notice_unacknowledged")
        for item_id, status in unacknowledged
    ]
    return Discrepancies(
        loan_id=loan_id,
        due_on=loan.due_on,
        overdue=bool(lent) and loan.due_on is not None and today > loan.due_on,
        discrepancies=found,
    )


async def close_loan(session: AsyncSession, caller: Caller, loan_id: UUID) -> LoanRead:
    """Close a loan: only once every item is returned or destroyed (or nothing was ever delivered)."""
    now = caller.now()
    loan = await load_loan(session, caller, loan_id, lock=True)
    lifecycle.check(lifecycle.CLOSE, loan)
    if outstanding := await repository.count_lent(session, loan.loan_id):
        raise ApiError.field(
            409, "items", f"{outstanding} item(s) are neither returned nor destroyed; see the discrepancies"
        )
    previous = lifecycle.move(lifecycle.CLOSE, loan)
    loan.closed_at = now
    loan.closed_by = caller.actor
    await session.flush()
    await announce(session, loan, "export.loan_changed", _status_changed(loan, previous), now=now)
    await caller.audit(session, Action.EXPORT_STEP, "loan", [loan.loan_id], reason="closed")
    await session.refresh(loan)
    return _read(loan)

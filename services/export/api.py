"""Export's HTTP routes for a loan's life: the agreement and its approval, the selection of recordings, the
delivery, the institute's attestations, discrepancies and the close-out.

Who may call each route is in shared/security/authorization.yaml; an institute sees only its own loans (in the
query, and by row-level security under the sailo_institute database role).
"""

from __future__ import annotations

import collections
import contextlib
import uuid
from datetime import date
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from sqlalchemy import delete, func, select

from services.export.loans import (
    LIST_BODY_LIMIT,
    Authorized,
    actor,
    announce,
    audit,
    load_loan,
    own_loans,
    selected_items,
)
from services.export.models import Attestation, Loan, LoanItem, Notice
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
from shared.app import runtime
from shared.audit.chain import Action
from shared.platform.clock import HELSINKI
from shared.platform.db import bulk_insert
from shared.platform.errors import ApiError
from shared.platform.http import json_body, json_body_openapi, problem_responses
from shared.policy.registry import PolicyRegistry
from shared.security.access import apply_record_rules
from shared.security.auth import Role

router = APIRouter(prefix="/v1", tags=["loans"])


def _read(loan: Loan) -> LoanRead:
    return LoanRead.model_validate(loan, from_attributes=True)


@router.post(
    "/loans",
    status_code=201,
    response_model=LoanRead,
    summary="Set up a loan agreement with a research institute",
    responses={
        201: {
            "description": "The loan, as a draft until a second person approves it",
            "links": {
                "GetLoan": {
                    "operationRef": "#/paths/~1v1~1loans~1{loan_id}/get",
                    "parameters": {"loan_id": "$response.body#/loan_id"},
                }
            },
        },
        **problem_responses(401, 403, 413, 415, 422),
    },
    openapi_extra=json_body_openapi(LoanCreate),
)
async def create_loan(request: Request, principal: Authorized) -> LoanRead:
    body = await json_body(request, LoanCreate)
    async with runtime(request).sessionmaker() as session:
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
            status="draft",
            created_by=actor(request, principal),
        )
        session.add(loan)
        await session.flush()
        await audit(request, session, principal, Action.CREATE, [loan.loan_id])
        await session.commit()
        await session.refresh(loan)
        return _read(loan)


@router.get(
    "/loans",
    response_model=LoanList,
    summary="List loans (an institute sees only its own)",
    responses=problem_responses(401, 403),
)
async def list_loans(request: Request, principal: Authorized) -> LoanList:
    async with runtime(request).sessionmaker() as session:
        await apply_record_rules(session, principal)
        loans = list((await session.scalars(own_loans(principal).order_by(Loan.created_at))).all())
        await audit(request, session, principal, Action.SEARCH, [loan.loan_id for loan in loans])
        await session.commit()
    return LoanList(loans=[_read(loan) for loan in loans])


@router.get(
    "/loans/{loan_id}",
    response_model=LoanRead,
    summary="Read one loan (an institute only its own)",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_loan(request: Request, loan_id: UUID, principal: Authorized) -> LoanRead:
    async with runtime(request).sessionmaker() as session:
        await apply_record_rules(session, principal)
        loan = await load_loan(request, session, principal, loan_id)
        await audit(request, session, principal, Action.READ, [loan.loan_id])
        await session.commit()
        return _read(loan)


@router.post(
    "/loans/{loan_id}/approval",
    response_model=LoanRead,
    summary="Approve a loan: a second research officer, never the one who set it up (four eyes)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def approve_loan(request: Request, loan_id: UUID, principal: Authorized) -> LoanRead:
    approver = actor(request, principal)
    async with runtime(request).sessionmaker() as session:
        loan = await load_loan(request, session, principal, loan_id, lock=True)
        if loan.status != "draft":
            raise ApiError.field(409, "status", f"a loan that is {loan.status} cannot be approved")
        if loan.created_by == approver:
            # Nothing leaves on one person's word: the agreement is checked by a second authorised person.
            raise ApiError.field(
                409, "approver", "the loan must be approved by someone other than who set it up"
            )
        now = runtime(request).clock.now()
        loan.status = "approved"
        loan.approved_by = approver
        loan.approved_at = now
        await session.flush()
        await announce(
            session,
            loan,
            "export.loan_changed",
            {
                "loan_id": loan.loan_id,
                "institute_id": loan.institute_id,
                "status": "approved",
                "previous_status": "draft",
            },
            now=now,
        )
        await audit(request, session, principal, Action.EXPORT_STEP, [loan.loan_id])
        await session.commit()
        await session.refresh(loan)
        return _read(loan)


# -- selection ----------------------------------------------------------------------------------------------


def _not_delivered(loan: Loan, step: str) -> None:
    if loan.status == "draft":
        # Four eyes first: nothing is chosen, packed or handed over on one person's word.
        raise ApiError.field(409, "status", f"the loan must be approved before its {step}")
    if loan.status != "approved":
        raise ApiError.field(409, "status", f"a loan that is {loan.status} cannot change its {step}")


@router.post(
    "/loans/{loan_id}/selection",
    response_model=SelectionRead,
    summary="Select the recordings of an approved loan; default exclusions are counted, overrides recorded",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(SelectionCreate),
)
async def select_recordings(request: Request, loan_id: UUID, principal: Authorized) -> SelectionRead:
    body = await json_body(request, SelectionCreate, limit=LIST_BODY_LIMIT)
    policies: PolicyRegistry = request.app.state.policies
    allowed = set(lending_registers(policies))
    for index, register in enumerate(body.registers):
        if register not in allowed:
            raise ApiError.field(
                422,
                f"body.registers.{index}",
                "the register's privacy notice allows no research loans"
                if register in policies
                else "no such register",
            )
    now = runtime(request).clock.now()
    officer = actor(request, principal)
    async with runtime(request).sessionmaker() as session:
        loan = await load_loan(request, session, principal, loan_id, lock=True)
        _not_delivered(loan, "selection")
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
        overrides = [
            Override(contact_ref=o.contact_ref, justification=o.justification) for o in body.overrides
        ]
        selection = await select_items(
            session, criteria, study_ends_on=loan.study_ends_on, overrides=overrides
        )
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
        await session.execute(delete(LoanItem).where(LoanItem.loan_id == loan.loan_id))
        if selection.chosen:
            await bulk_insert(
                session,
                LoanItem,
                [
                    {
                        "item_id": uuid.uuid4(),
                        "loan_id": loan.loan_id,
                        "contact_ref": chosen.contact_ref,
                        "artifact_class": RECORDING,
                        "register": chosen.register,
                        "overridden_exclusion": chosen.overridden_exclusion,
                        "override_justification": chosen.override_justification,
                        "override_by": officer if chosen.overridden_exclusion else None,
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
        await audit(request, session, principal, Action.EXPORT_STEP, [loan.loan_id], reason="selection")
        # Which contacts a loan may disclose is itself worth a trail: their pseudonyms, never who they are.
        chosen_refs = [chosen.contact_ref for chosen in selection.chosen]
        if chosen_refs:
            await audit(
                request,
                session,
                principal,
                Action.EXPORT_STEP,
                chosen_refs,
                object_type="contact",
                reason="selected_for_loan",
            )
        await session.commit()
    if old_package is not None:
        with contextlib.suppress(Exception):  # unreadable without its key, which the row no longer holds
            await request.app.state.blobs.delete(old_package)
    return SelectionRead(
        loan_id=loan_id,
        selected=len(selection.chosen),
        candidates=selection.candidates,
        excluded=selection.excluded,
        overridden=selection.overridden,
        seed=selection.seed,
        selected_at=now,
    )


@router.get(
    "/loans/{loan_id}/items",
    response_model=ItemList,
    summary="The loan's items and their status (an institute sees only the items' pseudonyms)",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_items(request: Request, loan_id: UUID, principal: Authorized) -> ItemList:
    async with runtime(request).sessionmaker() as session:
        await apply_record_rules(session, principal)
        loan = await load_loan(request, session, principal, loan_id)
        items = (
            await session.scalars(
                select(LoanItem).where(LoanItem.loan_id == loan.loan_id).order_by(LoanItem.item_id)
            )
        ).all()
        await audit(request, session, principal, Action.READ, [loan.loan_id], reason="items")
        await session.commit()
    institute = principal.role is Role.INSTITUTE
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


# -- delivery, attestations, close-out ------------------------------------------------------------------------


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


@router.post(
    "/loans/{loan_id}/delivery",
    response_model=LoanRead,
    summary="Record that the package was handed to the institute: its items are lent until the study ends",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def deliver(request: Request, loan_id: UUID, principal: Authorized) -> LoanRead:
    now = runtime(request).clock.now()
    async with runtime(request).sessionmaker() as session:
        loan = await load_loan(request, session, principal, loan_id, lock=True)
        _not_delivered(loan, "delivery")
        if loan.package_blob_key is None:
            raise ApiError.field(409, "package", "build the loan's package before delivering it")
        items = await selected_items(session, loan)
        if not items:
            raise ApiError.field(409, "items", "the loan has no selected items left to deliver")
        # An item withdrawn after the package was built (restricted, erased, its retention ended) is still in
        # the package: it must be built again without it before anything is handed over.
        packed = {str(entry["item_id"]) for entry in (loan.manifest or {}).get("items", [])}
        if stale := len(packed - {str(item.item_id) for item in items}):
            raise ApiError.field(
                409,
                "package",
                f"{stale} item(s) in the package were withdrawn since; build the package again",
            )
        loan.status = "delivered"
        loan.delivered_at = now
        loan.lent_on = now.astimezone(HELSINKI).date()
        loan.due_on = loan.study_ends_on
        for item in items:
            item.status = "lent"
        await session.flush()
        await announce(session, loan, "export.items_lent", _items_event(loan, items, "lent"), now=now)
        await announce(
            session,
            loan,
            "export.loan_changed",
            {
                "loan_id": loan.loan_id,
                "institute_id": loan.institute_id,
                "status": "delivered",
                "previous_status": "approved",
            },
            now=now,
        )
        await audit(request, session, principal, Action.EXPORT_STEP, [loan.loan_id], reason="delivered")
        await session.commit()
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


@router.post(
    "/loans/{loan_id}/attestations",
    status_code=201,
    response_model=AttestationRead,
    summary="The institute attests that items (or the whole loan) were returned or destroyed",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(AttestationCreate),
)
async def attest(request: Request, loan_id: UUID, principal: Authorized) -> AttestationRead:
    body = await json_body(request, AttestationCreate, limit=LIST_BODY_LIMIT)
    now = runtime(request).clock.now()
    async with runtime(request).sessionmaker() as session:
        await apply_record_rules(session, principal)
        loan = await load_loan(request, session, principal, loan_id)
        if loan.status != "delivered":
            raise ApiError.field(409, "status", f"a loan that is {loan.status} takes no attestations")
        _checked_attestation(body, loan, now.astimezone(HELSINKI).date())
        query = select(LoanItem).where(LoanItem.loan_id == loan.loan_id)
        if body.items is not None:
            query = query.where(LoanItem.item_id.in_(body.items))
        items = list((await session.scalars(query.order_by(LoanItem.item_id).with_for_update())).all())
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
            attested_by=actor(request, principal),
            attested_at=now,
        )
        session.add(attestation)
        for item in items:
            item.status = body.outcome
            item.accounted_at = now
            item.attestation_id = attestation.attestation_id
        await session.flush()
        await announce(
            session, loan, "export.items_accounted", _items_event(loan, items, body.outcome), now=now
        )
        await audit(
            request,
            session,
            principal,
            Action.EXPORT_STEP,
            [loan.loan_id, attestation.attestation_id],
            reason=f"attested_{body.outcome}",
        )
        await session.commit()
        return AttestationRead.model_validate(attestation, from_attributes=True)


@router.get(
    "/loans/{loan_id}/attestations",
    response_model=AttestationList,
    summary="The institute's attestations for a loan, and how many items are still out",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_attestations(request: Request, loan_id: UUID, principal: Authorized) -> AttestationList:
    async with runtime(request).sessionmaker() as session:
        await apply_record_rules(session, principal)
        loan = await load_loan(request, session, principal, loan_id)
        attestations = (
            await session.scalars(
                select(Attestation)
                .where(Attestation.loan_id == loan.loan_id)
                .order_by(Attestation.attested_at)
            )
        ).all()
        outstanding = await session.scalar(
            select(func.count()).where(LoanItem.loan_id == loan.loan_id, LoanItem.status == "lent")
        )
        await audit(request, session, principal, Action.READ, [loan.loan_id], reason="attestations")
        await session.commit()
    return AttestationList(
        loan_id=loan_id,
        attestations=[AttestationRead.model_validate(a, from_attributes=True) for a in attestations],
        outstanding=outstanding or 0,
    )


@router.get(
    "/loans/{loan_id}/discrepancies",
    response_model=Discrepancies,
    summary="Items not yet attested, and notices the institute has not acknowledged",
    responses=problem_responses(401, 403, 404, 422),
)
async def discrepancies(request: Request, loan_id: UUID, principal: Authorized) -> Discrepancies:
    today = runtime(request).clock.now().astimezone(HELSINKI).date()
    async with runtime(request).sessionmaker() as session:
        loan = await load_loan(request, session, principal, loan_id)
        lent = (
            await session.scalars(
                select(LoanItem)
                .where(LoanItem.loan_id == loan.loan_id, LoanItem.status == "lent")
                .order_by(LoanItem.item_id)
            )
        ).all()
        unacknowledged = (
            await session.execute(
                select(Notice.item_id, LoanItem.status)
                .join(LoanItem, LoanItem.item_id == Notice.item_id)
                .where(Notice.loan_id == loan.loan_id, Notice.acknowledged_at.is_(None))
                .order_by(Notice.item_id)
            )
        ).all()
        await audit(request, session, principal, Action.READ, [loan.loan_id], reason="discrepancies")
        await session.commit()
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


@router.post(
    "/loans/{loan_id}/closure",
    response_model=LoanRead,
    summary="Close a loan: only once every item is returned or destroyed (or nothing was ever delivered)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def close_loan(request: Request, loan_id: UUID, principal: Authorized) -> LoanRead:
    now = runtime(request).clock.now()
    async with runtime(request).sessionmaker() as session:
        loan = await load_loan(request, session, principal, loan_id, lock=True)
        if loan.status == "closed":
            raise ApiError.field(409, "status", "the loan is already closed")
        outstanding = await session.scalar(
            select(func.count()).where(LoanItem.loan_id == loan.loan_id, LoanItem.status == "lent")
        )
        if outstanding:
            raise ApiError.field(
                409,
                "items",
                f"{outstanding} item(s) are neither returned nor destroyed; see the discrepancies",
            )
        previous = loan.status
        loan.status = "closed"
        loan.closed_at = now
        loan.closed_by = actor(request, principal)
        await session.flush()
        await announce(
            session,
            loan,
            "export.loan_changed",
            {
                "loan_id": loan.loan_id,
                "institute_id": loan.institute_id,
                "status": "closed",
                "previous_status": previous,
            },
            now=now,
        )
        await audit(request, session, principal, Action.EXPORT_STEP, [loan.loan_id], reason="closed")
        await session.commit()
        await session.refresh(loan)
        return _read(loan)

"""Export's HTTP routes: loan agreements with research institutes.

Who may call each route is in shared/authorization.yaml; an institute sees only its own loans (in the query, and
by row-level security under the sailo_institute database role).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.export.models import Loan
from services.export.schemas import LoanCreate, LoanList, LoanRead
from shared.access import apply_record_rules, authorize
from shared.audit import Action
from shared.auditlog import actor_ref, record, record_not_found
from shared.auth import Principal, Role
from shared.crypto import BlindIndex
from shared.http import (
    ApiError,
    json_body,
    json_body_openapi,
    problem_responses,
)
from shared.runtime import runtime

SERVICE = "export"
router = APIRouter(prefix="/v1", tags=["loans"])
Authorized = Annotated[Principal, Depends(authorize(SERVICE))]


def _actor(request: Request, principal: Principal) -> UUID:
    blind_index: BlindIndex = request.app.state.blind_index
    return actor_ref(blind_index, principal.subject)


def _read(loan: Loan) -> LoanRead:
    return LoanRead.model_validate(loan, from_attributes=True)


async def _audit(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    action: Action,
    loan_ids: list[UUID],
) -> None:
    await record(
        session,
        actor=_actor(request, principal),
        role=principal.role.value,
        action=action,
        object_type="loan",
        object_ids=loan_ids,
        service=SERVICE,
        occurred_at=runtime(request).clock.now(),
    )


async def _load(
    request: Request, session: AsyncSession, principal: Principal, loan_id: UUID, *, lock: bool = False
) -> Loan:
    """The loan the caller may see (an institute only its own); a missing one is audited and answered 404."""
    query = _own_loans(principal).where(Loan.loan_id == loan_id)
    loan: Loan | None = await session.scalar(query.with_for_update() if lock else query)
    if loan is None:
        await session.rollback()
        rt = runtime(request)
        await record_not_found(
            rt.sessionmaker,
            actor=_actor(request, principal),
            role=principal.role.value,
            object_type="loan",
            service=SERVICE,
            occurred_at=rt.clock.now(),
        )
        raise ApiError.field(404, "loan_id", "no such loan", title="Loan not found")
    return loan


def _own_loans(principal: Principal) -> Any:
    query = select(Loan)
    if principal.role is Role.INSTITUTE:
        query = query.where(Loan.institute_id == (principal.institute_id or ""))
    return query


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
            created_by=_actor(request, principal),
        )
        session.add(loan)
        await session.flush()
        await _audit(request, session, principal, Action.CREATE, [loan.loan_id])
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
        loans = list((await session.scalars(_own_loans(principal).order_by(Loan.created_at))).all())
        await _audit(request, session, principal, Action.SEARCH, [loan.loan_id for loan in loans])
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
        loan = await _load(request, session, principal, loan_id)
        await _audit(request, session, principal, Action.READ, [loan.loan_id])
        await session.commit()
        return _read(loan)


@router.post(
    "/loans/{loan_id}/approval",
    response_model=LoanRead,
    summary="Approve a loan: a second research officer, never the one who set it up (four eyes)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def approve_loan(request: Request, loan_id: UUID, principal: Authorized) -> LoanRead:
    approver = _actor(request, principal)
    async with runtime(request).sessionmaker() as session:
        loan = await _load(request, session, principal, loan_id, lock=True)
        if loan.status != "draft":
            raise ApiError.field(409, "status", f"a loan that is {loan.status} cannot be approved")
        if loan.created_by == approver:
            # Nothing leaves on one person's word: the agreement is checked by a second authorised person.
            raise ApiError.field(
                409, "approver", "the loan must be approved by someone other than who set it up"
            )
        loan.status = "approved"
        loan.approved_by = approver
        loan.approved_at = runtime(request).clock.now()
        await session.flush()
        await _audit(request, session, principal, Action.EXPORT_STEP, [loan.loan_id])
        await session.commit()
        await session.refresh(loan)
        return _read(loan)

"""Export's HTTP routes for a loan's life: the agreement and its approval, the selection of recordings, the
delivery, the institute's attestations, discrepancies and the close-out (services.export.service.loans).

An institute sees only its own loans (in the query, and by row-level security under the sailo_institute
database role).
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request

from services.export.api.deps import LIST_BODY_LIMIT, CallerDep
from services.export.schemas import (
    AttestationCreate,
    AttestationList,
    AttestationRead,
    Discrepancies,
    ItemList,
    LoanCreate,
    LoanList,
    LoanRead,
    SelectionCreate,
    SelectionRead,
)
from services.export.service import loans
from shared.app import SessionDep
from shared.platform.http import json_body, json_body_openapi, problem_responses

router = APIRouter(prefix="/v1", tags=["loans"])


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
async def create_loan(request: Request, session: SessionDep, caller: CallerDep) -> LoanRead:
    body = await json_body(request, LoanCreate)
    return await loans.create_loan(session, caller, body)


@router.get(
    "/loans",
    response_model=LoanList,
    summary="List loans (an institute sees only its own)",
    responses=problem_responses(401, 403),
)
async def list_loans(session: SessionDep, caller: CallerDep) -> LoanList:
    return await loans.list_loans(session, caller)


@router.get(
    "/loans/{loan_id}",
    response_model=LoanRead,
    summary="Read one loan (an institute only its own)",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_loan(loan_id: UUID, session: SessionDep, caller: CallerDep) -> LoanRead:
    return await loans.get_loan(session, caller, loan_id)


@router.post(
    "/loans/{loan_id}/approval",
    response_model=LoanRead,
    summary="Approve a loan: a second research officer, never the one who set it up (four eyes)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def approve_loan(loan_id: UUID, session: SessionDep, caller: CallerDep) -> LoanRead:
    return await loans.approve_loan(session, caller, loan_id)


@router.post(
    "/loans/{loan_id}/selection",
    response_model=SelectionRead,
    summary="Select the recordings of an approved loan; default exclusions are counted, overrides recorded",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(SelectionCreate),
)
async def select_recordings(
    request: Request, loan_id: UUID, session: SessionDep, caller: CallerDep
) -> SelectionRead:
    body = await json_body(request, SelectionCreate, limit=LIST_BODY_LIMIT)
    return await loans.select_recordings(
        session, caller, loan_id, body, policies=request.app.state.policies, blobs=request.app.state.blobs
    )


@router.get(
    "/loans/{loan_id}/items",
    response_model=ItemList,
    summary="The loan's items and their status (an institute sees only the items' pseudonyms)",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_items(loan_id: UUID, session: SessionDep, caller: CallerDep) -> ItemList:
    return await loans.list_items(session, caller, loan_id)


@router.post(
    "/loans/{loan_id}/delivery",
    response_model=LoanRead,
    summary="Record that the package was handed to the institute: its items are lent until the study ends",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def deliver(loan_id: UUID, session: SessionDep, caller: CallerDep) -> LoanRead:
    return await loans.deliver(session, caller, loan_id)


@router.post(
    "/loans/{loan_id}/attestations",
    status_code=201,
    response_model=AttestationRead,
    summary="The institute attests that items (or the whole loan) were returned or destroyed",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(AttestationCreate),
)
async def attest(request: Request, loan_id: UUID, session: SessionDep, caller: CallerDep) -> AttestationRead:
    body = await json_body(request, AttestationCreate, limit=LIST_BODY_LIMIT)
    return await loans.attest(session, caller, loan_id, body)


@router.get(
    "/loans/{loan_id}/attestations",
    response_model=AttestationList,
    summary="The institute's attestations for a loan, and how many items are still out",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_attestations(loan_id: UUID, session: SessionDep, caller: CallerDep) -> AttestationList:
    return await loans.list_attestations(session, caller, loan_id)


@router.get(
    "/loans/{loan_id}/discrepancies",
    response_model=Discrepancies,
    summary="Items not yet attested, and notices the institute has not acknowledged",
    responses=problem_responses(401, 403, 404, 422),
)
async def discrepancies(loan_id: UUID, session: SessionDep, caller: CallerDep) -> Discrepancies:
    return await loans.discrepancies(session, caller, loan_id)


@router.post(
    "/loans/{loan_id}/closure",
    response_model=LoanRead,
    summary="Close a loan: only once every item is returned or destroyed (or nothing was ever delivered)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def close_loan(loan_id: UUID, session: SessionDep, caller: CallerDep) -> LoanRead:
    return await loans.close_loan(session, caller, loan_id)

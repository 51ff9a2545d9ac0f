"""The contacts found for a request: the search through the blind index and the caseworker's decision on
each."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request

from services.dsr.api.deps import CallerDep
from services.dsr.schemas import CandidateDecision, CandidateList, CandidateRead
from services.dsr.service import lifecycle
from shared.app import SessionDep
from shared.platform.http import json_body, json_body_openapi, problem_responses

router = APIRouter(prefix="/v1", tags=["requests"])


@router.post(
    "/requests/{request_id}/search",
    response_model=CandidateList,
    summary="Find the requester's contacts through the blind index (identity must be verified first)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def search(request: Request, request_id: UUID, session: SessionDep, caller: CallerDep) -> CandidateList:
    state = request.app.state
    return await lifecycle.search(
        session, caller, request_id, keystore=state.keystore, blind_index=state.blind_index
    )


@router.get(
    "/requests/{request_id}/candidates",
    response_model=CandidateList,
    summary="The contacts found for a request, each pending, confirmed or rejected",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_candidates(request_id: UUID, session: SessionDep, caller: CallerDep) -> CandidateList:
    return await lifecycle.candidates(session, caller, request_id)


@router.post(
    "/requests/{request_id}/candidates/{contact_ref}",
    response_model=CandidateRead,
    summary="Confirm that a found contact is the requester's, or reject it",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(CandidateDecision),
)
async def decide_candidate(
    request: Request, request_id: UUID, contact_ref: UUID, session: SessionDep, caller: CallerDep
) -> CandidateRead:
    body = await json_body(request, CandidateDecision)
    return await lifecycle.decide_candidate(
        session, caller, request_id, contact_ref, confirmed=body.confirmed
    )

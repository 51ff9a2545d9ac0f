"""The queue and the steps that move a request through its life: registering it, proving the requester's
identity, waiting, extending the time limit, and setting the day a restriction is lifted."""

from __future__ import annotations

import base64
from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request

from services.dsr.api.deps import CallerDep
from services.dsr.schemas import (
    ExtensionCreate,
    IdentityVerification,
    RequestCreate,
    RequesterRead,
    RequestList,
    RequestRead,
    RestrictionLift,
    StatusChange,
    StepWithLetter,
)
from services.dsr.service import lifecycle
from shared.app import SessionDep
from shared.platform.errors import ApiError
from shared.platform.http import json_body, json_body_openapi, problem_responses
from shared.policy.model import RightName

router = APIRouter(prefix="/v1", tags=["requests"])


@router.post(
    "/requests",
    status_code=201,
    response_model=RequestRead,
    summary="Register a data-subject request as it arrived",
    responses={
        201: {
            "description": "The request, with its case number and statutory last day",
            "links": {
                "GetRequest": {
                    "operationRef": "#/paths/~1v1~1requests~1{request_id}/get",
                    "parameters": {"request_id": "$response.body#/request_id"},
                }
            },
        },
        **problem_responses(401, 403, 409, 413, 415, 422),
    },
    openapi_extra=json_body_openapi(RequestCreate),
)
async def create_request(request: Request, session: SessionDep, caller: CallerDep) -> RequestRead:
    body = await json_body(request, RequestCreate)
    state = request.app.state
    return await lifecycle.register_request(
        session,
        caller,
        keystore=state.keystore,
        policies=state.policies,
        request_type=RightName(body.request_type),
        registers=body.registers,
        requester=[lifecycle.Identifier(i.kind, i.value) for i in body.requester],
        details=body.details.model_dump(exclude_none=True) if body.details else None,
        restriction_ground=body.restriction_ground,
        received_at=body.received_at,
    )


# Days as the calendar writes them: a plain date parser would also take a number as seconds since 1970.
_DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _day(field: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError.field(422, field, "not a calendar day (YYYY-MM-DD)") from None


def _cursor(value: str | None) -> tuple[date, str] | None:
    if value is None:
        return None
    try:
        day, _, case_number = base64.urlsafe_b64decode(value.encode()).decode().partition("|")
        return date.fromisoformat(day), case_number
    except (ValueError, UnicodeDecodeError):
        raise ApiError.field(422, "cursor", "not a cursor this API gave") from None


def _next_cursor(after: tuple[date, str] | None) -> str | None:
    if after is None:
        return None
    day, case_number = after
    return base64.urlsafe_b64encode(f"{day.isoformat()}|{case_number}".encode()).decode()


@router.get(
    "/requests",
    response_model=RequestList,
    summary="The queue: requests by last day, filtered by status, type and due date",
    responses=problem_responses(401, 403, 422),
)
async def list_requests(
    session: SessionDep,
    caller: CallerDep,
    status: Annotated[str | None, Query(max_length=24, pattern=r"^[a-z_]+$")] = None,
    request_type: Annotated[str | None, Query(max_length=20, pattern=r"^[a-z_]+$")] = None,
    due_before: Annotated[
        str | None, Query(description="last day on or before (YYYY-MM-DD)", pattern=_DAY)
    ] = None,
    due_after: Annotated[
        str | None, Query(description="last day on or after (YYYY-MM-DD)", pattern=_DAY)
    ] = None,
    open_only: Annotated[bool, Query(description="only requests still to be answered")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> RequestList:
    after = _cursor(cursor)
    page = await lifecycle.list_requests(
        session,
        caller,
        status=status,
        request_type=request_type,
        due_before=_day("due_before", due_before),
        due_after=_day("due_after", due_after),
        open_only=open_only,
        after=after,
        limit=limit,
    )
    return RequestList(requests=page.requests, next_cursor=_next_cursor(page.next_after))


@router.get(
    "/requests/{request_id}",
    response_model=RequestRead,
    summary="One request: status, last day, decisions with their legal grounds",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_request(request_id: UUID, session: SessionDep, caller: CallerDep) -> RequestRead:
    return await lifecycle.get_request(session, caller, request_id)


@router.get(
    "/requests/{request_id}/requester",
    response_model=RequesterRead,
    summary="The requester's identifiers and own words (the field and change of a rectification), unsealed",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_requester(
    request: Request, request_id: UUID, session: SessionDep, caller: CallerDep
) -> RequesterRead:
    return await lifecycle.get_requester(session, caller, request_id, keystore=request.app.state.keystore)


@router.post(
    "/requests/{request_id}/identity",
    response_model=RequestRead,
    summary="Record how the requester's identity was proven",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(IdentityVerification),
)
async def verify_identity(
    request: Request, request_id: UUID, session: SessionDep, caller: CallerDep
) -> RequestRead:
    body = await json_body(request, IdentityVerification)
    return await lifecycle.verify_identity(session, caller, request_id, method=body.method)


@router.post(
    "/requests/{request_id}/extension",
    response_model=StepWithLetter,
    summary="Extend the time limit by one or two months (Art. 12(3)), with reasons",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(ExtensionCreate),
)
async def extend(
    request: Request, request_id: UUID, session: SessionDep, caller: CallerDep
) -> StepWithLetter:
    body = await json_body(request, ExtensionCreate)
    return await lifecycle.extend(
        session,
        caller,
        request_id,
        months=body.months,
        reasons=body.reasons,
        policies=request.app.state.policies,
    )


@router.post(
    "/requests/{request_id}/status",
    response_model=RequestRead,
    summary="Wait for the requester, resume, record a withdrawal, or refuse an unverifiable request",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(StatusChange),
)
async def change_status(
    request: Request, request_id: UUID, session: SessionDep, caller: CallerDep
) -> RequestRead:
    body = await json_body(request, StatusChange)
    return await lifecycle.change_status(session, caller, request_id, status=body.status)


@router.post(
    "/requests/{request_id}/restriction/lift",
    response_model=StepWithLetter,
    summary="Set the day a restriction is lifted and get the letter telling the requester first (Art. 18(3))",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(RestrictionLift),
)
async def lift_restriction(
    request: Request, request_id: UUID, session: SessionDep, caller: CallerDep
) -> StepWithLetter:
    body = await json_body(request, RestrictionLift)
    return await lifecycle.schedule_lift(
        session,
        caller,
        request_id,
        lifts_on=body.lifts_on,
        reason=body.reason,
        policies=request.app.state.policies,
    )

"""Legal holds: place, list, lift."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request

from services.retention.api.common import BlindIndexDep, CallerDep, PoliciesDep, check_register, new_router
from services.retention.schemas import HoldCreate, HoldList, HoldRead
from services.retention.service import holds
from shared.app import SessionDep
from shared.platform.http import json_body, json_body_openapi, problem_responses

router = new_router()


@router.post(
    "/holds",
    status_code=201,
    response_model=HoldRead,
    summary="Place a legal hold on a contact, a case, a subject or a register",
    openapi_extra=json_body_openapi(HoldCreate),
    responses={
        201: {
            "description": "Placed; nothing it covers is deleted until it is lifted or ends",
            "links": {
                "LiftHold": {
                    "operationRef": "#/paths/~1v1~1holds~1{hold_id}~1lift/post",
                    "parameters": {"hold_id": "$response.body#/hold_id"},
                }
            },
        },
        **problem_responses(401, 403, 413, 415, 422),
    },
)
async def create_hold(
    request: Request,
    caller: CallerDep,
    session: SessionDep,
    blind_index: BlindIndexDep,
    policies: PoliciesDep,
) -> HoldRead:
    body = await json_body(request, HoldCreate)
    check_register(policies, body.register_id)
    return await holds.create_hold(session, caller, blind_index=blind_index, body=body)


@router.get(
    "/holds",
    response_model=HoldList,
    summary="Holds, newest first",
    responses=problem_responses(401, 403, 422),
)
async def list_holds(
    caller: CallerDep, session: SessionDep, active: Annotated[bool | None, Query()] = None
) -> HoldList:
    return HoldList(holds=await holds.list_holds(session, caller, active=active))


HoldIdPath = Annotated[str, Path(pattern=r"^H-[1-9][0-9]{0,17}$", description="e.g. H-12")]


@router.post(
    "/holds/{hold_id}/lift",
    response_model=HoldRead,
    summary="Lift a hold; what it kept goes at the next sweep if due",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def lift(hold_id: HoldIdPath, caller: CallerDep, session: SessionDep) -> HoldRead:
    return await holds.lift(session, caller, hold_number=int(hold_id.removeprefix("H-")))

"""Export's HTTP routes for the disclosure register: every research loan and every other disclosure, for
auditors, and the record of a disclosure outside research loans (services.export.service.disclosures)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.export.api.deps import LIST_BODY_LIMIT, CallerDep
from services.export.schemas import DisclosureCreate, DisclosureEntry, DisclosureRegister
from services.export.service import disclosures
from shared.app import SessionDep
from shared.platform.errors import ApiError
from shared.platform.http import json_body, json_body_openapi, problem_responses

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
async def record_disclosure(request: Request, session: SessionDep, caller: CallerDep) -> DisclosureEntry:
    body = await json_body(request, DisclosureCreate, limit=LIST_BODY_LIMIT)
    return await disclosures.record_disclosure(session, caller, body, policies=request.app.state.policies)


@router.get(
    "/disclosures",
    response_model=DisclosureRegister,
    summary="The disclosure register: research loans delivered and other disclosures, newest first",
    responses=problem_responses(401, 403, 422),
)
async def disclosure_register(
    session: SessionDep,
    caller: CallerDep,
    register: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")] = None,
    disclosed_from: Day = None,
    disclosed_to: Day = None,
) -> DisclosureRegister:
    first, last = _day(disclosed_from, "disclosed_from"), _day(disclosed_to, "disclosed_to")
    return await disclosures.disclosure_register(session, caller, register=register, first=first, last=last)

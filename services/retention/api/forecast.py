"""The forecast of upcoming deletions and redactions."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from services.retention.api.common import (
    CallerDep,
    PoliciesDep,
    RegisterQuery,
    check_register,
    new_router,
    parse_day,
)
from services.retention.schemas import ForecastRead
from services.retention.service import views
from shared.app import SessionDep
from shared.platform.http import problem_responses

router = new_router()


@router.get(
    "/forecast",
    response_model=ForecastRead,
    summary="Upcoming deletions and redactions per day and class (Helsinki days)",
    responses=problem_responses(401, 403, 422),
)
async def forecast(
    caller: CallerDep,
    session: SessionDep,
    policies: PoliciesDep,
    from_text: Annotated[str, Query(alias="from", pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")],
    to_text: Annotated[str, Query(alias="to", pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")],
    register: RegisterQuery = None,
) -> ForecastRead:
    check_register(policies, register)
    from_day, to_day = parse_day("from", from_text), parse_day("to", to_text)
    assert from_day is not None and to_day is not None
    return await views.forecast(session, caller, register=register, from_day=from_day, to_day=to_day)

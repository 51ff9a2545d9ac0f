"""A contact's schedule: when each part goes, and why it is still kept."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from services.retention.api.common import (
    BlindIndexDep,
    CallerDep,
    PoliciesDep,
    RegisterQuery,
    check_register,
    new_router,
)
from services.retention.schemas import ContactScheduleRead
from services.retention.service import views
from shared.app import SessionDep
from shared.platform.http import problem_responses

router = new_router()


@router.get(
    "/contacts/{contact_id}/schedule",
    response_model=ContactScheduleRead,
    summary="When each part of a contact goes, and why it is still kept",
    responses=problem_responses(401, 403, 404, 422),
)
async def contact_schedule(
    caller: CallerDep,
    session: SessionDep,
    blind_index: BlindIndexDep,
    policies: PoliciesDep,
    contact_id: Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@+=-]+$")],
    register: RegisterQuery = None,
) -> ContactScheduleRead:
    check_register(policies, register)
    return await views.contact_schedule(
        session,
        caller,
        blind_index=blind_index,
        registers=[register] if register else policies.registers(),
        contact_id=contact_id,
    )

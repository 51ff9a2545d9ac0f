"""Export's HTTP routes for notices to institutes: the items they must destroy, stop using or correct early
(services.export.service.notices).

An institute lists the notices of its own loans and acknowledges each; a research officer and an auditor see
every institute's, to follow up the escalated ones.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from services.export.api.deps import CallerDep
from services.export.schemas import NoticeList, NoticeRead, NoticeStatus
from services.export.service import notices
from shared.app import SessionDep
from shared.platform.http import problem_responses

router = APIRouter(prefix="/v1", tags=["notices"])


@router.get(
    "/notices",
    response_model=NoticeList,
    summary="Notices to institutes: lent items to destroy, stop using or note a correction of (Art. 19)",
    responses=problem_responses(401, 403, 422),
)
async def list_notices(
    session: SessionDep,
    caller: CallerDep,
    loan_id: Annotated[UUID | None, Query(description="only this loan's notices")] = None,
    status: Annotated[
        NoticeStatus | None,
        Query(
            description="open: not acknowledged yet (escalated ones included); acknowledged; escalated: not"
            " acknowledged in time and still open"
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> NoticeList:
    """The notices of the caller's loans (an institute's own; every institute's for a research officer or an
    auditor), oldest first. The institute must do what `action` says and then acknowledge each."""
    return await notices.list_notices(
        session, caller, loan_id=loan_id, status=status, limit=limit, offset=offset
    )


@router.post(
    "/notices/{notice_id}/acknowledgement",
    response_model=NoticeRead,
    summary="Acknowledge a notice: the institute has done what it asks",
    responses=problem_responses(401, 403, 404, 422),
)
async def acknowledge_notice(notice_id: UUID, session: SessionDep, caller: CallerDep) -> NoticeRead:
    """Records who acknowledged and when, and announces it. Acknowledging again changes nothing and answers
    the first acknowledgement; another institute's notice is answered exactly like a missing one."""
    return await notices.acknowledge_notice(session, caller, notice_id)

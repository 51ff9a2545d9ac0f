"""Export's HTTP routes for notices to institutes: the items they must destroy, stop using or correct early.

An institute lists the notices of its own loans and acknowledges each; a research officer and an auditor see
every institute's, to follow up the escalated ones. An institute's transaction runs under the sailo_institute
database role, so row-level security keeps other institutes' notices out even of a query that forgot its filter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.export.loans import Authorized, actor, announce, audit, not_found
from services.export.models import Loan, Notice
from services.export.notices import ACTIONS, notice_data
from shared.app import runtime
from shared.audit.chain import Action
from shared.platform.http import problem_responses
from shared.security.access import apply_record_rules
from shared.security.auth import Principal, Role

router = APIRouter(prefix="/v1", tags=["notices"])

NoticeStatus = Literal["open", "acknowledged", "escalated"]


class NoticeRead(BaseModel):
    notice_id: UUID
    loan_id: UUID
    item_id: UUID = Field(description="The item as the package's manifest names it")
    kind: Literal["destroy", "restrict", "restriction_lifted", "rectify"]
    cause: str = Field(description="retention_expired, or the data-subject request's ground (art17_1_a...)")
    action: str = Field(description="What the institute must do")
    status: NoticeStatus = Field(
        description="open until acknowledged; escalated when still open past the time to acknowledge"
    )
    issued_at: datetime
    acknowledged_at: datetime | None
    escalated_at: datetime | None


class NoticeList(BaseModel):
    notices: list[NoticeRead]
    total: int = Field(description="Notices matching the filters, on every page")
    limit: int
    offset: int


def _status(notice: Notice) -> NoticeStatus:
    if notice.acknowledged_at is not None:
        return "acknowledged"
    return "escalated" if notice.escalated_at is not None else "open"


def _read(notice: Notice) -> NoticeRead:
    return NoticeRead.model_validate(
        {
            "notice_id": notice.notice_id,
            "loan_id": notice.loan_id,
            "item_id": notice.item_id,
            "kind": notice.kind,
            "cause": notice.cause,
            "action": ACTIONS[notice.kind],
            "status": _status(notice),
            "issued_at": notice.issued_at,
            "acknowledged_at": notice.acknowledged_at,
            "escalated_at": notice.escalated_at,
        }
    )


def _own_notices(principal: Principal) -> Select[Notice]:
    query = select(Notice)
    if principal.role is Role.INSTITUTE:
        query = query.join(Loan, Loan.loan_id == Notice.loan_id).where(
            Loan.institute_id == (principal.institute_id or "")
        )
    return query


@router.get(
    "/notices",
    response_model=NoticeList,
    summary="Notices to institutes: lent items to destroy, stop using or note a correction of (Art. 19)",
    responses=problem_responses(401, 403, 422),
)
async def list_notices(
    request: Request,
    principal: Authorized,
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
    query = _own_notices(principal)
    if loan_id is not None:
        query = query.where(Notice.loan_id == loan_id)
    if status == "open":
        query = query.where(Notice.acknowledged_at.is_(None))
    elif status == "acknowledged":
        query = query.where(Notice.acknowledged_at.is_not(None))
    elif status == "escalated":
        query = query.where(Notice.acknowledged_at.is_(None), Notice.escalated_at.is_not(None))
    async with runtime(request).sessionmaker() as session:
        await apply_record_rules(session, principal)
        total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
        page = list(
            (
                await session.scalars(
                    query.order_by(Notice.issued_at, Notice.notice_id).limit(limit).offset(offset)
                )
            ).all()
        )
        await audit(
            request,
            session,
            principal,
            Action.SEARCH,
            [notice.notice_id for notice in page],
            object_type="notice",
        )
        await session.commit()
    return NoticeList(notices=[_read(notice) for notice in page], total=total, limit=limit, offset=offset)


@router.post(
    "/notices/{notice_id}/acknowledgement",
    response_model=NoticeRead,
    summary="Acknowledge a notice: the institute has done what it asks",
    responses=problem_responses(401, 403, 404, 422),
)
async def acknowledge_notice(request: Request, notice_id: UUID, principal: Authorized) -> NoticeRead:
    """Records who acknowledged and when, and announces it. Acknowledging again changes nothing and answers
    the first acknowledgement; another institute's notice is answered exactly like a missing one."""
    rt = runtime(request)
    now = rt.clock.now()
    async with rt.sessionmaker() as session:
        await apply_record_rules(session, principal)
        notice = await session.scalar(
            _own_notices(principal).where(Notice.notice_id == notice_id).with_for_update(of=Notice)
        )
        if notice is None:
            raise await not_found(request, principal, session, what="notice", field="notice_id")
        if notice.acknowledged_at is None:
            notice.acknowledged_at = now
            notice.acknowledged_by = actor(request, principal)
            await session.flush()
            await _announce_acknowledgement(session, notice, now=now)
            reason = "notice_acknowledged"
        else:
            reason = "already_acknowledged"
        await audit(
            request,
            session,
            principal,
            Action.EXPORT_STEP,
            [notice.notice_id],
            object_type="notice",
            reason=reason,
        )
        await session.commit()
        return _read(notice)


async def _announce_acknowledgement(session: AsyncSession, notice: Notice, *, now: datetime) -> None:
    loan = await session.scalar(select(Loan).where(Loan.loan_id == notice.loan_id))
    assert loan is not None  # the notice was found through it
    await announce(session, loan, "export.notice_acknowledged", notice_data(notice, loan), now=now)

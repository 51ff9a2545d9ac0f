"""Notices to institutes: what a decision about some contacts does to export's items (withdrawals, notices),
and the institutes' side (listing their notices, acknowledging each).

An institute lists the notices of its own loans and acknowledges each; a research officer and an auditor see
every institute's, to follow up the escalated ones. An institute's transaction runs under the sailo_institute
database role, so row-level security keeps other institutes' notices out even of a query that forgot its filter.

The effects of an event commit in the consumer loop's transaction with its tracking row; the notices are also
unique on (source event, item), so even an effect applied twice issues one notice per item.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from services.export import repository
from services.export.models import Notice
from services.export.notices import ACTIONS, Decision, notice_data
from services.export.schemas import NoticeList, NoticeRead, NoticeStatus
from services.export.service.common import SERVICE, announce, not_found
from shared.app import Caller
from shared.audit.chain import Action
from shared.audit.log import SYSTEM_ROLE, record, system_actor
from shared.platform.logging import get_logger
from shared.security.access import apply_record_rules

log = get_logger(__name__)


# --- What a decision does --------------------------------------------------------------------------------------


async def withdraw_selected(session: AsyncSession, decision: Decision, now: datetime) -> None:
    """Items the decision concerns that are selected but not yet delivered stay behind (when it says so)."""
    if not decision.withdraw:
        return
    withdrawn = await repository.withdraw_selected(session, decision)
    if withdrawn:
        await _audit_system(session, "loan_item", sorted(withdrawn), "withdrawn", now)
        log.info("export.items_withdrawn", items=len(withdrawn), cause=decision.cause)


async def issue_notices(
    session: AsyncSession, decision: Decision, *, source_event_id: UUID, now: datetime
) -> list[Notice]:
    """One notice of `decision.kind` per affected item still lent in a delivered, open loan, each announced and
    all audited; the notices issued (none for an event already applied)."""
    rows = await repository.items_to_notify(session, decision)
    if not rows:
        return []
    notices = await repository.insert_notices(
        session,
        (
            {
                "notice_id": uuid4(),
                "loan_id": loan_id,
                "item_id": item_id,
                "kind": decision.kind,
                "cause": decision.cause,
                "source_event_id": source_event_id,
                "issued_at": now,
            }
            for item_id, loan_id in rows
        ),
    )
    if not notices:
        return []
    loans = await repository.loans_by_id(session, {notice.loan_id for notice in notices})
    for notice in notices:
        loan = loans[notice.loan_id]
        await announce(session, loan, "export.notice_issued", notice_data(notice, loan), now=now)
    await _audit_system(session, "notice", [notice.notice_id for notice in notices], "notice_issued", now)
    log.info("export.notices_issued", notices=len(notices), kind=decision.kind, cause=decision.cause)
    return notices


async def _audit_system(
    session: AsyncSession, object_type: str, object_ids: list[UUID], reason: str, now: datetime
) -> None:
    await record(
        session,
        actor=system_actor(SERVICE),
        role=SYSTEM_ROLE,
        action=Action.EXPORT_STEP,
        object_type=object_type,
        object_ids=object_ids,
        reason=reason,
        service=SERVICE,
        occurred_at=now,
    )


# --- The institutes' side --------------------------------------------------------------------------------------


def _status(notice: Notice) -> NoticeStatus:
    if notice.acknowledged_at is not None:
        return "acknowledged"
    return "escalated" if notice.escalated_at is not None else "open"


def notice_read(notice: Notice) -> NoticeRead:
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


async def list_notices(
    session: AsyncSession,
    caller: Caller,
    *,
    loan_id: UUID | None,
    status: NoticeStatus | None,
    limit: int,
    offset: int,
) -> NoticeList:
    await apply_record_rules(session, caller.principal)
    total, page = await repository.notices_page(
        session, caller.principal, loan_id=loan_id, status=status, limit=limit, offset=offset
    )
    await caller.audit(session, Action.SEARCH, "notice", [notice.notice_id for notice in page])
    return NoticeList(
        notices=[notice_read(notice) for notice in page], total=total, limit=limit, offset=offset
    )


async def acknowledge_notice(session: AsyncSession, caller: Caller, notice_id: UUID) -> NoticeRead:
    """Record who acknowledged and when, and announce it; acknowledging again changes nothing and answers the
    first acknowledgement."""
    now = caller.now()
    await apply_record_rules(session, caller.principal)
    notice = await repository.notice_of(session, caller.principal, notice_id)
    if notice is None:
        raise await not_found(session, caller, what="notice", field="notice_id")
    if notice.acknowledged_at is None:
        notice.acknowledged_at = now
        notice.acknowledged_by = caller.actor
        await session.flush()
        loan = await repository.loan_by_id(session, notice.loan_id)
        assert loan is not None  # the notice was found through it
        await announce(session, loan, "export.notice_acknowledged", notice_data(notice, loan), now=now)
        reason = "notice_acknowledged"
    else:
        reason = "already_acknowledged"
    await caller.audit(session, Action.EXPORT_STEP, "notice", [notice.notice_id], reason=reason)
    return notice_read(notice)

"""Notices to research institutes (GDPR Art. 19), and the DSR flags selection needs, from the events of the
services that decide about a contact's data.

Two consumer groups, one per topic: ``export-notices-retention`` on the retention events (an artifact
crypto-shredded when its retention ended, or on a data subject's erasure) and ``export-notices-dsr`` on the DSR
events (restriction applied or lifted, erasure or upheld objection decided, rectification). For each decision:

- the contact flags (restricted, dsr_hold, objection, erasure) are kept by case number, and a lifted
  restriction clears its case's flags, so selection can leave such contacts out;
- each affected item still ``lent`` in a delivered, open loan gets one notice for its institute (destroy,
  restrict, restriction_lifted, rectify), announced as ``export.notice_issued`` through the outbox, which the
  institute must acknowledge (the loan watch escalates the ones it does not);
- each affected item still only ``selected`` (not delivered) is ``withdrawn``, so it never leaves.

Everything an event causes commits in the consumer loop's transaction with its tracking row; the notices are
also unique on (source event, item), so even an effect applied twice issues one notice per item.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID, uuid4

from sqlalchemy import ColumnElement, and_, exists, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.export.loans import SERVICE, announce
from services.export.models import ContactFlag, Loan, LoanItem, Notice
from shared.audit.chain import Action
from shared.audit.log import SYSTEM_ROLE, record, system_actor
from shared.contracts.domain_events import (
    ArtifactDeletedData,
    DomainEventHandler,
    Received,
    RectifiedData,
    RequestContactsData,
)
from shared.contracts.events import Contract
from shared.platform.clock import Clock
from shared.platform.logging import get_logger

log = get_logger(__name__)

RETENTION_GROUP: Final = "export-notices-retention"
DSR_GROUP: Final = "export-notices-dsr"

HOLDING_GROUNDS: Final = frozenset({"art18_1_c", "art18_1_d"})
"""Restriction grounds under which retention keeps the data for the data subject (legal claims, an objection
being weighed): flagged ``dsr_hold`` rather than ``restricted``."""
RESTRICTION_FLAGS: Final = ("restricted", "dsr_hold")

ACTIONS: Final[Mapping[str, str]] = {
    "destroy": (
        "Destroy this item and every copy of it, then acknowledge this notice and attest the destruction."
    ),
    "restrict": (
        "Stop processing this item: keep it stored but do not use it in the study until a notice lifts the"
        " restriction. Acknowledge this notice."
    ),
    "restriction_lifted": (
        "The restriction on this item is lifted: it may be used again as the agreement allows. Acknowledge"
        " this notice."
    ),
    "rectify": (
        "Details recorded about this item were corrected (the recording itself is unchanged): do not rely on"
        " earlier details of it you may hold. Acknowledge this notice."
    ),
}
"""What the institute must do for each kind of notice, in the words the API shows it."""


@dataclass(frozen=True)
class Decision:
    """What one event asks of export for some contacts' items."""

    kind: str
    """The notice kind for items already lent."""
    cause: str
    contact_refs: list[UUID]
    artifact_class: str | None = None
    """Only items of this class (a deleted artifact); None: every item of the contacts."""
    withdraw: bool = False
    """Whether items selected but not yet delivered must stay behind."""


class NoticeHandler(DomainEventHandler[Contract]):
    """Consumer-loop handler for both topics: each event type it acts on has a function in ``_DECISIONS``;
    any other type on the topic is passed over."""

    wants = Contract
    topic_description = "domain event"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def apply(self, session: AsyncSession, items: list[Received[Contract]]) -> None:
        now = self.clock.now()
        for item in items:
            decide = _DECISIONS.get(item.event.type)
            if decide is None or item.data is None:
                continue
            decision = await decide(session, item.data, now)
            if decision is None or not decision.contact_refs:
                continue
            await _withdraw_selected(session, decision, now)
            await issue_notices(session, decision, source_event_id=item.event.id, now=now)


# --- What each event decides -------------------------------------------------------------------------------


async def _artifact_deleted(session: AsyncSession, data: Contract, now: datetime) -> Decision | None:
    assert isinstance(data, ArtifactDeletedData)
    # A redaction removes identifiers from a transcript's text; only a crypto-shredded artifact is gone.
    if data.method != "crypto-shredding":
        return None
    return Decision(
        kind="destroy",
        cause=data.reason,
        contact_refs=[data.contact_ref],
        artifact_class=data.artifact_class,
        withdraw=True,
    )


async def _restriction_applied(session: AsyncSession, data: Contract, now: datetime) -> Decision | None:
    assert isinstance(data, RequestContactsData)
    flag = "dsr_hold" if data.ground in HOLDING_GROUNDS else "restricted"
    await _flag(session, data.contact_refs, flag, data.case_number, now)
    # Every ground of Art. 18(1) restricts processing, a research study's included: nothing more leaves.
    return Decision(kind="restrict", cause=data.ground, contact_refs=data.contact_refs, withdraw=True)


async def _restriction_lifted(session: AsyncSession, data: Contract, now: datetime) -> Decision | None:
    assert isinstance(data, RequestContactsData)
    await session.execute(
        update(ContactFlag)
        .where(
            ContactFlag.case_number == data.case_number,
            ContactFlag.flag.in_(RESTRICTION_FLAGS),
            ContactFlag.cleared_at.is_(None),
        )
        .values(cleared_at=now)
    )
    return Decision(kind="restriction_lifted", cause=data.ground, contact_refs=data.contact_refs)


async def _erasure_decided(session: AsyncSession, data: Contract, now: datetime) -> Decision | None:
    assert isinstance(data, RequestContactsData)
    flag = "objection" if data.ground.startswith("art21") else "erasure"
    await _flag(session, data.contact_refs, flag, data.case_number, now)
    return Decision(kind="destroy", cause=data.ground, contact_refs=data.contact_refs, withdraw=True)


async def _rectified(session: AsyncSession, data: Contract, now: datetime) -> Decision | None:
    assert isinstance(data, RectifiedData)
    return Decision(kind="rectify", cause=data.ground, contact_refs=data.contact_refs)


_DECISIONS: Final[Mapping[str, Callable[[AsyncSession, Contract, datetime], Awaitable[Decision | None]]]] = {
    "retention.artifact_deleted": _artifact_deleted,
    "dsr.restriction_applied": _restriction_applied,
    "dsr.restriction_lifted": _restriction_lifted,
    "dsr.erasure_decided": _erasure_decided,
    "dsr.rectified": _rectified,
}


# --- Effects ------------------------------------------------------------------------------------------------


async def _flag(
    session: AsyncSession, contact_refs: list[UUID], flag: str, case_number: str, now: datetime
) -> None:
    if not contact_refs:
        return
    statement = insert(ContactFlag).values(
        [
            {"contact_ref": ref, "flag": flag, "case_number": case_number, "set_at": now, "cleared_at": None}
            for ref in sorted(set(contact_refs))
        ]
    )
    # The same decision again (a case reopened) flags the contact anew.
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[ContactFlag.contact_ref, ContactFlag.flag, ContactFlag.case_number],
            set_={"set_at": statement.excluded.set_at, "cleared_at": None},
        )
    )


def _affected(decision: Decision) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [LoanItem.contact_ref.in_(sorted(set(decision.contact_refs)))]
    if decision.artifact_class is not None:
        conditions.append(LoanItem.artifact_class == decision.artifact_class)
    return conditions


async def _withdraw_selected(session: AsyncSession, decision: Decision, now: datetime) -> None:
    if not decision.withdraw:
        return
    withdrawn = list(
        (
            await session.scalars(
                update(LoanItem)
                .where(*_affected(decision), LoanItem.status == "selected")
                .values(status="withdrawn")
                .returning(LoanItem.item_id)
            )
        ).all()
    )
    if withdrawn:
        await record(
            session,
            actor=system_actor(SERVICE),
            role=SYSTEM_ROLE,
            action=Action.EXPORT_STEP,
            object_type="loan_item",
            object_ids=sorted(withdrawn),
            reason="withdrawn",
            service=SERVICE,
            occurred_at=now,
        )
        log.info("export.items_withdrawn", items=len(withdrawn), cause=decision.cause)


async def issue_notices(
    session: AsyncSession, decision: Decision, *, source_event_id: UUID, now: datetime
) -> list[Notice]:
    """One notice of `decision.kind` per affected item still lent in a delivered, open loan, each announced and
    all audited; the notices issued (none for an event already applied)."""
    query = (
        select(LoanItem.item_id, LoanItem.loan_id)
        .join(Loan, Loan.loan_id == LoanItem.loan_id)
        .where(
            *_affected(decision),
            LoanItem.status == "lent",
            Loan.delivered_at.is_not(None),
            Loan.closed_at.is_(None),
        )
        .order_by(LoanItem.loan_id, LoanItem.item_id)
    )
    if decision.kind == "destroy":
        # The erasure decision and retention's deletion that carries it out both call for destruction: the
        # institute is told once.
        query = query.where(
            ~exists().where(and_(Notice.item_id == LoanItem.item_id, Notice.kind == "destroy"))
        )
    rows = (await session.execute(query)).all()
    if not rows:
        return []
    inserted = (
        await session.execute(
            insert(Notice)
            .values(
                [
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
                ]
            )
            .on_conflict_do_nothing(index_elements=[Notice.source_event_id, Notice.item_id])
            .returning(Notice.notice_id)
        )
    ).scalars()
    notice_ids = list(inserted)
    if not notice_ids:
        return []
    notices = list(
        (
            await session.scalars(
                select(Notice)
                .where(Notice.notice_id.in_(notice_ids))
                .order_by(Notice.loan_id, Notice.item_id)
            )
        ).all()
    )
    loans = {
        loan.loan_id: loan
        for loan in await session.scalars(select(Loan).where(Loan.loan_id.in_({n.loan_id for n in notices})))
    }
    for notice in notices:
        loan = loans[notice.loan_id]
        await announce(session, loan, "export.notice_issued", notice_data(notice, loan), now=now)
    await record(
        session,
        actor=system_actor(SERVICE),
        role=SYSTEM_ROLE,
        action=Action.EXPORT_STEP,
        object_type="notice",
        object_ids=[notice.notice_id for notice in notices],
        reason="notice_issued",
        service=SERVICE,
        occurred_at=now,
    )
    log.info("export.notices_issued", notices=len(notices), kind=decision.kind, cause=decision.cause)
    return notices


def notice_data(notice: Notice, loan: Loan) -> dict[str, Any]:
    """The `NoticeData` of an event about `notice`: the item by the loan's own pseudonym, never the contact."""
    return {
        "notice_id": notice.notice_id,
        "loan_id": notice.loan_id,
        "institute_id": loan.institute_id,
        "item_id": notice.item_id,
        "kind": notice.kind,
        "cause": notice.cause,
    }

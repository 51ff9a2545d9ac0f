"""Export's consumers: notices to institutes (GDPR Art. 19) and the DSR flags selection needs, from the events
of the services that decide about a contact's data.

Two consumer groups, one per topic, with one handler class: ``export-notices-retention`` on the retention
events (an artifact crypto-shredded when its retention ended, or on a data subject's erasure) and
``export-notices-dsr`` on the DSR events (restriction applied or lifted, erasure or upheld objection decided,
rectification). :data:`_DECISIONS` is the type -> function table; services.export.notices says what each
decision does.

Everything an event causes commits in the consumer loop's transaction with its tracking row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from services.export import repository
from services.export.notices import HOLDING_GROUNDS, RESTRICTION_FLAGS, Decision
from services.export.service.notices import issue_notices, withdraw_selected
from shared.contracts.domain_events import (
    ArtifactDeletedData,
    DomainEventHandler,
    Received,
    RectifiedData,
    RequestContactsData,
)
from shared.contracts.events import Contract
from shared.platform.clock import Clock

RETENTION_GROUP: Final = "export-notices-retention"
DSR_GROUP: Final = "export-notices-dsr"


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
            await withdraw_selected(session, decision, now)
            await issue_notices(session, decision, source_event_id=item.event.id, now=now)


# --- What each event decides -----------------------------------------------------------------------------------


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
    await repository.set_flags(session, data.contact_refs, flag, data.case_number, now)
    # Every ground of Art. 18(1) restricts processing, a research study's included: nothing more leaves.
    return Decision(kind="restrict", cause=data.ground, contact_refs=data.contact_refs, withdraw=True)


async def _restriction_lifted(session: AsyncSession, data: Contract, now: datetime) -> Decision | None:
    assert isinstance(data, RequestContactsData)
    await repository.clear_flags(session, data.case_number, RESTRICTION_FLAGS, now)
    return Decision(kind="restriction_lifted", cause=data.ground, contact_refs=data.contact_refs)


async def _erasure_decided(session: AsyncSession, data: Contract, now: datetime) -> Decision | None:
    assert isinstance(data, RequestContactsData)
    flag = "objection" if data.ground.startswith("art21") else "erasure"
    await repository.set_flags(session, data.contact_refs, flag, data.case_number, now)
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

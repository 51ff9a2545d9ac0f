"""Retention's part in data-subject requests: the DSR service's decisions arrive on its events topic.

- A restriction on Art. 18(1)(c) or (d) grounds keeps the data past its retention period (the subject needs it
  for legal claims, or an objection is being weighed): each contact gets a legal hold, lifted when the DSR
  service lifts the restriction. Grounds (a) and (b) only limit processing, which the record store enforces.
- An erasure (or an upheld objection) makes every scheduled item of the contacts due now, on the trigger
  ``erasure_request``: the sweeper then deletes them like any expired item, crypto-shredding and certifying
  each, and announces each deletion. A legal hold still wins (GDPR Art. 17(3)(e)).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.retention.holds import lift_hold, place_hold
from services.retention.models import ContactFacts, Hold, ScheduleItem
from shared.audit.log import SYSTEM_ROLE, system_actor
from shared.contracts.domain_events import DomainEventHandler, Received, RequestContactsData
from shared.platform.clock import Clock

SERVICE: Final = "retention"
ERASURE_TRIGGER: Final = "erasure_request"
HOLDING_GROUNDS: Final = frozenset({"art18_1_c", "art18_1_d"})


def _hold_reason(case_number: str) -> str:
    return f"Restriction of processing, {case_number}"


class RequestHandler(DomainEventHandler[RequestContactsData]):
    """Consumer-loop handler on the DSR events topic (group ``retention-requests``)."""

    wants = RequestContactsData
    topic_description = "DSR event"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def apply(self, session: AsyncSession, items: list[Received[RequestContactsData]]) -> None:
        now = self.clock.now()
        actor = system_actor(SERVICE)
        for item in items:
            data = item.data
            if data is None or not data.contact_refs:
                continue
            if item.event.type == "dsr.erasure_decided":
                await session.execute(
                    update(ScheduleItem)
                    .where(ScheduleItem.contact_ref.in_(data.contact_refs), ScheduleItem.state == "scheduled")
                    .values(
                        due_at=now,
                        trigger=ERASURE_TRIGGER,
                        trigger_at=now,
                        reason=f"erased at the data subject's request ({data.case_number})",
                    )
                )
            elif item.event.type == "dsr.restriction_applied" and data.ground in HOLDING_GROUNDS:
                registers = dict(
                    (
                        await session.execute(
                            select(ContactFacts.contact_ref, ContactFacts.register).where(
                                ContactFacts.contact_ref.in_(data.contact_refs)
                            )
                        )
                    ).all()
                )
                for ref in data.contact_refs:
                    await place_hold(
                        session,
                        scope="contact",
                        target=str(ref),
                        register=registers.get(ref),
                        reason=_hold_reason(data.case_number),
                        legal_reference=f"GDPR Art. 18(1)({data.ground[-1]})",
                        ends_on=None,
                        placed_by=actor,
                        role=SYSTEM_ROLE,
                        now=now,
                    )
            elif item.event.type == "dsr.restriction_lifted":
                holds = (
                    await session.scalars(
                        select(Hold).where(
                            Hold.reason == _hold_reason(data.case_number), Hold.lifted_at.is_(None)
                        )
                    )
                ).all()
                for hold in holds:
                    await lift_hold(session, hold, lifted_by=actor, role=SYSTEM_ROLE, now=now)

"""Retention's part in data-subject requests: what the DSR service's decisions do here.

- A restriction on Art. 18(1)(c) or (d) grounds keeps the data past its retention period (the subject needs it
  for legal claims, or an objection is being weighed): each contact gets a legal hold, lifted when the DSR
  service lifts the restriction. Grounds (a) and (b) only limit processing, which the record store enforces.
- An erasure (or an upheld objection) makes every scheduled item of the contacts due now, on the trigger
  ``erasure_request``: the sweeper then deletes them like any expired item, crypto-shredding and certifying
  each, and announces each deletion. A legal hold still wins (GDPR Art. 17(3)(e)).

The system acts here, not a person: the audit entries name retention's system actor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from services.retention import repository
from services.retention.service.holds import lift_hold, place_hold
from shared.audit.log import SYSTEM_ROLE, system_actor
from shared.contracts.domain_events import RequestContactsData

SERVICE: Final = "retention"
ERASURE_TRIGGER: Final = "erasure_request"
HOLDING_GROUNDS: Final = frozenset({"art18_1_c", "art18_1_d"})


def _hold_reason(case_number: str) -> str:
    return f"Restriction of processing, {case_number}"


async def erase(session: AsyncSession, data: RequestContactsData, now: datetime) -> None:
    """An erasure decided: everything still scheduled for the contacts falls due now."""
    await repository.make_due_now(
        session,
        data.contact_refs,
        now=now,
        trigger=ERASURE_TRIGGER,
        reason=f"erased at the data subject's request ({data.case_number})",
    )


async def restrict(session: AsyncSession, data: RequestContactsData, now: datetime) -> None:
    """A restriction applied: on grounds that need the data kept, a hold on each contact."""
    if data.ground not in HOLDING_GROUNDS:
        return
    registers = await repository.registers_of(session, data.contact_refs)
    for ref in data.contact_refs:
        await place_hold(
            session,
            scope="contact",
            target=str(ref),
            register=registers.get(ref),
            reason=_hold_reason(data.case_number),
            legal_reference=f"GDPR Art. 18(1)({data.ground[-1]})",
            ends_on=None,
            placed_by=system_actor(SERVICE),
            role=SYSTEM_ROLE,
            now=now,
        )


async def lift_restriction(session: AsyncSession, data: RequestContactsData, now: datetime) -> None:
    """A restriction lifted: the holds it placed are lifted."""
    for hold in await repository.unlifted_holds_with_reason(session, _hold_reason(data.case_number)):
        await lift_hold(session, hold, lifted_by=system_actor(SERVICE), role=SYSTEM_ROLE, now=now)

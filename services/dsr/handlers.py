"""DSR's consumers: one batch handler per (topic, consumer group).

The export service's events (group ``dsr-disclosures``): which research loans included whose contacts, kept
one row per lent item so an access reply can name the recipients (Art. 15(1)(c)) from DSR's own table.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.dsr import repository
from services.dsr.letters import LoanStatus
from shared.contracts.domain_events import DomainEventHandler, LoanItemsData, Received
from shared.platform.clock import Clock

GROUP: Final = "dsr-disclosures"
_STATUS: Final = {
    "lent": LoanStatus.OUT.value,
    "returned": LoanStatus.RETURNED.value,
    "destroyed": LoanStatus.DESTROYED.value,
}

LentItems = dict[tuple[UUID, UUID, str], dict[str, object]]


def _loan_items(rows: LentItems, data: LoanItemsData, now: datetime) -> None:
    """Items lent, or accounted for (returned, destroyed): one row per item, its status as the event says."""
    for lent in data.items:
        # In topic order a later event of the same item wins (keyed by loan: one partition per loan).
        rows[data.loan_id, lent.contact_ref, lent.artifact_class] = {
            "loan_id": data.loan_id,
            "contact_ref": lent.contact_ref,
            "artifact_class": lent.artifact_class,
            "institute_name": data.institute_name,
            "agreement_ref": data.agreement_ref,
            "lent_on": data.lent_on,
            "due_on": data.due_on,
            "status": _STATUS[data.status],
            "updated_at": now,
        }


_HANDLERS: Final[dict[str, Callable[[LentItems, LoanItemsData, datetime], None]]] = {
    "export.items_lent": _loan_items,
    "export.items_accounted": _loan_items,
}


class DisclosureHandler(DomainEventHandler[LoanItemsData]):
    """Consumer-loop handler on the export events topic: the batch's lent items, written in one statement."""

    wants = LoanItemsData
    topic_description = "export event"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def apply(self, session: AsyncSession, items: list[Received[LoanItemsData]]) -> None:
        now = self.clock.now()
        rows: LentItems = {}
        for item in items:
            if item.data is None:
                continue
            handle = _HANDLERS.get(item.event.type)
            if handle is not None:
                handle(rows, item.data, now)
        if rows:
            await repository.upsert_disclosures(session, [rows[key] for key in sorted(rows, key=str)])

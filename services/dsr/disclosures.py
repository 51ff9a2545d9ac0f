"""Which research loans included a data subject's contacts: kept from the export service's loan events.

An access reply lists the recipients of the requester's data (Art. 15(1)(c)), research loans included; the
export service owns the loans and announces each delivery and each return or destruction on its events topic.
DSR keeps one row per lent item (consumer group ``dsr-disclosures``), so building a cover letter reads its own
table rather than another service's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.dsr.letters import LoanRecipient, LoanStatus
from services.dsr.models import Disclosure
from shared.contracts.domain_events import DomainEventHandler, LoanItemsData, Received
from shared.contracts.vocabulary import ArtifactClass
from shared.platform.clock import Clock
from shared.platform.db import bulk_insert

GROUP = "dsr-disclosures"
_CLASSES = frozenset(c.value for c in ArtifactClass)
_STATUS = {
    "lent": LoanStatus.OUT.value,
    "returned": LoanStatus.RETURNED.value,
    "destroyed": LoanStatus.DESTROYED.value,
}


class DisclosureHandler(DomainEventHandler[LoanItemsData]):
    """Consumer-loop handler on the export events topic."""

    wants = LoanItemsData
    topic_description = "export event"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def apply(self, session: AsyncSession, items: list[Received[LoanItemsData]]) -> None:
        now = self.clock.now()
        rows: dict[tuple[UUID, UUID, str], dict[str, object]] = {}
        for item in items:
            data = item.data
            if data is None:
                continue
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
        if rows:
            await bulk_insert(
                session,
                Disclosure,
                [rows[key] for key in sorted(rows, key=str)],
                tail=(
                    "ON CONFLICT (loan_id, contact_ref, artifact_class) DO UPDATE SET status = EXCLUDED.status,"
                    " due_on = EXCLUDED.due_on, updated_at = EXCLUDED.updated_at"
                ),
            )


async def loans_of(session: AsyncSession, contact_refs: Sequence[UUID]) -> list[LoanRecipient]:
    """The research loans that included any of the contacts, one per loan: the classes lent, the loan period,
    and whether everything lent came back (returned or destroyed) or is still out."""
    rows = (
        await session.scalars(
            select(Disclosure)
            .where(Disclosure.contact_ref.in_(list(contact_refs)))
            .order_by(Disclosure.lent_on)
        )
    ).all()
    by_loan: dict[UUID, list[Disclosure]] = defaultdict(list)
    for row in rows:
        by_loan[row.loan_id].append(row)
    loans = []
    for items in by_loan.values():
        first = items[0]
        statuses = {i.status for i in items}
        status = (
            LoanStatus.OUT
            if LoanStatus.OUT.value in statuses
            else LoanStatus.DESTROYED
            if LoanStatus.DESTROYED.value in statuses
            else LoanStatus.RETURNED
        )
        loans.append(
            LoanRecipient(
                institute=first.institute_name,
                reference=first.agreement_ref,
                lent_from=min(i.lent_on for i in items),
                lent_until=max(i.due_on for i in items),
                status=status,
                # A class this version of the letters does not know is still a loan: it is listed as a recording's.
                classes=tuple(
                    sorted({ArtifactClass(i.artifact_class) for i in items if i.artifact_class in _CLASSES})
                )
                or (ArtifactClass.RECORDING,),
            )
        )
    return sorted(loans, key=lambda loan: (loan.lent_from, loan.reference))

"""Which research loans included a data subject's contacts, as an access reply lists them.

An access reply lists the recipients of the requester's data (Art. 15(1)(c)), research loans included; the
export service owns the loans and announces each delivery and each return or destruction on its events topic.
DSR keeps one row per lent item from those events (services.dsr.handlers), so building a cover letter reads
its own table rather than another service's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.dsr import repository
from services.dsr.letters import LoanRecipient, LoanStatus
from services.dsr.models import Disclosure
from shared.contracts.vocabulary import ArtifactClass

_CLASSES = frozenset(c.value for c in ArtifactClass)


async def loans_of(session: AsyncSession, contact_refs: Sequence[UUID]) -> list[LoanRecipient]:
    """The research loans that included any of the contacts, one per loan: the classes lent, the loan period,
    and whether everything lent came back (returned or destroyed) or is still out."""
    rows = await repository.disclosures_of(session, contact_refs)
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

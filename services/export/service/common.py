"""What export's service functions share: the service's name, the announcement of a loan's step on the export
events topic, the audited 404 and the loan loader."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.export import repository
from services.export.models import Loan
from shared.app import Caller
from shared.audit.chain import Action, Outcome
from shared.contracts.domain_events import EXPORT_EVENTS_TOPIC
from shared.messaging.outbox import enqueue, envelope
from shared.platform.errors import ApiError

SERVICE: Final = "export"


async def announce(
    session: AsyncSession, loan: Loan, event_type: str, data: dict[str, Any], *, now: datetime
) -> None:
    """An event about `loan` through the outbox, keyed by the loan so its steps stay in order."""
    await enqueue(
        session,
        topic=EXPORT_EVENTS_TOPIC,
        key=loan.loan_id,
        event=envelope(event_type, data, producer=SERVICE, occurred_at=now),
    )


async def not_found(session: AsyncSession, caller: Caller, *, what: str, field: str) -> ApiError:
    """Roll back, audit the miss, and return the 404 to raise.

    Commits, unlike a service function's usual flush: probing for ids is worth an auditor's eye, so the failed
    read is recorded although the step is refused (the route's session then has nothing left to roll back).
    Rolled back first, so nothing of the refused step goes with it and the entry is written under the
    service's own database role, not an institute's.
    """
    await session.rollback()
    await caller.audit(session, Action.READ, what, outcome=Outcome.FAILED, reason="http_404")
    await session.commit()
    return ApiError.field(404, field, f"no such {what}", title=f"{what.capitalize()} not found")


async def load_loan(session: AsyncSession, caller: Caller, loan_id: UUID, *, lock: bool = False) -> Loan:
    """The loan the caller may see (an institute only its own); a missing one is audited and answered 404,
    exactly like another institute's."""
    loan = await repository.loan_of(session, caller.principal, loan_id, lock=lock)
    if loan is None:
        raise await not_found(session, caller, what="loan", field="loan_id")
    return loan

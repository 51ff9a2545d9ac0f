"""What every export route shares: the caller's pseudonymous id, the audited loan loader, the audit entry and
the announcement of a loan's step on the export events topic.

An institute sees only its own loans: the loader filters on its institute id, and the caller's transaction runs
under the sailo_institute database role (row-level security) once
`shared.security.access.apply_record_rules` is applied.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import Depends, Request
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.export.models import Loan, LoanItem
from shared.app import runtime
from shared.audit.chain import Action
from shared.audit.log import actor_ref, record, record_not_found
from shared.contracts.domain_events import EXPORT_EVENTS_TOPIC
from shared.messaging.outbox import enqueue, envelope
from shared.platform.crypto import BlindIndex
from shared.platform.errors import ApiError
from shared.security.access import authorize
from shared.security.auth import Principal, Role

SERVICE: Final = "export"
Authorized = Annotated[Principal, Depends(authorize(SERVICE))]
LIST_BODY_LIMIT: Final = 1024 * 1024
"""Bodies that may list up to 10,000 contacts or items (about 40 bytes each in JSON) get this much room."""


def actor(request: Request, principal: Principal) -> UUID:
    """The caller as the audit log names them: a pseudonym of their subject."""
    blind_index: BlindIndex = request.app.state.blind_index
    return actor_ref(blind_index, principal.subject)


async def audit(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    action: Action,
    ids: list[UUID],
    *,
    object_type: str = "loan",
    reason: str | None = None,
) -> None:
    """An audit entry for this step, in the caller's transaction (it commits with the step or not at all)."""
    await record(
        session,
        actor=actor(request, principal),
        role=principal.role.value,
        action=action,
        object_type=object_type,
        object_ids=ids,
        reason=reason,
        service=SERVICE,
        occurred_at=runtime(request).clock.now(),
    )


def own_loans(principal: Principal) -> Select[Loan]:
    query = select(Loan)
    if principal.role is Role.INSTITUTE:
        query = query.where(Loan.institute_id == (principal.institute_id or ""))
    return query


async def not_found(
    request: Request, principal: Principal, session: AsyncSession, *, what: str, field: str
) -> ApiError:
    """Roll back, audit the miss in a transaction of its own, and return the 404 to raise."""
    await session.rollback()
    rt = runtime(request)
    await record_not_found(
        rt.sessionmaker,
        actor=actor(request, principal),
        role=principal.role.value,
        object_type=what,
        service=SERVICE,
        occurred_at=rt.clock.now(),
    )
    return ApiError.field(404, field, f"no such {what}", title=f"{what.capitalize()} not found")


async def load_loan(
    request: Request, session: AsyncSession, principal: Principal, loan_id: UUID, *, lock: bool = False
) -> Loan:
    """The loan the caller may see (an institute only its own); a missing one is audited and answered 404,
    exactly like another institute's."""
    query = own_loans(principal).where(Loan.loan_id == loan_id)
    loan: Loan | None = await session.scalar(query.with_for_update() if lock else query)
    if loan is None:
        raise await not_found(request, principal, session, what="loan", field="loan_id")
    return loan


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


async def selected_items(session: AsyncSession, loan: Loan) -> list[LoanItem]:
    """The loan's items still selected (not withdrawn, not yet lent), locked for the step that uses them."""
    return list(
        (
            await session.scalars(
                select(LoanItem)
                .where(LoanItem.loan_id == loan.loan_id, LoanItem.status == "selected")
                .order_by(LoanItem.item_id)
                .with_for_update()
            )
        ).all()
    )

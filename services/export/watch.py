"""The loan watch: a reminder ahead of a loan's due day, an overdue event the day after it while items are
still out, and the escalation of notices an institute has not acknowledged in time.

Days are Helsinki calendar days of the injected clock. Each round is one transaction per kind of work, rows
locked with SKIP LOCKED and marked (reminded_at, overdue_at, escalated_at) in the transaction that writes the
event to the outbox, so several export instances can run it and each event is still sent once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.export import repository
from services.export.notices import notice_data
from services.export.service.common import SERVICE, announce
from shared.audit.chain import Action
from shared.audit.log import SYSTEM_ROLE, record, system_actor
from shared.platform.clock import HELSINKI, Clock
from shared.platform.logging import get_logger
from shared.platform.runtime import Periodic

log = get_logger(__name__)

_BATCH: Final = 500
"""Rows per round and kind; what is left comes in the next round."""


@dataclass(frozen=True)
class Round:
    reminders: int
    overdue: int
    escalations: int


class LoanWatch(Periodic):
    name = "export-loan-watch"
    failure_event = "export.watch_failed"

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        reminder_days: int,
        escalation_days: int,
        interval_seconds: float = 60.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.reminder_days = reminder_days
        self.escalation_days = escalation_days
        super().__init__(interval_seconds=interval_seconds)

    async def round(self) -> Round:
        return await self.tick()

    async def tick(self) -> Round:
        """One round: what it sent."""
        now = self.clock.now()
        reminders, overdue = await self._due_days(now)
        escalations = await self._escalations(now)
        if reminders or overdue or escalations:
            log.info("export.loans_watched", reminders=reminders, overdue=overdue, escalations=escalations)
        return Round(reminders, overdue, escalations)

    async def _due_days(self, now: datetime) -> tuple[int, int]:
        today = now.astimezone(HELSINKI).date()
        reminders = overdue = 0
        async with self.sessionmaker() as session, session.begin():
            rows = await repository.loans_to_remind(
                session, today=today, reminder_days=self.reminder_days, limit=_BATCH
            )
            for loan, count in rows:
                assert loan.due_on is not None
                data = {
                    "loan_id": loan.loan_id,
                    "institute_id": loan.institute_id,
                    "due_on": loan.due_on,
                    "outstanding": count,
                }
                if loan.overdue_at is None and today > loan.due_on:
                    loan.overdue_at = now
                    # Past the due day a reminder of it would come too late: the overdue event replaces it.
                    loan.reminded_at = loan.reminded_at or now
                    await announce(session, loan, "export.loan_overdue", data, now=now)
                    await _audit(session, loan.loan_id, "loan_overdue", now)
                    overdue += 1
                elif loan.reminded_at is None:
                    loan.reminded_at = now
                    await announce(session, loan, "export.loan_due_reminder", data, now=now)
                    await _audit(session, loan.loan_id, "loan_due_reminder", now)
                    reminders += 1
        return reminders, overdue

    async def _escalations(self, now: datetime) -> int:
        cutoff = now - timedelta(days=self.escalation_days)
        async with self.sessionmaker() as session, session.begin():
            rows = await repository.notices_to_escalate(session, cutoff=cutoff, limit=_BATCH)
            for notice, loan in rows:
                notice.escalated_at = now
                await announce(session, loan, "export.notice_escalated", notice_data(notice, loan), now=now)
            if rows:
                await record(
                    session,
                    actor=system_actor(SERVICE),
                    role=SYSTEM_ROLE,
                    action=Action.EXPORT_STEP,
                    object_type="notice",
                    object_ids=[notice.notice_id for notice, _loan in rows],
                    reason="notice_escalated",
                    service=SERVICE,
                    occurred_at=now,
                )
        return len(rows)


async def _audit(session: AsyncSession, loan_id: UUID, reason: str, now: datetime) -> None:
    await record(
        session,
        actor=system_actor(SERVICE),
        role=SYSTEM_ROLE,
        action=Action.EXPORT_STEP,
        object_type="loan",
        object_ids=[loan_id],
        reason=reason,
        service=SERVICE,
        occurred_at=now,
    )

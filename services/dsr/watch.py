"""The deadline watch: reminders ahead of a request's last day, an overdue event when it passes unanswered, and
the destruction of access packages whose download time is over.

Each round is one transaction per kind of work, with rows locked (SKIP LOCKED), so several DSR instances can
run it and each reminder, overdue event and package destruction still happens once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.dsr import repository
from services.dsr.deadlines import reminder_at, statutory_deadline
from services.dsr.models import DataSubjectRequest
from services.dsr.service.lifecycle import OPEN_STATUSES, announce, audit_by_system, lift_restriction
from shared.platform.clock import HELSINKI, Clock
from shared.platform.logging import get_logger
from shared.platform.runtime import Periodic
from shared.storage.blobstore import BlobStore

log = get_logger(__name__)
# Requests whose last day is further off than this cannot be due for a reminder yet (20 working days at most).
_LOOKAHEAD: Final = timedelta(days=40)


class DeadlineWatch(Periodic):
    name = "dsr-deadline-watch"
    failure_event = "dsr.watch_failed"

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        blobs: BlobStore,
        clock: Clock,
        reminder_working_days: int,
        interval_seconds: float = 60.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.blobs = blobs
        self.clock = clock
        self.reminder_working_days = reminder_working_days
        super().__init__(interval_seconds=interval_seconds)

    async def round(self) -> tuple[int, int, int]:
        return await self.tick()

    async def tick(self) -> tuple[int, int, int]:
        """(reminders, overdue events, packages destroyed) of this round."""
        now = self.clock.now()
        reminders, overdue = await self._deadlines(now)
        await self._lifts(now)
        destroyed = await self._expired_packages(now)
        return reminders, overdue, destroyed

    async def _lifts(self, now: datetime) -> int:
        """Lift the restrictions whose day has come (the requester was told when the day was set)."""
        today = now.astimezone(HELSINKI).date()
        async with self.sessionmaker() as session, session.begin():
            due = await repository.lifts_due(session, today)
            for request in due:
                await lift_restriction(session, request, now=now)
        return len(due)

    async def _deadlines(self, now: datetime) -> tuple[int, int]:
        reminders = overdue = 0
        horizon = (now + _LOOKAHEAD).astimezone(HELSINKI).date()
        async with self.sessionmaker() as session, session.begin():
            requests = await repository.open_requests_due_by(session, OPEN_STATUSES, horizon)
            for request in requests:
                deadline = statutory_deadline(request.received_at, extension_months=request.extension_months)
                if request.overdue_at is None and now >= deadline.ends_at:
                    request.overdue_at = now
                    # Past the last day a reminder of it would come too late: the overdue event replaces it.
                    request.reminded_at = request.reminded_at or now
                    await _announce_deadline(session, request, "dsr.deadline_overdue", now)
                    await audit_by_system(session, request, now=now, reason="overdue")
                    overdue += 1
                elif request.reminded_at is None and now >= reminder_at(
                    deadline, working_days_before=self.reminder_working_days
                ):
                    request.reminded_at = now
                    await _announce_deadline(session, request, "dsr.deadline_reminder", now)
                    reminders += 1
        if reminders or overdue:
            log.info("dsr.deadlines_watched", reminders=reminders, overdue=overdue)
        return reminders, overdue

    async def _expired_packages(self, now: datetime) -> int:
        """Destroy packages past their download time: the key first (the blob is unreadable from then on),
        then the blob."""
        async with self.sessionmaker() as session, session.begin():
            packages = await repository.expired_packages(session, now)
            for package in packages:
                package.wrapped_key = None
                package.deleted_at = now
            blob_keys = [package.blob_key for package in packages]
        for blob_key in blob_keys:
            await self.blobs.delete(blob_key)
        return len(blob_keys)


async def _announce_deadline(
    session: AsyncSession, request: DataSubjectRequest, event_type: str, now: datetime
) -> None:
    await announce(
        session, request, event_type, {"status": request.status, "last_day": request.last_day}, now=now
    )

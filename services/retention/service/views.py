"""What the retention API shows of the schedule: one contact's items with the reason each part is still kept,
the forecast of deletions per day, and the certificates of deletion. Every view is an audit entry."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.retention import repository
from services.retention.schemas import (
    CertificateRead,
    ContactScheduleRead,
    ForecastDay,
    ForecastRead,
    ScheduleEntryRead,
)
from services.retention.service.holds import holds_on_contact
from shared.app import Caller
from shared.audit.chain import Action
from shared.platform.clock import HELSINKI
from shared.platform.crypto import BlindIndex
from shared.platform.errors import ApiError

MAX_FORECAST_DAYS = 400
MAX_CERTIFICATES = 10_000


def _start_of(day: date) -> datetime:
    """The first instant of a Helsinki day."""
    return datetime.combine(day, time(), tzinfo=HELSINKI)


async def contact_schedule(
    session: AsyncSession,
    caller: Caller,
    *,
    blind_index: BlindIndex,
    registers: list[str],
    contact_id: str,
) -> ContactScheduleRead:
    """The schedule of the contact `contact_id` names in one of `registers`: 404 if in none, 409 if in
    several (the caller must name the register)."""
    refs = [blind_index.pseudonym("contact", register, contact_id) for register in registers]
    now = caller.now()
    facts = await repository.facts_of(session, refs)
    if len(facts) != 1:
        if len(facts) > 1:
            raise ApiError.field(409, "register", "the contact id exists in several registers; name one")
        raise ApiError.field(404, "contact_id", "no such contact", title="Contact not found")
    ref = facts[0].contact_ref
    items = await repository.items_of_contact(session, ref)
    holds = [hold.hold_id for hold in await holds_on_contact(session, ref, now)]
    await caller.audit(session, Action.READ, "schedule", [ref])
    entries = []
    for item in items:
        if item.state == "done":
            state = "done"
        elif item.due_at is None:
            state = "waiting"
        elif holds:
            state = "held"
        else:
            state = "scheduled"
        reason = item.reason if state != "held" else f"held by {', '.join(holds)}; {item.reason}"
        entries.append(
            ScheduleEntryRead(
                artifact_class=item.artifact_class,
                item=item.item,
                action=item.action,
                state=state,
                due_at=item.due_at,
                reason=reason,
                held_by=holds if state == "held" else [],
            )
        )
    return ContactScheduleRead(contact_ref=ref, register_id=facts[0].register, entries=entries)


async def forecast(
    session: AsyncSession, caller: Caller, *, register: str | None, from_day: date, to_day: date
) -> ForecastRead:
    """Scheduled items per Helsinki day and class from `from_day` to `to_day` (both included, at most
    MAX_FORECAST_DAYS apart)."""
    if to_day < from_day:
        raise ApiError.field(422, "to", "must not be before from")
    if (to_day - from_day).days > MAX_FORECAST_DAYS:
        raise ApiError.field(422, "to", f"at most {MAX_FORECAST_DAYS} days after from")
    rows = await repository.scheduled_per_day(
        session, _start_of(from_day), _start_of(to_day + timedelta(days=1)), register
    )
    await caller.audit(session, Action.SEARCH, "schedule", [])
    return ForecastRead(
        register_id=register,
        from_day=from_day,
        to_day=to_day,
        days=[ForecastDay(day=day, artifact_class=cls, items=count) for day, cls, count in rows],
    )


async def certificates(
    session: AsyncSession,
    caller: Caller,
    *,
    register: str | None,
    from_day: date | None,
    to_day: date | None,
) -> list[CertificateRead]:
    """The certificates of deletion done in the Helsinki days asked (the first MAX_CERTIFICATES, oldest first)."""
    rows = await repository.certificates(
        session,
        register=register,
        done_from=_start_of(from_day) if from_day else None,
        done_before=_start_of(to_day + timedelta(days=1)) if to_day else None,
        limit=MAX_CERTIFICATES,
    )
    await caller.audit(session, Action.SEARCH, "certificate", [])
    return [CertificateRead.model_validate(row, from_attributes=True) for row in rows]

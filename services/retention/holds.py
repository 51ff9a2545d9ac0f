"""Legal holds: placing and lifting them, and which holds keep a contact's artifacts.

A hold names what it covers only by pseudonyms: a contact's ref, a case's pseudonym, a subject's blind-index
digest, or a register id. While it is active the sweeper skips everything it covers (see
services.retention.sweeper.active_holds_over); lifting it lets those items go at the next sweep if they are
due by then. Every placement and lift is an audit entry and a hold_placed / hold_lifted event on the retention
events topic, both in the transaction that changes the hold.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal
from uuid import UUID

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.retention.models import ContactFacts, Hold
from shared.audit.chain import Action
from shared.audit.log import record
from shared.contracts.domain_events import RETENTION_EVENTS_TOPIC
from shared.messaging.outbox import enqueue, envelope
from shared.platform.clock import HELSINKI
from shared.policy.history import register_ref
from shared.recordstore.models import SubjectIndex

SERVICE = "retention"
Scope = Literal["contact", "case", "subject", "register"]


def audit_ref(hold: Hold) -> UUID:
    """The id an audit entry names a hold's target by: the target's own pseudonym where it is a UUID, a keyless
    derivation of the digest or register otherwise (neither is personal data)."""
    if hold.scope in ("contact", "case"):
        return UUID(hold.target)
    if hold.scope == "register":
        return register_ref(hold.target)
    return uuid.uuid5(uuid.NAMESPACE_OID, f"sailo-subject-digest:{hold.target}")


async def place_hold(
    session: AsyncSession,
    *,
    scope: Scope,
    target: str,
    register: str | None,
    reason: str,
    legal_reference: str,
    ends_on: date | None,
    placed_by: UUID,
    role: str,
    now: datetime,
) -> Hold:
    hold = Hold(
        scope=scope,
        target=target,
        register=register,
        reason=reason,
        legal_reference=legal_reference,
        ends_on=ends_on,
        placed_by=placed_by,
        placed_at=now,
    )
    session.add(hold)
    await session.flush()
    await record(
        session,
        actor=placed_by,
        role=role,
        action=Action.HOLD_PLACED,
        object_type=f"hold.{scope}",
        object_ids=[audit_ref(hold)],
        reason=f"h-{hold.hold_number}",
        service=SERVICE,
        occurred_at=now,
    )
    await _announce(session, hold, "retention.hold_placed", now)
    return hold


async def _announce(session: AsyncSession, hold: Hold, event_type: str, now: datetime) -> None:
    contact_ref = UUID(hold.target) if hold.scope == "contact" else None
    await enqueue(
        session,
        topic=RETENTION_EVENTS_TOPIC,
        # A contact hold shares its contact's key, so it is ordered with that contact's deletions.
        key=contact_ref or f"H-{hold.hold_number}",
        event=envelope(
            event_type,
            {
                "hold_number": hold.hold_number,
                "scope": hold.scope,
                "contact_ref": contact_ref,
                "register": hold.register,
                "ends_on": hold.ends_on,
            },
            producer=SERVICE,
            occurred_at=now,
        ),
    )


async def lift_hold(session: AsyncSession, hold: Hold, *, lifted_by: UUID, role: str, now: datetime) -> Hold:
    hold.lifted_at = now
    hold.lifted_by = lifted_by
    await record(
        session,
        actor=lifted_by,
        role=role,
        action=Action.HOLD_LIFTED,
        object_type=f"hold.{hold.scope}",
        object_ids=[audit_ref(hold)],
        reason=f"h-{hold.hold_number}",
        service=SERVICE,
        occurred_at=now,
    )
    await _announce(session, hold, "retention.hold_lifted", now)
    return hold


def is_active(hold: Hold, now: datetime) -> bool:
    return hold.lifted_at is None and (
        hold.ends_on is None or hold.ends_on >= now.astimezone(HELSINKI).date()
    )


async def holds_on_contact(session: AsyncSession, contact_ref: UUID, now: datetime) -> list[Hold]:
    """The active holds that keep this contact (for the schedule view: "held by H-12")."""
    facts = await session.get(ContactFacts, contact_ref)
    digests = list(
        (
            await session.scalars(select(SubjectIndex.digest).where(SubjectIndex.contact_ref == contact_ref))
        ).all()
    )
    conditions = [(Hold.scope == "contact") & (Hold.target == str(contact_ref))]
    if facts is not None:
        conditions.append((Hold.scope == "register") & (Hold.target == facts.register))
        if facts.case_ref:
            conditions.append((Hold.scope == "case") & (Hold.target == facts.case_ref))
    if digests:
        conditions.append((Hold.scope == "subject") & Hold.target.in_(digests))
    rows = (
        await session.scalars(
            select(Hold).where(Hold.lifted_at.is_(None), or_(*conditions)).order_by(Hold.hold_number)
        )
    ).all()
    return [hold for hold in rows if is_active(hold, now)]

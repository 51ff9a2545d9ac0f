"""Legal holds: placing and lifting them, and which holds keep a contact's artifacts.

A hold names what it covers only by pseudonyms: a contact's ref, a case's pseudonym, a subject's blind-index
digest, or a register id. While it is active the sweeper skips everything it covers (see
services.retention.repository.active_holds_over); lifting it lets those items go at the next sweep if they are
due by then. Every placement and lift is an audit entry and a hold_placed / hold_lifted event on the retention
events topic, both in the transaction that changes the hold.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.retention import repository
from services.retention.models import ContactFacts, Hold
from services.retention.schemas import HoldCreate, HoldRead
from services.retention.service.schedule import case_ref
from shared.app import Caller
from shared.audit.chain import Action
from shared.audit.log import record
from shared.contracts.domain_events import RETENTION_EVENTS_TOPIC
from shared.contracts.identifiers import IdentifierError, normalise_identifier
from shared.messaging.outbox import enqueue, envelope
from shared.platform.clock import HELSINKI
from shared.platform.crypto import BlindIndex
from shared.platform.errors import ApiError
from shared.policy.history import register_ref
from shared.recordstore import expiry

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


def is_active(hold: Hold, now: datetime) -> bool:
    return hold.lifted_at is None and (
        hold.ends_on is None or hold.ends_on >= now.astimezone(HELSINKI).date()
    )


def hold_read(hold: Hold, now: datetime) -> HoldRead:
    return HoldRead(
        hold_id=hold.hold_id,
        scope=hold.scope,
        register_id=hold.register,
        reason=hold.reason,
        legal_reference=hold.legal_reference,
        placed_at=hold.placed_at,
        ends_on=hold.ends_on,
        lifted_at=hold.lifted_at,
        active=is_active(hold, now),
    )


def hold_target(blind_index: BlindIndex, body: HoldCreate) -> str:
    """The pseudonym a hold names what it covers by (never the identifier it was asked for)."""
    if body.scope == "contact":
        assert body.register_id is not None and body.contact_id is not None
        return str(blind_index.pseudonym("contact", body.register_id, body.contact_id))
    if body.scope == "case":
        assert body.register_id is not None and body.case_number is not None
        return case_ref(blind_index, body.register_id, body.case_number)
    if body.scope == "subject":
        assert body.subject is not None
        try:
            normalised = normalise_identifier(body.subject.kind, body.subject.value)
        except IdentifierError as exc:
            raise ApiError.field(422, "subject.value", str(exc)) from None
        return blind_index.digest(body.subject.kind, normalised).hex()
    assert body.register_id is not None
    return body.register_id


async def create_hold(
    session: AsyncSession, caller: Caller, *, blind_index: BlindIndex, body: HoldCreate
) -> HoldRead:
    """Place the hold a person asked for (its register already checked against the policies)."""
    target = hold_target(blind_index, body)
    now = caller.now()
    hold = await place_hold(
        session,
        scope=body.scope,
        target=target,
        register=body.register_id,
        reason=body.reason,
        legal_reference=body.legal_reference,
        ends_on=body.ends_on,
        placed_by=caller.actor,
        role=caller.principal.role.value,
        now=now,
    )
    return hold_read(hold, now)


async def list_holds(session: AsyncSession, caller: Caller, *, active: bool | None) -> list[HoldRead]:
    """The newest 1000 holds, those active or not as `active` asks (all when None); the search is audited."""
    now = caller.now()
    holds = await repository.holds_newest_first(session)
    await caller.audit(session, Action.SEARCH, "hold", [])
    reads = [hold_read(hold, now) for hold in holds]
    return [read for read in reads if active is None or read.active is active]


async def lift(session: AsyncSession, caller: Caller, *, hold_number: int) -> HoldRead:
    """Lift a hold a person names: 404 if there is no such hold, 409 if it was lifted already."""
    now = caller.now()
    hold = await repository.hold_for_update(session, hold_number)
    if hold is None:
        raise ApiError.field(404, "hold_id", "no such hold", title="Hold not found")
    if hold.lifted_at is not None:
        raise ApiError.field(409, "hold_id", "the hold was already lifted", title="Already lifted")
    await lift_hold(session, hold, lifted_by=caller.actor, role=caller.principal.role.value, now=now)
    return hold_read(hold, now)


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
    """Place a hold, with its audit entry and hold_placed event. `placed_by` and `role` are a person's (through
    the API) or the system's (a restriction decided in the DSR service), hence no Caller here."""
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


async def lift_hold(session: AsyncSession, hold: Hold, *, lifted_by: UUID, role: str, now: datetime) -> Hold:
    """Lift a hold, with its audit entry and hold_lifted event (by a person or by the system, as place_hold)."""
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


async def holds_on_contact(session: AsyncSession, contact_ref: UUID, now: datetime) -> list[Hold]:
    """The active holds that keep this contact (for the schedule view: "held by H-12")."""
    facts = await session.get(ContactFacts, contact_ref)
    rows = await repository.unlifted_holds_on(
        session,
        contact_ref=contact_ref,
        register=facts.register if facts is not None else None,
        case_ref=facts.case_ref if facts is not None else None,
        subject_digests=await expiry.subject_digests(session, contact_ref),
    )
    return [hold for hold in rows if is_active(hold, now)]

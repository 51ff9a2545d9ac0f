"""Data-subject requests: the lifecycle and the rules of each step. Functions take a session and flush; the
route commits, so a step, its audit entry and its event are one transaction.

The lifecycle (`TRANSITIONS`): received -> identity_verified -> in_progress -> completed / partially_granted /
refused, with awaiting_requester (the caseworker waits for documents or a clarification), extended (Art. 12(3))
and withdrawn on the way. Nothing about the subject's data is searched, produced or changed before their
identity is verified. The statutory clock runs from receipt whatever the status (services.dsr.deadlines).

What a register grants is not decided here but read from its policy (services.dsr.rights); what this module
adds is the caseworker's part: confirming which contacts are the requester's, saying whether a conditional
right's condition holds, and carrying the decision out.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final
from uuid import UUID

import orjson
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.dsr.deadlines import statutory_deadline
from services.dsr.models import REQUEST_KEY_CLASS, Candidate, DataSubjectRequest
from services.dsr.rights import RegisterRight, rights_for
from shared.audit.chain import Action
from shared.audit.log import record
from shared.contracts.domain_events import DSR_EVENTS_TOPIC
from shared.contracts.identifiers import IdentifierError, normalise_identifier
from shared.messaging.outbox import enqueue, envelope
from shared.platform.clock import HELSINKI
from shared.platform.crypto import BlindIndex, open_sealed, seal
from shared.policy.model import RightName
from shared.policy.registry import PolicyRegistry
from shared.recordstore.keystore import KeyStore
from shared.recordstore.models import Contact, SubjectIndex

SERVICE: Final = "dsr"

OPEN_STATUSES: Final = frozenset(
    {"received", "identity_verified", "in_progress", "awaiting_requester", "extended"}
)
CLOSED_STATUSES: Final = frozenset({"completed", "partially_granted", "refused", "withdrawn"})
TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "received": frozenset({"identity_verified", "awaiting_requester", "refused", "withdrawn"}),
    "awaiting_requester": frozenset(
        {"received", "identity_verified", "in_progress", "extended", "refused", "withdrawn"}
    ),
    "identity_verified": frozenset({"in_progress", "awaiting_requester", "withdrawn"}),
    "in_progress": frozenset(
        {"extended", "awaiting_requester", "completed", "partially_granted", "refused", "withdrawn"}
    ),
    "extended": frozenset({"awaiting_requester", "completed", "partially_granted", "refused", "withdrawn"}),
}
IDENTITY_METHODS: Final = ("strong_electronic_identification", "in_person", "written_with_documents")
RESTRICTION_GROUNDS: Final = ("a", "b", "c", "d")
"""GDPR Art. 18(1): (a) accuracy contested, (b) unlawful but erasure opposed, (c) needed for legal claims,
(d) objection pending verification. Grounds (c) and (d) also hold the data past its retention period."""


class StepRefused(Exception):
    """A step the request's state or the law does not allow; the route answers 409 naming the field (422 when
    what the caseworker gave is itself invalid)."""

    def __init__(self, field: str, reason: str, *, status: int = 409) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Identifier:
    kind: str
    value: str


async def next_case_number(session: AsyncSession, now: datetime) -> str:
    number = await session.scalar(text("SELECT nextval('dsr.case_number_seq')"))
    return f"DSR-{now.astimezone(HELSINKI).year}-{int(number or 0):06d}"


def _requester_aad(request_id: UUID, part: str) -> bytes:
    return f"sailo-dsr:{request_id}:{part}".encode()


async def register_request(
    session: AsyncSession,
    *,
    keystore: KeyStore,
    policies: PolicyRegistry,
    request_type: RightName,
    registers: Sequence[str],
    requester: Sequence[Identifier],
    details: dict[str, Any] | None,
    restriction_ground: str | None,
    received_at: datetime,
    by: UUID,
    role: str,
    now: datetime,
) -> DataSubjectRequest:
    """A request as it arrived. Identifiers are checked and normalised here (a bad one is named by its index,
    never echoed), sealed under the request's own key, and not used for anything until identity is proven."""
    if received_at > now:
        raise StepRefused("received_at", "a request cannot be received in the future")
    known = set(policies.registers())
    for index, name in enumerate(registers):
        if name not in known:
            # Named by its index: an error body never repeats what was sent.
            raise StepRefused(f"registers[{index}]", "unknown register")
    if request_type is RightName.RESTRICTION and restriction_ground not in RESTRICTION_GROUNDS:
        raise StepRefused("restriction_ground", "a restriction names its Art. 18(1) ground: a, b, c or d")
    if request_type is not RightName.RESTRICTION and restriction_ground is not None:
        raise StepRefused("restriction_ground", "only a restriction request has a restriction ground")
    if request_type is RightName.RECTIFICATION and not (
        details and details.get("field") and details.get("change")
    ):
        # DVV's notice: a rectification request names the data to correct and the exact change.
        raise StepRefused("details", "a rectification names the field to correct and the exact change")
    normalised: list[dict[str, str]] = []
    for index, identifier in enumerate(requester):
        try:
            value = normalise_identifier(identifier.kind, identifier.value)
        except IdentifierError as exc:
            raise StepRefused(f"requester[{index}].value", str(exc)) from None
        normalised.append({"kind": identifier.kind, "value": value})
    request_id = uuid.uuid4()
    keys = await keystore.get_or_create(session, {(request_id, REQUEST_KEY_CLASS)})
    key = keys[request_id, REQUEST_KEY_CLASS]
    deadline = statutory_deadline(received_at)
    request = DataSubjectRequest(
        request_id=request_id,
        case_number=await next_case_number(session, received_at),
        request_type=request_type.value,
        registers=sorted(set(registers)) or sorted(known),
        status="received",
        received_at=received_at,
        last_day=deadline.last_day,
        extension_months=0,
        extension_reasons=[],
        sealed_requester=seal(key, orjson.dumps(normalised), aad=_requester_aad(request_id, "requester")),
        sealed_details=(
            seal(key, orjson.dumps(details), aad=_requester_aad(request_id, "details")) if details else None
        ),
        restriction_ground=restriction_ground,
        decisions=[],
        created_by=by,
    )
    session.add(request)
    await session.flush()
    await _changed(session, request, None, by=by, role=role, now=now, reason="received")
    return request


async def requester_identifiers(
    session: AsyncSession, keystore: KeyStore, request: DataSubjectRequest
) -> list[Identifier]:
    keys = await keystore.get(session, {(request.request_id, REQUEST_KEY_CLASS)})
    key = keys[request.request_id, REQUEST_KEY_CLASS]
    raw = open_sealed(key, request.sealed_requester, aad=_requester_aad(request.request_id, "requester"))
    return [Identifier(**item) for item in orjson.loads(raw)]


async def request_details(
    session: AsyncSession, keystore: KeyStore, request: DataSubjectRequest
) -> dict[str, Any] | None:
    """The requester's own words (a rectification's field and change, an objection's grounds), unsealed."""
    if request.sealed_details is None:
        return None
    keys = await keystore.get(session, {(request.request_id, REQUEST_KEY_CLASS)})
    key = keys[request.request_id, REQUEST_KEY_CLASS]
    details: dict[str, Any] = orjson.loads(
        open_sealed(key, request.sealed_details, aad=_requester_aad(request.request_id, "details"))
    )
    return details


async def move(
    session: AsyncSession,
    request: DataSubjectRequest,
    status: str,
    *,
    by: UUID,
    role: str,
    now: datetime,
    reason: str,
) -> None:
    """Move the request to `status` if its lifecycle allows it from where it is."""
    allowed = TRANSITIONS.get(request.status, frozenset())
    if status not in allowed:
        raise StepRefused("status", f"a {request.status} request cannot become {status}")
    previous = request.status
    request.status = status
    request.updated_at = now
    if status in CLOSED_STATUSES:
        request.closed_at = now
    await session.flush()
    await _changed(session, request, previous, by=by, role=role, now=now, reason=reason)


async def announce(
    session: AsyncSession,
    request: DataSubjectRequest,
    event_type: str,
    data: dict[str, Any],
    *,
    now: datetime,
) -> None:
    """An event about this request on the DSR topic, keyed by the request so its steps stay in order."""
    await enqueue(
        session,
        topic=DSR_EVENTS_TOPIC,
        key=request.request_id,
        event=envelope(
            event_type,
            {"request_id": request.request_id, "case_number": request.case_number, **data},
            producer=SERVICE,
            occurred_at=now,
        ),
    )


async def _changed(
    session: AsyncSession,
    request: DataSubjectRequest,
    previous: str | None,
    *,
    by: UUID,
    role: str,
    now: datetime,
    reason: str,
    object_ids: Sequence[UUID] = (),
) -> None:
    """Every step: an audit entry (who, which request, why) and a request_changed event, in the step's
    transaction."""
    await audit_step(session, request, by=by, role=role, now=now, reason=reason, object_ids=object_ids)
    await announce(
        session,
        request,
        "dsr.request_changed",
        {
            "request_type": request.request_type,
            "status": request.status,
            "previous_status": previous,
            "registers": request.registers,
            "last_day": request.last_day,
        },
        now=now,
    )


async def audit_step(
    session: AsyncSession,
    request: DataSubjectRequest,
    *,
    by: UUID,
    role: str,
    now: datetime,
    reason: str,
    object_ids: Sequence[UUID] = (),
    action: Action = Action.DSR_STEP,
) -> None:
    await record(
        session,
        actor=by,
        role=role,
        action=action,
        object_type=f"dsr.{request.request_type}",
        object_ids=[request.request_id, *object_ids],
        reason=reason,
        service=SERVICE,
        occurred_at=now,
    )


async def verify_identity(
    session: AsyncSession, request: DataSubjectRequest, *, method: str, by: UUID, role: str, now: datetime
) -> None:
    if method not in IDENTITY_METHODS:
        raise StepRefused("method", f"one of: {', '.join(IDENTITY_METHODS)}")
    request.identity_method = method
    request.identity_verified_at = now
    request.identity_verified_by = by
    await move(session, request, "identity_verified", by=by, role=role, now=now, reason=f"identity_{method}")


def require_verified(request: DataSubjectRequest) -> None:
    if request.identity_verified_at is None:
        raise StepRefused("identity", "the requester's identity is not verified yet")


async def search(
    session: AsyncSession,
    request: DataSubjectRequest,
    *,
    keystore: KeyStore,
    blind_index: BlindIndex,
    by: UUID,
    role: str,
    now: datetime,
) -> list[Candidate]:
    """Find the contacts the requester's identifiers link to, in the request's registers, through the blind
    index. Each is a candidate until a caseworker confirms or rejects it; a repeated search keeps decisions."""
    require_verified(request)
    if request.status in CLOSED_STATUSES:
        raise StepRefused("status", f"the request is {request.status}")
    digests: dict[str, str] = {}
    for identifier in await requester_identifiers(session, keystore, request):
        digests[blind_index.digest(identifier.kind, identifier.value).hex()] = identifier.kind
    matches: dict[UUID, tuple[Contact, set[str]]] = {}
    if digests:
        rows = await session.execute(
            select(Contact, SubjectIndex.digest)
            .join(SubjectIndex, SubjectIndex.contact_ref == Contact.contact_ref)
            .where(SubjectIndex.digest.in_(list(digests)), Contact.register.in_(request.registers))
        )
        for contact, digest in rows:
            matches.setdefault(contact.contact_ref, (contact, set()))[1].add(digests[digest])
    existing = {
        c.contact_ref: c
        for c in (await session.scalars(select(Candidate).where(Candidate.request_id == request.request_id)))
    }
    for ref, (contact, kinds) in matches.items():
        if ref in existing:
            existing[ref].matched_by = sorted(kinds)
            continue
        candidate = Candidate(
            request_id=request.request_id,
            contact_ref=ref,
            register=contact.register,
            channel=contact.channel,
            started_at=contact.started_at,
            matched_by=sorted(kinds),
            decision="pending",
        )
        session.add(candidate)
        existing[ref] = candidate
    await session.flush()
    if request.status == "identity_verified":
        await move(session, request, "in_progress", by=by, role=role, now=now, reason="searched")
    else:
        await audit_step(session, request, by=by, role=role, now=now, reason="searched")
    await record(
        session,
        actor=by,
        role=role,
        action=Action.SEARCH,
        object_type="contact",
        object_ids=sorted(matches)[:100],
        reason="dsr_subject_search",
        service=SERVICE,
        occurred_at=now,
    )
    return sorted(existing.values(), key=lambda c: (c.started_at, str(c.contact_ref)))


async def decide_candidate(
    session: AsyncSession,
    request: DataSubjectRequest,
    contact_ref: UUID,
    *,
    confirmed: bool,
    by: UUID,
    role: str,
    now: datetime,
) -> Candidate:
    require_verified(request)
    if request.status in CLOSED_STATUSES:
        raise StepRefused("status", f"the request is {request.status}")
    candidate = await session.get(Candidate, (request.request_id, contact_ref))
    if candidate is None:
        raise LookupError("contact_ref")
    candidate.decision = "confirmed" if confirmed else "rejected"
    candidate.decided_by = by
    candidate.decided_at = now
    await session.flush()
    await audit_step(
        session,
        request,
        by=by,
        role=role,
        now=now,
        reason="candidate_confirmed" if confirmed else "candidate_rejected",
        object_ids=[contact_ref],
    )
    return candidate


async def confirmed_contacts(session: AsyncSession, request: DataSubjectRequest) -> list[Candidate]:
    return list(
        (
            await session.scalars(
                select(Candidate)
                .where(Candidate.request_id == request.request_id, Candidate.decision == "confirmed")
                .order_by(Candidate.started_at)
            )
        ).all()
    )


async def extend(
    session: AsyncSession,
    request: DataSubjectRequest,
    *,
    months: int,
    reasons: Sequence[str],
    by: UUID,
    role: str,
    now: datetime,
) -> None:
    """Art. 12(3): one extension of up to two further months, decided and told to the requester within the
    first month."""
    if request.extension_months:
        raise StepRefused("months", "the time limit has already been extended once")
    if not 1 <= months <= 2:
        raise StepRefused("months", "an extension is one or two months")
    if not reasons:
        raise StepRefused("reasons", "an extension needs its reasons (Art. 12(3))")
    first = statutory_deadline(request.received_at)
    if now >= first.ends_at:
        raise StepRefused("months", "the first time limit has passed: it can no longer be extended")
    extended = statutory_deadline(request.received_at, extension_months=months)
    request.extension_months = months
    request.extension_reasons = list(reasons)
    request.extended_at = now
    request.last_day = extended.last_day
    # A reminder already sent was about the old last day.
    request.reminded_at = None
    await move(session, request, "extended", by=by, role=role, now=now, reason="extended")


def decisions_for(
    policies: PolicyRegistry,
    request: DataSubjectRequest,
    *,
    conditions_met: dict[str, bool],
    now: datetime,
) -> list[RegisterRight]:
    """The decision per register: what its policy grants, with the caseworker's word on a conditional right."""
    decided = []
    for right in rights_for(policies, request.registers, RightName(request.request_type), now):
        decided.append(right.decide(condition_met=conditions_met.get(right.register)))
    return decided


async def contacts_event(
    session: AsyncSession,
    request: DataSubjectRequest,
    event_type: str,
    *,
    ground: str,
    contact_refs: Sequence[UUID],
    now: datetime,
) -> None:
    await announce(
        session, request, event_type, {"ground": ground, "contact_refs": list(contact_refs)}, now=now
    )


async def restrict(
    session: AsyncSession, request: DataSubjectRequest, contact_refs: Sequence[UUID], *, now: datetime
) -> None:
    """Art. 18: the contacts are marked restricted in the record store, where every read, listen and export
    checks it; retention holds them for grounds (c) and (d) when it sees the event."""
    if contact_refs:
        await session.execute(
            update(Contact)
            .where(Contact.contact_ref.in_(list(contact_refs)), Contact.restricted_at.is_(None))
            .values(restricted_at=now)
        )
    await contacts_event(
        session,
        request,
        "dsr.restriction_applied",
        ground=f"art18_1_{request.restriction_ground}",
        contact_refs=contact_refs,
        now=now,
    )


async def schedule_lift(
    session: AsyncSession, request: DataSubjectRequest, *, lifts_on: date, by: UUID, role: str, now: datetime
) -> None:
    """Art. 18(3): the requester is told before a restriction is lifted, so the lift is set for a later day
    (the deadline watch carries it out) and the letter goes now."""
    if request.request_type != RightName.RESTRICTION.value or request.status not in (
        "completed",
        "partially_granted",
    ):
        raise StepRefused("status", "only a granted restriction can be lifted")
    if request.restriction_lifted_at is not None or request.restriction_lifts_on is not None:
        raise StepRefused("status", "the restriction is already lifted or set to be lifted")
    if lifts_on <= now.astimezone(HELSINKI).date():
        raise StepRefused("lifts_on", "the requester is told first: the lift must be on a later day")
    request.restriction_lifts_on = lifts_on
    await session.flush()
    await audit_step(session, request, by=by, role=role, now=now, reason="restriction_lift_notified")


async def lift_restriction(
    session: AsyncSession, request: DataSubjectRequest, *, by: UUID, role: str, now: datetime
) -> None:
    """Carry out a lift whose day has come: the contacts are no longer restricted, and holders are told."""
    contact_refs = [c.contact_ref for c in await confirmed_contacts(session, request)]
    if contact_refs:
        await session.execute(
            update(Contact).where(Contact.contact_ref.in_(contact_refs)).values(restricted_at=None)
        )
    request.restriction_lifted_at = now
    await session.flush()
    await contacts_event(
        session,
        request,
        "dsr.restriction_lifted",
        ground=f"art18_1_{request.restriction_ground}",
        contact_refs=contact_refs,
        now=now,
    )
    await audit_step(session, request, by=by, role=role, now=now, reason="restriction_lifted")

"""Data-subject requests: the lifecycle and the rules of each step. Each step takes the route's session and the
`Caller` (who acts, and when), loads and locks the request, flushes and never commits: the route's session
commits, so a step, its audit entry and its event are one transaction. A step the request's state or the law
does not allow raises ApiError naming the field: 409 for the request's state, 422 for what was given.

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
from sqlalchemy.ext.asyncio import AsyncSession

from services.dsr import letters, repository
from services.dsr.deadlines import statutory_deadline
from services.dsr.models import REQUEST_KEY_CLASS, Candidate, DataSubjectRequest, Package
from services.dsr.rights import RegisterRight, rights_for
from services.dsr.schemas import (
    CandidateList,
    CandidateRead,
    PackageRead,
    RequestDetails,
    RequesterIdentifier,
    RequesterRead,
    RequestRead,
    StepWithLetter,
)
from shared.app import Caller
from shared.audit.chain import Action
from shared.audit.log import SYSTEM_ROLE, record, system_actor
from shared.contracts.domain_events import DSR_EVENTS_TOPIC
from shared.contracts.identifiers import IdentifierError, normalise_identifier
from shared.messaging.outbox import enqueue, envelope
from shared.platform.clock import HELSINKI
from shared.platform.crypto import BlindIndex, open_sealed, seal, unwrap_data_key
from shared.platform.errors import ApiError, FieldError
from shared.policy.model import RightName
from shared.policy.registry import PolicyRegistry
from shared.recordstore import subjects
from shared.recordstore.keystore import KeyStore

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


def refused(field: str, reason: str) -> ApiError:
    """A step the request's state or the law does not allow now (409)."""
    return ApiError.field(409, field, reason, title="Step not allowed")


def invalid(field: str, reason: str) -> ApiError:
    """What the caseworker gave breaks a rule (422)."""
    return ApiError.field(422, field, reason)


class RequestNotFound(ApiError):
    """No request has this id. The routes' caller dependency audits it as a failed read (services.dsr.api.deps),
    in a transaction of its own: the step's transaction rolls back."""

    def __init__(self) -> None:
        super().__init__(404, "Request not found", [FieldError("request_id", "no such request")])


@dataclass(frozen=True)
class Identifier:
    kind: str
    value: str


def package_key_context(package_id: UUID) -> bytes:
    return f"sailo-dsr-package:{package_id}".encode()


async def load(session: AsyncSession, request_id: UUID) -> DataSubjectRequest:
    """The request, locked for this step."""
    request = await repository.locked_request(session, request_id)
    if request is None:
        raise RequestNotFound()
    return request


async def next_case_number(session: AsyncSession, now: datetime) -> str:
    number = await repository.next_case_number(session)
    return f"DSR-{now.astimezone(HELSINKI).year}-{number:06d}"


def _requester_aad(request_id: UUID, part: str) -> bytes:
    return f"sailo-dsr:{request_id}:{part}".encode()


# -- what a caseworker sees -------------------------------------------------------------------------------


async def view(
    session: AsyncSession,
    request: DataSubjectRequest,
    now: datetime,
    packages: dict[UUID, Package] | None = None,
) -> RequestRead:
    """The request as the queue shows it: overdue by the Helsinki calendar, with its newest access package."""
    if packages is None:
        packages = await repository.latest_packages(session, [request.request_id])
    package = packages.get(request.request_id)
    overdue = request.status in OPEN_STATUSES and now.astimezone(HELSINKI).date() > request.last_day
    return RequestRead(
        request_id=request.request_id,
        case_number=request.case_number,
        request_type=request.request_type,
        registers=request.registers,
        status=request.status,
        received_at=request.received_at,
        last_day=request.last_day,
        overdue=overdue,
        extension_months=request.extension_months,
        extension_reasons=request.extension_reasons,
        identity_method=request.identity_method,
        identity_verified_at=request.identity_verified_at,
        restriction_ground=request.restriction_ground,
        restriction_lifted_at=request.restriction_lifted_at,
        decisions=request.decisions,
        closed_at=request.closed_at,
        package=PackageRead.model_validate(package, from_attributes=True) if package else None,
    )


def _candidate(candidate: Candidate) -> CandidateRead:
    return CandidateRead.model_validate(candidate, from_attributes=True)


@dataclass(frozen=True)
class RequestPage:
    requests: list[RequestRead]
    next_after: tuple[date, str] | None
    """The position (last day, case number) the next page starts after; None on the last page."""


async def list_requests(
    session: AsyncSession,
    caller: Caller,
    *,
    status: str | None,
    request_type: str | None,
    due_before: date | None,
    due_after: date | None,
    open_only: bool,
    after: tuple[date, str] | None,
    limit: int,
) -> RequestPage:
    """The queue by last day; the page's requests are audited as searched."""
    now = caller.now()
    rows = await repository.requests_page(
        session,
        status=status,
        request_type=request_type,
        due_before=due_before,
        due_after=due_after,
        statuses=OPEN_STATUSES if open_only else None,
        after=after,
        limit=limit + 1,
    )
    page, more = rows[:limit], len(rows) > limit
    await caller.audit(session, Action.SEARCH, "dsr.request", [r.request_id for r in page][:100])
    packages = await repository.latest_packages(session, [r.request_id for r in page])
    items = [await view(session, r, now, packages) for r in page]
    return RequestPage(items, (page[-1].last_day, page[-1].case_number) if more and page else None)


async def get_request(session: AsyncSession, caller: Caller, request_id: UUID) -> RequestRead:
    now = caller.now()
    request = await load(session, request_id)
    await _audit(session, caller, request, reason="viewed", action=Action.READ)
    return await view(session, request, now)


async def get_requester(
    session: AsyncSession, caller: Caller, request_id: UUID, *, keystore: KeyStore
) -> RequesterRead:
    """The requester's identifiers and own words, unsealed; audited as a read."""
    request = await load(session, request_id)
    identifiers = await requester_identifiers(session, keystore, request)
    details = await request_details(session, keystore, request)
    await _audit(session, caller, request, reason="requester_viewed", action=Action.READ)
    return RequesterRead(
        requester=[RequesterIdentifier(kind=i.kind, value=i.value) for i in identifiers],
        details=RequestDetails(**details) if details else None,
    )


async def candidates(session: AsyncSession, caller: Caller, request_id: UUID) -> CandidateList:
    request = await load(session, request_id)
    return CandidateList(
        candidates=[_candidate(c) for c in await repository.candidates_of(session, request.request_id)]
    )


async def reply(session: AsyncSession, caller: Caller, request_id: UUID) -> str:
    """The reply letter, once the request is answered."""
    request = await load(session, request_id)
    if request.reply is None:
        raise ApiError.field(409, "status", "the request has not been answered yet")
    return request.reply


@dataclass(frozen=True)
class PackageDownload:
    package_key: bytes
    blob_key: str
    case_number: str


async def download_package(
    session: AsyncSession, caller: Caller, request_id: UUID, *, kek: bytes
) -> PackageDownload:
    """The key and place of the request's newest access package, marked downloaded and audited as disclosed;
    404 when there is none, 410 once it has expired (its key is destroyed)."""
    now = caller.now()
    request = await load(session, request_id)
    package = await repository.latest_package(session, request.request_id)
    if package is None:
        raise ApiError.field(404, "request_id", "this request has no access package")
    if package.wrapped_key is None or package.expires_at <= now:
        raise ApiError.field(410, "request_id", "the access package has expired and was destroyed")
    key = unwrap_data_key(kek, package.wrapped_key, context=package_key_context(package.package_id))
    package.downloaded_at = now
    await _audit(
        session,
        caller,
        request,
        reason="package_downloaded",
        object_ids=[package.package_id],
        action=Action.DISCLOSE,
    )
    return PackageDownload(key, package.blob_key, request.case_number)


# -- the steps --------------------------------------------------------------------------------------------


async def register_request(
    session: AsyncSession,
    caller: Caller,
    *,
    keystore: KeyStore,
    policies: PolicyRegistry,
    request_type: RightName,
    registers: Sequence[str],
    requester: Sequence[Identifier],
    details: dict[str, Any] | None,
    restriction_ground: str | None,
    received_at: datetime | None,
) -> RequestRead:
    """A request as it arrived (now, unless `received_at` says when). Identifiers are checked and normalised
    here (a bad one is named by its index, never echoed), sealed under the request's own key, and not used for
    anything until identity is proven."""
    now = caller.now()
    received_at = received_at or now
    if received_at > now:
        raise invalid("received_at", "a request cannot be received in the future")
    known = set(policies.registers())
    for index, name in enumerate(registers):
        if name not in known:
            # Named by its index: an error body never repeats what was sent.
            raise invalid(f"registers[{index}]", "unknown register")
    if request_type is RightName.RESTRICTION and restriction_ground not in RESTRICTION_GROUNDS:
        raise invalid("restriction_ground", "a restriction names its Art. 18(1) ground: a, b, c or d")
    if request_type is not RightName.RESTRICTION and restriction_ground is not None:
        raise invalid("restriction_ground", "only a restriction request has a restriction ground")
    if request_type is RightName.RECTIFICATION and not (
        details and details.get("field") and details.get("change")
    ):
        # DVV's notice: a rectification request names the data to correct and the exact change.
        raise invalid("details", "a rectification names the field to correct and the exact change")
    normalised: list[dict[str, str]] = []
    for index, identifier in enumerate(requester):
        try:
            value = normalise_identifier(identifier.kind, identifier.value)
        except IdentifierError as exc:
            raise invalid(f"requester[{index}].value", str(exc)) from None
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
        created_by=caller.actor,
    )
    session.add(request)
    await session.flush()
    await _changed(session, caller, request, None, now=now, reason="received")
    return await view(session, request, now)


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
    caller: Caller,
    request: DataSubjectRequest,
    status: str,
    *,
    now: datetime,
    reason: str,
) -> None:
    """Move the request to `status` if its lifecycle allows it from where it is."""
    allowed = TRANSITIONS.get(request.status, frozenset())
    if status not in allowed:
        raise refused("status", f"a {request.status} request cannot become {status}")
    previous = request.status
    request.status = status
    request.updated_at = now
    if status in CLOSED_STATUSES:
        request.closed_at = now
    await session.flush()
    await _changed(session, caller, request, previous, now=now, reason=reason)


async def change_status(
    session: AsyncSession, caller: Caller, request_id: UUID, *, status: str
) -> RequestRead:
    """Wait for the requester, resume, record a withdrawal, or refuse a request whose requester could not be
    identified (a verified one is refused through its answer, with the legal ground)."""
    now = caller.now()
    request = await load(session, request_id)
    if status == "refused" and request.identity_verified_at is not None:
        raise refused("status", "a verified request is refused through its answer")
    await move(session, caller, request, status, now=now, reason=status)
    return await view(session, request, now)


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
    caller: Caller,
    request: DataSubjectRequest,
    previous: str | None,
    *,
    now: datetime,
    reason: str,
) -> None:
    """Every step: an audit entry (who, which request, why) and a request_changed event, in the step's
    transaction."""
    await _audit(session, caller, request, reason=reason)
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


async def _audit(
    session: AsyncSession,
    caller: Caller,
    request: DataSubjectRequest,
    *,
    reason: str,
    object_ids: Sequence[UUID] = (),
    action: Action = Action.DSR_STEP,
) -> None:
    """The step's audit entry: the request (and what else it touched), filed under the request's type."""
    await caller.audit(
        session,
        action,
        f"dsr.{request.request_type}",
        [request.request_id, *object_ids],
        reason=reason,
    )


async def audit_by_system(
    session: AsyncSession, request: DataSubjectRequest, *, now: datetime, reason: str
) -> None:
    """The audit entry of a step this service takes on its own (the deadline watch), under its system actor."""
    await record(
        session,
        actor=system_actor(SERVICE),
        role=SYSTEM_ROLE,
        action=Action.DSR_STEP,
        object_type=f"dsr.{request.request_type}",
        object_ids=[request.request_id],
        reason=reason,
        service=SERVICE,
        occurred_at=now,
    )


async def verify_identity(
    session: AsyncSession, caller: Caller, request_id: UUID, *, method: str
) -> RequestRead:
    """Record how the requester's identity was proven; from now on their data may be searched."""
    now = caller.now()
    request = await load(session, request_id)
    if method not in IDENTITY_METHODS:
        raise refused("method", f"one of: {', '.join(IDENTITY_METHODS)}")
    request.identity_method = method
    request.identity_verified_at = now
    request.identity_verified_by = caller.actor
    await move(session, caller, request, "identity_verified", now=now, reason=f"identity_{method}")
    return await view(session, request, now)


def require_verified(request: DataSubjectRequest) -> None:
    if request.identity_verified_at is None:
        raise refused("identity", "the requester's identity is not verified yet")


async def search(
    session: AsyncSession,
    caller: Caller,
    request_id: UUID,
    *,
    keystore: KeyStore,
    blind_index: BlindIndex,
) -> CandidateList:
    """Find the contacts the requester's identifiers link to, in the request's registers, through the blind
    index. Each is a candidate until a caseworker confirms or rejects it; a repeated search keeps decisions."""
    now = caller.now()
    request = await load(session, request_id)
    require_verified(request)
    if request.status in CLOSED_STATUSES:
        raise refused("status", f"the request is {request.status}")
    digests: dict[str, str] = {}
    for identifier in await requester_identifiers(session, keystore, request):
        digests[blind_index.digest(identifier.kind, identifier.value).hex()] = identifier.kind
    matches = {
        found.contact_ref: found
        for found in await subjects.find_contacts(session, list(digests), registers=request.registers)
    }
    existing = {c.contact_ref: c for c in await repository.candidates_of(session, request.request_id)}
    for ref, contact in matches.items():
        kinds = {digests[digest] for digest in contact.digests}
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
        await move(session, caller, request, "in_progress", now=now, reason="searched")
    else:
        await _audit(session, caller, request, reason="searched")
    await caller.audit(session, Action.SEARCH, "contact", sorted(matches)[:100], reason="dsr_subject_search")
    found = sorted(existing.values(), key=lambda c: (c.started_at, str(c.contact_ref)))
    return CandidateList(candidates=[_candidate(c) for c in found])


async def decide_candidate(
    session: AsyncSession,
    caller: Caller,
    request_id: UUID,
    contact_ref: UUID,
    *,
    confirmed: bool,
) -> CandidateRead:
    """Confirm that a found contact is the requester's, or reject it."""
    now = caller.now()
    request = await load(session, request_id)
    require_verified(request)
    if request.status in CLOSED_STATUSES:
        raise refused("status", f"the request is {request.status}")
    candidate = await repository.candidate(session, request.request_id, contact_ref)
    if candidate is None:
        raise ApiError.field(404, "contact_ref", "not a candidate of this request")
    candidate.decision = "confirmed" if confirmed else "rejected"
    candidate.decided_by = caller.actor
    candidate.decided_at = now
    await session.flush()
    await _audit(
        session,
        caller,
        request,
        reason="candidate_confirmed" if confirmed else "candidate_rejected",
        object_ids=[contact_ref],
    )
    return _candidate(candidate)


def _letter_context(
    request: DataSubjectRequest, now: datetime, *, last_day: date | None = None
) -> letters.LetterContext:
    return letters.LetterContext(
        case_number=request.case_number,
        received_on=request.received_at.astimezone(HELSINKI).date(),
        dated=now.astimezone(HELSINKI).date(),
        last_day=last_day,
    )


async def extend(
    session: AsyncSession,
    caller: Caller,
    request_id: UUID,
    *,
    months: int,
    reasons: Sequence[letters.ExtensionReason],
    policies: PolicyRegistry,
) -> StepWithLetter:
    """Art. 12(3): one extension of up to two further months, decided and told to the requester within the
    first month; the letter telling them comes with it."""
    now = caller.now()
    request = await load(session, request_id)
    previous_last_day = request.last_day
    if request.extension_months:
        raise refused("months", "the time limit has already been extended once")
    if not 1 <= months <= 2:
        raise refused("months", "an extension is one or two months")
    if not reasons:
        raise refused("reasons", "an extension needs its reasons (Art. 12(3))")
    first = statutory_deadline(request.received_at)
    if now >= first.ends_at:
        raise refused("months", "the first time limit has passed: it can no longer be extended")
    extended = statutory_deadline(request.received_at, extension_months=months)
    request.extension_months = months
    request.extension_reasons = [reason.value for reason in reasons]
    request.extended_at = now
    request.last_day = extended.last_day
    # A reminder already sent was about the old last day.
    request.reminded_at = None
    await move(session, caller, request, "extended", now=now, reason="extended")
    letter = letters.extension_letter(
        _letter_context(request, now, last_day=previous_last_day),
        RightName(request.request_type),
        [policies.latest(register) for register in request.registers],
        reasons=reasons,
        new_last_day=request.last_day,
    )
    return StepWithLetter(request=await view(session, request, now), letter=letter)


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
    await subjects.restrict_contacts(session, contact_refs, at=now)
    await contacts_event(
        session,
        request,
        "dsr.restriction_applied",
        ground=f"art18_1_{request.restriction_ground}",
        contact_refs=contact_refs,
        now=now,
    )


async def schedule_lift(
    session: AsyncSession,
    caller: Caller,
    request_id: UUID,
    *,
    lifts_on: date,
    reason: letters.LiftReason,
    policies: PolicyRegistry,
) -> StepWithLetter:
    """Art. 18(3): the requester is told before a restriction is lifted, so the lift is set for a later day
    (the deadline watch carries it out) and the letter goes now."""
    now = caller.now()
    request = await load(session, request_id)
    if request.request_type != RightName.RESTRICTION.value or request.status not in (
        "completed",
        "partially_granted",
    ):
        raise refused("status", "only a granted restriction can be lifted")
    if request.restriction_lifted_at is not None or request.restriction_lifts_on is not None:
        raise refused("status", "the restriction is already lifted or set to be lifted")
    if lifts_on <= now.astimezone(HELSINKI).date():
        raise refused("lifts_on", "the requester is told first: the lift must be on a later day")
    request.restriction_lifts_on = lifts_on
    await session.flush()
    await _audit(session, caller, request, reason="restriction_lift_notified")
    letter = letters.restriction_lifted_letter(
        _letter_context(request, now),
        [policies.latest(register) for register in request.registers],
        restricted_on=(request.closed_at or now).astimezone(HELSINKI).date(),
        lifted_on=lifts_on,
        reason=reason,
    )
    return StepWithLetter(request=await view(session, request, now), letter=letter)


async def lift_restriction(session: AsyncSession, request: DataSubjectRequest, *, now: datetime) -> None:
    """Carry out a lift whose day has come (the deadline watch, under the system actor): the contacts are no
    longer restricted, and holders are told."""
    contact_refs = [c.contact_ref for c in await repository.confirmed_candidates(session, request.request_id)]
    await subjects.lift_restriction(session, contact_refs)
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
    await audit_by_system(session, request, now=now, reason="restriction_lifted")

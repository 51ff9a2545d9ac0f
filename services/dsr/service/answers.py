"""Answering a request: the decision per register, carrying it out, and the reply letter.

Access builds the package (services.dsr.package) from the confirmed contacts of the registers that grant it, or
answers "we hold no data about you"; restriction marks the contacts restricted; erasure and an upheld objection
hand the contacts to retention's deletion path (the dsr.erasure_decided event: retention deletes them at its
next sweep and certifies each deletion). Every refusal carries its legal ground into the reply.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.dsr import letters, repository
from services.dsr.models import Candidate, DataSubjectRequest, Package
from services.dsr.package import build_access_package
from services.dsr.rights import ConditionUnanswered, RegisterRight
from services.dsr.schemas import RequestRead
from services.dsr.service.disclosures import loans_of
from services.dsr.service.lifecycle import (
    announce,
    contacts_event,
    decisions_for,
    invalid,
    load,
    move,
    package_key_context,
    refused,
    require_verified,
    restrict,
    view,
)
from services.dsr.service.rectification import Changes, rectify
from shared.app import Caller
from shared.platform.clock import HELSINKI
from shared.platform.crypto import BlindIndex, generate_data_key, wrap_data_key
from shared.policy.model import PolicyVersion, RightName
from shared.policy.registry import PolicyRegistry
from shared.recordstore.keystore import KeyStore
from shared.storage.blobstore import BlobStore

ANSWERABLE: Final = ("in_progress", "extended", "awaiting_requester")


def _context(request: DataSubjectRequest, now: datetime) -> letters.LetterContext:
    return letters.LetterContext(
        case_number=request.case_number,
        received_on=request.received_at.astimezone(HELSINKI).date(),
        dated=now.astimezone(HELSINKI).date(),
        last_day=request.last_day,
    )


def _letter_decisions(decided: list[RegisterRight]) -> list[letters.RegisterDecision]:
    return [
        letters.RegisterDecision(
            version=d.version,
            outcome=letters.Outcome.GRANTED if d.outcome == "granted" else letters.Outcome.REFUSED,
            statutory_ground=letters.StatutoryGround(d.statutory_ground) if d.statutory_ground else None,
        )
        for d in decided
    ]


async def answer(
    session: AsyncSession,
    caller: Caller,
    request_id: UUID,
    *,
    keystore: KeyStore,
    blobs: BlobStore,
    kek: bytes,
    policies: PolicyRegistry,
    conditions_met: dict[str, bool],
    package_days: int,
    blind_index: BlindIndex,
    changes: Changes | None = None,
) -> RequestRead:
    """Decide, carry out, write the reply and close the request; the request as it now stands."""
    now = caller.now()
    request = await load(session, request_id)
    await _answer(
        session,
        caller,
        request,
        keystore=keystore,
        blobs=blobs,
        kek=kek,
        policies=policies,
        conditions_met=conditions_met,
        package_days=package_days,
        blind_index=blind_index,
        changes=changes,
        now=now,
    )
    return await view(session, request, now)


async def _answer(
    session: AsyncSession,
    caller: Caller,
    request: DataSubjectRequest,
    *,
    keystore: KeyStore,
    blobs: BlobStore,
    kek: bytes,
    policies: PolicyRegistry,
    conditions_met: dict[str, bool],
    package_days: int,
    blind_index: BlindIndex,
    changes: Changes | None,
    now: datetime,
) -> Package | None:
    """Returns the access package, if one was made."""
    require_verified(request)
    if request.status not in ANSWERABLE:
        raise refused("status", f"a {request.status} request cannot be answered")
    pending = await repository.pending_candidates(session, request.request_id)
    if pending:
        raise refused("candidates", f"{pending} candidate contact(s) still to be confirmed or rejected")
    right = RightName(request.request_type)
    if changes is not None and right is not RightName.RECTIFICATION:
        raise invalid("rectification", "only a rectification request is answered with corrections")
    try:
        decided = decisions_for(policies, request, conditions_met=conditions_met, now=now)
    except ConditionUnanswered as exc:
        raise invalid(
            "conditions", f"the right is conditional in {exc.register}: say whether its condition holds"
        ) from None
    if right is RightName.RECTIFICATION and (changes is None or changes.empty):
        decided = [d.refuse_as_accurate() if d.outcome == "granted" else d for d in decided]
    request.decisions = [d.as_record() for d in decided]
    granted = {d.register for d in decided if d.outcome == "granted"}
    contacts = [
        c for c in await repository.confirmed_candidates(session, request.request_id) if c.register in granted
    ]
    refs = [c.contact_ref for c in contacts]
    context = _context(request, now)
    package: Package | None = None
    if right is RightName.ACCESS and granted:
        if contacts:
            package, reply = await _build_package(
                session,
                request,
                contacts,
                decided,
                keystore=keystore,
                blobs=blobs,
                kek=kek,
                policies=policies,
                package_days=package_days,
                context=context,
                now=now,
            )
        else:
            reply = letters.no_data_letter(
                context, [d.version for d in decided if d.outcome == "granted"], request=RightName.ACCESS
            )
        not_granted = [d for d in decided if d.outcome != "granted"]
        if not_granted:
            reply += "\n\n" + letters.decision_letter(context, right, _letter_decisions(not_granted))
    elif right is RightName.RECTIFICATION and granted:
        assert changes is not None  # an empty rectification was refused above
        if not contacts:
            return await _closed_with(
                session,
                request,
                decided,
                letters.no_data_letter(
                    context, [d.version for d in decided if d.outcome == "granted"], request=right
                ),
                caller=caller,
                now=now,
            )
        done = await rectify(
            session,
            keystore=keystore,
            blind_index=blind_index,
            contact_refs=refs,
            corrections=changes.corrections,
            statement=changes.statement,
            case_number=request.case_number,
            now=now,
        )
        # Art. 19: whoever holds a copy (a research institute's loan) is told which contacts changed.
        await announce(
            session,
            request,
            "dsr.rectified",
            {
                "ground": "art16",
                "contact_refs": sorted(done.contact_refs),
                "fields": done.fields,
                "statement_added": done.statements > 0,
            },
            now=now,
        )
        reply = letters.decision_letter(
            context,
            right,
            _letter_decisions(decided),
            rectified=letters.Rectified(fields=tuple(done.fields), statement=done.statements > 0),
        )
    else:
        if right is RightName.RESTRICTION and refs:
            await restrict(session, request, refs, now=now)
        elif right in (RightName.ERASURE, RightName.OBJECTION) and refs:
            await contacts_event(
                session,
                request,
                "dsr.erasure_decided",
                ground="art17_1" if right is RightName.ERASURE else "art21_1",
                contact_refs=refs,
                now=now,
            )
        reply = letters.decision_letter(context, right, _letter_decisions(decided))
    return await _closed_with(session, request, decided, reply, caller=caller, now=now, package=package)


async def _closed_with(
    session: AsyncSession,
    request: DataSubjectRequest,
    decided: list[RegisterRight],
    reply: str,
    *,
    caller: Caller,
    now: datetime,
    package: Package | None = None,
) -> Package | None:
    """Store the reply and close the request with the status its decisions make."""
    request.reply = reply
    outcomes = {d.outcome for d in decided}
    status = (
        "completed"
        if outcomes == {"granted"}
        else "refused"
        if outcomes == {"refused"}
        else "partially_granted"
    )
    await move(session, caller, request, status, now=now, reason=f"answered_{status}")
    return package


async def _build_package(
    session: AsyncSession,
    request: DataSubjectRequest,
    contacts: list[Candidate],
    decided: list[RegisterRight],
    *,
    keystore: KeyStore,
    blobs: BlobStore,
    kek: bytes,
    policies: PolicyRegistry,
    package_days: int,
    context: letters.LetterContext,
    now: datetime,
) -> tuple[Package, str]:
    """The package and its cover letter, which also names the granting registers searched without result."""
    # The notice versions that governed each contact, register by register: their Art. 15(1) information is
    # what applies to that data.
    versions: dict[str, dict[str, PolicyVersion]] = {}
    for contact in contacts:
        version = policies.version_at(contact.register, contact.started_at) or policies.latest(
            contact.register
        )
        versions.setdefault(contact.register, {})[version.version] = version
    findings = [
        letters.RegisterFindings(
            versions=tuple(sorted(by_id.values(), key=lambda v: v.effective_from)),
            # Research loans that included these contacts: recipients of the requester's data (Art. 15(1)(c)).
            loans=tuple(await loans_of(session, [c.contact_ref for c in contacts if c.register == register])),
        )
        for register, by_id in sorted(versions.items())
    ]

    searched_without_data = [
        d.version for d in decided if d.outcome == "granted" and d.register not in versions
    ]

    def cover(contents: letters.PackageContents) -> str:
        return letters.cover_letter(context, findings, contents, searched_without_data=searched_without_data)

    package_id = uuid.uuid4()
    package_key = generate_data_key()
    blob_key = f"dsr-packages/{request.request_id}/{package_id}.zip.enc"
    info = await build_access_package(
        session,
        keystore=keystore,
        blobs=blobs,
        contact_refs=[c.contact_ref for c in contacts],
        cover_letter=cover,
        package_key=package_key,
        blob_key=blob_key,
        case_number=request.case_number,
    )
    package = Package(
        package_id=package_id,
        request_id=request.request_id,
        blob_key=blob_key,
        wrapped_key=wrap_data_key(kek, package_key, context=package_key_context(package_id)),
        size=info.size,
        sha256=info.sha256,
        created_at=now,
        expires_at=now + timedelta(days=package_days),
    )
    session.add(package)
    await session.flush()
    return package, cover(info.contents)

"""Reading the record store: find a platform's contact id, and show a contact to an authorised reader."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.schemas import (
    ArtifactRead,
    ContactRead,
    EventRead,
    PartyRead,
    RecordingInfo,
    RectificationRead,
)
from shared.platform.crypto import BlindIndex, DecryptionError, open_sealed
from shared.platform.errors import ApiError
from shared.policy.registry import PolicyRegistry
from shared.recordstore.keystore import KeyStore
from shared.recordstore.models import Artifact, Contact, ContactEventRow, Party, sealed_aad
from shared.recordstore.store import rectifications_of
from shared.security.access import apply_record_rules
from shared.security.auth import Principal, Role


def contact_ref(blind_index: BlindIndex, register: str, contact_id: str) -> UUID:
    return blind_index.pseudonym("contact", register, contact_id)


async def find_contact(
    session: AsyncSession,
    *,
    blind_index: BlindIndex,
    policies: PolicyRegistry,
    contact_id: str,
    register: str | None,
    principal: Principal | None = None,
) -> Contact:
    """The contact a platform calls `contact_id`, in `register` or, when not given, in whichever register has it.

    With a `principal`, its record rules apply (shared/security/authorization.yaml): the transaction runs under the
    database role whose row-level security enforces them, an agent who may see only their own contacts gets
    404 for anyone else's, exactly as for a missing one, so the answer reveals nothing about contacts they may
    not see, and a restricted contact is refused to all but the legal-claims role.
    """
    if principal is not None:
        await apply_record_rules(session, principal)
    if register is not None:
        if register not in policies.registers():
            raise ApiError.field(422, "register", "unknown register")
        candidates = [register]
    else:
        candidates = policies.registers()
    refs = {contact_ref(blind_index, r, contact_id): r for r in candidates}
    query = select(Contact).where(Contact.contact_ref.in_(list(refs)))
    if principal is not None and principal.role is Role.AGENT:
        query = query.where(Contact.agent_id == principal.agent_id)
    found = list((await session.scalars(query)).all())
    if not found:
        raise ApiError.field(404, "contact_id", "no such contact", title="Contact not found")
    if len(found) > 1:
        raise ApiError.field(
            409,
            "register",
            "the contact id exists in several registers; name one with ?register=",
            title="Ambiguous",
        )
    contact = found[0]
    if (
        principal is not None
        and contact.restricted_at is not None
        and principal.role is not Role.LEGAL_CLAIMS
    ):
        raise ApiError.field(
            403,
            "contact_id",
            "processing of this contact is restricted (GDPR Art. 18); only the legal-claims role may use it",
            title="Restricted",
        )
    return contact


async def read_contact(
    session: AsyncSession, *, keystore: KeyStore, contact: Contact, contact_id: str, recording_href: str
) -> ContactRead:
    """The whole contact, decrypted; parts whose data key was destroyed show as null."""
    ref = contact.contact_ref
    events = list(
        (
            await session.scalars(
                select(ContactEventRow)
                .where(ContactEventRow.contact_ref == ref)
                .order_by(ContactEventRow.occurred_at)
            )
        ).all()
    )
    parties = list(
        (await session.scalars(select(Party).where(Party.contact_ref == ref).order_by(Party.id))).all()
    )
    artifacts = list((await session.scalars(select(Artifact).where(Artifact.contact_ref == ref))).all())
    classes = {e.artifact_class for e in events} | {p.artifact_class for p in parties}
    keys = await keystore.get(session, {(ref, c) for c in classes})

    def opened(artifact_class: str, part: str, sealed: bytes) -> dict[str, Any] | None:
        key = keys.get((ref, artifact_class))
        if key is None:
            return None
        try:
            value = orjson.loads(open_sealed(key, sealed, aad=sealed_aad(ref, artifact_class, part)))
        except DecryptionError:
            return None
        return value if isinstance(value, dict) else None

    event_reads = []
    for row in events:
        document = opened(row.artifact_class, "event", row.sealed)
        event_reads.append(
            EventRead(
                event_id=str(row.event_id),
                type=row.type,
                occurred_at=row.occurred_at,
                artifact_class=row.artifact_class,
                data=document["data"] if document else None,
            )
        )
    recording = next((a for a in artifacts if a.artifact_class == "recording" and a.blob_key), None)
    rectifications = (await rectifications_of(session, keystore, [ref])).get(ref, [])
    return ContactRead(
        contact_id=contact_id,
        register_id=contact.register,
        policy_version=contact.policy_version,
        channel=contact.channel,
        started_at=contact.started_at,
        ended_at=contact.ended_at,
        direction=contact.direction,
        agent_id=contact.agent_id,
        case_number=contact.case_number,
        case_status=contact.case_status,
        parties=[
            PartyRead(role=p.role, details=opened(p.artifact_class, "party", p.sealed)) for p in parties
        ],
        events=event_reads,
        artifacts=[
            ArtifactRead(
                artifact_class=a.artifact_class, status=a.status, first_at=a.first_at, last_at=a.last_at
            )
            for a in sorted(artifacts, key=lambda a: a.artifact_class)
        ],
        recording=RecordingInfo(
            sha256=recording.sha256,
            size_bytes=recording.size_bytes,
            duration_ms=recording.duration_ms,
            content_type=recording.content_type,
            href=recording_href,
        )
        if recording
        else None,
        rectifications=[
            RectificationRead(
                kind=r["kind"],
                field=r["field"],
                artifact_class=r["artifact_class"],
                case_number=r["case_number"],
                made_at=r["made_at"],
                statement=r.get("text"),
            )
            for r in rectifications
        ],
    )

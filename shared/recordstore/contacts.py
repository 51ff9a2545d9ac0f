"""Named reads of the record store for showing a contact to a reader: find contacts by their pseudonym, open a
whole contact, and find and stream its call recording.

The decisions (who may read what, which register is meant, what a miss answers) stay with the service that
asks; these functions only read, open what their data keys still open, and answer plain values.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.platform.crypto import DecryptionError, decrypt_stream, open_sealed
from shared.recordstore.keystore import KeyStore
from shared.recordstore.models import Artifact, Contact, ContactEventRow, Party, sealed_aad
from shared.recordstore.store import RECORDING, StoredArtifact, rectifications_of
from shared.storage.blobstore import BlobStore


@dataclass(frozen=True)
class StoredContact:
    """A contact's clear attributes: what access control, a reader and an upload need to know of it."""

    contact_ref: UUID
    register: str
    policy_version: str
    channel: str
    started_at: datetime
    ended_at: datetime | None
    direction: str | None
    agent_id: str | None
    case_number: str | None
    case_status: str | None
    restricted_at: datetime | None

    @classmethod
    def of(cls, row: Contact) -> StoredContact:
        return cls(
            contact_ref=row.contact_ref,
            register=row.register,
            policy_version=row.policy_version,
            channel=row.channel,
            started_at=row.started_at,
            ended_at=row.ended_at,
            direction=row.direction,
            agent_id=row.agent_id,
            case_number=row.case_number,
            case_status=row.case_status,
            restricted_at=row.restricted_at,
        )


@dataclass(frozen=True)
class StoredEvent:
    event_id: UUID
    type: str
    occurred_at: datetime
    artifact_class: str
    data: dict[str, Any] | None
    """The event's data, or None once its class's data key was destroyed."""


@dataclass(frozen=True)
class StoredParty:
    role: str
    details: dict[str, Any] | None
    """Who the party is, or None once its class's data key was destroyed."""


@dataclass(frozen=True)
class ContactView:
    """A whole contact, opened: its events in time order, its parties in the order first seen, its artifacts
    (by class) and its rectification history (see :func:`shared.recordstore.store.rectifications_of`)."""

    contact: StoredContact
    events: list[StoredEvent]
    parties: list[StoredParty]
    artifacts: list[StoredArtifact]
    rectifications: list[dict[str, Any]]

    @property
    def recording(self) -> StoredArtifact | None:
        """The stored call recording, if the contact has one."""
        return next((a for a in self.artifacts if a.artifact_class == RECORDING and a.blob_key), None)


def _contacts(contact_refs: Collection[UUID]) -> Select[Contact]:
    return select(Contact).where(Contact.contact_ref.in_(list(contact_refs)))


async def contacts_named(session: AsyncSession, contact_refs: Collection[UUID]) -> list[StoredContact]:
    """The contacts among `contact_refs` that exist (and that the session's record rules let it see)."""
    return [StoredContact.of(row) for row in (await session.scalars(_contacts(contact_refs))).all()]


async def contacts_handled_by(
    session: AsyncSession, agent_id: str | None, contact_refs: Collection[UUID]
) -> list[StoredContact]:
    """Those of :func:`contacts_named` that agent `agent_id` handled; an agent without an id handled none."""
    query = _contacts(contact_refs).where(Contact.agent_id == agent_id)
    return [StoredContact.of(row) for row in (await session.scalars(query)).all()]


async def contact_view(session: AsyncSession, keystore: KeyStore, contact: StoredContact) -> ContactView:
    """The whole contact, decrypted; parts whose data key was destroyed show as None."""
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

    event_views = []
    for row in events:
        document = opened(row.artifact_class, "event", row.sealed)
        event_views.append(
            StoredEvent(
                event_id=row.event_id,
                type=row.type,
                occurred_at=row.occurred_at,
                artifact_class=row.artifact_class,
                data=document["data"] if document else None,
            )
        )
    rectifications = (await rectifications_of(session, keystore, [ref])).get(ref, [])
    return ContactView(
        contact=contact,
        events=event_views,
        parties=[StoredParty(p.role, opened(p.artifact_class, "party", p.sealed)) for p in parties],
        artifacts=[
            StoredArtifact.of(a) for a in sorted(artifacts, key=lambda artifact: artifact.artifact_class)
        ],
        rectifications=rectifications,
    )


async def recording_of(
    session: AsyncSession, keystore: KeyStore, contact_ref: UUID
) -> tuple[StoredArtifact | None, bytes | None]:
    """The contact's recording artifact (None if it has none) and the data key that opens it (None once
    destroyed): what a listener needs, to be checked by the caller before :func:`stream_recording`."""
    row = await session.scalar(
        select(Artifact).where(Artifact.contact_ref == contact_ref, Artifact.artifact_class == RECORDING)
    )
    if row is None or row.blob_key is None:
        return (None if row is None else StoredArtifact.of(row)), None
    keys = await keystore.get(session, {(contact_ref, RECORDING)})
    return StoredArtifact.of(row), keys.get((contact_ref, RECORDING))


def stream_recording(blobs: BlobStore, artifact: StoredArtifact, key: bytes) -> AsyncIterator[bytes]:
    """The recording's audio, decrypted chunk by chunk as it is read from the blob store."""
    assert artifact.blob_key is not None
    return decrypt_stream(
        key, blobs.open_stream(artifact.blob_key), aad=sealed_aad(artifact.contact_ref, RECORDING, "audio")
    )

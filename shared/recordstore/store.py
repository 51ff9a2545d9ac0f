"""The record store: contacts and their artifacts, every personal field encrypted.

Ingest's consumer writes it; retention, DSR and export read and delete from it, so its tables and queries live
here rather than in one service. Rows hold ciphertext under the contact's data key for the artifact's retention
class (shared.recordstore.keystore), plus the few clear attributes that access control and retention need: register,
channel, times, direction, agent id, case status.

This module is the write side's mechanics: storing a batch of sealed events, and a recording's artifact. What an
event changes in its contact is ingest's decision (services.ingest.service.folding), handed in as a
:class:`ContactUpdate`; the reads for a reader are in shared.recordstore.contacts.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.events import SealedContactEvent, customer_field_paths, path_value
from shared.contracts.vocabulary import ArtifactClass
from shared.platform.crypto import BlindIndex, KeyUnavailable, data_key_id, open_sealed, seal
from shared.platform.db import bulk_insert
from shared.recordstore.keystore import KeyRef, KeyStore
from shared.recordstore.models import (
    Artifact,
    Contact,
    ContactEventRow,
    Message,
    Party,
    Rectification,
    SubjectIndex,
    sealed_aad,
)

RECORDING = ArtifactClass.RECORDING.value


@dataclass
class ContactUpdate:
    """What a batch of events changes in one contact, as :meth:`RecordStore.apply` merges it into the stored row.

    The service that applies events decides what each event changes (it folds them into these); the merge with
    what is stored already treats events arriving out of order alike: the earliest start and its policy
    version, the latest end and last event, the newest case status (by `case_status_at`) win; direction, agent
    and case number are replaced when given; `event_count` adds up. `artifact_spans` is each retention class's
    (first, last) event time, merged the same way into the contact's artifacts.
    """

    register: str
    policy_version: str
    channel: str
    started_at: datetime
    last_event_at: datetime
    ended_at: datetime | None = None
    direction: str | None = None
    agent_id: str | None = None
    case_number: str | None = None
    case_status: str | None = None
    case_status_at: datetime | None = None
    event_count: int = 0
    artifact_spans: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)


class RecordStore:
    """Writes sealed contact events into the record store tables (idempotent; flushes, never commits)."""

    def __init__(self, keystore: KeyStore, blind_index: BlindIndex) -> None:
        self.keystore = keystore
        self.blind_index = blind_index

    async def apply(
        self, session: AsyncSession, events: list[SealedContactEvent], contacts: Mapping[UUID, ContactUpdate]
    ) -> None:
        """Store a batch of sealed events: each event and the messages, parties and subject index entries it
        carries, and `contacts` (what the batch changes in each of its contacts) merged into the contacts and
        their artifacts. Idempotent row by row; raises KeyUnavailable for an event whose data key is gone."""
        if not events:
            return
        # Ingest commits a data key before it publishes anything sealed under it; a missing key here means the
        # data was already shredded (or the message is forged), which no retry can fix.
        wanted = {(e.contact_ref, e.artifact_class.value) for e in events}
        keys = await self.keystore.get(session, wanted, hold=True)
        if missing := wanted - keys.keys():
            raise KeyUnavailable(f"{len(missing)} data key(s) unavailable")
        # A copy sealed under an earlier key of the same contact and class: that key was destroyed (the class
        # was shredded) and data arriving later got a new one. This copy is as shredded as its key.
        key_ids = {ref: data_key_id(key) for ref, key in keys.items()}
        if any(e.key_id not in (None, key_ids[(e.contact_ref, e.artifact_class.value)]) for e in events):
            raise KeyUnavailable("sealed under a data key that has since been destroyed")
        event_rows: list[dict[str, Any]] = []
        message_rows: list[dict[str, Any]] = []
        party_rows: dict[tuple[UUID, str, str], dict[str, Any]] = {}
        index_rows: set[tuple[str, str, UUID]] = set()

        for event in events:
            ref: KeyRef = (event.contact_ref, event.artifact_class.value)
            data_key = keys[ref]
            sealed_doc = base64.b64decode(event.sealed)
            document = orjson.loads(
                open_sealed(data_key, sealed_doc, aad=sealed_aad(event.contact_ref, ref[1], "event"))
            )
            data: dict[str, Any] = document["data"]
            event_rows.append(
                {
                    "event_id": event.event_id,
                    "contact_ref": event.contact_ref,
                    "type": event.type,
                    "artifact_class": ref[1],
                    "occurred_at": event.occurred_at,
                    "received_at": event.received_at,
                    "content_digest": event.content_digest,
                    "sealed": sealed_doc,
                }
            )
            if event.type in ("chat.message", "chatbot.message"):
                message_rows.append(
                    {
                        "event_id": event.event_id,
                        "contact_ref": event.contact_ref,
                        "sender": data["sender"],
                        "sent_at": event.occurred_at,
                        "artifact_class": ref[1],
                        "sealed": seal(
                            data_key,
                            data["text"].encode(),
                            aad=sealed_aad(event.contact_ref, ref[1], "message"),
                        ),
                    }
                )
            for role, details in _parties(event.type, data):
                digest = self.blind_index.content_digest(orjson.dumps(details, option=orjson.OPT_SORT_KEYS))
                key = (event.contact_ref, role, digest)
                if key not in party_rows:
                    party_rows[key] = {
                        "contact_ref": event.contact_ref,
                        "role": role,
                        "identity_digest": digest,
                        "agent_id": details.get("id") if role == "agent" else None,
                        "artifact_class": ref[1],
                        "sealed": seal(
                            data_key,
                            orjson.dumps(details, option=orjson.OPT_SORT_KEYS),
                            aad=sealed_aad(event.contact_ref, ref[1], "party"),
                        ),
                        "first_seen_at": event.occurred_at,
                    }
            for entry in event.blind_index:
                index_rows.add((entry.digest, entry.kind, event.contact_ref))

        await self._upsert_contacts(session, contacts)
        await bulk_insert(session, ContactEventRow, event_rows, tail="ON CONFLICT DO NOTHING")
        if message_rows:
            await bulk_insert(session, Message, message_rows, tail="ON CONFLICT DO NOTHING")
        if party_rows:
            await bulk_insert(session, Party, list(party_rows.values()), tail="ON CONFLICT DO NOTHING")
        if index_rows:
            await bulk_insert(
                session,
                SubjectIndex,
                [{"digest": d, "kind": k, "contact_ref": c} for d, k, c in sorted(index_rows)],
                tail="ON CONFLICT DO NOTHING",
            )
        await self._upsert_artifacts(session, contacts)

    @staticmethod
    async def _upsert_contacts(session: AsyncSession, contacts: Mapping[UUID, ContactUpdate]) -> None:
        rows = [
            {
                "contact_ref": ref,
                "register": u.register,
                "policy_version": u.policy_version,
                "channel": u.channel,
                "started_at": u.started_at,
                "ended_at": u.ended_at,
                "last_event_at": u.last_event_at,
                "direction": u.direction,
                "agent_id": u.agent_id,
                "case_number": u.case_number,
                "case_status": u.case_status,
                "case_status_at": u.case_status_at,
                "event_count": u.event_count,
            }
            for ref, u in sorted(contacts.items())
        ]
        # Events can arrive out of order: the earliest start, the latest end and the newest case status win;
        # the policy version follows the contact's start (the version in force at the contact's time).
        await bulk_insert(session, Contact, rows, tail=_CONTACT_UPSERT)

    @staticmethod
    async def _upsert_artifacts(session: AsyncSession, contacts: Mapping[UUID, ContactUpdate]) -> None:
        rows = [
            {
                "contact_ref": ref,
                "artifact_class": artifact_class,
                "register": u.register,
                "first_at": first,
                "last_at": last,
                "status": "active",
            }
            for ref, u in sorted(contacts.items())
            for artifact_class, (first, last) in sorted(u.artifact_spans.items())
        ]
        await bulk_insert(session, Artifact, rows, tail=_ARTIFACT_UPSERT)


_CONTACT_UPSERT = """
ON CONFLICT (contact_ref) DO UPDATE SET
    started_at = LEAST(contacts.started_at, EXCLUDED.started_at),
    policy_version = CASE WHEN EXCLUDED.started_at < contacts.started_at
                          THEN EXCLUDED.policy_version ELSE contacts.policy_version END,
    ended_at = GREATEST(contacts.ended_at, EXCLUDED.ended_at),
    last_event_at = GREATEST(contacts.last_event_at, EXCLUDED.last_event_at),
    direction = COALESCE(EXCLUDED.direction, contacts.direction),
    agent_id = COALESCE(EXCLUDED.agent_id, contacts.agent_id),
    case_number = COALESCE(EXCLUDED.case_number, contacts.case_number),
    case_status = CASE WHEN contacts.case_status_at IS NULL OR EXCLUDED.case_status_at >= contacts.case_status_at
                       THEN COALESCE(EXCLUDED.case_status, contacts.case_status) ELSE contacts.case_status END,
    case_status_at = GREATEST(contacts.case_status_at, EXCLUDED.case_status_at),
    event_count = contacts.event_count + EXCLUDED.event_count,
    updated_at = now()
"""

_ARTIFACT_UPSERT = """
ON CONFLICT (contact_ref, artifact_class) DO UPDATE SET
    first_at = LEAST(artifacts.first_at, EXCLUDED.first_at),
    last_at = GREATEST(artifacts.last_at, EXCLUDED.last_at),
    updated_at = now()
"""


@dataclass(frozen=True)
class StoredArtifact:
    """One retention class of a contact; for the `recording` class also the stored audio."""

    contact_ref: UUID
    artifact_class: str
    status: str
    first_at: datetime
    last_at: datetime
    blob_key: str | None = None
    content_type: str | None = None
    size_bytes: int | None = None
    duration_ms: int | None = None
    sha256: str | None = None

    @classmethod
    def of(cls, row: Artifact) -> StoredArtifact:
        return cls(
            contact_ref=row.contact_ref,
            artifact_class=row.artifact_class,
            status=row.status,
            first_at=row.first_at,
            last_at=row.last_at,
            blob_key=row.blob_key,
            content_type=row.content_type,
            size_bytes=row.size_bytes,
            duration_ms=row.duration_ms,
            sha256=row.sha256,
        )


def sealed_part_aad(contact_ref: UUID, artifact_class: str, part: str) -> bytes:
    """The associated data a sealed part of a contact (its "event", its recording's "audio") is bound to: the
    record store opens the part with exactly this, so whoever seals one for it uses this too."""
    return sealed_aad(contact_ref, artifact_class, part)


async def lock_recording(session: AsyncSession, contact_ref: UUID) -> StoredArtifact | None:
    """The contact's recording artifact, if it has one, locked (FOR UPDATE) until the transaction ends."""
    row = await session.scalar(
        select(Artifact)
        .where(Artifact.contact_ref == contact_ref, Artifact.artifact_class == RECORDING)
        .with_for_update()
    )
    return None if row is None else StoredArtifact.of(row)


async def put_recording(
    session: AsyncSession,
    contact_ref: UUID,
    *,
    register: str,
    first_at: datetime,
    last_at: datetime,
    blob_key: str,
    content_type: str,
    size_bytes: int,
    duration_ms: int | None,
    sha256: str,
    ciphertext_sha256: str,
) -> StoredArtifact:
    """Make the blob at `blob_key` the contact's stored recording: its recording artifact, active, is created
    or replaced."""
    values = {
        "register": register,
        "first_at": first_at,
        "last_at": last_at,
        "status": "active",
        "blob_key": blob_key,
        "content_type": content_type,
        "size_bytes": size_bytes,
        "duration_ms": duration_ms,
        "sha256": sha256,
        "ciphertext_sha256": ciphertext_sha256,
    }
    stmt = insert(Artifact).values(contact_ref=contact_ref, artifact_class=RECORDING, **values)
    row = await session.scalar(
        stmt.on_conflict_do_update(
            index_elements=[Artifact.contact_ref, Artifact.artifact_class], set_=values
        ).returning(Artifact)
    )
    assert row is not None
    return StoredArtifact.of(row)


def _parties(event_type: str, data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The people an event names, as (role, details): the agent as the event gives them, and the customer's
    identifiers wherever the event-type table says they sit."""
    found: list[tuple[str, dict[str, Any]]] = []
    agent = data.get("agent")
    if isinstance(agent, dict):
        found.append(("agent", agent))
    customer = {
        name: value
        for name, path in customer_field_paths(event_type, data).items()
        if (value := path_value(data, path))
    }
    if customer:
        found.append(("customer", customer))
    return found


async def rectifications_of(
    session: AsyncSession, keystore: KeyStore, contact_refs: Sequence[UUID]
) -> dict[UUID, list[dict[str, Any]]]:
    """Each contact's rectification history, opened: what a read or an access package shows. Entries whose
    class was shredded are gone with it."""
    rows = (
        await session.scalars(
            select(Rectification)
            .where(Rectification.contact_ref.in_(list(contact_refs)))
            .order_by(Rectification.made_at, Rectification.id)
        )
    ).all()
    keys = await keystore.get(session, {(r.contact_ref, r.artifact_class) for r in rows})
    out: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        key = keys.get((row.contact_ref, row.artifact_class))
        if key is None:
            continue
        opened = orjson.loads(
            open_sealed(key, row.sealed, aad=sealed_aad(row.contact_ref, row.artifact_class, "rectification"))
        )
        out[row.contact_ref].append(
            {
                "kind": row.kind,
                "field": row.field,
                "artifact_class": row.artifact_class,
                "case_number": row.case_number,
                "made_at": row.made_at,
                **opened,
            }
        )
    return dict(out)

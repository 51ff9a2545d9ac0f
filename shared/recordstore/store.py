"""The record store: contacts and their artifacts, every personal field encrypted.

Ingest's consumer writes it; retention, DSR and export read and delete from it, so its tables and queries live
here rather than in one service. Rows hold ciphertext under the contact's data key for the artifact's retention
class (shared.recordstore.keystore), plus the few clear attributes that access control and retention need: register,
channel, times, direction, agent id, case status.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import (
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.events import SealedContactEvent, customer_field_paths, path_value
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


@dataclass
class _ContactUpdate:
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


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


class RecordStore:
    """Writes sealed contact events into the record store tables (idempotent; flushes, never commits)."""

    def __init__(self, keystore: KeyStore, blind_index: BlindIndex) -> None:
        self.keystore = keystore
        self.blind_index = blind_index

    async def apply(self, session: AsyncSession, events: list[SealedContactEvent]) -> None:
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
        contacts: dict[UUID, _ContactUpdate] = {}
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
            self._fold_contact(contacts, event, data)
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
    def _fold_contact(
        contacts: dict[UUID, _ContactUpdate], event: SealedContactEvent, data: dict[str, Any]
    ) -> None:
        at = event.occurred_at
        update = contacts.get(event.contact_ref)
        if update is None:
            update = contacts[event.contact_ref] = _ContactUpdate(
                register=event.register,
                policy_version=event.policy_version,
                channel=event.channel.value,
                started_at=at,
                last_event_at=at,
            )
        update.event_count += 1
        update.started_at = min(update.started_at, at)
        update.last_event_at = max(update.last_event_at, at)
        if event.type.endswith(".ended"):
            update.ended_at = _later(update.ended_at, at)
        attrs = event.attributes
        update.direction = attrs.get("direction", update.direction)
        update.agent_id = attrs.get("agent_id", update.agent_id)
        if "case_number" in attrs:
            update.case_number = attrs["case_number"]
        if event.type in ("case.opened", "case.closed"):
            status = "open" if event.type == "case.opened" else "closed"
            if update.case_status_at is None or at >= update.case_status_at:
                update.case_status, update.case_status_at = status, at
        first, last = update.artifact_spans.get(event.artifact_class.value, (at, at))
        update.artifact_spans[event.artifact_class.value] = (min(first, at), max(last, at))

    @staticmethod
    async def _upsert_contacts(session: AsyncSession, contacts: dict[UUID, _ContactUpdate]) -> None:
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
    async def _upsert_artifacts(session: AsyncSession, contacts: dict[UUID, _ContactUpdate]) -> None:
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

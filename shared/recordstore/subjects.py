"""A data subject's contacts in the record store: the mechanics the DSR service's decisions are carried out with.

Finding the contacts a requester's identifiers lead to (through the blind index), restricting them and lifting
the restriction (GDPR Art. 18), rectifying a customer field and adding a supplementary statement (Art. 16), and
reading the contacts opened for an access copy (Art. 15(3)). Which contacts, whether a right applies and what
the requester is told stay with the DSR service; these functions do what they are told, flush at most and never
commit, so the step, its audit entry and its event stay one transaction.

Rectification rewrites a corrected field everywhere the contact recorded it, in the sealed events that hold it
and in the customer's party details, so a read, an access package and an export all show the corrected value.
The earlier value is kept in ``records.rectifications``, sealed under the same data key as the data it was part
of, so it stays readable exactly as long as that data is kept and is crypto-shredded with it. The blind index
follows: a search by the wrong value no longer finds the contact, a search by the right one does. Recordings,
transcripts and chat messages are what was said and are never edited: a statement is added beside them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.events import customer_field_paths, path_value
from shared.contracts.identifiers import IdentifierError, normalise_identifier
from shared.platform.crypto import BlindIndex, open_sealed, seal
from shared.platform.db import bulk_insert
from shared.platform.ids import uuid7
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

__all__ = [
    "ContactFound",
    "OpenedContact",
    "OpenedEvent",
    "OpenedParty",
    "add_statement",
    "find_contacts",
    "lift_restriction",
    "read_contacts",
    "rectify_fields",
    "restrict_contacts",
]


@dataclass(frozen=True, slots=True)
class ContactFound:
    """A contact the blind index led to, with the digests that matched it."""

    contact_ref: UUID
    register: str
    channel: str
    started_at: datetime
    digests: frozenset[str]


async def find_contacts(
    session: AsyncSession, digests: Collection[str], *, registers: Collection[str]
) -> list[ContactFound]:
    """Find the contacts of these blind-index digests in these registers, each once with every digest that
    matched it."""
    if not digests:
        return []
    rows = await session.execute(
        select(Contact, SubjectIndex.digest)
        .join(SubjectIndex, SubjectIndex.contact_ref == Contact.contact_ref)
        .where(SubjectIndex.digest.in_(list(digests)), Contact.register.in_(list(registers)))
    )
    found: dict[UUID, tuple[Contact, set[str]]] = {}
    for contact, digest in rows:
        found.setdefault(contact.contact_ref, (contact, set()))[1].add(digest)
    return [
        ContactFound(c.contact_ref, c.register, c.channel, c.started_at, frozenset(matched))
        for c, matched in found.values()
    ]


async def restrict_contacts(session: AsyncSession, contact_refs: Sequence[UUID], *, at: datetime) -> None:
    """Restrict these contacts from `at` (GDPR Art. 18): every read, listen and export checks the mark. A contact
    already restricted keeps the time it was first restricted."""
    if contact_refs:
        await session.execute(
            update(Contact)
            .where(Contact.contact_ref.in_(list(contact_refs)), Contact.restricted_at.is_(None))
            .values(restricted_at=at)
        )


async def lift_restriction(session: AsyncSession, contact_refs: Sequence[UUID]) -> None:
    """Lift the restriction of these contacts: they are processed as before from now on."""
    if contact_refs:
        await session.execute(
            update(Contact).where(Contact.contact_ref.in_(list(contact_refs))).values(restricted_at=None)
        )


# ------------------------------------------------------------------------------------------- rectification


def _digest(blind_index: BlindIndex, field_name: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return blind_index.digest(field_name, normalise_identifier(field_name, value)).hex()
    except IdentifierError:
        return None


def _set(data: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    target = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


async def rectify_fields(
    session: AsyncSession,
    *,
    keystore: KeyStore,
    blind_index: BlindIndex,
    contact_refs: Sequence[UUID],
    values: Mapping[str, str],
    case_number: str,
    now: datetime,
) -> dict[str, set[UUID]]:
    """Rectify these customer fields of these contacts to `values` (field -> the value in its stored form):
    re-seal the events and the customer parties that hold them, keep each earlier value in the rectification
    log under `case_number`, and point the blind index at the corrected value only.

    Returns, per field, the contacts that record it (a field no contact records is absent). A class whose
    data key is gone was deleted meanwhile: there is nothing left in it to correct.
    """
    refs = sorted(set(contact_refs))
    events = (
        await session.scalars(
            select(ContactEventRow)
            .where(ContactEventRow.contact_ref.in_(refs))
            .order_by(ContactEventRow.occurred_at, ContactEventRow.event_id)
            .with_for_update()
        )
    ).all()
    parties = (
        await session.scalars(
            select(Party).where(Party.contact_ref.in_(refs), Party.role == "customer").with_for_update()
        )
    ).all()
    # Held, so a retention sweep running now either goes first (the key is absent, nothing to correct) or waits
    # and then shreds the corrected rows and their history with the rest.
    keys = await keystore.get(
        session,
        {(e.contact_ref, e.artifact_class) for e in events}
        | {(p.contact_ref, p.artifact_class) for p in parties},
        hold=True,
    )
    found: dict[str, set[UUID]] = defaultdict(set)
    # (contact, class, field) -> the earlier values, in the order they were recorded.
    previous: dict[tuple[UUID, str, str], list[Any]] = defaultdict(list)

    def remember(ref: UUID, artifact_class: str, name: str, old: Any) -> None:
        found[name].add(ref)
        if old != values[name] and old not in previous[ref, artifact_class, name]:
            previous[ref, artifact_class, name].append(old)

    for row in events:
        key = keys.get((row.contact_ref, row.artifact_class))
        if key is None:  # shredded meanwhile: nothing left to correct
            continue
        aad = sealed_aad(row.contact_ref, row.artifact_class, "event")
        document = orjson.loads(open_sealed(key, row.sealed, aad=aad))
        data = document.get("data")
        if not isinstance(data, dict):
            continue
        changed = False
        for name, path in customer_field_paths(row.type, data).items():
            if name not in values:
                continue
            old = path_value(data, path)
            remember(row.contact_ref, row.artifact_class, name, old)
            if old != values[name]:
                _set(data, path, values[name])
                changed = True
        if changed:
            row.sealed = seal(key, orjson.dumps(document), aad=aad)

    for party in parties:
        key = keys.get((party.contact_ref, party.artifact_class))
        if key is None:
            continue
        aad = sealed_aad(party.contact_ref, party.artifact_class, "party")
        details = orjson.loads(open_sealed(key, party.sealed, aad=aad))
        if not isinstance(details, dict):
            continue
        changed = False
        for name in values.keys() & details.keys():
            remember(party.contact_ref, party.artifact_class, name, details[name])
            if details[name] != values[name]:
                details[name] = values[name]
                changed = True
        if changed:
            # identity_digest stays as first computed: a redelivered original event then still finds this
            # party and adds no second one carrying the earlier value.
            party.sealed = seal(key, orjson.dumps(details, option=orjson.OPT_SORT_KEYS), aad=aad)

    history: list[dict[str, Any]] = []
    for (ref, artifact_class, name), earlier in sorted(
        previous.items(), key=lambda kv: (str(kv[0][0]), *kv[0][1:])
    ):
        key = keys[ref, artifact_class]
        history.append(
            {
                "id": uuid7(),
                "contact_ref": ref,
                "artifact_class": artifact_class,
                "kind": "correction",
                "field": name,
                "case_number": case_number,
                "made_at": now,
                "sealed": seal(
                    key,
                    orjson.dumps({"previous": earlier}),
                    aad=sealed_aad(ref, artifact_class, "rectification"),
                ),
            }
        )
    await _reindex(session, blind_index, previous, values)
    await session.flush()
    if history:
        await bulk_insert(session, Rectification, history)
    return dict(found)


async def _reindex(
    session: AsyncSession,
    blind_index: BlindIndex,
    previous: dict[tuple[UUID, str, str], list[Any]],
    values: Mapping[str, str],
) -> None:
    """The blind index points at the corrected value only: every place the earlier one was recorded is
    rewritten, so the contact no longer carries it."""
    stale: set[tuple[str, str, UUID]] = set()
    fresh: set[tuple[str, str, UUID]] = set()
    for (ref, _class, name), earlier in previous.items():
        for value in earlier:
            if (digest := _digest(blind_index, name, value)) is not None:
                stale.add((digest, name, ref))
        if (digest := _digest(blind_index, name, values[name])) is not None:
            fresh.add((digest, name, ref))
    stale -= fresh
    if stale:
        await session.execute(
            delete(SubjectIndex).where(
                tuple_(SubjectIndex.digest, SubjectIndex.kind, SubjectIndex.contact_ref).in_(sorted(stale))
            )
        )
    if fresh:
        await bulk_insert(
            session,
            SubjectIndex,
            [{"digest": d, "kind": k, "contact_ref": c} for d, k, c in sorted(fresh)],
            tail="ON CONFLICT DO NOTHING",
        )


async def add_statement(
    session: AsyncSession,
    *,
    keystore: KeyStore,
    contact_refs: Sequence[UUID],
    statement: str,
    case_number: str,
    now: datetime,
) -> set[UUID]:
    """Add a supplementary statement beside each recording and each conversation's messages of these contacts,
    sealed under that content's own class key so it is deleted with what it comments on. Returns the contacts
    that got one (none: no contact has such content left)."""
    refs = sorted(set(contact_refs))
    recordings = (
        await session.execute(
            select(Artifact.contact_ref, Artifact.artifact_class).where(
                Artifact.contact_ref.in_(refs), Artifact.blob_key.is_not(None)
            )
        )
    ).all()
    conversations = (
        await session.execute(
            select(Message.contact_ref, Message.artifact_class)
            .where(Message.contact_ref.in_(refs))
            .distinct()
        )
    ).all()
    targets = sorted({(r.contact_ref, r.artifact_class) for r in [*recordings, *conversations]}, key=str)
    keys = await keystore.get(session, set(targets), hold=True)
    touched: set[UUID] = set()
    history: list[dict[str, Any]] = []
    for ref, artifact_class in targets:
        key = keys.get((ref, artifact_class))
        if key is None:
            continue
        touched.add(ref)
        history.append(
            {
                "id": uuid7(),
                "contact_ref": ref,
                "artifact_class": artifact_class,
                "kind": "statement",
                "field": None,
                "case_number": case_number,
                "made_at": now,
                "sealed": seal(
                    key,
                    orjson.dumps({"text": statement}),
                    aad=sealed_aad(ref, artifact_class, "rectification"),
                ),
            }
        )
    if history:
        await bulk_insert(session, Rectification, history)
    return touched


# ------------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class OpenedEvent:
    type: str
    occurred_at: datetime
    data: Any
    """The event's decrypted data; None when its class's data key is gone (deleted meanwhile)."""


@dataclass(frozen=True, slots=True)
class OpenedParty:
    role: str
    details: Any


@dataclass(slots=True)
class OpenedContact:
    """A contact's clear metadata with its events and parties decrypted."""

    contact_ref: UUID
    register: str
    channel: str
    started_at: datetime
    ended_at: datetime | None
    direction: str | None
    case_number: str | None
    case_status: str | None
    events: list[OpenedEvent] = field(default_factory=list)
    """Oldest first."""
    parties: list[OpenedParty] = field(default_factory=list)
    """In the order first seen; a party whose class is deleted is left out (it would say nothing but its
    role)."""


async def read_contacts(
    session: AsyncSession, *, keystore: KeyStore, contact_refs: Sequence[UUID]
) -> list[OpenedContact]:
    """Read these contacts with their events and parties decrypted, the earliest contact first (the ref breaks
    ties, so the order is repeatable). Contacts that no longer exist are skipped. A part whose data key is gone
    is left out or shown without data; a part that does not open with a key that exists is damage, not
    deletion, and raises."""
    wanted = set(contact_refs)
    if not wanted:
        return []
    contacts = (
        await session.scalars(
            select(Contact)
            .where(Contact.contact_ref.in_(sorted(wanted)))
            .order_by(Contact.started_at, Contact.contact_ref)
        )
    ).all()
    if not contacts:
        return []
    found = [c.contact_ref for c in contacts]
    events = (
        await session.scalars(
            select(ContactEventRow)
            .where(ContactEventRow.contact_ref.in_(found))
            .order_by(ContactEventRow.occurred_at, ContactEventRow.received_at, ContactEventRow.event_id)
        )
    ).all()
    parties = (
        await session.scalars(
            select(Party).where(Party.contact_ref.in_(found)).order_by(Party.first_seen_at, Party.id)
        )
    ).all()
    keys = await keystore.get(
        session,
        {(e.contact_ref, e.artifact_class) for e in events}
        | {(p.contact_ref, p.artifact_class) for p in parties},
    )
    opened = {
        c.contact_ref: OpenedContact(
            contact_ref=c.contact_ref,
            register=c.register,
            channel=c.channel,
            started_at=c.started_at,
            ended_at=c.ended_at,
            direction=c.direction,
            case_number=c.case_number,
            case_status=c.case_status,
        )
        for c in contacts
    }
    for row in events:
        document = _opened(keys, row.contact_ref, row.artifact_class, "event", row.sealed)
        data = document.get("data") if isinstance(document, dict) else None
        opened[row.contact_ref].events.append(OpenedEvent(row.type, row.occurred_at, data))
    for party in parties:
        details = _opened(keys, party.contact_ref, party.artifact_class, "party", party.sealed)
        if details is not None:
            opened[party.contact_ref].parties.append(OpenedParty(party.role, details))
    return list(opened.values())


def _opened(
    keys: dict[KeyRef, bytes], contact_ref: UUID, artifact_class: str, part: str, sealed: bytes
) -> Any:
    """The decrypted JSON value, or None when its data key is gone (the class was deleted meanwhile)."""
    key = keys.get((contact_ref, artifact_class))
    if key is None:
        return None
    # A failure with a key that exists is not deletion but damage: it propagates rather than hiding data the
    # requester is entitled to behind a null.
    return orjson.loads(open_sealed(key, sealed, aad=sealed_aad(contact_ref, artifact_class, part)))

"""Rectification (GDPR Art. 16) carried out on the record store.

A corrected customer field (phone, e-mail, name, nickname, personal identity code) is rewritten everywhere the
contact recorded it: in every sealed event that holds it and in the customer's party details, so a read, an
access package and an export all show the corrected value. The earlier value is not thrown away but kept in
`records.rectifications`, sealed under the same data key as the data it was part of, so it stays readable
exactly as long as that data is kept and is crypto-shredded with it. The blind index follows: a search by the
wrong value no longer finds the contact, a search by the right one does.

Recordings, transcripts and chat messages are what was said; they are never edited. A rectification adds a
supplementary statement beside them (Art. 16: "by means of providing a supplementary statement"), append-only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.dsr.service import StepRefused
from shared.contracts.events import CUSTOMER_FIELDS, customer_field_paths, path_value
from shared.contracts.identifiers import (
    IdentifierError,
    normalise_email,
    normalise_identifier,
    normalise_phone,
    validate_personal_identity_code,
)
from shared.platform.crypto import BlindIndex, open_sealed, seal
from shared.platform.db import bulk_insert
from shared.platform.ids import uuid7
from shared.recordstore.keystore import KeyStore
from shared.recordstore.models import (
    Artifact,
    ContactEventRow,
    Message,
    Party,
    Rectification,
    SubjectIndex,
    sealed_aad,
)

RECORDING_CLASS = "recording"


@dataclass(frozen=True)
class Correction:
    field: str
    value: str


@dataclass(frozen=True)
class Changes:
    """The caseworker's rectification: the fields to correct and/or a supplementary statement."""

    corrections: tuple[Correction, ...] = ()
    statement: str | None = None

    @property
    def empty(self) -> bool:
        return not self.corrections and self.statement is None


@dataclass
class Rectified:
    """What was changed: the fields corrected (in the order asked), the contacts touched, the statements."""

    fields: list[str] = field(default_factory=list)
    contact_refs: set[UUID] = field(default_factory=set)
    statements: int = 0


def _stored_form(field_name: str, value: str) -> str:
    """The value as the record store keeps it: identifiers in their canonical form (as intake validates them),
    a name or nickname as written, with its whitespace tidied."""
    if field_name == "phone":
        return normalise_phone(value)
    if field_name == "email":
        return normalise_email(value)
    if field_name == "personal_identity_code":
        return validate_personal_identity_code(value)
    tidy = " ".join(value.split())
    if not tidy:
        raise IdentifierError("empty value")
    return tidy


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


async def rectify(
    session: AsyncSession,
    *,
    keystore: KeyStore,
    blind_index: BlindIndex,
    contact_refs: Sequence[UUID],
    corrections: Sequence[Correction],
    statement: str | None,
    case_number: str,
    now: datetime,
) -> Rectified:
    """Correct the fields and add the statement across the contacts; flushes, never commits. A field no contact
    records, a bad value, or a statement with nothing to stand beside is refused naming the field."""
    wanted: dict[str, str] = {}
    for index, correction in enumerate(corrections):
        where = f"rectification.corrections[{index}]"
        if correction.field not in CUSTOMER_FIELDS:
            raise StepRefused(f"{where}.field", f"one of: {', '.join(CUSTOMER_FIELDS)}", status=422)
        if correction.field in wanted:
            raise StepRefused(f"{where}.field", "the field is corrected twice", status=422)
        try:
            wanted[correction.field] = _stored_form(correction.field, correction.value)
        except IdentifierError as exc:
            raise StepRefused(f"{where}.value", str(exc), status=422) from None
    refs = sorted(set(contact_refs))
    result = Rectified()
    history: list[dict[str, Any]] = []
    if wanted:
        found = await _correct(session, keystore, blind_index, refs, wanted, case_number, now, history)
        for index, correction in enumerate(corrections):
            if correction.field not in found:
                raise StepRefused(
                    f"rectification.corrections[{index}].field",
                    "none of the confirmed contacts records this field",
                    status=422,
                )
        result.fields = list(wanted)
        result.contact_refs = {ref for refs_ in found.values() for ref in refs_}
    if statement is not None:
        touched = await _statements(session, keystore, refs, statement, case_number, now, history)
        if not touched:
            raise StepRefused(
                "rectification.statement",
                "none of the confirmed contacts has a recording, transcript or messages to add it to",
                status=422,
            )
        result.statements = len(touched)
        result.contact_refs |= touched
    if history:
        await bulk_insert(session, Rectification, history)
    return result


async def _correct(
    session: AsyncSession,
    keystore: KeyStore,
    blind_index: BlindIndex,
    refs: list[UUID],
    wanted: dict[str, str],
    case_number: str,
    now: datetime,
    history: list[dict[str, Any]],
) -> dict[str, set[UUID]]:
    """Rewrite events and parties; returns, per field, the contacts that record it."""
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
        if old != wanted[name] and old not in previous[ref, artifact_class, name]:
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
            if name not in wanted:
                continue
            old = path_value(data, path)
            remember(row.contact_ref, row.artifact_class, name, old)
            if old != wanted[name]:
                _set(data, path, wanted[name])
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
        for name in wanted.keys() & details.keys():
            remember(party.contact_ref, party.artifact_class, name, details[name])
            if details[name] != wanted[name]:
                details[name] = wanted[name]
                changed = True
        if changed:
            # identity_digest stays as first computed: a redelivered original event then still finds this
            # party and adds no second one carrying the earlier value.
            party.sealed = seal(key, orjson.dumps(details, option=orjson.OPT_SORT_KEYS), aad=aad)

    for (ref, artifact_class, name), values in sorted(
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
                    orjson.dumps({"previous": values}),
                    aad=sealed_aad(ref, artifact_class, "rectification"),
                ),
            }
        )
    await _reindex(session, blind_index, previous, wanted)
    await session.flush()
    return found


async def _reindex(
    session: AsyncSession,
    blind_index: BlindIndex,
    previous: dict[tuple[UUID, str, str], list[Any]],
    wanted: dict[str, str],
) -> None:
    """The blind index points at the corrected value only: every place the earlier one was recorded is
    rewritten, so the contact no longer carries it."""
    stale: set[tuple[str, str, UUID]] = set()
    fresh: set[tuple[str, str, UUID]] = set()
    for (ref, _class, name), values in previous.items():
        for value in values:
            if (digest := _digest(blind_index, name, value)) is not None:
                stale.add((digest, name, ref))
        if (digest := _digest(blind_index, name, wanted[name])) is not None:
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


async def _statements(
    session: AsyncSession,
    keystore: KeyStore,
    refs: list[UUID],
    statement: str,
    case_number: str,
    now: datetime,
    history: list[dict[str, Any]],
) -> set[UUID]:
    """One statement beside each recording and each conversation's messages, sealed under that content's own
    class key so it is deleted with what it comments on."""
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
    return touched

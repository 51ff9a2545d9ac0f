"""What retention asks of the record store when a retention period ends: crypto-shred (contact, class) pairs,
the data keys first and then the rows; redact fields of stored chatbot messages; remove contacts left with
nothing; and the few reads that holds and schedules need (subject links, which classes still have a key).

Retention keeps the decisions (what is due, what a hold keeps, what a certificate says); these are the
mechanics, and the only place outside the record store's own writer that names the ``records.*`` and ``keys.*``
tables for it.

The sweeper deletes a whole batch in one set-based statement, because round trips, not the database, would
otherwise set its pace (bench/retention.py). So the mechanics it needs inside that statement are offered as SQL
pieces (common table expressions over a CTE of pairs or contacts the caller names) that the sweeper composes
with its own ``retention.*`` parts; the rest are plain functions taking the caller's session, which they never
commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import Select, SQLColumnExpression, exists, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.platform.crypto import open_sealed, seal
from shared.recordstore.keystore import KeyStore
from shared.recordstore.models import ContactEventRow, Message, SubjectIndex, sealed_aad

Pair = tuple[UUID, str]
"""(contact_ref, artifact_class): the unit a data key seals and a deletion shreds."""

PAIRS_FROM_ARRAYS = (
    "unnest(CAST(:refs AS uuid[]), CAST(:classes AS varchar[])) AS d(contact_ref, artifact_class)"
)
"""A FROM item of the pairs passed as the bind parameters of :func:`pair_arrays` (one prepared statement
whatever the number of pairs)."""

_OF_PAIRS = "t.contact_ref = d.contact_ref AND t.artifact_class = d.artifact_class"


def pair_arrays(pairs: Iterable[Pair]) -> dict[str, list[Any]]:
    """The bind parameters ``refs`` and ``classes`` of :data:`PAIRS_FROM_ARRAYS`."""
    listed = list(pairs)
    return {"refs": [ref for ref, _ in listed], "classes": [name for _, name in listed]}


# The pairs' data keys, locked in one order as a statement of its own before the shredding. A writer holding a
# key (KeyStore.get with hold=True: the record store, a rectification, a recording upload) makes this wait
# until it commits; the shredding statement's snapshot then includes what it wrote, so nothing is stored after
# the deletion.
_LOCK_KEYS = text(
    f"SELECT t.contact_ref FROM keys.data_keys AS t JOIN {PAIRS_FROM_ARRAYS} ON {_OF_PAIRS}"  # noqa: S608
    " ORDER BY t.contact_ref, t.artifact_class FOR UPDATE OF t"
)


async def lock_keys(session: AsyncSession, pairs: Iterable[Pair]) -> None:
    """Lock the data keys of `pairs` for the rest of the transaction, before :func:`shred_ctes` destroys them
    (see the comment above: the lock must be taken by a statement of its own)."""
    await session.execute(_LOCK_KEYS, pair_arrays(pairs))


def _deleted_rows(name: str, table: str, order: str, pairs: str) -> str:
    """A CTE deleting the pairs' rows of one record table, and one folding them per pair in a fixed order."""
    return (
        f"{name} AS (DELETE FROM records.{table} AS t USING {pairs} AS d WHERE {_OF_PAIRS}"  # noqa: S608
        f" RETURNING t.contact_ref, t.artifact_class, t.{order} AS ord, t.sealed),"
        f" {name}_folded AS (SELECT contact_ref, artifact_class, count(*) AS pieces,"
        f" string_agg(sealed, ''::bytea ORDER BY ord) AS ciphertext FROM {name} GROUP BY 1, 2)"
    )


def shred_ctes(pairs: str) -> str:
    """CTEs (for a ``WITH`` list, after the caller's CTE `pairs` of columns contact_ref, artifact_class) that
    crypto-shred every pair: its data key goes (from then on every copy of the ciphertext is unreadable), then
    its events, parties, messages, rectification history and artifacts. All of them run in the statement's one
    snapshot, and the caller's transaction makes them one act with whatever else it writes.

    They leave two CTEs for the caller to read:

    - ``shredded_artifacts(contact_ref, artifact_class, blob_key, ciphertext_sha256)``: the artifact rows
      removed; a non-null blob_key is a blob whose key is now gone and which must be removed from the blob
      store after the commit.
    - ``shredded(contact_ref, artifact_class, pieces, ciphertext_sha256)``: one row per pair: how many pieces
      (rows and blobs) went, and the hex SHA-256 of the destroyed ciphertext in a fixed order (events by id,
      parties by id, messages by id, rectifications by id, then the blobs' ciphertext digests).

    Lock the keys with :func:`lock_keys` first, in a statement of its own.
    """
    return (
        f"shredded_keys AS (DELETE FROM keys.data_keys AS t USING {pairs} AS d"  # noqa: S608
        f" WHERE {_OF_PAIRS} RETURNING 1),"
        f" {_deleted_rows('events', 'contact_events', 'event_id', pairs)},"
        f" {_deleted_rows('parties', 'parties', 'id', pairs)},"
        f" {_deleted_rows('messages', 'messages', 'event_id', pairs)},"
        f" {_deleted_rows('rectifications', 'rectifications', 'id', pairs)},"
        f" shredded_artifacts AS (DELETE FROM records.artifacts AS t USING {pairs} AS d WHERE {_OF_PAIRS}"
        " RETURNING t.contact_ref, t.artifact_class, t.blob_key, t.ciphertext_sha256),"
        " artifacts_folded AS (SELECT contact_ref, artifact_class, count(blob_key) AS pieces,"
        " string_agg(decode(ciphertext_sha256, 'hex'), ''::bytea ORDER BY ciphertext_sha256) AS ciphertext"
        " FROM shredded_artifacts GROUP BY 1, 2),"
        " shredded AS (SELECT d.contact_ref, d.artifact_class,"
        " coalesce(e.pieces, 0) + coalesce(p.pieces, 0) + coalesce(m.pieces, 0) + coalesce(r.pieces, 0)"
        " + coalesce(a.pieces, 0) AS pieces,"
        " encode(sha256(coalesce(e.ciphertext, '') || coalesce(p.ciphertext, '') || coalesce(m.ciphertext, '')"
        " || coalesce(r.ciphertext, '') || coalesce(a.ciphertext, '')), 'hex') AS ciphertext_sha256"
        f" FROM {pairs} AS d"
        " LEFT JOIN events_folded AS e USING (contact_ref, artifact_class)"
        " LEFT JOIN parties_folded AS p USING (contact_ref, artifact_class)"
        " LEFT JOIN messages_folded AS m USING (contact_ref, artifact_class)"
        " LEFT JOIN rectifications_folded AS r USING (contact_ref, artifact_class)"
        " LEFT JOIN artifacts_folded AS a USING (contact_ref, artifact_class))"
    )


def remove_contacts_ctes(contacts: str) -> str:
    """CTEs (for a ``WITH`` list, after the caller's CTE `contacts` of a column contact_ref) that remove what
    is left of those contacts in the record store: the contact row (its subject-index entries and any rows left
    go with it, ON DELETE CASCADE) and any data keys left. For contacts retention has nothing more scheduled
    for."""
    return (
        f"removed_contacts AS (DELETE FROM records.contacts AS t USING {contacts} AS e"  # noqa: S608
        " WHERE t.contact_ref = e.contact_ref),"
        f" removed_keys AS (DELETE FROM keys.data_keys AS t USING {contacts} AS e"
        " WHERE t.contact_ref = e.contact_ref)"
    )


def has_data_key(alias: str) -> str:
    """SQL condition: the (contact_ref, artifact_class) of the row `alias` still has a data key, i.e. the
    record store holds (or is storing) data of that pair that no shredding has destroyed."""
    return (
        "EXISTS (SELECT FROM keys.data_keys AS k"
        f" WHERE k.contact_ref = {alias}.contact_ref AND k.artifact_class = {alias}.artifact_class)"
    )


def subject_links(contact_ref: SQLColumnExpression[UUID], digest: SQLColumnExpression[str]) -> Select[str]:
    """The subject-index entries linking the contact `contact_ref` to the subject whose blind-index digest is
    `digest`: for a correlated EXISTS (a hold on a subject keeps that subject's contacts). The caller
    correlates it explicitly (``.correlate(...)``) where it nests it."""
    return select(SubjectIndex.digest).where(
        SubjectIndex.contact_ref == contact_ref, SubjectIndex.digest == digest
    )


async def subject_digests(session: AsyncSession, contact_ref: UUID) -> list[str]:
    """The blind-index digests of the subjects linked to a contact (never an identifier in clear)."""
    return list(
        (
            await session.scalars(select(SubjectIndex.digest).where(SubjectIndex.contact_ref == contact_ref))
        ).all()
    )


async def redact_customer_chatbot_messages(
    session: AsyncSession,
    keystore: KeyStore,
    contact_ref: UUID,
    sent_at: datetime | None,
    rewrite: Callable[[str], str | None],
) -> tuple[int, str] | None:
    """Rewrite the text of the customer's chatbot message(s) a contact sent at `sent_at`, in the message row and
    in the sealed event it came in, sealed again under the same data key: `rewrite` gets the text and answers
    the new one, or None to leave it as it is.

    Answers (pieces rewritten, hex SHA-256 of the ciphertext replaced, in row order); (0, digest of nothing)
    when there is nothing to rewrite (the bot's own message at that time, or a class already shredded); and
    None when no chatbot message at that time is stored yet (a backfill, a lagging consumer), so the caller
    can try again later. The rows are locked for the rest of the caller's transaction.
    """
    rows = list(
        (
            await session.execute(
                select(Message, ContactEventRow)
                .join(ContactEventRow, ContactEventRow.event_id == Message.event_id)
                .where(
                    Message.contact_ref == contact_ref,
                    Message.sent_at == sent_at,
                    Message.sender == "customer",
                    ContactEventRow.type == "chatbot.message",
                )
                .with_for_update(of=Message)
            )
        ).all()
    )
    digest = hashlib.sha256()
    pieces = 0
    if not rows:
        stored = await session.scalar(
            select(
                exists().where(
                    ContactEventRow.contact_ref == contact_ref,
                    ContactEventRow.occurred_at == sent_at,
                    ContactEventRow.type == "chatbot.message",
                )
            )
        )
        return (0, digest.hexdigest()) if stored else None
    classes = {message.artifact_class for message, _event in rows}
    keys = await keystore.get(session, {(contact_ref, name) for name in classes})
    for message, event in rows:
        key = keys.get((contact_ref, message.artifact_class))
        if key is None:
            continue  # the whole message class is already shredded: nothing left to rewrite
        text_aad = sealed_aad(contact_ref, message.artifact_class, "message")
        rewritten = rewrite(open_sealed(key, message.sealed, aad=text_aad).decode())
        if rewritten is None:
            continue
        digest.update(message.sealed)
        event_aad = sealed_aad(contact_ref, event.artifact_class, "event")
        document: dict[str, Any] = orjson.loads(open_sealed(key, event.sealed, aad=event_aad))
        document["data"]["text"] = rewritten
        digest.update(event.sealed)
        await session.execute(
            update(Message)
            .where(Message.event_id == message.event_id)
            .values(sealed=seal(key, rewritten.encode(), aad=text_aad))
        )
        await session.execute(
            update(ContactEventRow)
            .where(ContactEventRow.event_id == event.event_id)
            .values(sealed=seal(key, orjson.dumps(document), aad=event_aad))
        )
        pieces += 2
    return pieces, digest.hexdigest()

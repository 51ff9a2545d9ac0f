"""The sweeper: deletes (or redacts) every schedule item whose time has come, once, in every copy.

Each batch is one transaction. It claims due items with FOR UPDATE SKIP LOCKED, so any number of retention
instances share the work and no item is taken twice. For a deletion it destroys the data key first
(crypto-shredding: from that statement on, every copy of the ciphertext - rows, blob, Kafka topic, backups - is
unreadable), then removes the rows, queues the blob, writes the certificate and the audit entry, and marks the
item done; the commit makes all of it happen or none of it. Blobs are removed after the commit from the queue
(retention.blob_deletions), so a crash between the two leaves a blob whose key no longer exists, which the next
sweep removes. A redaction (field level: PRH's chatbot identifiers) decrypts the customer's message, replaces
the identifiers with "[redacted: kind]" and seals it again, in the same kind of transaction.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

import orjson
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Select, String, and_, cast, exists, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.retention.models import BlobDeletion, ContactFacts, Hold, ScheduleItem
from services.retention.redaction import redact
from shared.audit.chain import Action
from shared.audit.log import SYSTEM_ROLE, record, system_actor
from shared.contracts.domain_events import RETENTION_EVENTS_TOPIC
from shared.platform.clock import HELSINKI, Clock
from shared.platform.crypto import open_sealed, seal
from shared.platform.faults import fault_point
from shared.platform.ids import uuid7s
from shared.platform.logging import get_logger
from shared.platform.runtime import Periodic
from shared.policy.registry import PolicyRegistry
from shared.recordstore.keystore import KeyStore
from shared.recordstore.models import ContactEventRow, Message, SubjectIndex, sealed_aad
from shared.storage.blobstore import BlobStore

log = get_logger(__name__)

# Labels are classes and methods only: never a contact.
DELETED = Counter(
    "sailo_retention_items_total",
    "Artifacts deleted or redacted by the sweeper",
    ["artifact_class", "method"],
)
DELETION_LAG = Histogram(
    "sailo_retention_deletion_lag_seconds",
    "From an item's due time to its deletion",
    buckets=(1, 5, 10, 15, 30, 60, 300, 3600, 86400, float("inf")),
)
BACKLOG = Gauge("sailo_retention_backlog", "Items due and not yet deleted (held items included)")

SERVICE = "retention"
CRYPTO_SHREDDING = "crypto-shredding"
REDACTION = "redaction"
RETENTION_EXPIRED = "retention_expired"
ERASURE_REQUEST = "erasure_request"


class Claimed(NamedTuple):
    """A schedule item the batch has locked."""

    contact_ref: UUID
    artifact_class: str
    item: str
    register: str
    policy_version: str
    action: str
    trigger: str
    trigger_at: datetime | None
    due_at: datetime | None


@dataclass
class SweepResult:
    deleted: int = 0
    redacted: int = 0
    blobs_removed: int = 0
    lags: list[float] = field(default_factory=list)
    """Seconds from each item's due time to its deletion."""


# Set-based statements over the batch: one prepared statement each, whatever the batch size. The pairs are the
# (contact, class) of the batch's deletions.
_PAIRS = "unnest(CAST(:refs AS uuid[]), CAST(:classes AS varchar[])) AS d(contact_ref, artifact_class)"
_OF_PAIRS = "t.contact_ref = d.contact_ref AND t.artifact_class = d.artifact_class"


def _deleted_rows(name: str, table: str, order: str) -> str:
    """A CTE deleting the pairs' rows of one record table, and one folding them per pair in a fixed order."""
    return (
        f"{name} AS (DELETE FROM records.{table} AS t USING pairs AS d WHERE {_OF_PAIRS}"  # noqa: S608
        f" RETURNING t.contact_ref, t.artifact_class, t.{order} AS ord, t.sealed),"
        f" {name}_folded AS (SELECT contact_ref, artifact_class, count(*) AS pieces,"
        f" string_agg(sealed, ''::bytea ORDER BY ord) AS ciphertext FROM {name} GROUP BY 1, 2)"
    )


# The batch's data keys, locked in one order as a statement of its own before _SHRED. A writer holding a key
# (shared.recordstore.keystore.KeyStore.get with hold=True: the record store, a rectification, a recording
# upload) makes this wait until it commits; _SHRED's snapshot then includes what it wrote, so nothing is
# stored after the deletion.
_LOCK_KEYS = text(
    f"SELECT t.contact_ref FROM keys.data_keys AS t JOIN {_PAIRS} ON {_OF_PAIRS}"  # noqa: S608
    " ORDER BY t.contact_ref, t.artifact_class FOR UPDATE OF t"
)
# The whole crypto-shredding of a batch in one statement, so the database, not round trips, sets its pace.
# Its CTEs all run to completion in one snapshot, and the transaction makes them one act with the certificates:
# the data keys go (from then on every copy of the ciphertext is unreadable), then the events, parties,
# messages, rectification history and artifacts, whose blobs are queued. Per pair it returns the pieces removed
# and the SHA-256 of the destroyed ciphertext in a fixed order: events by id, parties by id, messages by id,
# rectifications by id, then the blobs' ciphertext digests.
_SHRED = text(
    f"WITH pairs AS (SELECT * FROM {_PAIRS}),"  # noqa: S608
    f" shredded_keys AS (DELETE FROM keys.data_keys AS t USING pairs AS d WHERE {_OF_PAIRS} RETURNING 1),"
    f" {_deleted_rows('events', 'contact_events', 'event_id')},"
    f" {_deleted_rows('parties', 'parties', 'id')},"
    f" {_deleted_rows('messages', 'messages', 'event_id')},"
    f" {_deleted_rows('rectifications', 'rectifications', 'id')},"
    f" artifacts AS (DELETE FROM records.artifacts AS t USING pairs AS d WHERE {_OF_PAIRS}"
    " RETURNING t.contact_ref, t.artifact_class, t.blob_key, t.ciphertext_sha256),"
    " queued AS (INSERT INTO retention.blob_deletions (blob_key)"
    " SELECT blob_key FROM artifacts WHERE blob_key IS NOT NULL),"
    " artifacts_folded AS (SELECT contact_ref, artifact_class, count(blob_key) AS pieces,"
    " string_agg(decode(ciphertext_sha256, 'hex'), ''::bytea ORDER BY ciphertext_sha256) AS ciphertext"
    " FROM artifacts GROUP BY 1, 2)"
    " SELECT d.contact_ref, d.artifact_class,"
    " coalesce(e.pieces, 0) + coalesce(p.pieces, 0) + coalesce(m.pieces, 0) + coalesce(r.pieces, 0)"
    " + coalesce(a.pieces, 0),"
    " encode(sha256(coalesce(e.ciphertext, '') || coalesce(p.ciphertext, '') || coalesce(m.ciphertext, '')"
    " || coalesce(r.ciphertext, '') || coalesce(a.ciphertext, '')), 'hex')"
    " FROM pairs AS d"
    " LEFT JOIN events_folded AS e USING (contact_ref, artifact_class)"
    " LEFT JOIN parties_folded AS p USING (contact_ref, artifact_class)"
    " LEFT JOIN messages_folded AS m USING (contact_ref, artifact_class)"
    " LEFT JOIN rectifications_folded AS r USING (contact_ref, artifact_class)"
    " LEFT JOIN artifacts_folded AS a USING (contact_ref, artifact_class)"
)
# Certificate ids are version-7 UUIDs (shared.platform.ids: time-ordered, so inserts append to the index);
# done_at is the batch's time.
_CERTIFICATE_COLUMNS = {
    "contact_ref": "uuid",
    "register": "varchar",
    "artifact_class": "varchar",
    "item": "varchar",
    "policy_version": "varchar",
    "rule": "varchar",
    "trigger": "varchar",
    "trigger_at": "timestamptz",
    "due_at": "timestamptz",
    "ciphertext_sha256": "varchar",
    "items": "integer",
    "method": "varchar",
}
_INSERT_CERTIFICATES = text(
    f"INSERT INTO retention.certificates (certificate_id, {', '.join(_CERTIFICATE_COLUMNS)}, done_at)"  # noqa: S608
    " SELECT *, CAST(:done_at AS timestamptz) FROM unnest(CAST(:certificate_id AS uuid[]), "
    + ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _CERTIFICATE_COLUMNS.items())
    + ")"
)
_ITEMS = (
    "unnest(CAST(:contact_ref AS uuid[]), CAST(:artifact_class AS varchar[]), CAST(:item AS varchar[]))"
    " AS d(contact_ref, artifact_class, item)"
)
_MARK_DONE = text(
    f"UPDATE retention.schedule AS t SET state = 'done' FROM {_ITEMS}"  # noqa: S608
    f" WHERE {_OF_PAIRS} AND t.item = d.item"
)
# The artifact-deleted events (shared.contracts.domain_events: the envelope and ArtifactDeletedData), built here
# so a batch costs one statement; they commit with the deletions they announce.
_ANNOUNCE = text(
    "INSERT INTO outbox.events (topic, key, event)"
    " SELECT CAST(:topic AS varchar), CAST(c.contact_ref AS varchar), jsonb_build_object("
    "'id', gen_random_uuid(), 'type', 'retention.artifact_deleted', 'version', 1,"
    " 'occurred_at', CAST(:done_at AS timestamptz), 'producer', 'retention', 'correlation_id', NULL,"
    " 'data', jsonb_build_object('contact_ref', c.contact_ref, 'register', c.register,"
    " 'artifact_class', c.artifact_class, 'item', c.item, 'method', c.method, 'reason', c.reason,"
    " 'certificate_id', c.certificate_id, 'policy_version', c.policy_version, 'due_at', c.due_at,"
    " 'done_at', CAST(:done_at AS timestamptz)))"
    " FROM unnest(CAST(:certificate_id AS uuid[]), CAST(:contact_ref AS uuid[]), CAST(:register AS varchar[]),"
    " CAST(:artifact_class AS varchar[]), CAST(:item AS varchar[]), CAST(:method AS varchar[]),"
    " CAST(:policy_version AS varchar[]), CAST(:due_at AS timestamptz[]), CAST(:reason AS varchar[]))"
    " AS c(certificate_id, contact_ref, register, artifact_class, item, method, policy_version, due_at, reason)"
)
_LOCK_CONTACTS = text(
    "SELECT contact_ref FROM retention.contact_facts WHERE contact_ref = ANY(CAST(:refs AS uuid[]))"
    " ORDER BY contact_ref FOR UPDATE"
)
# Contacts left with nothing scheduled lose their remaining rows (the contact, any keys left, the facts) in
# one statement. It must run after _LOCK_CONTACTS as a statement of its own: its snapshot then includes what a
# concurrent batch committed while this one waited for the lock.
_REMOVE_EMPTIED = text(
    "WITH emptied AS (SELECT c.contact_ref FROM unnest(CAST(:refs AS uuid[])) AS c(contact_ref) WHERE NOT EXISTS"
    " (SELECT FROM retention.schedule AS s WHERE s.contact_ref = c.contact_ref AND s.state = 'scheduled')),"
    " contacts AS (DELETE FROM records.contacts AS t USING emptied AS e WHERE t.contact_ref = e.contact_ref),"
    " data_keys AS (DELETE FROM keys.data_keys AS t USING emptied AS e WHERE t.contact_ref = e.contact_ref)"
    " DELETE FROM retention.contact_facts AS t USING emptied AS e WHERE t.contact_ref = e.contact_ref"
)


class Sweeper(Periodic):
    name = "retention-sweeper"
    failure_event = "retention.sweep_failed"

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        keystore: KeyStore,
        blobs: BlobStore,
        clock: Clock,
        policies: PolicyRegistry,
        batch_size: int = 500,
        interval_seconds: float = 60.0,
    ) -> None:
        self.policies = policies
        self.sessionmaker = sessionmaker
        self.keystore = keystore
        self.blobs = blobs
        self.clock = clock
        self.batch_size = batch_size
        super().__init__(interval_seconds=interval_seconds)
        # The registry does not change under a running sweeper, so a rule's text is worked out once.
        self._rules: dict[tuple[str, str, str, str, str], str] = {}

    async def sweep(self) -> SweepResult:
        """Everything due now, batch by batch, then the queued blobs."""
        result = SweepResult()
        while True:
            done = await self._batch(result)
            if done < self.batch_size:
                break
        result.blobs_removed = await self.remove_queued_blobs()
        async with self.sessionmaker() as session:
            BACKLOG.set(await backlog(session, self.clock.now()))
        if result.deleted or result.redacted:
            log.info(
                "retention.swept",
                deleted=result.deleted,
                redacted=result.redacted,
                blobs_removed=result.blobs_removed,
            )
        return result

    async def round(self) -> SweepResult:
        """One round of `run`: a sweep."""
        return await self.sweep()

    # -- one batch -------------------------------------------------------------------------------------------

    async def _batch(self, result: SweepResult) -> int:
        now = self.clock.now()
        async with self.sessionmaker() as session, session.begin():
            # Plain rows, not ORM objects: the batch is read once and changed set-based below.
            items = [
                Claimed(*row)
                for row in await session.execute(
                    select(*(getattr(ScheduleItem, name) for name in Claimed._fields))
                    .where(
                        ScheduleItem.state == "scheduled",
                        ScheduleItem.due_at.is_not(None),
                        ScheduleItem.due_at <= now,
                        ~exists(active_holds_over(ScheduleItem, now)),
                    )
                    .order_by(ScheduleItem.due_at)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True, of=ScheduleItem)
                )
            ]
            if not items:
                return 0
            # Redactions item by item (they are few), then the deletions of the whole batch in one statement.
            done: list[tuple[Claimed, str, int, str]] = []
            for item in items:
                if item.action == "redact":
                    redaction = await self._redact(session, item)
                    if redaction is None:
                        # The record store has not stored the message yet (a backfill, a lagging consumer):
                        # the item stays due and the next sweep redacts it.
                        continue
                    done.append((item, REDACTION, *redaction))
                    result.redacted += 1
            deletions = [item for item in items if item.action != "redact"]
            if deletions:
                shredded = await self._delete(session, deletions)
                done.extend(
                    (item, CRYPTO_SHREDDING, *outcome)
                    for item, outcome in zip(deletions, shredded, strict=True)
                )
                result.deleted += len(deletions)
            if done:
                await self._certify(session, done, now, result)
                await self._remove_contacts_if_nothing_left(session, {item.contact_ref for item, *_ in done})
            deleted_refs = sorted(
                {item.contact_ref for item, method, *_ in done if method == CRYPTO_SHREDDING}
            )
            redacted_refs = sorted({item.contact_ref for item, method, *_ in done if method == REDACTION})
            for action, object_type, refs in (
                (Action.DELETE, "artifact", deleted_refs),
                (Action.REDACT, "message", redacted_refs),
            ):
                if refs:
                    await record(
                        session,
                        actor=system_actor(SERVICE),
                        role=SYSTEM_ROLE,
                        action=action,
                        object_type=object_type,
                        object_ids=refs,
                        reason=RETENTION_EXPIRED,
                        service=SERVICE,
                        occurred_at=now,
                    )
            # A crash here (forced in tests) must leave every item of the batch untouched: nothing is committed.
            fault_point("retention.before_commit")
        fault_point("retention.after_commit")
        # Fewer than a full batch finished ends this sweep, so an item left waiting is not claimed again at once.
        return len(done)

    async def _certify(
        self,
        session: AsyncSession,
        done: Sequence[tuple[Claimed, str, int, str]],
        now: datetime,
        result: SweepResult,
    ) -> None:
        """A certificate and an artifact-deleted event per finished item, and the items marked done."""
        columns: dict[str, list[Any]] = {name: [] for name in _CERTIFICATE_COLUMNS}
        counts: collections.Counter[tuple[str, str]] = collections.Counter()
        for item, method, pieces, digest in done:
            assert item.due_at is not None
            for name, value in (
                ("contact_ref", item.contact_ref),
                ("register", item.register),
                ("artifact_class", item.artifact_class),
                ("item", item.item),
                ("policy_version", item.policy_version),
                ("rule", self._rule_text(item)),
                ("trigger", item.trigger),
                ("trigger_at", item.trigger_at),
                ("due_at", item.due_at),
                ("ciphertext_sha256", digest),
                ("items", pieces),
                ("method", method),
            ):
                columns[name].append(value)
            lag = (now - item.due_at).total_seconds()
            result.lags.append(lag)
            DELETION_LAG.observe(max(0.0, lag))
            counts[item.artifact_class, method] += 1
        for (artifact_class, method), count in counts.items():
            DELETED.labels(artifact_class=artifact_class, method=method).inc(count)
        ids = uuid7s(len(done))
        await session.execute(_INSERT_CERTIFICATES, {"done_at": now, "certificate_id": ids, **columns})
        await session.execute(_MARK_DONE, columns)
        await session.execute(
            _ANNOUNCE,
            {
                "topic": RETENTION_EVENTS_TOPIC,
                # Erasures requested by a data subject (services.retention.requests) say so; the rest expired.
                "reason": [
                    ERASURE_REQUEST if trigger == ERASURE_REQUEST else RETENTION_EXPIRED
                    for trigger in columns["trigger"]
                ],
                "done_at": now,
                "certificate_id": ids,
                **{
                    name: columns[name]
                    for name in (
                        "contact_ref",
                        "register",
                        "artifact_class",
                        "item",
                        "method",
                        "policy_version",
                    )
                },
                "due_at": columns["due_at"],
            },
        )

    async def _delete(self, session: AsyncSession, items: Sequence[Claimed]) -> list[tuple[int, str]]:
        """Crypto-shred one artifact class of a contact per item; returns (pieces removed, digest of the
        ciphertext) per item, in the items' order."""
        pairs = list(dict.fromkeys((item.contact_ref, item.artifact_class) for item in items))
        arrays = {"refs": [ref for ref, _ in pairs], "classes": [name for _, name in pairs]}
        await session.execute(_LOCK_KEYS, arrays)
        shredded = {
            (ref, artifact_class): (int(pieces), str(digest))
            for ref, artifact_class, pieces, digest in await session.execute(_SHRED, arrays)
        }
        # Keys destroyed and rows removed, in the open transaction: a crash here rolls both back together, so a
        # key is never gone while its rows stay (unreadable, uncertified) or the other way round.
        fault_point("retention.after_shred")
        self.keystore.forget(pairs)
        outcomes = []
        for item in items:
            # A second item of the same class in one batch finds nothing left, as a later sweep would.
            outcome = shredded.pop((item.contact_ref, item.artifact_class), None)
            outcomes.append(outcome if outcome is not None else (0, hashlib.sha256().hexdigest()))
        return outcomes

    async def _redact(self, session: AsyncSession, item: Claimed) -> tuple[int, str] | None:
        """Redact the numeric identifiers of the customer's chatbot message(s) sent at the item's trigger time;
        None when no such message is stored yet."""
        ref = item.contact_ref
        rows = list(
            (
                await session.execute(
                    select(Message, ContactEventRow)
                    .join(ContactEventRow, ContactEventRow.event_id == Message.event_id)
                    .where(
                        Message.contact_ref == ref,
                        Message.sent_at == item.trigger_at,
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
                        ContactEventRow.contact_ref == ref,
                        ContactEventRow.occurred_at == item.trigger_at,
                        ContactEventRow.type == "chatbot.message",
                    )
                )
            )
            # The bot's own message at that time has nothing to redact; a message not stored yet waits.
            return (0, digest.hexdigest()) if stored else None
        classes = {message.artifact_class for message, _event in rows}
        keys = await self.keystore.get(session, {(ref, c) for c in classes})
        for message, event in rows:
            key = keys.get((ref, message.artifact_class))
            if key is None:
                continue  # the whole message class is already shredded: nothing left to redact
            text_aad = sealed_aad(ref, message.artifact_class, "message")
            redacted, found = redact(open_sealed(key, message.sealed, aad=text_aad).decode())
            if not found:
                continue
            digest.update(message.sealed)
            event_aad = sealed_aad(ref, event.artifact_class, "event")
            document: dict[str, Any] = orjson.loads(open_sealed(key, event.sealed, aad=event_aad))
            document["data"]["text"] = redacted
            digest.update(event.sealed)
            await session.execute(
                update(Message)
                .where(Message.event_id == message.event_id)
                .values(sealed=seal(key, redacted.encode(), aad=text_aad))
            )
            await session.execute(
                update(ContactEventRow)
                .where(ContactEventRow.event_id == event.event_id)
                .values(sealed=seal(key, orjson.dumps(document), aad=event_aad))
            )
            pieces += 2
        return pieces, digest.hexdigest()

    def _rule_text(self, item: Claimed) -> str:
        """The rule as the policy file writes it: class/period/trigger/action."""
        key = (item.register, item.policy_version, item.artifact_class, item.trigger, item.action)
        written = self._rules.get(key)
        if written is None:
            version = self.policies.version(item.register, item.policy_version)
            rule = version.retention_for(item.artifact_class)
            period = rule.period.isoformat() if rule is not None else "?"
            written = self._rules[key] = f"{item.artifact_class}/{period}/{item.trigger}/{item.action}"
        return written

    async def _remove_contacts_if_nothing_left(self, session: AsyncSession, contact_refs: set[UUID]) -> None:
        """When every class of a contact is gone, its remaining row (and its blind-index entries) goes too."""
        # Two sweepers finishing the last two classes of one contact at once would each still see the other's
        # item as pending and leave the contact behind for good. Locking the contact (in one order, so two
        # batches cannot deadlock) makes the second wait, and its check then sees the first one's commit.
        refs = sorted(contact_refs)
        await session.execute(_LOCK_CONTACTS, {"refs": refs})
        await session.execute(_REMOVE_EMPTIED, {"refs": refs})

    async def remove_queued_blobs(self) -> int:
        """Remove the blobs of committed deletions; idempotent, so a crash in between only repeats work."""
        removed = 0
        while True:
            async with self.sessionmaker() as session, session.begin():
                queued: Sequence[BlobDeletion] = (
                    await session.scalars(
                        select(BlobDeletion)
                        .order_by(BlobDeletion.id)
                        .limit(100)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
                if not queued:
                    return removed
                for row in queued:
                    await self.blobs.delete(row.blob_key)
                    await session.delete(row)
                    removed += 1


def active_holds_over(item: type[ScheduleItem], now: datetime) -> Select[int]:
    """The active holds that cover a schedule item (correlated on `item`): on its contact, its register, its
    case, or a subject the blind index links to the contact. A hold with an end date covers that whole day in
    Helsinki."""
    today = now.astimezone(HELSINKI).date()
    # Explicit correlation: nested two levels down, SQLAlchemy would otherwise add the schedule table to these
    # subqueries' own FROM, and a hold on any contact's subject would hold every item.
    case_of_contact = (
        select(ContactFacts.case_ref)
        .where(ContactFacts.contact_ref == item.contact_ref)
        .correlate(item)
        .scalar_subquery()
    )
    subject_of_contact = (
        select(SubjectIndex.digest)
        .where(SubjectIndex.contact_ref == item.contact_ref, SubjectIndex.digest == Hold.target)
        .correlate(item, Hold)
        .exists()
    )
    return select(Hold.hold_number).where(
        Hold.lifted_at.is_(None),
        or_(Hold.ends_on.is_(None), Hold.ends_on >= today),
        or_(
            and_(Hold.scope == "contact", Hold.target == cast(item.contact_ref, String)),
            and_(Hold.scope == "register", Hold.target == item.register),
            and_(Hold.scope == "case", Hold.target == case_of_contact),
            and_(Hold.scope == "subject", subject_of_contact),
        ),
    )


async def backlog(session: AsyncSession, now: datetime) -> int:
    """How many items are due and not yet done (a metric, and what an operator watches)."""
    value = await session.scalar(
        text("SELECT count(*) FROM retention.schedule WHERE state = 'scheduled' AND due_at <= :now"),
        {"now": now},
    )
    return int(value or 0)

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

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Select, String, and_, cast, delete, exists, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.retention.calendar import HELSINKI
from services.retention.models import BlobDeletion, Certificate, ContactFacts, Hold, ScheduleItem
from services.retention.redaction import redact
from shared.audit import Action
from shared.auditlog import SYSTEM_ROLE, record, system_actor
from shared.blobstore import BlobStore
from shared.clock import Clock
from shared.crypto import open_sealed, seal
from shared.faults import fault_point
from shared.keystore import DataKey, KeyStore
from shared.logging import get_logger
from shared.policy import PolicyRegistry
from shared.records import Artifact, Contact, ContactEventRow, Message, Party, SubjectIndex, sealed_aad

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


@dataclass
class SweepResult:
    deleted: int = 0
    redacted: int = 0
    blobs_removed: int = 0
    lags: list[float] = field(default_factory=list)
    """Seconds from each item's due time to its deletion."""


class Sweeper:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        keystore: KeyStore,
        blobs: BlobStore,
        clock: Clock,
        policies: PolicyRegistry,
        batch_size: int = 500,
    ) -> None:
        self.policies = policies
        self.sessionmaker = sessionmaker
        self.keystore = keystore
        self.blobs = blobs
        self.clock = clock
        self.batch_size = batch_size
        self._stopping = asyncio.Event()

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

    async def run(self, interval_seconds: float) -> None:
        """Sweep every `interval_seconds` until stopped; a failed sweep is logged and tried again next time."""
        while not self._stopping.is_set():
            try:
                await self.sweep()
            except Exception as exc:  # the next sweep retries; nothing was half done (one transaction)
                log.warning("retention.sweep_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=interval_seconds)

    def stop(self) -> None:
        self._stopping.set()

    # -- one batch -------------------------------------------------------------------------------------------

    async def _batch(self, result: SweepResult) -> int:
        now = self.clock.now()
        async with self.sessionmaker() as session, session.begin():
            items = list(
                (
                    await session.scalars(
                        select(ScheduleItem)
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
                ).all()
            )
            if not items:
                return 0
            finished = []
            for item in items:
                assert item.due_at is not None
                if item.action == "redact":
                    redaction = await self._redact(session, item)
                    if redaction is None:
                        # The record store has not stored the message yet (a backfill, a lagging consumer):
                        # the item stays due and the next sweep redacts it.
                        continue
                    pieces, digest = redaction
                    result.redacted += 1
                    method = REDACTION
                else:
                    pieces, digest = await self._delete(session, item)
                    result.deleted += 1
                    method = CRYPTO_SHREDDING
                session.add(
                    Certificate(
                        certificate_id=uuid.uuid4(),
                        contact_ref=item.contact_ref,
                        register=item.register,
                        artifact_class=item.artifact_class,
                        item=item.item,
                        policy_version=item.policy_version,
                        rule=self._rule_text(item),
                        trigger=item.trigger,
                        trigger_at=item.trigger_at,
                        due_at=item.due_at,
                        done_at=now,
                        ciphertext_sha256=digest,
                        items=pieces,
                        method=method,
                    )
                )
                item.state = "done"
                finished.append(item)
                result.lags.append((now - item.due_at).total_seconds())
                DELETED.labels(artifact_class=item.artifact_class, method=method).inc()
                DELETION_LAG.observe(max(0.0, (now - item.due_at).total_seconds()))
            await session.flush()
            for contact_ref in {item.contact_ref for item in finished}:
                await self._remove_contact_if_nothing_left(session, contact_ref)
            deleted_refs = sorted({item.contact_ref for item in finished if item.action != "redact"})
            redacted_refs = sorted({item.contact_ref for item in finished if item.action == "redact"})
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
                        reason="retention_expired",
                        service=SERVICE,
                        occurred_at=now,
                    )
            # A crash here (forced in tests) must leave every item of the batch untouched: nothing is committed.
            fault_point("retention.before_commit")
        fault_point("retention.after_commit")
        # Fewer than a full batch finished ends this sweep, so an item left waiting is not claimed again at once.
        return len(finished)

    async def _delete(self, session: AsyncSession, item: ScheduleItem) -> tuple[int, str]:
        """Crypto-shred one artifact class of a contact; returns (pieces removed, digest of the ciphertext)."""
        ref, artifact_class = item.contact_ref, item.artifact_class
        digest = hashlib.sha256()
        pieces = 0
        events = (
            await session.execute(
                select(ContactEventRow.sealed)
                .where(ContactEventRow.contact_ref == ref, ContactEventRow.artifact_class == artifact_class)
                .order_by(ContactEventRow.event_id)
            )
        ).scalars()
        parties = (
            await session.execute(
                select(Party.sealed)
                .where(Party.contact_ref == ref, Party.artifact_class == artifact_class)
                .order_by(Party.id)
            )
        ).scalars()
        messages = (
            await session.execute(
                select(Message.sealed)
                .where(Message.contact_ref == ref, Message.artifact_class == artifact_class)
                .order_by(Message.event_id)
            )
        ).scalars()
        for sealed in (*events, *parties, *messages):
            digest.update(sealed)
            pieces += 1
        artifact = await session.scalar(
            select(Artifact).where(Artifact.contact_ref == ref, Artifact.artifact_class == artifact_class)
        )
        if artifact is not None and artifact.ciphertext_sha256:
            digest.update(bytes.fromhex(artifact.ciphertext_sha256))
        # The key first: once this statement has run, every copy of this class's ciphertext is unreadable.
        await session.execute(
            delete(DataKey).where(DataKey.contact_ref == ref, DataKey.artifact_class == artifact_class)
        )
        self.keystore.forget({(ref, artifact_class)})
        for model in (ContactEventRow, Party, Message):
            await session.execute(
                delete(model).where(model.contact_ref == ref, model.artifact_class == artifact_class)
            )
        if artifact is not None:
            if artifact.blob_key:
                session.add(BlobDeletion(blob_key=artifact.blob_key))
                pieces += 1
            await session.execute(
                delete(Artifact).where(Artifact.contact_ref == ref, Artifact.artifact_class == artifact_class)
            )
        return pieces, digest.hexdigest()

    async def _redact(self, session: AsyncSession, item: ScheduleItem) -> tuple[int, str] | None:
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

    def _rule_text(self, item: ScheduleItem) -> str:
        """The rule as the policy file writes it: class/period/trigger/action."""
        rule = self.policies.version(item.register, item.policy_version).retention_for(item.artifact_class)
        period = rule.period.isoformat() if rule is not None else "?"
        return f"{item.artifact_class}/{period}/{item.trigger}/{item.action}"

    async def _remove_contact_if_nothing_left(self, session: AsyncSession, contact_ref: UUID) -> None:
        """When every class of a contact is gone, its remaining row (and its blind-index entries) goes too."""
        pending = await session.scalar(
            select(exists().where(ScheduleItem.contact_ref == contact_ref, ScheduleItem.state == "scheduled"))
        )
        if pending:
            return
        await session.execute(delete(Contact).where(Contact.contact_ref == contact_ref))
        await session.execute(delete(DataKey).where(DataKey.contact_ref == contact_ref))
        await session.execute(delete(ContactFacts).where(ContactFacts.contact_ref == contact_ref))

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

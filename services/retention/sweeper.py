"""The sweeper: deletes (or redacts) every schedule item whose time has come, once, in every copy.

Each batch is one transaction. It claims due items with FOR UPDATE SKIP LOCKED, so any number of retention
instances share the work and no item is taken twice. For a deletion it destroys the data key first
(crypto-shredding: from that statement on, every copy of the ciphertext - rows, blob, Kafka topic, backups - is
unreadable), then removes the rows, queues the blob, writes the certificate and the audit entry, and marks the
item done; the commit makes all of it happen or none of it. Blobs are removed after the commit from the queue
(retention.blob_deletions), so a crash between the two leaves a blob whose key no longer exists, which the next
sweep removes. A redaction (field level: PRH's chatbot identifiers) decrypts the customer's message, replaces
the identifiers with "[redacted: kind]" and seals it again, in the same kind of transaction.

The sweeper decides (what is due, what a hold keeps, what each certificate says); the record store's part of
the deletion (keys, rows, fields) is shared.recordstore.expiry's, and its SQL statements are in
services.retention.repository.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.retention import repository
from services.retention.redaction import redact
from services.retention.repository import Claimed
from shared.audit.chain import Action
from shared.audit.log import SYSTEM_ROLE, record, system_actor
from shared.platform.clock import Clock
from shared.platform.faults import fault_point
from shared.platform.ids import uuid7s
from shared.platform.logging import get_logger
from shared.platform.runtime import Periodic
from shared.policy.registry import PolicyRegistry
from shared.recordstore import expiry
from shared.recordstore.keystore import KeyStore
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


@dataclass
class SweepResult:
    deleted: int = 0
    redacted: int = 0
    blobs_removed: int = 0
    lags: list[float] = field(default_factory=list)
    """Seconds from each item's due time to its deletion."""


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
            BACKLOG.set(await repository.backlog(session, self.clock.now()))
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
            items = await repository.claim_due(session, now, self.batch_size)
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
                await repository.remove_contacts_if_nothing_left(
                    session, {item.contact_ref for item, *_ in done}
                )
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
        columns: dict[str, list[Any]] = {name: [] for name in repository.CERTIFICATE_COLUMNS}
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
        await repository.certify(
            session,
            columns=columns,
            certificate_ids=uuid7s(len(done)),
            # Erasures requested by a data subject (services.retention.service.requests) say so; the rest expired.
            reasons=[
                ERASURE_REQUEST if trigger == ERASURE_REQUEST else RETENTION_EXPIRED
                for trigger in columns["trigger"]
            ],
            done_at=now,
        )

    async def _delete(self, session: AsyncSession, items: Sequence[Claimed]) -> list[tuple[int, str]]:
        """Crypto-shred one artifact class of a contact per item; returns (pieces removed, digest of the
        ciphertext) per item, in the items' order."""
        pairs = list(dict.fromkeys((item.contact_ref, item.artifact_class) for item in items))
        shredded = await repository.shred(session, pairs)
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
        return await expiry.redact_customer_chatbot_messages(
            session, self.keystore, item.contact_ref, item.trigger_at, _identifiers_redacted
        )

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

    async def remove_queued_blobs(self) -> int:
        """Remove the blobs of committed deletions; idempotent, so a crash in between only repeats work."""
        removed = 0
        while True:
            async with self.sessionmaker() as session, session.begin():
                queued = await repository.queued_blobs(session)
                if not queued:
                    return removed
                for row in queued:
                    await self.blobs.delete(row.blob_key)
                    await session.delete(row)
                    removed += 1


def _identifiers_redacted(text: str) -> str | None:
    """The text with its numeric identifiers redacted, or None when it has none."""
    redacted, found = redact(text)
    return redacted if found else None

"""The audit relay: outbox -> hash chain -> signed checkpoints -> the single-partition topic ``sailo.audit``.

Every service process runs one (:class:`shared.app.Runtime` starts it). Each round has two steps, each one
database transaction holding a transaction-level advisory lock, so however many relays run, one works at a
time and the others skip the round:

1. **Chain.** Take outbox rows in id order, chain them after the last stored entry, insert them into
   ``audit.entries``, sign a checkpoint every AUDIT_CHECKPOINT_EVERY entries (or AUDIT_CHECKPOINT_SECONDS
   after the last one when entries have come since), and delete the taken outbox rows, all in one
   commit. An outbox row is therefore chained exactly once, and nothing acknowledged into it is lost.
   Besides the lock, the primary key on ``sequence`` stops a second writer from forking the chain.
2. **Publish.** Send the entries and checkpoints past the published watermark, in sequence order (a
   checkpoint right after the last entry it covers), to partition 0 as whole record batches, each awaited
   before the next, then move the watermark. A crash or a broker error after a batch was written and
   before the watermark moved only repeats that batch: exact re-deliveries, which
   :func:`shared.audit.chain.verify_stream` recognises. No later message is ever sent before an earlier one is
   acknowledged, so the topic never shows a gap.

A broker outage holds up step 2 only: the services' own transactions just insert outbox rows, and step 1
goes on chaining. Errors are logged (class names, counts and sequences: an entry holds no personal data,
and none is logged anyway) and retried with backoff; the relay never stops its process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import BinaryIO, Final

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.audit.chain import AuditChain, Checkpoint, MerkleFrontier, sign_checkpoint
from shared.audit.log import AuditCheckpoint, AuditEntry, AuditOutbox, AuditRelayState
from shared.messaging.kafka import ensure_topics
from shared.platform.clock import Clock, SystemClock
from shared.platform.db import bulk_insert
from shared.platform.faults import fault_point
from shared.platform.logging import get_logger
from shared.platform.runtime import repeat_rounds, stop_task
from shared.platform.settings import Settings

__all__ = ["AUDIT_TOPIC", "RELAY_LOCK_ID", "TOPIC_CONFIG", "AuditRelay", "dump_topic", "merge_in_order"]

log = get_logger(__name__)

AUDIT_TOPIC: Final = "audit"
"""Logical topic name: ``settings.topic(AUDIT_TOPIC)`` is ``sailo.audit``."""
RELAY_LOCK_ID: Final = 0x5A11_A0D17
"""pg_try_advisory_xact_lock key of the relay's rounds; unlike shared.migrations.env's migration lock."""
TOPIC_CONFIG: Final = {"retention.ms": "-1", "retention.bytes": "-1"}
"""The audit log is kept for good: a broker's default retention (a week) would delete its beginning."""
PARTITION: Final = 0  # one partition: the log's order is the partition's order
MIN_BACKOFF, MAX_BACKOFF = 0.5, 10.0


@dataclass(frozen=True)
class _Status:
    pending: bool  # outbox rows waiting
    tree_size: int
    checkpoint_size: int
    checkpoint_at: datetime | None
    published_size: int
    published_checkpoint_size: int

    @property
    def unpublished(self) -> bool:
        return self.published_size < self.tree_size or self.published_checkpoint_size < self.checkpoint_size


def merge_in_order(
    entries: Sequence[tuple[int, bytes]], checkpoints: Sequence[tuple[int, bytes]]
) -> list[tuple[int, int, bytes]]:
    """Entries ``(sequence, message)`` and checkpoints ``(tree_size, message)`` in publication order, each as
    ``(sequence, tree_size, message)`` with 0 for the other: a checkpoint goes right after the last entry it
    covers (sequence ``tree_size - 1``), before any later entry."""
    merged: list[tuple[int, int, bytes]] = []
    pending = list(checkpoints)
    for sequence, message in entries:
        while pending and pending[0][0] <= sequence:
            tree_size, checkpoint = pending.pop(0)
            merged.append((0, tree_size, checkpoint))
        merged.append((sequence, 0, message))
    merged.extend((0, tree_size, checkpoint) for tree_size, checkpoint in pending)
    return merged


@dataclass
class AuditRelay:
    """Chains the audit outbox, signs checkpoints and publishes the log; see the module docstring.

    ``start()`` runs it as a background task until ``stop()``; :meth:`tick` is one round, for tests.
    """

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    signing_key: Ed25519PrivateKey
    clock: Clock = field(default_factory=SystemClock)
    chain_batch: int = 1000
    publish_batch: int = 2000
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _topic_ready: bool = field(default=False, init=False)
    _held_at: int | None = field(default=None, init=False)  # the outbox row chaining waits at, if any

    @property
    def topic(self) -> str:
        return self.settings.topic(AUDIT_TOPIC)

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name="audit-relay")

    async def stop(self, *, grace_seconds: float = 10.0) -> None:
        """Let the current round finish (up to ``grace_seconds``; a round cut short is rolled back or, if it
        was publishing, repeated next time), then end the task."""
        self._stopping.set()
        task, self._task = self._task, None
        await stop_task(task, grace_seconds=grace_seconds)

    async def run(self) -> None:
        """Rounds until stop(): at once while work is waiting, else every AUDIT_RELAY_INTERVAL_SECONDS."""

        async def one_round() -> bool:
            return await self.tick()

        async def recover() -> None:
            # A broker that lost its state (or a new one) needs the topic again.
            self._topic_ready = False

        await repeat_rounds(
            one_round,
            stopping=self._stopping,
            idle_seconds=self.settings.audit_relay_interval_seconds,
            failure_event="audit.relay_retrying",
            backoff=(MIN_BACKOFF, MAX_BACKOFF),
            recover=recover,
        )

    async def tick(self) -> bool:
        """One round: chain what is waiting, then publish what is not on the topic yet. True if more waits.

        Chaining needs only the database, so it goes on while the broker is away; publishing catches up.
        """
        status = await self._status()
        more = chained = False
        due = self._checkpoint_due(
            status.tree_size, status.checkpoint_size, status.checkpoint_at, self.clock.now()
        )
        if status.pending or due:
            more, chained = await self._chain()
        if chained or status.unpublished:
            if not self._topic_ready:
                await self._ensure_topic()
            more = await self._publish() or more
        return more

    async def _ensure_topic(self) -> None:
        await ensure_topics(self.settings, [self.topic], config=TOPIC_CONFIG, partitions={self.topic: 1})
        partitions = await self.producer.partitions_for(self.topic)
        if partitions != {PARTITION}:
            # Publishing goes to partition 0 only, so the log stays in order; but a reader that merges
            # partitions should know the topic is not as it was meant to be.
            log.error("audit.topic_not_single_partition", partitions=len(partitions))
        self._topic_ready = True

    async def _status(self) -> _Status:
        """Whether anything is to do, in one cheap statement without the lock (idle rounds are the usual)."""
        async with self.sessionmaker() as session:
            row = (
                await session.execute(
                    text(
                        "SELECT EXISTS (SELECT 1 FROM audit.outbox), tree_size, checkpoint_size, checkpoint_at,"
                        " published_size, published_checkpoint_size FROM audit.relay_state WHERE id = 1"
                    )
                )
            ).one()
        return _Status(*row)

    def _checkpoint_due(
        self, tree_size: int, checkpoint_size: int, checkpoint_at: datetime | None, now: datetime
    ) -> bool:
        if tree_size <= checkpoint_size:
            return False
        if tree_size - checkpoint_size >= self.settings.audit_checkpoint_every or checkpoint_at is None:
            return True
        return now - checkpoint_at >= timedelta(seconds=self.settings.audit_checkpoint_seconds)

    @staticmethod
    async def _lock(session: AsyncSession) -> bool:
        # Transaction-level: released by the commit or rollback, so a relay that dies cannot keep it.
        result = await session.execute(text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": RELAY_LOCK_ID})
        return bool(result.scalar_one())

    async def _chain(self) -> tuple[bool, bool]:
        """Step 1. Whether the outbox may hold more than this round took, and whether anything was added."""
        async with self.sessionmaker() as session, session.begin():
            if not await self._lock(session):
                return False, False  # another relay is at it
            state = (
                await session.execute(
                    select(AuditRelayState).where(AuditRelayState.id == 1).with_for_update()
                )
            ).scalar_one()
            tip = (
                await session.execute(
                    select(AuditEntry.sequence, AuditEntry.entry_hash)
                    .order_by(AuditEntry.sequence.desc())
                    .limit(1)
                )
            ).first()
            last = (int(tip[0]), str(tip[1])) if tip is not None else None
            frontier = await self._frontier(session, state, 0 if last is None else last[0] + 1)
            rows = (
                await session.execute(
                    select(AuditOutbox.id, AuditOutbox.entry).order_by(AuditOutbox.id).limit(self.chain_batch)
                )
            ).all()

            chain = AuditChain(last)
            now = self.clock.now()
            checkpoint_size, checkpoint_at = state.checkpoint_size, state.checkpoint_at
            taken: list[int] = []
            entries: list[dict[str, object]] = []
            checkpoints: list[Checkpoint] = []
            for outbox_id, fields in rows:
                try:
                    event = chain.append(**fields)
                except (ValidationError, TypeError):
                    # Only a row written past record() (by hand, or by a newer release with an action this
                    # one does not know) gets here. The log's order is the outbox's: stop before it, keep
                    # it, and let an operator or a newer relay deal with it. Its content is not logged, and
                    # the row once per process, not every round.
                    if self._held_at != outbox_id:
                        log.error("audit.outbox_row_invalid", outbox_id=outbox_id)
                    self._held_at = outbox_id
                    break
                taken.append(outbox_id)
                frontier.append(event.leaf)
                entries.append(
                    {
                        "sequence": event.sequence,
                        "event_id": event.event_id,
                        "entry_hash": event.entry_hash,
                        "entry": orjson.dumps(event.model_dump(mode="json")).decode(),
                    }
                )
                if frontier.size - checkpoint_size >= self.settings.audit_checkpoint_every:
                    checkpoints.append(
                        sign_checkpoint(self.signing_key, frontier.root(), frontier.size, issued_at=now)
                    )
                    checkpoint_size, checkpoint_at = frontier.size, checkpoints[-1].issued_at
            if self._checkpoint_due(frontier.size, checkpoint_size, checkpoint_at, now):
                checkpoints.append(
                    sign_checkpoint(self.signing_key, frontier.root(), frontier.size, issued_at=now)
                )
                checkpoint_size, checkpoint_at = frontier.size, checkpoints[-1].issued_at

            if entries:
                await bulk_insert(session, AuditEntry, entries)
                await session.execute(delete(AuditOutbox).where(AuditOutbox.id.in_(taken)))
            if checkpoints:
                await bulk_insert(
                    session,
                    AuditCheckpoint,
                    [
                        {
                            "tree_size": checkpoint.tree_size,
                            "root_hash": checkpoint.root_hash,
                            "key_id": checkpoint.key_id,
                            "issued_at": checkpoint.issued_at,
                            "checkpoint": orjson.dumps(checkpoint.model_dump(mode="json")).decode(),
                        }
                        for checkpoint in checkpoints
                    ],
                )
            await session.execute(
                update(AuditRelayState)
                .where(AuditRelayState.id == 1)
                .values(
                    tree_size=frontier.size,
                    frontier=[node.hex() for node in frontier.nodes],
                    checkpoint_size=checkpoint_size,
                    checkpoint_at=checkpoint_at,
                    updated_at=text("now()"),
                )
            )
        if entries or checkpoints:
            log.info(
                "audit.chained",
                entries=len(entries),
                first_sequence=entries[0]["sequence"] if entries else None,
                tree_size=frontier.size,
                checkpoints=[checkpoint.tree_size for checkpoint in checkpoints],
            )
        more = len(rows) == self.chain_batch and len(taken) == len(rows)
        return more, bool(entries or checkpoints)

    async def _frontier(self, session: AsyncSession, state: AuditRelayState, size: int) -> MerkleFrontier:
        """The stored frontier when it describes the ``size`` stored entries, else rebuilt from them."""
        if state.tree_size == size:
            with contextlib.suppress(ValueError):
                return MerkleFrontier.restore(size, [bytes.fromhex(node) for node in state.frontier])
        # Only after entries were restored from a backup without this row, or the row was edited.
        log.warning("audit.frontier_rebuilding", stored_size=state.tree_size, entries=size)
        frontier = MerkleFrontier()
        hashes = await session.stream_scalars(select(AuditEntry.entry_hash).order_by(AuditEntry.sequence))
        async for entry_hash in hashes:
            frontier.append(bytes.fromhex(entry_hash))
        if frontier.size != size:
            raise RuntimeError("audit.entries has gaps in its sequence numbers")
        return frontier

    async def _publish(self) -> bool:
        """Step 2. True if more than this round's batch waits to be published."""
        async with self.sessionmaker() as session, session.begin():
            if not await self._lock(session):
                return False
            state = (
                await session.execute(
                    select(AuditRelayState).where(AuditRelayState.id == 1).with_for_update()
                )
            ).scalar_one()
            published_size, published_checkpoint_size = state.published_size, state.published_checkpoint_size
            entry_rows = (
                await session.execute(
                    select(AuditEntry.sequence, AuditEntry.entry)
                    .where(AuditEntry.sequence >= published_size)
                    .order_by(AuditEntry.sequence)
                    .limit(self.publish_batch)
                )
            ).all()
            upto = entry_rows[-1][0] + 1 if entry_rows else published_size
            checkpoint_rows = (
                await session.execute(
                    select(AuditCheckpoint.tree_size, AuditCheckpoint.checkpoint)
                    .where(
                        AuditCheckpoint.tree_size > published_checkpoint_size,
                        AuditCheckpoint.tree_size <= upto,
                    )
                    .order_by(AuditCheckpoint.tree_size)
                )
            ).all()
            messages = merge_in_order(
                [(int(sequence), entry.encode()) for sequence, entry in entry_rows],
                [
                    (int(tree_size), b'{"checkpoint":' + checkpoint.encode() + b"}")
                    for tree_size, checkpoint in checkpoint_rows
                ],
            )
            acknowledged, failure = 0, None
            try:
                async for count in self._send([message for _, _, message in messages]):
                    acknowledged = count
            except Exception as exc:  # keep what the broker acknowledged; the rest goes next round
                failure = exc
            done = messages[:acknowledged]
            entries_done = [sequence for sequence, tree_size, _ in done if not tree_size]
            checkpoints_done = [tree_size for _, tree_size, _ in done if tree_size]
            if done:
                # A crash here, after the broker's ack and before the watermark commits, repeats `done`.
                fault_point("audit-relay.after_publish")
                await session.execute(
                    update(AuditRelayState)
                    .where(AuditRelayState.id == 1)
                    .values(
                        published_size=max(entries_done, default=published_size - 1) + 1,
                        published_checkpoint_size=max(checkpoints_done, default=published_checkpoint_size),
                        updated_at=text("now()"),
                    )
                )
        if done:
            log.info(
                "audit.published",
                entries=len(entries_done),
                through_sequence=max(entries_done, default=published_size - 1),
                checkpoints=checkpoints_done,
            )
        if failure is not None:
            raise failure
        return len(entry_rows) == self.publish_batch

    async def _send(self, messages: Sequence[bytes]) -> AsyncIterator[int]:
        """Send ``messages`` in order as whole record batches, each acknowledged before the next is built;
        yields how many are acknowledged so far. A record batch is appended whole or not at all."""
        timeout = 3 * self.settings.kafka_request_timeout_ms / 1000
        position = 0
        while position < len(messages):
            batch = self.producer.create_batch()
            first = position
            while position < len(messages):
                if batch.append(key=None, value=messages[position], timestamp=None) is None:
                    break  # full; the first message always fits, whatever its size
                position += 1
            if position == first:
                raise RuntimeError("an audit message does not fit in a record batch")
            delivery = await asyncio.wait_for(
                self.producer.send_batch(batch, self.topic, partition=PARTITION), timeout
            )
            # shield: a timeout here must not cancel the producer's own future (it still expires by itself).
            await asyncio.wait_for(asyncio.shield(delivery), timeout)
            yield position


async def dump_topic(
    settings: Settings, out: BinaryIO, *, topic: str | None = None, idle_timeout: float = 30.0
) -> int:
    """Write the audit topic from its beginning to its current end into ``out``, one message value per line
    (the format :func:`shared.audit.chain.verify_file` reads, the same as ``kcat -C -e``); returns the count.

    Raises LookupError if the topic does not exist, TimeoutError if the broker sends nothing for
    ``idle_timeout`` seconds before the end is reached.
    """
    name = topic or settings.topic(AUDIT_TOPIC)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id="sailo-audit-reader",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=max(settings.kafka_request_timeout_ms, 15_000),
    )
    await consumer.start()
    try:
        if name not in await consumer.topics():
            raise LookupError(f"topic {name} does not exist")
        count = 0
        # Partition by partition: the log has one, and merging several by arrival would invent an order.
        for partition in sorted(consumer.partitions_for_topic(name) or ()):
            tp = TopicPartition(name, partition)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            last_progress = time.monotonic()
            while await consumer.position(tp) < end:
                records = (await consumer.getmany(tp, timeout_ms=1000)).get(tp, [])
                for message in records:
                    # A message without a value is none we publish: "null" makes it fail as an entry.
                    out.write((message.value if message.value is not None else b"null") + b"\n")
                    count += 1
                if records:
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress > idle_timeout:
                    raise TimeoutError(f"no messages from {name}[{partition}] before its end offset {end}")
        return count
    finally:
        await consumer.stop()

"""Kafka plumbing: the producer every service uses, topic creation, and the exactly-once consumer loop.

The consumer loop follows one rule (CONVENTIONS.md): for each batch, ONE database transaction inserts the
tracking rows `(consumer_group, event_id)` and applies the effects of the events not seen before; the offsets are
committed only after that transaction. A crash anywhere redelivers, and the tracking rows absorb the repeat.
A message that cannot be decoded, or whose effects fail for a reason a retry cannot fix, goes to the topic's
dead-letter topic with the reason in a header, and the loop moves on.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from prometheus_client import Counter
from sqlalchemy import DateTime, String, func, select
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from shared.platform.crypto import DecryptionError, KeyUnavailable
from shared.platform.db import Base, bulk_insert
from shared.platform.errors import PoisonMessage
from shared.platform.faults import fault_point
from shared.platform.logging import get_logger
from shared.platform.runtime import repeat_rounds
from shared.platform.settings import Settings

log = get_logger(__name__)

DLQ_SUFFIX = ".dlq"

MESSAGES_PROCESSED = Counter(
    "sailo_consumer_messages_total", "Messages handled by a consumer loop", ["group", "outcome"]
)


class ProcessedEvent(Base):
    """The tracking row of the consumer loop: an event id handled once per consumer group."""

    __tablename__ = "processed_events"
    __table_args__ = {"schema": "messaging"}

    consumer_group: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_id: Mapped[UUID] = mapped_column(primary_key=True)
    content_digest: Mapped[str] = mapped_column(String(64))
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def create_producer(settings: Settings, *, client_id: str) -> AIOKafkaProducer:
    """A producer that answers only when every in-sync replica has the record (acks=all)."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        # No lingering: under load batches form while earlier requests are in flight anyway.
        linger_ms=0,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        max_request_size=4 * 1024 * 1024,
    )


async def ensure_topics(
    settings: Settings,
    names: Sequence[str],
    *,
    config: dict[str, str] | None = None,
    partitions: Mapping[str, int] | None = None,
) -> None:
    """Create the topics (and their dead-letter topics) that do not exist yet.

    Each gets KAFKA_TOPIC_PARTITIONS partitions unless ``partitions`` names its own count: a topic whose order
    is its meaning (the audit log) has exactly one. An existing topic is left as it is.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [n for n in names if n not in existing]
        if not wanted:
            return
        topics = [
            NewTopic(
                name,
                num_partitions=(partitions or {}).get(name, settings.kafka_topic_partitions),
                replication_factor=settings.kafka_replication_factor,
                topic_configs=dict(config or {}),
            )
            for name in wanted
        ]
        with contextlib.suppress(TopicAlreadyExistsError):  # another instance created them first
            await admin.create_topics(topics)
        log.info("kafka.topics_created", topics=wanted)
    finally:
        await admin.close()


T = TypeVar("T")


class BatchHandler(Protocol[T]):
    """What a consumer loop needs to know about one kind of message."""

    def decode(self, record: ConsumerRecord[bytes, bytes]) -> T:
        """Parse and validate one record; raise PoisonMessage when it is not a valid message."""
        ...

    def identify(self, item: T) -> tuple[UUID, str]:
        """The event id (idempotency key) and a digest of its content."""
        ...

    async def apply(self, session: AsyncSession, items: list[T]) -> None:
        """The effects of events not seen before by this group; flush, never commit. An error a retry cannot
        fix (PoisonMessage among them, see PERMANENT_ERRORS) dead-letters the event and the loop goes on."""
        ...


@runtime_checkable
class RepeatAwareHandler(Protocol[T]):
    """A handler that also looks at events its group has applied before, arriving again with the same content
    (a redelivery after a crash, or a platform's resend). For a handler whose effects may have been undone
    since the first copy: retention's scheduler re-arms a class shredded before a resent copy came back."""

    async def apply_repeats(self, session: AsyncSession, items: list[T]) -> None: ...


@dataclass
class _Decoded(Generic[T]):
    record: ConsumerRecord[bytes, bytes]
    item: T
    event_id: UUID
    digest: str


async def send_dead_letter(
    producer: AIOKafkaProducer,
    record: ConsumerRecord[bytes, bytes],
    *,
    group: str,
    reason: str,
) -> None:
    """Put a record on `<topic>.dlq` with where it came from and why; waits for the broker's ack."""
    headers = [
        ("sailo-dlq-reason", reason.encode()),
        ("sailo-dlq-source-topic", record.topic.encode()),
        ("sailo-dlq-source-partition", str(record.partition).encode()),
        ("sailo-dlq-source-offset", str(record.offset).encode()),
        ("sailo-dlq-consumer-group", group.encode()),
        ("sailo-dlq-failed-at", datetime.now(UTC).isoformat().encode()),
        ("sailo-dlq-payload-sha256", hashlib.sha256(record.value or b"").hexdigest().encode()),
    ]
    await producer.send_and_wait(
        record.topic + DLQ_SUFFIX, value=record.value, key=record.key, headers=headers
    )
    MESSAGES_PROCESSED.labels(group=group, outcome="dead_lettered").inc()
    log.warning(
        "kafka.dead_lettered",
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        reason=reason,
    )


# Errors a retry cannot fix: the message's content broke a constraint or a type. Everything else (connection
# loss, a restarting database) is transient: the batch is retried and its offsets stay uncommitted.
PERMANENT_DB_ERRORS = (DataError, IntegrityError, ProgrammingError)
# Nor can it fix a message that decodes but cannot be applied: a handler's PoisonMessage, a data key that does
# not exist (shredded, or the message is forged), a ciphertext that is not base64 or does not open. Retrying
# these would hold up every later message of the partition for good.
PERMANENT_ERRORS = (*PERMANENT_DB_ERRORS, PoisonMessage, KeyUnavailable, DecryptionError, binascii.Error)


@dataclass
class ConsumerLoop(Generic[T]):
    """Consumes `topics` in consumer group `group`, applying `handler` exactly once per event id."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    topics: list[str]
    group: str
    handler: BatchHandler[T]
    max_batch: int = 500
    on_batch_committed: Callable[[int], Awaitable[None]] | None = None
    _consumer: AIOKafkaConsumer | None = field(default=None, init=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.group,
            client_id=f"{self.settings.service_name}-{self.group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.max_batch,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            request_timeout_ms=max(self.settings.kafka_request_timeout_ms, 15_000),
        )
        await self._consumer.start()
        # Subscribed after start, the group is joined in the background and the first poll waits for it: a
        # service's start (and its readiness) never hangs on a rebalance that other members hold up.
        self._consumer.subscribe(list(self.topics))

    async def stop(self) -> None:
        self._stopping.set()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("consumer loop not started")
        return self._consumer

    @property
    def name(self) -> str:
        return f"consumer:{self.group}"

    async def run(self) -> None:
        """Poll, process and commit until stop() is called. A failed batch committed nothing: the loop goes
        back to the committed offsets and the same records come again."""

        async def one_round() -> bool:
            batches = await self.consumer.getmany(timeout_ms=500, max_records=self.max_batch)
            for records in batches.values():
                if records:
                    await self.process(records)
            return True  # getmany itself waits while the topic is idle

        await repeat_rounds(
            one_round,
            stopping=self._stopping,
            idle_seconds=0,
            failure_event="kafka.consumer_retrying",
            recover=self._rewind,
            group=self.group,
        )

    async def _rewind(self) -> None:
        """After a failed batch, go back to the last committed offsets so nothing is skipped."""
        consumer = self.consumer
        for tp in consumer.assignment():
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)

    async def process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """One partition's batch: dead-letter the undecodable, apply the rest, then commit the offset."""
        decoded: list[_Decoded[T]] = []
        for record in records:
            try:
                item = self.handler.decode(record)
                event_id, digest = self.handler.identify(item)
            except PoisonMessage as poison:
                await send_dead_letter(self.producer, record, group=self.group, reason=poison.reason)
                continue
            decoded.append(_Decoded(record, item, event_id, digest))

        if decoded:
            await self._apply_or_set_aside(decoded)

        fault_point(f"{self.group}.after_db_commit")
        last = records[-1]
        await self.consumer.commit({TopicPartition(last.topic, last.partition): last.offset + 1})
        if self.on_batch_committed is not None:
            await self.on_batch_committed(len(records))

    async def _apply_or_set_aside(self, decoded: list[_Decoded[T]]) -> None:
        """Apply the batch; if an event in it can never be applied, dead-letter that one and apply the rest.

        One bad event must not sink the good ones beside it. The batch is halved until the bad events stand
        alone: a batch of 500 with one bad event takes about 18 transactions, not 500 (which, with an event of
        an already-shredded contact in most batches, slowed a catching-up consumer twentyfold).
        """
        try:
            await self._apply(decoded)
        except PERMANENT_ERRORS as exc:
            if len(decoded) == 1:
                await send_dead_letter(
                    self.producer, decoded[0].record, group=self.group, reason=_permanent_reason(exc)
                )
                return
            half = len(decoded) // 2
            await self._apply_or_set_aside(decoded[:half])
            await self._apply_or_set_aside(decoded[half:])

    async def _apply(self, decoded: list[_Decoded[T]]) -> None:
        async with self.sessionmaker() as session, session.begin():
            unique: dict[UUID, _Decoded[T]] = {}
            for one in decoded:
                unique.setdefault(one.event_id, one)
            result = await bulk_insert(
                session,
                ProcessedEvent,
                [
                    {"consumer_group": self.group, "event_id": eid, "content_digest": one.digest}
                    for eid, one in unique.items()
                ],
                tail="ON CONFLICT DO NOTHING RETURNING event_id",
            )
            inserted = set(result.scalars().all())
            fresh = [one for eid, one in unique.items() if eid in inserted]
            repeats = [one for eid, one in unique.items() if eid not in inserted]
            conflicting = await self._conflicting_repeats(session, repeats)
            if fresh:
                await self.handler.apply(session, [one.item for one in fresh])
            if repeats and isinstance(self.handler, RepeatAwareHandler):
                different = {one.event_id for one in conflicting}
                same = [one.item for one in repeats if one.event_id not in different]
                if same:
                    await self.handler.apply_repeats(session, same)
        for one in conflicting:
            await send_dead_letter(
                self.producer,
                one.record,
                group=self.group,
                reason="event_id: already processed with different content",
            )
        MESSAGES_PROCESSED.labels(group=self.group, outcome="applied").inc(len(fresh))
        MESSAGES_PROCESSED.labels(group=self.group, outcome="duplicate").inc(
            len(decoded) - len(fresh) - len(conflicting)
        )

    async def _conflicting_repeats(
        self, session: AsyncSession, repeats: list[_Decoded[T]]
    ) -> list[_Decoded[T]]:
        if not repeats:
            return []
        rows = await session.execute(
            select(ProcessedEvent.event_id, ProcessedEvent.content_digest).where(
                ProcessedEvent.consumer_group == self.group,
                ProcessedEvent.event_id.in_([one.event_id for one in repeats]),
            )
        )
        seen = dict(rows.all())
        return [one for one in repeats if seen.get(one.event_id) not in (None, one.digest)]


def _permanent_reason(exc: Exception) -> str:
    if isinstance(exc, PoisonMessage):
        return exc.reason
    if not isinstance(exc, PERMANENT_DB_ERRORS):
        # The class says enough (shared.recordstore.keystore.KeyUnavailable, binascii.Error...); a message
        # could quote data.
        return f"cannot apply the event: {type(exc).__module__}.{type(exc).__qualname__}"
    # The driver's message can quote the offending value: keep only the error class and constraint name.
    constraint = getattr(getattr(exc, "orig", None), "constraint_name", None)
    detail = f" ({constraint})" if constraint else ""
    return f"database refused the event: {type(exc).__name__}{detail}"


def header(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode(errors="replace")
    return None


__all__ = [
    "DLQ_SUFFIX",
    "BatchHandler",
    "ConsumerLoop",
    "KafkaError",
    "ProcessedEvent",
    "RepeatAwareHandler",
    "create_producer",
    "ensure_topics",
    "header",
    "send_dead_letter",
]

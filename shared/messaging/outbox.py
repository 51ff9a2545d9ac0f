"""The transactional outbox: a service's state change and the event announcing it commit together.

A service calls :func:`enqueue` (or :func:`enqueue_many` for a batch, or, inside one set-based statement, the
INSERT that :func:`insert_events_sql` and :func:`envelope_sql` build from the contracts) inside the transaction
that changes its state; the relay then publishes what committed. Without it, a crash between a
commit and a publish would lose the event (an institute never told to destroy a lent recording), and a
publish before the commit would announce something that then rolled back.

The relay runs in every service process (:class:`shared.platform.runtime.Runtime` starts it). Each round is one
transaction holding a transaction-level advisory lock, so one relay publishes at a time and the topics get the
events in the outbox's order (per key, the order the state changed). It takes rows in id order, sends them
(acks=all), waits for every acknowledgement, then deletes them and commits. A crash or a failed commit after
the sends repeats them next round: delivery is at least once, and consumers keep a tracking row per event id
(shared.messaging.kafka's consumer loop), which makes the effect exactly once. A broker outage only lets rows wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple
from uuid import UUID, uuid4

import orjson
from aiokafka import AIOKafkaProducer
from sqlalchemy import BigInteger, DateTime, String, delete, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from shared.contracts.domain_events import EVENT_DATA, DomainEvent
from shared.messaging.kafka import ensure_topics
from shared.platform.db import Base
from shared.platform.faults import fault_point
from shared.platform.logging import get_logger
from shared.platform.runtime import repeat_rounds, stop_task
from shared.platform.settings import Settings

log = get_logger(__name__)

SCHEMA: Final = "outbox"
RELAY_LOCK_ID: Final = 0x5A11_0B0C5
"""pg_try_advisory_xact_lock key of the relay's rounds (unlike the audit relay's and the migrations')."""
MIN_BACKOFF, MAX_BACKOFF = 0.5, 10.0


class OutboxEvent(Base):
    """An event committed with its state change and not yet acknowledged by the broker."""

    __tablename__ = "events"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(100))
    """The logical topic (without KAFKA_TOPIC_PREFIX)."""
    key: Mapped[str] = mapped_column(String(100))
    """The partition key: a pseudonym (contact_ref, hold number, case or loan id), so one thing's events stay
    in order."""
    event: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


def envelope(
    event_type: str,
    data: dict[str, Any],
    *,
    producer: str,
    occurred_at: datetime,
    version: int = 1,
    correlation_id: str | None = None,
) -> DomainEvent:
    """A validated envelope: `data` is checked against its contract here, in the producer's transaction, so a
    bad event fails the state change that made it rather than a consumer later."""
    event = DomainEvent(
        id=uuid4(),
        type=event_type,
        version=version,
        occurred_at=occurred_at,
        producer=producer,
        correlation_id=correlation_id,
        data=data,
    )
    checked = EVENT_DATA[event_type, version].model_validate(data)
    return event.model_copy(update={"data": checked.model_dump(mode="json")})


async def enqueue(session: AsyncSession, *, topic: str, key: str | UUID, event: DomainEvent) -> None:
    """Add `event` to the outbox in the caller's transaction: it is published once that commits."""
    session.add(OutboxEvent(topic=topic, key=str(key), event=event.model_dump(mode="json")))
    await session.flush()


class Outgoing(NamedTuple):
    """One event for :func:`enqueue_many`: its logical topic, its partition key and the envelope."""

    topic: str
    key: str | UUID
    event: DomainEvent


# Arrays, not one VALUES tuple per row: one prepared statement whatever the batch size, and no bind-parameter
# limit. jsonb[] is cast from text[] so the driver sends plain strings.
_INSERT_MANY = text(
    "INSERT INTO outbox.events (topic, key, event)"
    " SELECT * FROM unnest(CAST(:topics AS varchar[]), CAST(:keys AS varchar[]),"
    " CAST(CAST(:events AS text[]) AS jsonb[]))"
)


async def enqueue_many(session: AsyncSession, events: Sequence[Outgoing]) -> None:
    """Add `events` to the outbox in one INSERT, in the caller's transaction and in the order given (the relay
    publishes by id, so per key they keep that order)."""
    if not events:
        return
    await session.execute(
        _INSERT_MANY,
        {
            "topics": [outgoing.topic for outgoing in events],
            "keys": [str(outgoing.key) for outgoing in events],
            "events": [orjson.dumps(outgoing.event.model_dump(mode="json")).decode() for outgoing in events],
        },
    )


# -- events built inside one SQL statement ---------------------------------------------------------------------

JsonFields = Mapping[str, Any]
"""JSON key -> SQL expression, or a nested object of the same kind."""


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def envelope_fields(
    event_type: str,
    data: Mapping[str, str],
    *,
    producer: str,
    occurred_at: str,
    version: int = 1,
    correlation_id: str = "NULL",
) -> dict[str, Any]:
    """The envelope of `event_type` as JSON key -> SQL expression, for a statement that writes many events at
    once (see :func:`envelope_sql`). `data` maps each field of the event's data contract, by its JSON name, to
    the SQL expression of its value; `occurred_at` and `correlation_id` are SQL expressions too.

    The keys come from the contracts, not from the caller: the envelope's from :class:`DomainEvent`, the data's
    from ``EVENT_DATA[event_type, version]``. A `data` that leaves out a field of the contract (an optional one
    included: map it to ``NULL``) or names one the contract does not have raises ValueError here, when the
    statement is built, so a contract change cannot silently diverge from what such a statement writes.
    """
    contract = EVENT_DATA[event_type, version]
    expected = {info.alias or name for name, info in contract.model_fields.items()}
    if missing := sorted(expected - set(data)):
        raise ValueError(f"{event_type} v{version}: no SQL for the data field(s) {', '.join(missing)}")
    if unknown := sorted(set(data) - expected):
        raise ValueError(f"{event_type} v{version}: not data fields of the contract: {', '.join(unknown)}")
    fields: dict[str, Any] = {
        "id": "gen_random_uuid()",
        "type": _sql_literal(event_type),
        "version": str(int(version)),
        "occurred_at": occurred_at,
        "producer": _sql_literal(producer),
        "correlation_id": correlation_id,
        # In the contract's field order: the same keys, whichever way the event was built.
        "data": {
            (info.alias or name): data[info.alias or name] for name, info in contract.model_fields.items()
        },
    }
    envelope_keys = {info.alias or name for name, info in DomainEvent.model_fields.items()}
    if set(fields) != envelope_keys:
        raise ValueError(f"the envelope has the fields {sorted(envelope_keys)}, not {sorted(fields)}")
    return fields


def jsonb_object_sql(fields: JsonFields) -> str:
    """`fields` as one ``jsonb_build_object(...)`` expression (nested objects nested)."""
    parts = []
    for key, value in fields.items():
        expression = value if isinstance(value, str) else jsonb_object_sql(value)
        parts.append(f"{_sql_literal(key)}, {expression}")
    return "jsonb_build_object(" + ", ".join(parts) + ")"


def envelope_sql(
    event_type: str,
    data: Mapping[str, str],
    *,
    producer: str,
    occurred_at: str,
    version: int = 1,
    correlation_id: str = "NULL",
) -> str:
    """A jsonb expression building one envelope of `event_type` per row of a set-based statement; the keys are
    checked against the contracts as :func:`envelope_fields` says. Each row gets an id of its own
    (``gen_random_uuid()``), as :func:`envelope` gives each event."""
    return jsonb_object_sql(
        envelope_fields(
            event_type,
            data,
            producer=producer,
            occurred_at=occurred_at,
            version=version,
            correlation_id=correlation_id,
        )
    )


def insert_events_sql(*, topic: str, key: str, event: str, rows: str) -> str:
    """``INSERT INTO the outbox SELECT topic, key, event FROM rows``: each argument an SQL expression (`event`
    from :func:`envelope_sql`; `key` a varchar) and `rows` the FROM clause they read, so a statement that changes
    many things can announce them in the same statement, committing with them."""
    return f"INSERT INTO outbox.events (topic, key, event) SELECT {topic}, {key}, {event} FROM {rows}"  # noqa: S608


@dataclass
class OutboxRelay:
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    batch: int = 1000
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _topics_ready: set[str] = field(default_factory=set, init=False)

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self, *, grace_seconds: float = 10.0) -> None:
        """Let the current round finish (a round cut short rolls back and is repeated), then end the task."""
        self._stopping.set()
        task, self._task = self._task, None
        await stop_task(task, grace_seconds=grace_seconds)

    async def run(self) -> None:
        """Rounds until stop(): at once while rows wait, else every OUTBOX_RELAY_INTERVAL_SECONDS."""

        async def one_round() -> bool:
            return await self.tick() >= self.batch

        async def recover() -> None:
            # A broker that lost its state (or a new one) needs the topics again.
            self._topics_ready.clear()

        await repeat_rounds(
            one_round,
            stopping=self._stopping,
            idle_seconds=self.settings.outbox_relay_interval_seconds,
            failure_event="outbox.relay_retrying",
            backoff=(MIN_BACKOFF, MAX_BACKOFF),
            recover=recover,
        )

    async def tick(self) -> int:
        """One round; how many events it published (0 when another relay holds the lock)."""
        async with self.sessionmaker() as session:
            # Cheap and lock-free: idle rounds are the usual case.
            if not await session.scalar(text("SELECT EXISTS (SELECT 1 FROM outbox.events)")):
                return 0
        async with self.sessionmaker() as session, session.begin():
            locked = await session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": RELAY_LOCK_ID}
            )
            if not locked:
                return 0
            rows = (
                await session.execute(
                    select(OutboxEvent.id, OutboxEvent.topic, OutboxEvent.key, OutboxEvent.event)
                    .order_by(OutboxEvent.id)
                    .limit(self.batch)
                )
            ).all()
            if not rows:
                return 0
            await self._ensure_topics({topic for _, topic, _, _ in rows})
            # A crash here leaves the committed rows for the next relay: nothing is lost between write and publish.
            fault_point("outbox.before_publish")
            sends = [
                await self.producer.send(
                    self.settings.topic(topic), value=orjson.dumps(event), key=key.encode()
                )
                for _, topic, key, event in rows
            ]
            await asyncio.gather(*sends)
            # A crash here repeats this round's events: consumers absorb them by event id.
            fault_point("outbox.after_publish")
            # By id, not "up to the last id": a transaction that drew a smaller id may commit only now.
            await session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_([row[0] for row in rows])))
        return len(rows)

    async def _ensure_topics(self, topics: set[str]) -> None:
        missing = topics - self._topics_ready
        if missing:
            await ensure_topics(self.settings, [self.settings.topic(topic) for topic in sorted(missing)])
            self._topics_ready |= missing

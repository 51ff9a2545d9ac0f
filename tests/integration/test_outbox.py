"""The domain-event outbox on real PostgreSQL and a real broker: an event leaves only with its committed state
change, in order, and a relay killed between publishing and deleting repeats exactly the same events."""

from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import func, select, text

from services.retention.repository import ARTIFACT_DELETED_DATA
from shared.contracts.domain_events import (
    ArtifactDeletedData,
    DomainEvent,
    HoldChangedData,
    parse_domain_event,
)
from shared.messaging.kafka import create_producer
from shared.messaging.outbox import (
    OutboxEvent,
    OutboxRelay,
    Outgoing,
    enqueue,
    enqueue_many,
    envelope,
    envelope_sql,
    insert_events_sql,
)
from shared.platform.db import create_engine, create_sessionmaker, upgrade_async
from shared.platform.settings import Settings
from tests.conftest import Infrastructure, drop_database, plain_dsn
from tests.integration.conftest import read_topic

pytestmark = pytest.mark.integration

TOPIC = "outbox-test"


@pytest.fixture
async def outbox_settings(infrastructure: Infrastructure, settings: Settings) -> AsyncIterator[Settings]:
    """A database of its own, so no other test's relay publishes these rows first."""
    name = f"sailo_outbox_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(plain_dsn(infrastructure.database_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base, _, _ = infrastructure.database_url.rpartition("/")
    own = settings.model_copy(
        update={
            "database_url": f"{base}/{name}",
            "kafka_topic_prefix": f"sailo-outbox-{uuid.uuid4().hex[:8]}.",
        }
    )
    await upgrade_async(own)
    try:
        yield own
    finally:
        await drop_database(infrastructure.database_url, name)


def _hold_event(number: int) -> DomainEvent:
    return envelope(
        "retention.hold_placed",
        {"hold_number": number, "scope": "register", "register": "statfi-chat"},
        producer="retention",
        occurred_at=datetime.now(UTC),
    )


async def _enqueue(settings: Settings, numbers: range, *, commit: bool) -> None:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            transaction = await session.begin()
            for number in numbers:
                await enqueue(session, topic=TOPIC, key=f"H-{number}", event=_hold_event(number))
            await (transaction.commit() if commit else transaction.rollback())
    finally:
        await engine.dispose()


async def _published(settings: Settings) -> list[tuple[int, str, int]]:
    """(partition, event id, hold number) of every message on the topic, partition by partition in offset
    order."""
    out = []
    messages = await read_topic(settings, settings.topic(TOPIC))
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        event, data = parse_domain_event(message.value)
        assert isinstance(data, HoldChangedData)
        assert message.key == f"H-{data.hold_number}".encode()
        out.append((message.partition, str(event.id), data.hold_number))
    return out


async def _outbox_rows(settings: Settings) -> int:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            return int(await session.scalar(select(func.count()).select_from(OutboxEvent)) or 0)
    finally:
        await engine.dispose()


async def test_only_committed_events_leave_and_each_once_in_order(outbox_settings: Settings) -> None:
    await _enqueue(outbox_settings, range(1, 51), commit=True)
    await _enqueue(outbox_settings, range(1000, 1010), commit=False)  # rolled back: must never appear
    engine = create_engine(outbox_settings)
    producer = create_producer(outbox_settings, client_id="outbox-test")
    await producer.start()
    try:
        relay = OutboxRelay(
            settings=outbox_settings, sessionmaker=create_sessionmaker(engine), producer=producer
        )
        assert await relay.tick() == 50
        assert await relay.tick() == 0  # nothing left: nothing sent twice
    finally:
        await producer.stop()
        await engine.dispose()
    published = await _published(outbox_settings)
    assert sorted(number for _, _, number in published) == list(range(1, 51))
    assert len({event_id for _, event_id, _ in published}) == 50
    for partition in {partition for partition, _, _ in published}:
        numbers = [number for p, _, number in published if p == partition]
        assert numbers == sorted(numbers)  # each partition in the outbox's order
    assert await _outbox_rows(outbox_settings) == 0


async def test_a_relay_killed_after_publishing_repeats_the_same_events_and_loses_none(
    outbox_settings: Settings,
) -> None:
    await _enqueue(outbox_settings, range(1, 21), commit=True)
    environment = {
        **os.environ,
        "DATABASE_URL": outbox_settings.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": outbox_settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": outbox_settings.kafka_topic_prefix,
        "KAFKA_ENABLE_IDEMPOTENCE": str(outbox_settings.kafka_enable_idempotence).lower(),
        "SAILO_FAULTS": "outbox.after_publish:1",
    }
    killed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tests.integration.relay_once"],
        cwd=Path(__file__).parents[2],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == 137, killed.stderr[-2000:]
    assert await _outbox_rows(outbox_settings) == 20  # published, but not yet deleted

    # The next relay (any process) publishes them again, with the same ids, then clears the outbox.
    restarted = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tests.integration.relay_once"],
        cwd=Path(__file__).parents[2],
        env={**environment, "SAILO_FAULTS": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    assert await _outbox_rows(outbox_settings) == 0
    published = await _published(outbox_settings)
    assert len(published) == 40
    # Each event twice, with the same id: a repeat of the very same events, which a consumer's tracking row
    # absorbs; none missing.
    assert set(collections.Counter(published).values()) == {2}
    assert sorted(number for _, _, number in set(published)) == list(range(1, 21))


async def test_a_batch_enqueued_in_one_insert_is_stored_in_order_as_built(outbox_settings: Settings) -> None:
    events = [_hold_event(number) for number in range(1, 6)]
    engine = create_engine(outbox_settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await enqueue_many(
                session, [Outgoing(TOPIC, f"H-{n}", event) for n, event in enumerate(events, 1)]
            )
            await enqueue_many(session, [])
        async with create_sessionmaker(engine)() as session:
            rows = (await session.execute(select(OutboxEvent).order_by(OutboxEvent.id))).scalars().all()
    finally:
        await engine.dispose()
    assert [(row.topic, row.key) for row in rows] == [(TOPIC, f"H-{n}") for n in range(1, 6)]
    assert [parse_domain_event(row.event) for row in rows] == [
        (event, HoldChangedData.model_validate(event.data)) for event in events
    ]


async def test_an_event_built_in_sql_from_the_contract_parses_as_the_one_built_in_python(
    outbox_settings: Settings,
) -> None:
    """The sweeper's artifact-deleted event, built by PostgreSQL from the contract's field list, is the same
    contract as the one `envelope` builds in Python."""
    done_at = datetime(2026, 6, 1, 9, 0, 0, 123456, tzinfo=UTC)
    data = {
        "contact_ref": uuid.uuid4(),
        "register": "prh-customer-service",
        "artifact_class": "chatbot_identifiers",
        "item": "20260531T120000.000000Z",
        "method": "redaction",
        "reason": "retention_expired",
        "certificate_id": uuid.uuid4(),
        "policy_version": "2021-10-20",
        "due_at": datetime(2026, 5, 31, 13, 0, tzinfo=UTC),
        "done_at": done_at,
    }
    columns = [name for name in ARTIFACT_DELETED_DATA if name != "done_at"]
    statement = text(
        insert_events_sql(
            topic="CAST(:topic AS varchar)",
            key="CAST(c.contact_ref AS varchar)",
            event=envelope_sql(
                "retention.artifact_deleted",
                ARTIFACT_DELETED_DATA,
                producer="retention",
                occurred_at="CAST(:done_at AS timestamptz)",
            ),
            rows="(SELECT CAST(:contact_ref AS uuid), CAST(:register AS varchar), CAST(:artifact_class AS varchar),"
            " CAST(:item AS varchar), CAST(:method AS varchar), CAST(:reason AS varchar),"
            " CAST(:certificate_id AS uuid), CAST(:policy_version AS varchar), CAST(:due_at AS timestamptz))"
            f" AS c({', '.join(columns)})",
        )
    )
    engine = create_engine(outbox_settings)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            await session.execute(statement, {"topic": TOPIC, **data})
        async with create_sessionmaker(engine)() as session:
            row = (await session.execute(select(OutboxEvent))).scalars().one()
    finally:
        await engine.dispose()
    from_sql, contract_from_sql = parse_domain_event(row.event)
    python_built = envelope("retention.artifact_deleted", data, producer="retention", occurred_at=done_at)
    from_python, contract_from_python = parse_domain_event(python_built.model_dump(mode="json"))
    assert isinstance(contract_from_sql, ArtifactDeletedData)
    assert contract_from_sql == contract_from_python
    assert from_sql.model_dump(exclude={"id", "data"}) == from_python.model_dump(exclude={"id", "data"})
    assert (row.topic, row.key) == (TOPIC, str(data["contact_ref"]))

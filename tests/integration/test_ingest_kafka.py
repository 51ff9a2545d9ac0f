"""Ingest's Kafka side: platforms producing straight onto the intake topic, poison messages, consumer crashes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from deploy.embedded.ports import free_port
from services.ingest.app import create_app
from shared.contracts.events import example_event
from shared.messaging.kafka import header
from shared.platform.settings import Settings
from shared.security.auth import Role
from tests.conftest import plain_dsn
from tests.integration.conftest import Ingest, eventually, new_id

pytestmark = pytest.mark.integration


async def produce(settings: Settings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_idempotence=settings.kafka_enable_idempotence,
    )
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, key=key, value=value)
    finally:
        await producer.stop()


async def dead_letters(settings: Settings, topic: str, keys: set[bytes]) -> dict[bytes, dict[str, Any]]:
    """The dead-letter records with the given keys, with their headers."""
    consumer = AIOKafkaConsumer(
        topic + ".dlq",
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"test-dlq-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: dict[bytes, dict[str, Any]] = {}
    try:
        for _ in range(100):
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    if record.key in keys:
                        found[record.key] = {
                            "reason": header(record, "sailo-dlq-reason"),
                            "source_topic": header(record, "sailo-dlq-source-topic"),
                            "value": record.value,
                        }
            if set(found) == keys:
                break
    finally:
        await consumer.stop()
    return found


async def test_platform_produces_straight_onto_the_intake_topic(ingest: Ingest) -> None:
    settings = ingest.settings
    intake = settings.topic("contact-events.intake")
    good = example_event("chat.message", event_id=new_id())
    good["contact_id"] = f"kafka-{new_id()}"
    bad_phone = example_event("call.started", event_id=new_id())
    bad_phone["data"] = {"direction": "inbound", "caller_number": "+358 12"}
    unknown_register = example_event("call.ended", event_id=new_id())
    unknown_register["register"] = "nowhere"
    keys = {
        b"bad-phone-" + uuid.uuid4().bytes,
        b"not-json-" + uuid.uuid4().bytes,
        b"nowhere-" + uuid.uuid4().bytes,
    }
    bad_key, junk_key, nowhere_key = sorted(keys)
    await produce(
        settings,
        intake,
        [
            (bad_key, json.dumps(bad_phone).encode()),
            (junk_key, b"\x00\x01 definitely not json"),
            (nowhere_key, json.dumps(unknown_register).encode()),
            (b"good", json.dumps(good).encode()),
        ],
    )

    async def stored() -> bool:
        response = await ingest.client.get(
            f"/v1/contacts/{good['contact_id']}", headers=ingest.auth(Role.MANAGER)
        )
        return response.status_code == 200

    await eventually(stored)
    letters = await dead_letters(settings, intake, keys)
    assert set(letters) == keys
    reasons = {k: v["reason"] or "" for k, v in letters.items()}
    assert "data.caller_number" in reasons[bad_key]
    assert "+358 12" not in reasons[bad_key]
    assert "not valid JSON" in reasons[junk_key]
    assert "register" in reasons[nowhere_key]
    assert all(v["source_topic"] == intake for v in letters.values())


async def test_poison_message_on_the_record_topic_is_dead_lettered_and_the_consumer_goes_on(
    ingest: Ingest,
) -> None:
    settings = ingest.settings
    topic = settings.topic("contact-events")
    poison_key = b"poison-" + uuid.uuid4().bytes
    await produce(settings, topic, [(poison_key, b'{"event_id": "x", "type": 42}')])
    after = example_event("call.started", event_id=new_id())
    after["contact_id"] = f"after-poison-{new_id()}"
    response = await ingest.client.post("/v1/events", json=after, headers=ingest.auth())
    assert response.status_code == 202

    async def stored() -> bool:
        got = await ingest.client.get(
            f"/v1/contacts/{after['contact_id']}", headers=ingest.auth(Role.MANAGER)
        )
        return got.status_code == 200

    await eventually(stored)
    letters = await dead_letters(settings, topic, {poison_key})
    assert "event_id" in (letters[poison_key]["reason"] or "")


def _environment(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "KAFKA_", "SAILO_"))}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        env[name.upper()] = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    env.update(extra)
    return env


async def _counts(database_url: str, event_ids: list[uuid.UUID]) -> tuple[int, int]:
    connection = await asyncpg.connect(plain_dsn(database_url))
    try:
        stored = await connection.fetchval(
            "SELECT count(*) FROM records.contact_events WHERE event_id = ANY($1::uuid[])", event_ids
        )
        applied = await connection.fetchval(
            "SELECT coalesce(sum(c.event_count), 0) FROM records.contacts c WHERE c.contact_ref IN "
            "(SELECT contact_ref FROM records.contact_events WHERE event_id = ANY($1::uuid[]))",
            event_ids,
        )
    finally:
        await connection.close()
    return int(stored), int(applied)


async def test_consumer_killed_mid_batch_stores_every_acknowledged_event_exactly_once(
    settings: Settings, token_for: Any
) -> None:
    # Own topics, so the in-process consumers of the other tests do not take these events.
    crash_settings = settings.model_copy(
        update={"kafka_topic_prefix": f"sailo-crash-{uuid.uuid4().hex[:8]}."}
    )
    app = create_app(crash_settings, run_consumers=False)
    event_ids: list[uuid.UUID] = []
    import httpx

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token_for(Role.PLATFORM)}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest.test") as client:
            for batch_number in range(8):
                contact_id = f"crash-{batch_number}-{new_id()}"
                batch = []
                for _ in range(250):
                    body = example_event("chat.message", event_id=new_id())
                    body["contact_id"] = contact_id
                    batch.append(body)
                    event_ids.append(uuid.UUID(body["event_id"]))
                response = await client.post("/v1/events/batch", json=batch, headers=headers)
                assert response.status_code == 202
    total = len(event_ids)

    def start(**extra: str) -> subprocess.Popen[bytes]:
        env = _environment(
            crash_settings,
            INGEST_MODE="consumers",
            INGEST_PORT=str(free_port()),
            LOG_LEVEL="WARNING",
            **extra,
        )
        return subprocess.Popen([sys.executable, "-m", "services.ingest"], env=env, stderr=subprocess.PIPE)

    # 1. A crash forced between the database commit and the offset commit of the third batch.
    worker = start(SAILO_FAULTS="ingest-record-store.after_db_commit:3")
    exit_code = await asyncio.to_thread(worker.wait, 120)
    assert exit_code == 137, (worker.stderr.read() if worker.stderr else b"")[-2000:]
    stored, applied = await _counts(crash_settings.database_url, event_ids)
    assert 0 < stored < total
    assert applied == stored

    # 2. A restart, killed with SIGKILL as soon as it has made some progress.
    worker = start()
    await eventually(
        lambda: _progress(crash_settings.database_url, event_ids, stored), attempts=1200, pause=0.01
    )
    worker.send_signal(signal.SIGKILL)
    await asyncio.to_thread(worker.wait, 30)

    # 3. A clean run finishes the work; every acknowledged event is stored once and applied once.
    worker = start()
    try:

        async def done() -> bool:
            return (await _counts(crash_settings.database_url, event_ids))[0] == total

        await eventually(done, attempts=1200, pause=0.1)
        await asyncio.sleep(1)  # let any redelivery land: it must change nothing
        assert await _counts(crash_settings.database_url, event_ids) == (total, total)
    finally:
        worker.terminate()
        await asyncio.to_thread(worker.wait, 30)


async def _progress(database_url: str, event_ids: list[uuid.UUID], before: int) -> bool:
    return (await _counts(database_url, event_ids))[0] > before

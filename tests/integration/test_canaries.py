"""Canary personal data never appears in plaintext: not in PostgreSQL's files, the blob store, Kafka or the logs."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from shared.contracts.events import example_event
from shared.security.auth import Role
from tests.conftest import Infrastructure, plain_dsn
from tests.integration.conftest import Ingest, eventually, new_id, wav_bytes

pytestmark = pytest.mark.integration


def _files_containing(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        try:
            content = path.read_bytes()
        except OSError:
            continue
        hits.extend(f"{path}: {needle!r}" for needle in needles if needle in content)
    return hits


async def test_canaries_appear_nowhere_in_plaintext(ingest: Ingest, infrastructure: Infrastructure) -> None:
    tag = secrets.token_hex(6).upper()
    text = f"Kanarialintu {tag} sanoo hei"
    digits = f"{secrets.randbelow(10**7):07d}"
    phone_e164, phone_national = f"+35840{digits}", f"040{digits}"
    audio_marker = f"AUDIOCANARY{tag}".encode()
    needles = [tag.encode(), phone_e164.encode(), phone_national.encode(), digits.encode(), audio_marker]

    contact_id = f"canary-{new_id()}"
    chat = example_event("chat.message", event_id=new_id())
    chat.update(contact_id=contact_id, data={"sender": "customer", "text": text})
    call = example_event("call.started", event_id=new_id())
    call.update(contact_id=contact_id, data={"direction": "inbound", "caller_number": phone_national})
    # A refused event carrying the canaries must not leak them through the error path either.
    refused = example_event("call.started", event_id=new_id())
    refused.update(data={"direction": "sideways", "caller_number": f"{phone_national}99999", "note": text})
    for body, status in ((chat, 202), (call, 202), (refused, 422)):
        response = await ingest.client.post("/v1/events", json=body, headers=ingest.auth())
        assert response.status_code == status, response.text
        assert not any(n.decode(errors="ignore") in response.text for n in needles)

    async def stored() -> bool:
        got = await ingest.client.get(
            f"/v1/contacts/{contact_id}",
            headers=ingest.auth(Role.MANAGER),
            params={"register": call["register"]},
        )
        return got.status_code == 200 and len(got.json()["events"]) == 2

    await eventually(stored)
    audio = wav_bytes(2.0, marker=audio_marker)
    put = await ingest.client.put(
        f"/v1/contacts/{contact_id}/recording",
        content=audio,
        headers={**ingest.auth(), "Content-Type": "audio/wav"},
        params={"register": call["register"]},
    )
    assert put.status_code == 201, put.text
    # The authorised reader does get the plaintext back: the canaries are really in the system.
    contact = (
        await ingest.client.get(
            f"/v1/contacts/{contact_id}",
            headers=ingest.auth(Role.MANAGER),
            params={"register": call["register"]},
        )
    ).json()
    assert {e["data"].get("text") for e in contact["events"]} >= {text}
    assert any(e["data"].get("caller_number") == phone_e164 for e in contact["events"])

    # PostgreSQL: flush everything to the data files, then read every file of the cluster.
    connection = await asyncpg.connect(plain_dsn(ingest.settings.database_url))
    try:
        await connection.execute("CHECKPOINT")
    except asyncpg.InsufficientPrivilegeError:
        pass  # WAL already holds every committed row
    finally:
        await connection.close()
    if infrastructure.postgres_data_dir is not None:
        assert _files_containing(infrastructure.postgres_data_dir, needles) == []

    # The blob store.
    blob_root = Path(ingest.settings.resolved_blob_store_url.removeprefix("file://"))
    assert any(blob_root.rglob("*.enc"))
    assert _files_containing(blob_root, needles) == []

    # Every topic of this test session, from the beginning: values, keys and headers.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=ingest.settings.kafka_bootstrap_servers,
        group_id=f"canary-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = 0
    leaks: list[str] = []
    try:
        topics = [t for t in await consumer.topics() if t.startswith(ingest.settings.kafka_topic_prefix)]
        assert topics
        consumer.subscribe(topics)
        idle = 0
        while idle < 10:
            batches = await consumer.getmany(timeout_ms=300)
            idle = 0 if batches else idle + 1
            for records in batches.values():
                for record in records:
                    seen += 1
                    blob = (
                        (record.value or b"")
                        + (record.key or b"")
                        + b"".join(v for _, v in record.headers or ())
                    )
                    leaks.extend(f"{record.topic}@{record.offset}" for n in needles if n in blob)
    finally:
        await consumer.stop()
    assert seen > 0
    assert leaks == []

    # Logs: the services' log and the servers' logs.
    log_files = [p for p in (ingest.log_file, *infrastructure.log_files) if p is not None and p.exists()]
    assert ingest.log_file is not None and ingest.log_file.stat().st_size > 0
    for path in log_files:
        content = path.read_bytes()
        assert [n for n in needles if n in content] == [], path

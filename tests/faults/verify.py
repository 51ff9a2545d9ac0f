"""What the database and the topics say after a run, held against the platform's ledger.

Lost: an event ingest acknowledged (202) that the record store never applied. Duplicated effects: an event
stored twice, an artifact certified deleted twice, a deletion announced under two event ids, a deletion whose
announcement never left the outbox. Redeliveries absorbed: copies that reached a consumer or ingest again and
were recognised by their event id, as at-least-once delivery intends.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import Counter
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.contracts.domain_events import RETENTION_EVENTS_TOPIC
from shared.platform.crypto import BlindIndex
from shared.platform.settings import Settings
from tests.faults.load import Ledger

RECORD_STORE_GROUP = "ingest-record-store"
SCHEDULER_GROUP = "retention-scheduler"
STILL_POLLS = 20
"""Polls in a row without a newly applied event after which the record store counts as caught up."""
REGISTER = "prh-customer-service"


@dataclass
class Verdict:
    acknowledged: int = 0
    stored: int = 0
    lost: list[str] = field(default_factory=list)
    live_rows_missing: int = 0
    """Acknowledged live events that the record store marked applied but whose row is not there."""
    expired_rows_left: int = 0
    expired_items_pending: int = 0
    duplicated: Counter[str] = field(default_factory=Counter)
    certificates: int = 0
    deletion_events: int = 0
    redeliveries: Counter[str] = field(default_factory=Counter)
    shredded_on_arrival: int = 0
    """Expired contacts' events that reached the record store after the contact was crypto-shredded."""
    dead_letters: Counter[str] = field(default_factory=Counter)
    """Messages the consumers set aside, by reason: every event of the stream is valid, so any is a fault."""

    @property
    def duplicated_effects(self) -> int:
        return sum(self.duplicated.values())


async def settled(dsn: str, ledger: Ledger, *, attempts: int = 360, pause: float = 0.5) -> str | None:
    """Waits until every acknowledged event is applied, or the record store has stopped applying any (the rest
    are then in the dead-letter topic, which verify() reads), every due item is done and the outbox is empty.
    None then, else what is still outstanding after `attempts` polls.

    (The broker's end offsets cannot tell when a consumer has caught up: the embedded broker reports the last
    batch's start, not the offset after it.)
    """
    ids = [UUID(i) for i in ledger.acknowledged]
    connection = await _connect(dsn)
    outstanding = "not polled"
    unchanged = 0
    last_applied = -1
    try:
        for _ in range(attempts):
            try:
                applied = await connection.fetchval(
                    "SELECT count(*) FROM messaging.processed_events WHERE consumer_group = $1 "
                    "AND event_id = ANY($2::uuid[])",
                    RECORD_STORE_GROUP,
                    ids,
                )
                # Retention's scheduler reads the same topic apart; until it has, due items are not even known.
                scheduled = await connection.fetchval(
                    "SELECT count(*) FROM messaging.processed_events WHERE consumer_group = $1 "
                    "AND event_id = ANY($2::uuid[])",
                    SCHEDULER_GROUP,
                    ids,
                )
                pending = await connection.fetchval(
                    "SELECT count(*) FROM retention.schedule WHERE state = 'scheduled' AND due_at <= now()"
                )
                outbox = await connection.fetchval("SELECT count(*) FROM outbox.events")
            except (OSError, asyncpg.PostgresError):
                await connection.close()
                await asyncio.sleep(pause)
                connection = await _connect(dsn)
                continue
            unchanged = unchanged + 1 if applied == last_applied else 0
            last_applied = applied
            outstanding = (
                f"{len(ids) - applied} events unapplied, {len(ids) - scheduled} unscheduled, {pending} due items, "
                f"{outbox} outbox rows"
            )
            caught_up = applied == len(ids) or unchanged >= STILL_POLLS
            if caught_up and scheduled == len(ids) and pending == 0 and outbox == 0:
                return None
            await asyncio.sleep(pause)
        return outstanding
    finally:
        await connection.close()


_NOTHING = hashlib.sha256(b"").hexdigest()
"""The digest a certificate carries when the key was destroyed before any row was stored under it."""


async def verify(dsn: str, bootstrap_servers: str, topic_prefix: str, ledger: Ledger) -> Verdict:
    verdict = Verdict(acknowledged=len(ledger.acknowledged))
    acknowledged = [UUID(i) for i in ledger.acknowledged]
    expired = [UUID(i) for i in ledger.expired & ledger.acknowledged]
    live = [UUID(i) for i in ledger.acknowledged - ledger.expired]
    index = BlindIndex(Settings().blind_index_key_bytes)
    expired_refs = [index.pseudonym("contact", REGISTER, contact) for contact in ledger.expired_contacts]
    connection = await _connect(dsn)
    try:
        applied = {
            str(row[0])
            for row in await connection.fetch(
                "SELECT event_id FROM messaging.processed_events WHERE consumer_group = $1 "
                "AND event_id = ANY($2::uuid[])",
                RECORD_STORE_GROUP,
                acknowledged,
            )
        }
        verdict.stored = len(applied)
        verdict.lost = sorted(ledger.acknowledged - applied)
        live_applied = [i for i in live if str(i) in applied]
        verdict.live_rows_missing = len(live_applied) - await connection.fetchval(
            "SELECT count(*) FROM records.contact_events WHERE event_id = ANY($1::uuid[])", live_applied
        )
        verdict.expired_rows_left = await connection.fetchval(
            "SELECT count(*) FROM records.contact_events WHERE event_id = ANY($1::uuid[])", expired
        )
        verdict.expired_items_pending = await connection.fetchval(
            "SELECT count(*) FROM retention.schedule WHERE contact_ref = ANY($1::uuid[]) AND state <> 'done'",
            expired_refs,
        )
        for name, query in {
            "event stored twice": "SELECT count(*) FROM (SELECT event_id FROM records.contact_events "
            "GROUP BY event_id HAVING count(*) > 1) twice",
            "message stored twice": "SELECT count(*) FROM (SELECT event_id FROM records.messages "
            "GROUP BY event_id HAVING count(*) > 1) twice",
            # The same ciphertext certified twice. A class certified again over other ciphertext is no double:
            # a resent copy came back under a new key after the first shredding, and was shredded in turn.
            "artifact certified deleted twice": "SELECT count(*) FROM (SELECT 1 FROM retention.certificates "
            f"WHERE ciphertext_sha256 <> '{_NOTHING}' "
            "GROUP BY contact_ref, artifact_class, item, ciphertext_sha256 HAVING count(*) > 1) twice",
        }.items():
            verdict.duplicated[name] = int(await connection.fetchval(query))
        verdict.redeliveries["shredded again after a resent copy came back"] = int(
            await connection.fetchval(
                "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM retention.certificates "
                "GROUP BY contact_ref, artifact_class, item HAVING count(*) > 1) again"
            )
        )
        certificates = {
            str(row[0]) for row in await connection.fetch("SELECT certificate_id FROM retention.certificates")
        }
    finally:
        await connection.close()
    verdict.certificates = len(certificates)

    # Every certificate is announced once: one event id per certificate, however many copies the relay sent.
    announced: dict[str, set[str]] = {}
    copies = Counter[str]()
    for value, _headers in await read_topic(bootstrap_servers, f"{topic_prefix}{RETENTION_EVENTS_TOPIC}"):
        event = orjson.loads(value)
        if event.get("type") != "retention.artifact_deleted":
            continue
        copies[event["id"]] += 1
        announced.setdefault(event["data"]["certificate_id"], set()).add(event["id"])
    verdict.deletion_events = len(copies)
    verdict.duplicated["deletion announced under two event ids"] = sum(
        1 for ids in announced.values() if len(ids) > 1
    )
    verdict.duplicated["deletion never announced"] = len(certificates - set(announced))
    verdict.redeliveries["deletion events published again (same id)"] = sum(n - 1 for n in copies.values())

    # Every event of the stream is valid. The one reason to set one aside is an expired contact's event that
    # reached the record store after retention had already shredded the contact (its key is gone): it was
    # due for deletion on arrival, and its certificate covers it. Anything else is a fault.
    shredded_on_arrival: set[str] = set()
    for name in ("contact-events.dlq", "contact-events.intake.dlq", f"{RETENTION_EVENTS_TOPIC}.dlq"):
        for value, headers in await read_topic(bootstrap_servers, f"{topic_prefix}{name}"):
            reason = headers.get("sailo-dlq-reason", b"?").decode(errors="replace")
            event_id = _event_id(value).decode()
            if name == "contact-events.dlq" and "KeyUnavailable" in reason and event_id in ledger.expired:
                shredded_on_arrival.add(event_id)
            else:
                verdict.dead_letters[f"{name}: {reason}"] += 1
    verdict.shredded_on_arrival = len(shredded_on_arrival & ledger.acknowledged)
    verdict.lost = sorted(set(verdict.lost) - shredded_on_arrival)

    contact_copies = Counter(
        _event_id(value) for value, _ in await read_topic(bootstrap_servers, f"{topic_prefix}contact-events")
    )
    verdict.redeliveries["contact events on the topic twice (same id)"] = sum(
        n - 1 for n in contact_copies.values()
    )
    return verdict


async def read_topic(bootstrap_servers: str, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
    """Every message of `topic` from its start until two polls in a row bring nothing: (value, headers)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=f"fault-harness-{uuid.uuid4()}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=5000,
    )
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return []
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        messages: list[tuple[bytes, dict[str, bytes]]] = []
        empty = 0
        while empty < 2:
            batches = await consumer.getmany(timeout_ms=1500)
            empty = 0 if any(batches.values()) else empty + 1
            for records in batches.values():
                messages.extend((record.value or b"", dict(record.headers)) for record in records)
        return messages
    finally:
        await consumer.stop()


def _event_id(value: bytes) -> bytes:
    marker = b'"event_id":"'
    start = value.find(marker) + len(marker)
    return value[start : value.find(b'"', start)]


async def _connect(dsn: str) -> asyncpg.Connection:
    for _ in range(120):
        try:
            return await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(0.5)
    return await asyncpg.connect(dsn)

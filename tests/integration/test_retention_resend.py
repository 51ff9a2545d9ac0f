"""An event that comes back after its contact was shredded, on real PostgreSQL and a real broker.

The case the fault harness found: ingest publishes an event and dies before it records it in its ledger, so the
platform resends it. Meanwhile retention's scheduler read the first copy and the sweeper shredded the contact
while the record store was still behind. The resent copy gets a new data key; the first copy, sealed under the
destroyed key, must be set aside as shredded (not as damaged), and the resent copy must not be kept for ever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from services.retention.models import Certificate
from shared.contracts.events import CONTACT_EVENTS_TOPIC
from shared.messaging.kafka import DLQ_SUFFIX, ConsumerLoop
from tests.integration.conftest import eventually, new_id, read_topic
from tests.integration.retention_env import (
    Env,
    contact_ref_of,
    make_event,
    module_env,
    post_events,
    wait_for_schedule,
)

pytestmark = pytest.mark.integration

CALL_AT = datetime(2026, 3, 2, 11, 15, tzinfo=ZoneInfo("Europe/Helsinki"))
REGISTER = "prh-customer-service"


env = module_env("retention-resend-data", CALL_AT)


async def test_an_event_resent_after_its_contact_was_shredded_is_shredded_again(env: Env) -> None:
    record_store: ConsumerLoop[Any] = next(
        loop for loop in env.ingest_app.state.consumer_loops if loop.group == "ingest-record-store"
    )
    await record_store.stop()  # the record store falls behind; the scheduler does not

    call_id = f"call-{new_id()}"
    body = make_event("call.started", call_id, CALL_AT, direction="inbound", caller_number="+358401234567")
    event_id = uuid.UUID(body["event_id"])
    ref = contact_ref_of(env, REGISTER, call_id)
    await post_events(env, body)
    await wait_for_schedule(env, ref, 1)

    env.clock.set(CALL_AT + timedelta(days=3 * 365))
    await env.sweeper.sweep()
    first = await _certificates(env, ref, "contact_history")
    assert len(first) == 1, "the contact's history was not shredded"

    # Ingest published the event but died before recording it, and came back with an empty key cache: the
    # platform had no answer, so it sends the event again.
    async with env.sessionmaker() as session, session.begin():
        await session.execute(
            text("DELETE FROM ingest.accepted_events WHERE event_id = :id"), {"id": event_id}
        )
    env.ingest_app.state.keystore.forget({(ref, "contact_history")})
    await post_events(env, body)

    catching_up = dataclasses.replace(record_store)
    await catching_up.start()
    task = asyncio.create_task(catching_up.run())
    try:
        # The record store catches up: the first copy's key is gone, the resent copy's is there.
        await eventually(lambda: _count(env, _STORED_BY_RECORD_STORE, event_id), attempts=600, pause=0.1)
    finally:
        await catching_up.stop()
        await task
    assert await _count(env, _ROWS_OF_EVENT, event_id) == 1
    # The scheduler saw the resent copy as a repeat, and re-armed the shredded class for it.
    await eventually(lambda: _count(env, _SCHEDULED_HISTORY, ref), attempts=300, pause=0.1)

    await env.sweeper.sweep()
    assert await _count(env, _ROWS_OF_EVENT, event_id) == 0, "the resent copy outlived its retention"
    assert len(await _certificates(env, ref, "contact_history")) == 2
    async with env.sessionmaker() as session:
        keys = await session.scalar(
            text("SELECT count(*) FROM keys.data_keys WHERE contact_ref = :ref"), {"ref": ref}
        )
    assert keys == 0, "the resent copy's data key outlived its retention"

    # The first copy reached the record store under the destroyed key: set aside as shredded, not as damaged.
    dead = [
        record
        for record in await read_topic(env.settings, _topic(env, CONTACT_EVENTS_TOPIC + DLQ_SUFFIX))
        if str(event_id).encode() in (record.value or b"")
    ]
    reasons = [dict(record.headers or ()).get("sailo-dlq-reason", b"").decode() for record in dead]
    assert reasons and all("KeyUnavailable" in reason for reason in reasons), reasons


_STORED_BY_RECORD_STORE = text(
    "SELECT count(*) FROM messaging.processed_events WHERE consumer_group = 'ingest-record-store' AND event_id = :id"
)
_ROWS_OF_EVENT = text("SELECT count(*) FROM records.contact_events WHERE event_id = :id")
_SCHEDULED_HISTORY = text(
    "SELECT count(*) FROM retention.schedule WHERE contact_ref = :id AND artifact_class = 'contact_history'"
    " AND state = 'scheduled'"
)


async def _count(env: Env, query: Any, id_: uuid.UUID) -> int:
    async with env.sessionmaker() as session:
        return int(await session.scalar(query, {"id": id_}) or 0)


async def _certificates(env: Env, ref: uuid.UUID, artifact_class: str) -> list[Certificate]:
    async with env.sessionmaker() as session:
        return list(
            (
                await session.scalars(
                    select(Certificate).where(
                        Certificate.contact_ref == ref, Certificate.artifact_class == artifact_class
                    )
                )
            ).all()
        )


def _topic(env: Env, name: str) -> str:
    return f"{env.settings.kafka_topic_prefix}{name}"

"""A retention test environment: ingest and retention in-process, with the sweeper's clock in the test's hand.

Each test module that uses it gets its own database and topics: the sweeper deletes whatever falls due, and the
clock in these modules jumps years ahead, so it must not see the rest of the session's contacts. Ingest keeps
the real clock (it refuses events from the future), so contacts are dated in the past and the frozen clock is
what the sweeper and the holds read.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select

from services.ingest.app import create_app as create_ingest
from services.retention.app import create_app as create_retention
from services.retention.models import ScheduleItem
from services.retention.sweeper import Sweeper
from shared.contracts.events import example_event
from shared.platform.clock import FrozenClock
from shared.platform.db import upgrade_async
from shared.platform.settings import Settings
from shared.security.auth import Role
from tests.conftest import Infrastructure, drop_database, plain_dsn
from tests.integration.conftest import eventually, new_id


@dataclass
class Env:
    settings: Settings
    ingest: httpx.AsyncClient
    ingest_app: Any
    retention_app: Any
    clock: FrozenClock
    headers: dict[Role, dict[str, str]]

    @property
    def sweeper(self) -> Sweeper:
        sweeper = self.retention_app.state.sweeper
        assert isinstance(sweeper, Sweeper)
        return sweeper

    @property
    def sessionmaker(self) -> Any:
        return self.retention_app.state.runtime.sessionmaker


def module_env(data_name: str, clock_at: datetime) -> Any:
    """A module-scoped `env` fixture: `env = module_env("retention-data", CALL_AT)` in a test module gives its
    tests one retention_env, its data under a temporary directory named `data_name`."""

    @pytest.fixture(scope="module")
    async def env(
        infrastructure: Infrastructure,
        settings: Settings,
        token_for: Any,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> AsyncIterator[Env]:
        data_dir = tmp_path_factory.mktemp(data_name)
        async with retention_env(
            infrastructure, settings, token_for, data_dir, clock_at=clock_at
        ) as environment:
            yield environment

    return env


@asynccontextmanager
async def retention_env(
    infrastructure: Infrastructure,
    settings: Settings,
    token_for: Any,
    data_dir: Path,
    *,
    clock_at: datetime,
) -> AsyncIterator[Env]:
    """A fresh database and topic prefix, ingest, and retention with a FrozenClock at `clock_at` and no sweeper
    loop (tests call `env.sweeper.sweep()`); the database is dropped afterwards."""
    name = f"sailo_retention_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(plain_dsn(infrastructure.database_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base, _, _ = infrastructure.database_url.rpartition("/")
    env_settings = settings.model_copy(
        update={
            "database_url": f"{base}/{name}",
            "kafka_topic_prefix": f"sailo-retention-{uuid.uuid4().hex[:8]}.",
            "blob_store_url": f"file://{data_dir / 'blobs'}",
            "audit_relay_interval_seconds": 0.05,
        }
    )
    await upgrade_async(env_settings)
    clock = FrozenClock(clock_at)
    ingest_app = create_ingest(env_settings)
    retention_app = create_retention(env_settings, clock=clock, run_sweeper=False)
    try:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(ingest_app.router.lifespan_context(ingest_app))
            await stack.enter_async_context(retention_app.router.lifespan_context(retention_app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=ingest_app), base_url="http://ingest.test"
                )
            )
            headers = {
                role: {"Authorization": f"Bearer {token_for(role)}"} for role in (Role.PLATFORM, Role.MANAGER)
            }
            yield Env(env_settings, client, ingest_app, retention_app, clock, headers)
    finally:
        await drop_database(infrastructure.database_url, name)


def make_event(event_type: str, contact_id: str, at: datetime, **data: Any) -> dict[str, Any]:
    """A valid event of `event_type` (the contract's example, in its example register) for `contact_id` at
    `at`; keyword arguments replace the example's data."""
    body = example_event(event_type, event_id=new_id())
    body.update(contact_id=contact_id, occurred_at=at.isoformat())
    if data:
        body["data"] = data
    return body


async def post_events(env: Env, *bodies: dict[str, Any]) -> list[httpx.Response]:
    """POST each event to ingest in turn; each must be accepted (202)."""
    responses = []
    for body in bodies:
        response = await env.ingest.post("/v1/events", json=body, headers=env.headers[Role.PLATFORM])
        assert response.status_code == 202, response.text
        responses.append(response)
    return responses


async def wait_for_schedule(
    env: Env, contact_ref: uuid.UUID, count: int
) -> dict[tuple[str, str], ScheduleItem]:
    """The contact's schedule rows by (class, item), once the scheduler has written at least `count`."""

    async def check() -> dict[tuple[str, str], ScheduleItem] | None:
        async with env.sessionmaker() as session:
            rows = (
                await session.scalars(select(ScheduleItem).where(ScheduleItem.contact_ref == contact_ref))
            ).all()
        return {(r.artifact_class, r.item): r for r in rows} if len(rows) >= count else None

    result: dict[tuple[str, str], ScheduleItem] = await eventually(check, attempts=400)
    return result


def contact_ref_of(env: Env, register: str, contact_id: str) -> uuid.UUID:
    blind_index = env.ingest_app.state.blind_index
    ref: uuid.UUID = blind_index.pseudonym("contact", register, contact_id)
    return ref


async def read_contact(env: Env, contact_id: str, suffix: str = "") -> httpx.Response:
    """GET the contact (or `suffix`, e.g. "/recording") from ingest as a manager."""
    return await env.ingest.get(f"/v1/contacts/{contact_id}{suffix}", headers=env.headers[Role.MANAGER])


async def wait_until_stored(env: Env, contact_id: str, events: int = 1) -> dict[str, Any]:
    """The contact as ingest shows it, once the record store (a consumer of its own, apart from the
    scheduler) has stored at least `events` of its events."""

    async def check() -> dict[str, Any] | None:
        response = await read_contact(env, contact_id)
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body if len(body["events"]) >= events else None

    result: dict[str, Any] = await eventually(check, attempts=400)
    return result

"""Platforms' API keys on the in-process ingest service, real PostgreSQL and broker: what a platform and an operator
see. Keys are made the way `sailo apikey create` makes them (and once through the CLI itself)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from deploy.cli.main import main as sailo
from services.ingest.apikeys import (
    ApiKey,
    ApiKeyStore,
    CreatedApiKey,
    create_api_key,
    parse_api_key,
    revoke_api_key,
)
from shared.contracts.events import example_event
from shared.platform.db import NAMING_CONVENTION, transaction
from shared.security.auth import Role
from tests.integration.conftest import Ingest, eventually, new_id, wav_bytes

pytestmark = pytest.mark.integration


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sessionmaker(ingest: Ingest) -> async_sessionmaker[AsyncSession]:
    sm: async_sessionmaker[AsyncSession] = ingest.app.state.runtime.sessionmaker
    return sm


async def new_key(
    ingest: Ingest, platform: str, *, rate: float | None = None, burst: int | None = None
) -> str:
    async with transaction(sessionmaker(ingest)) as session:
        created: CreatedApiKey = await create_api_key(
            session,
            platform=platform,
            created_by="test",
            now=datetime.now(UTC),
            rate_per_second=rate,
            burst=burst,
        )
    return created.key


async def revoke(ingest: Ingest, key: str) -> None:
    parsed = parse_api_key(key)
    assert parsed is not None
    async with transaction(sessionmaker(ingest)) as session:
        assert await revoke_api_key(session, parsed[0], now=datetime.now(UTC)) is not None


def platform_name() -> str:
    return f"test-{new_id()[:8]}"


def event(**overrides: Any) -> dict[str, Any]:
    body = example_event("call.started", event_id=new_id())
    body["contact_id"] = f"key-{new_id()}"
    body.update(overrides)
    return body


def with_key(key: str, **headers: str) -> dict[str, str]:
    return {"X-API-Key": key, **headers}


@contextmanager
def key_store(ingest: Ingest, store: ApiKeyStore) -> Iterator[None]:
    """Ingest with another key store for a while. (Not monkeypatch: it restores attributes from the instance
    __dict__, and Starlette's State keeps them elsewhere, so its undo would delete app.state.api_keys.)"""
    original = ingest.app.state.api_keys
    ingest.app.state.api_keys = store
    try:
        yield
    finally:
        ingest.app.state.api_keys = original


@pytest.fixture
def uncached(ingest: Ingest) -> Iterator[None]:
    """Ingest with API_KEY_CACHE_SECONDS=0, so a revocation shows on the next request."""
    settings = ingest.settings.model_copy(update={"api_key_cache_seconds": 0})
    with key_store(ingest, ApiKeyStore.from_settings(settings, sessionmaker(ingest))):
        yield


async def test_a_created_key_can_use_every_platform_route(ingest: Ingest) -> None:
    key = await new_key(ingest, platform_name())
    started = event()
    response = await ingest.client.post("/v1/events", json=started, headers=with_key(key))
    assert response.status_code == 202, response.text
    ended = example_event("call.ended", event_id=new_id())
    ended["contact_id"] = started["contact_id"]
    batch = await ingest.client.post("/v1/events/batch", json=[ended], headers=with_key(key))
    assert batch.status_code == 202, batch.text

    async def stored() -> bool:
        got = await ingest.client.get(
            f"/v1/contacts/{started['contact_id']}",
            headers=ingest.auth(Role.MANAGER),
            params={"register": started["register"]},
        )
        return got.status_code == 200 and len(got.json()["events"]) == 2

    await eventually(stored)
    put = await ingest.client.put(
        f"/v1/contacts/{started['contact_id']}/recording",
        content=wav_bytes(0.5),
        headers=with_key(key, **{"Content-Type": "audio/wav"}),
        params={"register": started["register"]},
    )
    assert put.status_code == 201, put.text


async def test_an_api_key_does_not_read_contacts(ingest: Ingest) -> None:
    key = await new_key(ingest, platform_name())
    response = await ingest.client.get(f"/v1/contacts/c-{new_id()}", headers=with_key(key))
    assert response.status_code == 403


@pytest.mark.usefixtures("uncached")
async def test_a_revoked_key_is_refused(ingest: Ingest) -> None:
    key = await new_key(ingest, platform_name())
    assert (await ingest.client.post("/v1/events", json=event(), headers=with_key(key))).status_code == 202
    await revoke(ingest, key)
    refused = await ingest.client.post("/v1/events", json=event(), headers=with_key(key))
    assert refused.status_code == 401
    assert refused.json()["title"] == "invalid API key"
    assert refused.headers["WWW-Authenticate"]


async def test_a_revoked_key_works_until_the_cache_time_has_passed(ingest: Ingest) -> None:
    clock = FakeMonotonic()
    key = await new_key(ingest, platform_name())
    with key_store(ingest, ApiKeyStore(sessionmaker(ingest), cache_seconds=10, monotonic=clock)):
        assert (
            await ingest.client.post("/v1/events", json=event(), headers=with_key(key))
        ).status_code == 202
        await revoke(ingest, key)
        clock.now = 9.9  # the documented window: this process looked the key up less than 10 s ago
        assert (
            await ingest.client.post("/v1/events", json=event(), headers=with_key(key))
        ).status_code == 202
        clock.now = 10.0
        assert (
            await ingest.client.post("/v1/events", json=event(), headers=with_key(key))
        ).status_code == 401


async def test_bad_keys_are_refused_without_echoing_them(ingest: Ingest) -> None:
    real = await new_key(ingest, platform_name())
    parsed = parse_api_key(real)
    assert parsed is not None
    key_id, secret = parsed
    wrong_secret = f"sailo_{key_id}_{secret[::-1]}"
    unknown = f"sailo_{'e' * 16}_{secret}"
    malformed = f"{real}x"
    for key, reason in (
        (wrong_secret, "invalid API key"),
        (unknown, "invalid API key"),
        (malformed, "malformed API key"),
        (secret, "malformed API key"),
    ):
        response = await ingest.client.post("/v1/events", json=event(), headers=with_key(key))
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["title"] == reason
        assert response.headers["WWW-Authenticate"]
        assert secret not in response.text and secret[::-1] not in response.text


async def test_a_platform_over_its_limit_gets_429_while_another_platform_is_unaffected(
    ingest: Ingest,
) -> None:
    # One token per 100 s after a burst of 3: the test cannot outlast it.
    tiny = await new_key(ingest, platform_name(), rate=0.01, burst=3)
    other = await new_key(ingest, platform_name())
    for _ in range(3):
        response = await ingest.client.post("/v1/events", json=event(), headers=with_key(tiny))
        assert response.status_code == 202, response.text
    refused = await ingest.client.post("/v1/events", json=event(), headers=with_key(tiny))
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["title"] == "Too many requests"
    assert re.fullmatch(r"[1-9][0-9]*", refused.headers["Retry-After"])
    assert 1 <= int(refused.headers["Retry-After"]) <= 100
    assert tiny not in refused.text
    # Another platform's key, and bearer tokens, have buckets of their own.
    assert (await ingest.client.post("/v1/events", json=event(), headers=with_key(other))).status_code == 202
    assert (await ingest.client.post("/v1/events", json=event(), headers=ingest.auth())).status_code == 202


async def test_a_batch_counts_each_of_its_events_against_the_limit(ingest: Ingest) -> None:
    key = await new_key(ingest, platform_name(), rate=0.01, burst=5)
    first = await ingest.client.post(
        "/v1/events/batch", json=[event(), event(), event()], headers=with_key(key)
    )
    assert first.status_code == 202, first.text
    second = await ingest.client.post(
        "/v1/events/batch", json=[event(), event(), event()], headers=with_key(key)
    )
    assert second.status_code == 429, second.text  # 2 of 5 left
    assert (await ingest.client.post("/v1/events", json=event(), headers=with_key(key))).status_code == 202


@pytest.mark.usefixtures("uncached")
async def test_api_keys_never_reach_the_logs(ingest: Ingest) -> None:
    key = await new_key(ingest, platform_name())
    parsed = parse_api_key(key)
    assert parsed is not None
    secret = parsed[1]
    assert (await ingest.client.post("/v1/events", json=event(), headers=with_key(key))).status_code == 202
    await ingest.client.post("/v1/events", json=event(), headers=with_key(key[:-4] + "0000"))
    await ingest.client.post("/v1/events", json=event(), headers=with_key(key + "-tail"))
    await revoke(ingest, key)
    assert (await ingest.client.post("/v1/events", json=event(), headers=with_key(key))).status_code == 401
    assert ingest.log_file is not None
    content = ingest.log_file.read_text(encoding="utf-8")
    assert content  # the log is there to be searched
    assert secret not in content
    assert secret[:32] not in content and secret[32:] not in content


async def test_ingest_openapi_offers_a_bearer_token_or_an_api_key(ingest: Ingest) -> None:
    document = (await ingest.client.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKey"]["type"] == "apiKey"
    assert (schemes["ApiKey"]["in"], schemes["ApiKey"]["name"]) == ("header", "X-API-Key")
    for path, method in (
        ("/v1/events", "post"),
        ("/v1/events/batch", "post"),
        ("/v1/contacts/{contact_id}/recording", "put"),
    ):
        assert document["paths"][path][method]["security"] == [{"HTTPBearer": []}, {"ApiKey": []}]


async def test_the_cli_creates_lists_and_revokes_keys(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], uncached: None
) -> None:
    monkeypatch.setenv("DATABASE_URL", ingest.settings.database_url)
    platform = platform_name()
    # The CLI runs its own event loop: in a thread, beside this test's.
    code = await asyncio.to_thread(
        sailo, ["apikey", "create", "--platform", platform, "--rate", "50", "--burst", "100"]
    )
    created = capsys.readouterr()
    assert code == 0, created.err
    key = created.out.strip()
    parsed = parse_api_key(key)
    assert parsed is not None, "stdout is the key alone"
    key_id, secret = parsed
    assert key_id in created.err and "only time" in created.err
    assert (await ingest.client.post("/v1/events", json=event(), headers=with_key(key))).status_code == 202

    assert await asyncio.to_thread(sailo, ["apikey", "list", "--platform", platform]) == 0
    listed = capsys.readouterr().out
    assert key_id in listed and platform in listed and "50/s, burst 100" in listed
    assert secret not in listed

    assert await asyncio.to_thread(sailo, ["apikey", "revoke", key_id]) == 0
    assert "revoked" in capsys.readouterr().out
    assert (await ingest.client.post("/v1/events", json=event(), headers=with_key(key))).status_code == 401
    assert await asyncio.to_thread(sailo, ["apikey", "revoke", key_id]) == 0
    assert "already revoked" in capsys.readouterr().out
    assert await asyncio.to_thread(sailo, ["apikey", "revoke", "f" * 16]) == 1
    assert await asyncio.to_thread(sailo, ["apikey", "revoke", key]) == 2  # a key, not a key id
    refused = capsys.readouterr()
    assert secret not in refused.out + refused.err
    assert await asyncio.to_thread(sailo, ["apikey", "create", "--platform", "Not A Code"]) == 2


async def test_the_migration_creates_the_table_the_model_describes(ingest: Ingest) -> None:
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    table = ApiKey.__table__
    table.to_metadata(metadata)  # type: ignore[attr-defined]

    def compare(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": lambda name, kind, _parent: kind != "schema" or name == "access",
            },
        )
        return list(compare_metadata(context, metadata))

    async with ingest.app.state.runtime.engine.connect() as connection:
        assert await connection.run_sync(compare) == []

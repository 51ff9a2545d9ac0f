"""The ingest service in-process on the session's real PostgreSQL and broker, with an HTTP client."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from fastapi import FastAPI

from services.ingest.app import create_app
from shared.platform.logging import configure_logging
from shared.platform.settings import Settings
from shared.security.auth import Role


@dataclass
class Ingest:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    headers: dict[Role, dict[str, str]] = field(default_factory=dict)
    log_file: Path | None = None

    def auth(self, role: Role = Role.PLATFORM) -> dict[str, str]:
        return self.headers[role]


@pytest.fixture(scope="session")
def log_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs") / "sailo.log"


@pytest.fixture(scope="session")
async def ingest(settings: Settings, token_for: Any, log_file: Path) -> AsyncIterator[Ingest]:
    stream = log_file.open("a", encoding="utf-8")
    configure_logging(service="ingest", level="DEBUG", json=True, stream=stream)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://ingest.test", timeout=30
        ) as client:
            headers = {
                role: {"Authorization": f"Bearer {token_for(role)}"}
                for role in (Role.PLATFORM, Role.MANAGER, Role.ADMIN, Role.CASEWORKER)
            }
            yield Ingest(app, client, settings, headers, log_file)
    configure_logging(service="tests", level="INFO", json=True)
    stream.close()


def new_id() -> str:
    return str(uuid.uuid4())


async def eventually(check: Callable[[], Awaitable[Any]], *, attempts: int = 200, pause: float = 0.05) -> Any:
    """Poll until `check` returns a truthy value (the record store is asynchronous); bounded by count."""
    last: Any = None
    for _ in range(attempts):
        last = await check()
        if last:
            return last
        await asyncio.sleep(pause)
    raise AssertionError(f"condition not met after {attempts} attempts; last value: {last!r}")


async def read_topic(settings: Settings, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message of `topic` from its beginning, as a fresh consumer group sees it; stops after ~3 s idle."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"test-reader-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        idle = 0
        while idle < 10:
            batches = await consumer.getmany(timeout_ms=300)
            idle = 0 if batches else idle + 1
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


def wav_bytes(seconds: float = 1.0, *, rate: int = 8000, marker: bytes = b"") -> bytes:
    """A real mono 16-bit PCM WAV file; `marker` is embedded in the samples (canary tests)."""
    import wave

    frames = int(seconds * rate)
    samples = (
        bytearray((marker * (frames * 2 // max(len(marker), 1) + 1))[: frames * 2])
        if marker
        else bytearray((i * 37) % 256 for i in range(frames * 2))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(samples))
    return buffer.getvalue()

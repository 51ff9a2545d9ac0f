"""What every service process owns: settings, the database engine, a Kafka producer; and how it is served.

`Runtime` is created in a service's lifespan and stored on `app.state.runtime`; readiness checks read it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.auth import TokenVerifier
from shared.clock import Clock, SystemClock
from shared.db import create_engine, create_sessionmaker, upgrade_async
from shared.kafka import create_producer
from shared.logging import configure_logging, get_logger
from shared.settings import Settings

log = get_logger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    clock: Clock

    @classmethod
    async def start(cls, settings: Settings, *, clock: Clock | None = None, migrate: bool = True) -> Runtime:
        if migrate:
            await upgrade_async(settings)
        engine = create_engine(settings)
        producer = create_producer(settings, client_id=settings.service_name)
        await producer.start()
        return cls(settings, engine, create_sessionmaker(engine), producer, clock or SystemClock())

    async def stop(self) -> None:
        await self.producer.stop()
        await self.engine.dispose()


def runtime(request: Request) -> Runtime:
    value = request.app.state.runtime
    assert isinstance(value, Runtime)
    return value


async def check_database(request: Request) -> None:
    async with runtime(request).engine.connect() as connection:
        await asyncio.wait_for(connection.execute(text("SELECT 1")), timeout=2)


check_database.dependency = "database"  # type: ignore[attr-defined]


async def check_broker(request: Request) -> None:
    client = runtime(request).producer.client
    await asyncio.wait_for(client.fetch_all_metadata(), timeout=2)


check_broker.dependency = "broker"  # type: ignore[attr-defined]


def install_auth(app: FastAPI, settings: Settings) -> None:
    app.state.token_verifier = TokenVerifier.from_settings(settings)


def serve(app: FastAPI, settings: Settings, *, port: int) -> None:
    """Run one service under uvicorn with Sailo's logging (uvicorn's own log config is switched off)."""
    configure_logging(
        service=settings.service_name, level=settings.log_level, json=settings.log_format.value == "json"
    )
    log.info("service.starting", port=port)
    uvicorn.run(
        app,
        host="0.0.0.0",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # On SIGTERM: stop accepting, give open requests this long, then close (consumers stop in the lifespan).
        timeout_graceful_shutdown=10,
    )

"""One outbox relay round in a process of its own: `python -m tests.integration.relay_once`.

The crash test arms SAILO_FAULTS for this process, so it dies (like kill -9) between publishing and deleting.
"""

from __future__ import annotations

import asyncio

from shared.messaging.kafka import create_producer
from shared.messaging.outbox import OutboxRelay
from shared.platform.db import create_engine, create_sessionmaker
from shared.platform.settings import Settings


async def main() -> None:
    settings = Settings()
    engine = create_engine(settings)
    producer = create_producer(settings, client_id="relay-once")
    await producer.start()
    try:
        await OutboxRelay(
            settings=settings, sessionmaker=create_sessionmaker(engine), producer=producer
        ).tick()
    finally:
        await producer.stop()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())

"""One sweep in a process of its own, as of the time given: `python -m tests.integration.sweep_once ISO`.

The crash tests arm SAILO_FAULTS for this process, so it dies (like kill -9) at a chosen point of the sweep.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

from services.retention.sweeper import Sweeper
from shared.platform.clock import FrozenClock
from shared.platform.db import create_engine, create_sessionmaker
from shared.platform.settings import Settings
from shared.policy.loader import load_policies
from shared.recordstore.keystore import KeyStore
from shared.storage.blobstore import create_blob_store


async def main(now: datetime) -> None:
    settings = Settings()
    engine = create_engine(settings)
    blobs = create_blob_store(settings.resolved_blob_store_url)
    sweeper = Sweeper(
        sessionmaker=create_sessionmaker(engine),
        keystore=KeyStore.from_settings(settings),
        blobs=blobs,
        clock=FrozenClock(now),
        policies=load_policies(settings.policy_dir),
    )
    try:
        await sweeper.sweep()
    finally:
        await blobs.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(datetime.fromisoformat(sys.argv[1])))

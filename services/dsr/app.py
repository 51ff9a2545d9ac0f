"""The dsr service.

Data-subject requests: access, rectification, restriction, erasure and objection, decided by each register's
legal basis, on time by the calendar.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.dsr.api import router
from services.dsr.watch import DeadlineWatch
from shared.blobstore import create_blob_store
from shared.clock import Clock
from shared.crypto import BlindIndex
from shared.keystore import KeyStore
from shared.logging import get_logger
from shared.runtime import Runtime, create_service_app
from shared.settings import Settings

log = get_logger(__name__)


def create_app(settings: Settings, *, clock: Clock | None = None, run_watch: bool = True) -> FastAPI:
    """The DSR app: the routes and (unless `run_watch` is false) the deadline watch."""

    @asynccontextmanager
    async def background(app: FastAPI, rt: Runtime) -> AsyncIterator[None]:
        blobs = create_blob_store(
            settings.resolved_blob_store_url, s3_endpoint_url=settings.blob_s3_endpoint_url
        )
        app.state.blobs = blobs
        watch = DeadlineWatch(
            sessionmaker=rt.sessionmaker,
            blobs=blobs,
            clock=rt.clock,
            reminder_working_days=settings.dsr_reminder_working_days,
        )
        app.state.watch = watch
        tasks = []
        if run_watch:
            tasks.append(
                asyncio.create_task(watch.run(settings.dsr_watch_interval_seconds), name="dsr-deadline-watch")
            )
        try:
            yield
        finally:
            watch.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await blobs.close()

    app = create_service_app(
        name="dsr", description=__doc__ or "", settings=settings, clock=clock, background=background
    )
    app.state.blind_index = BlindIndex(settings.blind_index_key_bytes)
    app.state.keystore = KeyStore(kek=settings.kek_bytes, kek_id=settings.key_encryption_key_id)
    app.include_router(router)
    return app

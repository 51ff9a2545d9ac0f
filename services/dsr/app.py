"""The dsr service.

Data-subject requests: access, rectification, restriction, erasure and objection, decided by each register's
legal basis, on time by the calendar.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.dsr.api import routers
from services.dsr.handlers import GROUP, DisclosureHandler
from services.dsr.watch import DeadlineWatch
from shared.app import Runtime, create_service_app
from shared.contracts.domain_events import EXPORT_EVENTS_TOPIC
from shared.platform.clock import Clock
from shared.platform.logging import get_logger
from shared.platform.runtime import BackgroundWork, in_background
from shared.platform.settings import Settings
from shared.recordstore.keystore import KeyStore
from shared.storage.blobstore import blob_store_from_settings

log = get_logger(__name__)


def create_app(settings: Settings, *, clock: Clock | None = None, run_watch: bool = True) -> FastAPI:
    """The DSR app: the routes and (unless `run_watch` is false) the deadline watch."""

    @asynccontextmanager
    async def background(app: FastAPI, rt: Runtime) -> AsyncIterator[None]:
        blobs = blob_store_from_settings(settings)
        app.state.blobs = blobs
        watch = DeadlineWatch(
            sessionmaker=rt.sessionmaker,
            blobs=blobs,
            clock=rt.clock,
            reminder_working_days=settings.dsr_reminder_working_days,
            interval_seconds=settings.dsr_watch_interval_seconds,
        )
        app.state.watch = watch
        # The export service's loan events: which loans included whose contacts (recipients in access replies).
        disclosures = await rt.consumer(EXPORT_EVENTS_TOPIC, group=GROUP, handler=DisclosureHandler(rt.clock))
        work: list[BackgroundWork] = [disclosures]
        if run_watch:
            work.append(watch)
        try:
            async with in_background(*work):
                yield
        finally:
            await blobs.close()

    app = create_service_app(
        name="dsr", description=__doc__ or "", settings=settings, clock=clock, background=background
    )
    app.state.keystore = KeyStore.from_settings(settings)
    for router in routers:
        app.include_router(router)
    return app

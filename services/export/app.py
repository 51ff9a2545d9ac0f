"""The export service.

Time-limited loans of recordings to research institutes, with return-or-destroy tracking; statistics for
service development, small cells suppressed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.export.api import disclosures, loans, notices, packages, statistics
from services.export.handlers import DSR_GROUP, RETENTION_GROUP, NoticeHandler
from services.export.watch import LoanWatch
from shared.app import Runtime, create_service_app
from shared.contracts.domain_events import DSR_EVENTS_TOPIC, RETENTION_EVENTS_TOPIC
from shared.platform.clock import Clock
from shared.platform.runtime import BackgroundWork, in_background
from shared.platform.settings import Settings
from shared.recordstore.keystore import KeyStore
from shared.storage.blobstore import blob_store_from_settings


def create_app(settings: Settings, *, clock: Clock | None = None, run_watch: bool = True) -> FastAPI:
    """The export app: the routes and, in the background, the consumers of retention and DSR decisions (notices
    to institutes) and (unless `run_watch` is false) the watch over due days and unacknowledged notices."""

    @asynccontextmanager
    async def background(app: FastAPI, rt: Runtime) -> AsyncIterator[None]:
        blobs = blob_store_from_settings(settings)
        app.state.blobs = blobs
        watch = LoanWatch(
            sessionmaker=rt.sessionmaker,
            clock=rt.clock,
            reminder_days=settings.export_reminder_days,
            escalation_days=settings.export_notice_escalation_days,
            interval_seconds=settings.export_watch_interval_seconds,
        )
        app.state.watch = watch
        # Retention's deletions and the DSR service's decisions: notices to the institutes holding the items
        # (GDPR Art. 19), withdrawals of items not yet delivered, and the flags selection leaves contacts out by.
        consumers = [
            await rt.consumer(topic, group=group, handler=NoticeHandler(rt.clock))
            for topic, group in ((RETENTION_EVENTS_TOPIC, RETENTION_GROUP), (DSR_EVENTS_TOPIC, DSR_GROUP))
        ]
        work: list[BackgroundWork] = [*consumers]
        if run_watch:
            work.append(watch)
        try:
            async with in_background(*work):
                yield
        finally:
            await blobs.close()

    app = create_service_app(
        name="export", description=__doc__ or "", settings=settings, clock=clock, background=background
    )
    app.state.keystore = KeyStore.from_settings(settings)
    for api in (loans, packages, notices, statistics, disclosures):
        app.include_router(api.router)
    return app

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
from shared.messaging.kafka import DLQ_SUFFIX, ConsumerLoop, ensure_topics
from shared.platform.clock import Clock
from shared.platform.crypto import BlindIndex
from shared.platform.logging import get_logger
from shared.platform.runtime import BackgroundWork, in_background
from shared.platform.settings import Settings
from shared.recordstore.keystore import KeyStore
from shared.storage.blobstore import create_blob_store

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
            interval_seconds=settings.dsr_watch_interval_seconds,
        )
        app.state.watch = watch
        # The export service's loan events: which loans included whose contacts (recipients in access replies).
        loans_topic = settings.topic(EXPORT_EVENTS_TOPIC)
        await ensure_topics(settings, [loans_topic, loans_topic + DLQ_SUFFIX])
        disclosures = ConsumerLoop(
            settings=settings,
            sessionmaker=rt.sessionmaker,
            producer=rt.producer,
            topics=[loans_topic],
            group=GROUP,
            handler=DisclosureHandler(rt.clock),
        )
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
    app.state.blind_index = BlindIndex(settings.blind_index_key_bytes)
    app.state.keystore = KeyStore(kek=settings.kek_bytes, kek_id=settings.key_encryption_key_id)
    for router in routers:
        app.include_router(router)
    return app

"""The retention service.

Deletes or redacts every artifact when its register's policy says, honours legal holds,
and certifies each deletion.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.retention.api import router
from services.retention.handlers import RequestHandler, ScheduleHandler
from services.retention.sweeper import Sweeper
from shared.app import Runtime, create_service_app
from shared.contracts.domain_events import DSR_EVENTS_TOPIC
from shared.contracts.events import CONTACT_EVENTS_TOPIC
from shared.platform.clock import Clock
from shared.platform.crypto import BlindIndex
from shared.platform.logging import get_logger
from shared.platform.runtime import BackgroundWork, in_background
from shared.platform.settings import Settings
from shared.policy.registry import PolicyRegistry
from shared.recordstore.keystore import KeyStore
from shared.storage.blobstore import blob_store_from_settings

log = get_logger(__name__)

SCHEDULER_GROUP = "retention-scheduler"
REQUESTS_GROUP = "retention-requests"


def create_app(settings: Settings, *, clock: Clock | None = None, run_sweeper: bool = True) -> FastAPI:
    """The retention app: the scheduler consumer and (unless `run_sweeper` is false) the sweeper loop."""

    @asynccontextmanager
    async def background(app: FastAPI, rt: Runtime) -> AsyncIterator[None]:
        policies: PolicyRegistry = app.state.policies
        blobs = blob_store_from_settings(settings)
        keystore = KeyStore.from_settings(settings)
        blind_index: BlindIndex = app.state.blind_index
        scheduler = await rt.consumer(
            CONTACT_EVENTS_TOPIC, group=SCHEDULER_GROUP, handler=ScheduleHandler(policies, blind_index)
        )
        sweeper = Sweeper(
            sessionmaker=rt.sessionmaker,
            keystore=keystore,
            blobs=blobs,
            clock=rt.clock,
            policies=policies,
            batch_size=settings.retention_sweep_batch,
            interval_seconds=settings.retention_sweep_interval_seconds,
        )
        app.state.sweeper = sweeper
        # The DSR service's decisions: holds for restrictions on grounds (c) and (d), and erasures.
        requests = await rt.consumer(DSR_EVENTS_TOPIC, group=REQUESTS_GROUP, handler=RequestHandler(rt.clock))
        work: list[BackgroundWork] = [scheduler, requests]
        if run_sweeper:
            work.append(sweeper)
        log.info("retention.started", sweeper=run_sweeper)
        try:
            async with in_background(*work):
                yield
        finally:
            await blobs.close()

    app = create_service_app(
        name="retention", description=__doc__ or "", settings=settings, clock=clock, background=background
    )
    app.include_router(router)
    return app

"""The ingest service: HTTP and Kafka intake of contact events and audio, and the record store consumer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from services.ingest.api import router
from services.ingest.apikeys import ApiKeyStore
from services.ingest.handlers import IntakeHandler, RecordStoreHandler
from services.ingest.intake import IntakeService
from services.ingest.ratelimit import RateLimiter
from services.ingest.recordings import RecordingService
from shared.app import Runtime, check_broker, check_database
from shared.contracts.events import CONTACT_EVENT_ADAPTER, CONTACT_EVENTS_TOPIC
from shared.messaging.kafka import DLQ_SUFFIX, ConsumerLoop, ensure_topics
from shared.platform.clock import Clock
from shared.platform.crypto import BlindIndex
from shared.platform.http import install_common
from shared.platform.logging import get_logger
from shared.platform.settings import Settings
from shared.policy.history import record_applied_policies
from shared.policy.loader import load_policies
from shared.recordstore.keystore import KeyStore
from shared.recordstore.store import RecordStore
from shared.security.auth import install_auth
from shared.storage.blobstore import create_blob_store

log = get_logger(__name__)

CONTACT_EVENTS = CONTACT_EVENTS_TOPIC
INTAKE = "contact-events.intake"


def topics(settings: Settings) -> dict[str, str]:
    return {"contact_events": settings.topic(CONTACT_EVENTS), "intake": settings.topic(INTAKE)}


def create_app(
    settings: Settings, *, clock: Clock | None = None, run_consumers: bool = True, serve_api: bool = True
) -> FastAPI:
    """The ingest app. The HTTP API and the consumers can run apart, to scale each side on its own; the
    health, readiness and metrics routes are always served."""
    policies = load_policies(settings.policy_dir)  # a bad policy file stops the service here, naming the file

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = await Runtime.start(settings, clock=clock)
        await record_applied_policies(rt.sessionmaker, policies, service="ingest", clock=rt.clock)
        names = topics(settings)
        await ensure_topics(settings, [*names.values(), *(n + DLQ_SUFFIX for n in names.values())])
        blind_index = BlindIndex(settings.blind_index_key_bytes)
        keystore = KeyStore(kek=settings.kek_bytes, kek_id=settings.key_encryption_key_id)
        blobs = create_blob_store(
            settings.resolved_blob_store_url, s3_endpoint_url=settings.blob_s3_endpoint_url
        )
        intake = IntakeService(
            sessionmaker=rt.sessionmaker,
            producer=rt.producer,
            policies=policies,
            keystore=keystore,
            blind_index=blind_index,
            clock=rt.clock,
            topic=names["contact_events"],
        )
        app.state.runtime = rt
        app.state.policies = policies
        app.state.blind_index = blind_index
        app.state.keystore = keystore
        app.state.intake = intake
        # Platforms' API keys (X-API-Key) and their rate limits; both in this process only.
        app.state.api_keys = ApiKeyStore.from_settings(settings, rt.sessionmaker)
        app.state.rate_limiter = RateLimiter.from_settings(settings)
        app.state.recordings = RecordingService(
            sessionmaker=rt.sessionmaker,
            keystore=keystore,
            blobs=blobs,
            max_bytes=settings.recording_max_bytes,
        )
        loops: list[ConsumerLoop[Any]] = []
        if run_consumers:
            loops = [
                ConsumerLoop(
                    settings=settings,
                    sessionmaker=rt.sessionmaker,
                    producer=rt.producer,
                    topics=[names["contact_events"]],
                    group="ingest-record-store",
                    handler=RecordStoreHandler(RecordStore(keystore, blind_index), rt.clock),
                ),
                ConsumerLoop(
                    settings=settings,
                    sessionmaker=rt.sessionmaker,
                    producer=rt.producer,
                    topics=[names["intake"]],
                    group="ingest-intake",
                    handler=IntakeHandler(intake),
                ),
            ]
        for loop in loops:
            await loop.start()
        tasks = [asyncio.create_task(loop.run(), name=f"consumer:{loop.group}") for loop in loops]
        app.state.consumer_loops = loops
        log.info("ingest.started", consumers=[loop.group for loop in loops])
        try:
            yield
        finally:
            for loop in loops:
                await loop.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await blobs.close()
            await rt.stop()
            log.info("ingest.stopped")

    app = FastAPI(
        title="Sailo ingest",
        version="1",
        description="Contact events and call recordings from telephony, chat and chatbot platforms.",
        lifespan=lifespan,
    )
    install_auth(app, settings)
    install_common(app, service="ingest", ready_checks=[check_database, check_broker])
    if serve_api:
        app.include_router(router)
    _publish_event_contracts(app)
    return app


def _publish_event_contracts(app: FastAPI) -> None:
    """Put the event contract schemas into the OpenAPI components, where the request bodies refer to them."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        contract = CONTACT_EVENT_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(contract.pop("$defs", {}))
        components["ContactEvent"] = contract
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

"""The ingest service: HTTP and Kafka intake of contact events and audio, and the record store consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from services.ingest.api import routers
from services.ingest.apikeys import ApiKeyStore
from services.ingest.handlers import IntakeHandler, RecordStoreHandler
from services.ingest.ratelimit import RateLimiter
from services.ingest.service.contacts import ContactService
from services.ingest.service.intake import IntakeService
from services.ingest.service.recordings import RecordingService
from shared.app import Runtime, create_service_app
from shared.contracts.events import CONTACT_EVENT_ADAPTER, CONTACT_EVENTS_TOPIC
from shared.messaging.kafka import DLQ_SUFFIX, ConsumerLoop, ensure_topics
from shared.platform.clock import Clock
from shared.platform.crypto import BlindIndex
from shared.platform.logging import get_logger
from shared.platform.runtime import in_background
from shared.platform.settings import Settings
from shared.recordstore.keystore import KeyStore
from shared.recordstore.store import RecordStore
from shared.storage.blobstore import blob_store_from_settings

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

    @asynccontextmanager
    async def background(app: FastAPI, rt: Runtime) -> AsyncIterator[None]:
        names = topics(settings)
        await ensure_topics(settings, [*names.values(), *(n + DLQ_SUFFIX for n in names.values())])
        blind_index: BlindIndex = app.state.blind_index
        keystore = KeyStore.from_settings(settings)
        blobs = blob_store_from_settings(settings)
        intake = IntakeService(
            sessionmaker=rt.sessionmaker,
            producer=rt.producer,
            policies=app.state.policies,
            keystore=keystore,
            blind_index=blind_index,
            clock=rt.clock,
            topic=names["contact_events"],
        )
        contacts = ContactService(
            sessionmaker=rt.sessionmaker,
            blind_index=blind_index,
            policies=app.state.policies,
            keystore=keystore,
        )
        app.state.keystore = keystore
        app.state.intake = intake
        app.state.contacts = contacts
        # Platforms' API keys (X-API-Key) and their rate limits; both in this process only.
        app.state.api_keys = ApiKeyStore.from_settings(settings, rt.sessionmaker)
        app.state.rate_limiter = RateLimiter.from_settings(settings)
        app.state.recordings = RecordingService(
            sessionmaker=rt.sessionmaker,
            contacts=contacts,
            keystore=keystore,
            blobs=blobs,
            max_bytes=settings.recording_max_bytes,
        )
        loops: list[ConsumerLoop[Any]] = []
        if run_consumers:
            loops = [
                await rt.consumer(
                    CONTACT_EVENTS,
                    group="ingest-record-store",
                    handler=RecordStoreHandler(RecordStore(keystore, blind_index), rt.clock),
                ),
                await rt.consumer(INTAKE, group="ingest-intake", handler=IntakeHandler(intake)),
            ]
        app.state.consumer_loops = loops
        try:
            async with in_background(*loops):
                log.info("ingest.started", consumers=[loop.group for loop in loops])
                yield
        finally:
            await blobs.close()

    app = create_service_app(
        name="ingest",
        description="Contact events and call recordings from telephony, chat and chatbot platforms.",
        settings=settings,
        clock=clock,
        background=background,
    )
    if serve_api:
        for router in routers:
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

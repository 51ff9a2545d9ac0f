"""The export service.

Time-limited loans of recordings to research institutes, with return-or-destroy tracking; statistics for
service development, small cells suppressed.
"""

from __future__ import annotations

from fastapi import FastAPI

from services.export.api import router
from services.export.statistics_api import router as statistics_router
from shared.clock import Clock
from shared.crypto import BlindIndex
from shared.runtime import create_service_app
from shared.settings import Settings


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    app = create_service_app(name="export", description=__doc__ or "", settings=settings, clock=clock)
    app.state.blind_index = BlindIndex(settings.blind_index_key_bytes)
    app.include_router(router)
    app.include_router(statistics_router)
    return app

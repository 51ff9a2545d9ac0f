"""The export service.

Time-limited loans of recordings to research institutes, with return-or-destroy tracking.
"""

from __future__ import annotations

from fastapi import FastAPI

from shared.clock import Clock
from shared.runtime import create_service_app
from shared.settings import Settings


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    return create_service_app(name="export", description=__doc__ or "", settings=settings, clock=clock)

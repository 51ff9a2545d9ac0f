"""The retention service.

Deletes or redacts every artifact when its register's policy says, honours legal holds,
and certifies each deletion.
"""

from __future__ import annotations

from fastapi import FastAPI

from shared.clock import Clock
from shared.runtime import create_service_app
from shared.settings import Settings


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    return create_service_app(name="retention", description=__doc__ or "", settings=settings, clock=clock)

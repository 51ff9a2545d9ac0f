"""The retention service.

Deletes or redacts every artifact when its register's policy says, honours legal holds,
and certifies each deletion.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.clock import Clock
from shared.http import install_common
from shared.logging import get_logger
from shared.policy import load_policies
from shared.runtime import Runtime, check_broker, check_database, install_auth
from shared.settings import Settings

log = get_logger(__name__)


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    policies = load_policies(settings.policy_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = await Runtime.start(settings, clock=clock)
        app.state.runtime = rt
        app.state.policies = policies
        log.info("retention.started")
        try:
            yield
        finally:
            await rt.stop()
            log.info("retention.stopped")

    app = FastAPI(
        title="Sailo retention",
        version="1",
        description=__doc__,
        lifespan=lifespan,
    )
    install_auth(app, settings)
    install_common(app, service="retention", ready_checks=[check_database, check_broker])
    return app

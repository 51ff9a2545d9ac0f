"""The DSR service in-process beside the ingest/retention environment (tests.integration.retention_env), and a
caseworker's calls to it: what the DSR integration tests share."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select

from services.dsr.app import create_app as create_dsr
from services.retention.models import Certificate, ScheduleItem
from shared.platform.clock import FrozenClock
from shared.platform.settings import Settings
from shared.security.auth import Role
from tests.conftest import Infrastructure
from tests.integration.conftest import eventually
from tests.integration.retention_env import Env, retention_env


class Dsr:
    """The DSR service in-process, called as a caseworker, with the ingest/retention environment beside it."""

    def __init__(
        self, env: Env, client: httpx.AsyncClient, app: Any, clock: FrozenClock, token_for: Any
    ) -> None:
        self.env = env
        self.client = client
        self.app = app
        self.clock = clock
        self.headers = {"Authorization": f"Bearer {token_for(Role.CASEWORKER)}"}
        self.token_for = token_for

    async def post(self, path: str, body: dict[str, Any] | None = None, expect: int = 200) -> Any:
        response = await self.client.post(path, json=body or {}, headers=self.headers)
        assert response.status_code == expect, response.text
        return response.json()

    async def get(self, path: str, expect: int = 200) -> httpx.Response:
        response = await self.client.get(path, headers=self.headers)
        assert response.status_code == expect, response.text
        return response

    async def open_request(
        self, request_type: str, registers: list[str], *requester: tuple[str, str], **extra: Any
    ) -> dict[str, Any]:
        body = {
            "request_type": request_type,
            "registers": registers,
            "requester": [{"kind": kind, "value": value} for kind, value in requester],
            **extra,
        }
        created: dict[str, Any] = await self.post("/v1/requests", body, expect=201)
        return created

    async def verified_candidates(self, request_id: str) -> list[dict[str, Any]]:
        await self.post(f"/v1/requests/{request_id}/identity", {"method": "strong_electronic_identification"})
        found = await self.post(f"/v1/requests/{request_id}/search")
        candidates: list[dict[str, Any]] = found["candidates"]
        return candidates

    async def confirm_only(self, request_id: str, candidates: list[dict[str, Any]], *own: UUID) -> None:
        """Confirm the requester's own contacts and reject every other candidate (a shared or recycled
        identifier, a namesake)."""
        for candidate in candidates:
            await self.post(
                f"/v1/requests/{request_id}/candidates/{candidate['contact_ref']}",
                {"confirmed": UUID(candidate["contact_ref"]) in own},
            )

    async def reply(self, request_id: str) -> str:
        return (await self.get(f"/v1/requests/{request_id}/reply")).text

    async def package(self, request_id: str) -> zipfile.ZipFile:
        response = await self.get(f"/v1/requests/{request_id}/package")
        assert response.headers["content-type"] == "application/zip"
        return zipfile.ZipFile(io.BytesIO(response.content))


@asynccontextmanager
async def dsr_env(
    infrastructure: Infrastructure, settings: Settings, token_for: Any, data_dir: Path, *, now: datetime
) -> AsyncIterator[Dsr]:
    """Ingest and retention (retention_env) plus the DSR app on a frozen clock at `now`, its watch not running
    (tests tick it)."""
    async with retention_env(infrastructure, settings, token_for, data_dir, clock_at=now) as env:
        clock = FrozenClock(now)
        app = create_dsr(env.settings, clock=clock, run_watch=False)
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dsr.test")
            )
            yield Dsr(env, client, app, clock, token_for)


async def erased_by_retention(env: Env, ref: UUID) -> None:
    """Retention has made every item of the contact due on the data subject's request; a sweep deletes them,
    each with a certificate on that trigger."""

    async def due_now() -> bool:
        async with env.sessionmaker() as session:
            triggers = (
                await session.scalars(select(ScheduleItem.trigger).where(ScheduleItem.contact_ref == ref))
            ).all()
        return bool(triggers) and set(triggers) == {"erasure_request"}

    await eventually(due_now, attempts=400)
    await env.sweeper.sweep()
    async with env.sessionmaker() as session:
        certificates = (
            await session.scalars(select(Certificate).where(Certificate.contact_ref == ref))
        ).all()
    assert certificates and all(c.trigger == "erasure_request" for c in certificates)

"""What every service app is built on: its runtime (database, producer, relays), its lifespan, the common routes,
and the database session a route works in.

A service's ``app.py`` calls :func:`create_service_app` and adds its routers; its routes take a
:data:`SessionDep`, which commits after the route returns and rolls back if it raises, so no route opens or
commits a session by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from aiokafka import AIOKafkaProducer
from fastapi import Depends, FastAPI, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.audit.chain import Action, Outcome
from shared.audit.log import actor_ref, audit_signing_key, record
from shared.audit.relay import AuditRelay
from shared.messaging.kafka import DLQ_SUFFIX, ConsumerLoop, create_producer, ensure_topics
from shared.messaging.outbox import OutboxRelay
from shared.platform.clock import Clock, SystemClock
from shared.platform.crypto import BlindIndex
from shared.platform.db import create_engine, create_sessionmaker, upgrade_async
from shared.platform.http import install_common
from shared.platform.logging import get_logger
from shared.platform.settings import Settings
from shared.policy.history import record_applied_policies
from shared.policy.loader import load_policies
from shared.security.auth import Principal, install_auth

log = get_logger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    clock: Clock
    audit_relay: AuditRelay | None = None
    outbox_relay: OutboxRelay | None = None

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        migrate: bool = True,
        run_audit_relay: bool = True,
        run_outbox_relay: bool = True,
    ) -> Runtime:
        """Migrate, connect, and start the relays: every service process publishes the audit log and the
        domain-event outbox, so both go on while any one of them runs (the relays take turns, see
        shared.audit.relay and shared.messaging.outbox)."""
        # First: a missing or unreadable signing key stops the service before it connects anywhere.
        signing_key = await asyncio.to_thread(audit_signing_key, settings) if run_audit_relay else None
        if migrate:
            await upgrade_async(settings)
        engine = create_engine(settings)
        producer = create_producer(settings, client_id=settings.service_name)
        await producer.start()
        rt = cls(settings, engine, create_sessionmaker(engine), producer, clock or SystemClock())
        if signing_key is not None:
            rt.audit_relay = AuditRelay(
                settings=settings,
                sessionmaker=rt.sessionmaker,
                producer=producer,
                signing_key=signing_key,
                clock=rt.clock,
            )
            rt.audit_relay.start()
        if run_outbox_relay:
            rt.outbox_relay = OutboxRelay(settings=settings, sessionmaker=rt.sessionmaker, producer=producer)
            rt.outbox_relay.start()
        return rt

    async def consumer(self, topic: str, *, group: str, handler: Any) -> ConsumerLoop[Any]:
        """An exactly-once consumer loop of `group` over `topic` (a name without the deployment's prefix),
        the topic and its dead-letter topic made first if the broker lacks them. Start it with the app's
        background work (shared.platform.runtime.in_background)."""
        name = self.settings.topic(topic)
        await ensure_topics(self.settings, [name, name + DLQ_SUFFIX])
        return ConsumerLoop(
            settings=self.settings,
            sessionmaker=self.sessionmaker,
            producer=self.producer,
            topics=[name],
            group=group,
            handler=handler,
        )

    async def stop(self) -> None:
        if self.outbox_relay is not None:
            await self.outbox_relay.stop()
        if self.audit_relay is not None:
            await self.audit_relay.stop()
        await self.producer.stop()
        await self.engine.dispose()


def runtime(request: Request) -> Runtime:
    value = request.app.state.runtime
    assert isinstance(value, Runtime)
    return value


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The route's unit of work: committed after the route returns (before the answer is sent, so a failed
    commit is the caller's error, never a 2xx for something not stored), rolled back if it raises."""
    async with runtime(request).sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


SessionDep = Annotated[AsyncSession, Depends(db_session, scope="function")]
"""A route's database session; see :func:`db_session`."""


@dataclass(frozen=True)
class Caller:
    """Who asks, as a service function needs it: the verified principal, their pseudonymous id for the audit
    log, the service that acts, and the clock. Routes build it with :func:`caller_of`; service functions take
    it instead of the HTTP request, so they can be called from a consumer or a test the same way."""

    principal: Principal
    actor: UUID
    service: str
    clock: Clock

    def now(self) -> datetime:
        return self.clock.now()

    async def audit(
        self,
        session: AsyncSession,
        action: Action,
        object_type: str,
        object_ids: Iterable[UUID] = (),
        *,
        outcome: Outcome = Outcome.SUCCESS,
        reason: str | None = None,
    ) -> None:
        """An audit entry for this step, in `session`'s transaction: it commits with the step or not at all."""
        await record(
            session,
            actor=self.actor,
            role=self.principal.role.value,
            action=action,
            object_type=object_type,
            object_ids=object_ids,
            outcome=outcome,
            reason=reason,
            service=self.service,
            occurred_at=self.clock.now(),
        )


def caller_of(authorized: Callable[..., Awaitable[Principal]]) -> Callable[..., Awaitable[Caller]]:
    """A dependency giving the :class:`Caller` behind a service's `authorized` dependency (which refuses a role
    the route table does not allow, before anything else runs)."""

    # `authorized` as a default, not in an Annotated: this module's annotations are strings, and FastAPI would
    # evaluate them where `authorized` (a parameter of this factory) does not exist.
    async def dependency(request: Request, principal: Principal = Depends(authorized)) -> Caller:
        rt = runtime(request)
        blind_index: BlindIndex = request.app.state.blind_index
        return Caller(
            principal, actor_ref(blind_index, principal.subject), request.app.state.service, rt.clock
        )

    return dependency


async def check_database(request: Request) -> None:
    async with runtime(request).engine.connect() as connection:
        await asyncio.wait_for(connection.execute(text("SELECT 1")), timeout=2)


check_database.dependency = "database"  # type: ignore[attr-defined]


async def check_broker(request: Request) -> None:
    client = runtime(request).producer.client
    await asyncio.wait_for(client.fetch_all_metadata(), timeout=2)


check_broker.dependency = "broker"  # type: ignore[attr-defined]


def create_service_app(
    *,
    name: str,
    description: str,
    settings: Settings,
    clock: Clock | None = None,
    background: Callable[[FastAPI, Runtime], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """A service with its runtime, policies, bearer tokens and the common routes (health, readiness, metrics).

    `background` runs the service's own work (consumers, a sweeper) for as long as the app runs: it is entered
    once the runtime is up and left before the runtime stops. Services add their routers to the app returned.
    """

    policies = load_policies(settings.policy_dir)  # a bad policy file stops the service here, naming the file

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = await Runtime.start(settings, clock=clock)
        await record_applied_policies(rt.sessionmaker, policies, service=name, clock=rt.clock)
        app.state.runtime = rt
        app.state.policies = policies
        log.info("service.started", service=name)
        try:
            if background is None:
                yield
            else:
                async with background(app, rt):
                    yield
        finally:
            await rt.stop()
            log.info("service.stopped", service=name)

    app = FastAPI(title=f"Sailo {name}", version="1", description=description, lifespan=lifespan)
    app.state.service = name
    app.state.blind_index = BlindIndex(settings.blind_index_key_bytes)
    install_auth(app, settings)
    install_common(app, service=name, ready_checks=[check_database, check_broker])
    return app

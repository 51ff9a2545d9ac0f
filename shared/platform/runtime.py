"""What every service process owns: settings, the database engine, a Kafka producer; and how it is served.

`Runtime` is created in a service's lifespan and stored on `app.state.runtime`; readiness checks read it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.audit.log import load_signing_key
from shared.audit.relay import AuditRelay
from shared.messaging.kafka import create_producer
from shared.messaging.outbox import OutboxRelay
from shared.platform.clock import Clock, SystemClock
from shared.platform.db import create_engine, create_sessionmaker, upgrade_async
from shared.platform.logging import configure_logging, get_logger
from shared.platform.settings import Environment, Settings
from shared.security.auth import TokenVerifier, generate_signing_key

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


async def check_database(request: Request) -> None:
    async with runtime(request).engine.connect() as connection:
        await asyncio.wait_for(connection.execute(text("SELECT 1")), timeout=2)


check_database.dependency = "database"  # type: ignore[attr-defined]


async def check_broker(request: Request) -> None:
    client = runtime(request).producer.client
    await asyncio.wait_for(client.fetch_all_metadata(), timeout=2)


check_broker.dependency = "broker"  # type: ignore[attr-defined]


def install_auth(app: FastAPI, settings: Settings) -> None:
    """Bearer-token verification: the identity provider's keys in production; outside production without
    configured keys, the local issuer's key pair under SAILO_DATA_DIR/keys (what `sailo token` signs with)."""
    if settings.auth_public_key_file is None and not settings.auth_jwks_url:
        if settings.sailo_env is Environment.PRODUCTION:
            raise ValueError("AUTH_JWKS_URL or AUTH_PUBLIC_KEY_FILE must be set in production")
        _private, public = local_issuer_keys(settings.sailo_data_dir)
        settings = settings.model_copy(update={"auth_public_key_file": public})
    app.state.token_verifier = TokenVerifier.from_settings(settings)


def local_issuer_keys(data_dir: Path) -> tuple[Path, Path]:
    """The local issuer's key pair, created on first use; several processes starting together agree on one."""
    return local_key_pair(data_dir, "auth")


def local_key_pair(data_dir: Path, name: str) -> tuple[Path, Path]:
    """The Ed25519 pair ``{name}-private.pem`` / ``{name}-public.pem`` under SAILO_DATA_DIR/keys, created on
    first use; several processes starting together agree on one."""
    private, public = data_dir / "keys" / f"{name}-private.pem", data_dir / "keys" / f"{name}-public.pem"
    for _attempt in range(50):
        try:
            generate_signing_key(private, public)
            if public.exists() and public.stat().st_size > 0:
                return private, public
        except (FileExistsError, ValueError):
            pass  # another process is writing the pair right now
        time.sleep(0.1)
    raise RuntimeError(f"could not create or read the {name} key pair under {data_dir / 'keys'}")


def audit_signing_key_file(settings: Settings) -> Path:
    """Where the audit checkpoint signing key is: AUDIT_SIGNING_KEY_FILE (mounted from a secret; required in
    production), else outside production a pair made on first use, SAILO_DATA_DIR/keys/audit-private.pem
    beside audit-public.pem."""
    if settings.audit_signing_key_file is not None:
        return settings.audit_signing_key_file
    if settings.sailo_env is Environment.PRODUCTION:
        raise ValueError("AUDIT_SIGNING_KEY_FILE must be set in production")
    private, _public = local_key_pair(settings.sailo_data_dir, "audit")
    return private


def audit_signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The key that signs audit checkpoints (see :func:`audit_signing_key_file`)."""
    return load_signing_key(audit_signing_key_file(settings).read_bytes())


def configure_service_logging(settings: Settings) -> None:
    configure_logging(
        service=settings.service_name, level=settings.log_level, json=settings.log_format.value == "json"
    )


def serve(factory: str, settings: Settings, *, port: int) -> None:
    """Run a service under uvicorn with Sailo's logging (uvicorn's own log config is switched off).

    `factory` is "module:function" returning the app, so that with HTTP_WORKERS above 1 each worker process
    builds its own (one Python process uses one core; the workers share the port).
    """
    configure_service_logging(settings)
    log.info("service.starting", port=port, workers=settings.http_workers)
    uvicorn.run(
        factory,
        factory=True,
        workers=settings.http_workers,
        host="0.0.0.0",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # On SIGTERM: stop accepting, give open requests this long, then close (consumers stop in the lifespan).
        timeout_graceful_shutdown=10,
    )


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
    from shared.platform.http import install_common
    from shared.policy.history import record_applied_policies
    from shared.policy.registry import load_policies

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
    install_auth(app, settings)
    install_common(app, service=name, ready_checks=[check_database, check_broker])
    return app

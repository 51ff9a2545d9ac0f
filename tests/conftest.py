"""Test infrastructure: real PostgreSQL and a real Kafka-protocol broker, never mocks.

Where they come from, in order: DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS if set; else testcontainers if a
Docker engine answers; else the embedded PostgreSQL and Tansu broker that `make run` uses, started on free
ports in a temporary directory. Each test session gets its own database and topic prefix.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from shared.platform.keyfiles import generate_signing_key
from shared.platform.settings import Settings
from shared.security.auth import Role, mint_token


@dataclass
class Infrastructure:
    database_url: str  # SQLAlchemy asyncpg URL of the server's admin database
    kafka_bootstrap_servers: str
    kafka_enable_idempotence: bool
    postgres_data_dir: Path | None = None
    log_files: tuple[Path, ...] = ()


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def infrastructure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infrastructure]:
    if os.environ.get("DATABASE_URL") and os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield Infrastructure(
            os.environ["DATABASE_URL"],
            os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            os.environ.get("KAFKA_ENABLE_IDEMPOTENCE", "true").lower() == "true",
        )
        return
    if _docker_available():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:17", driver="asyncpg") as pg, KafkaContainer().with_kraft() as kafka:
            yield Infrastructure(pg.get_connection_url(), kafka.get_bootstrap_server(), True)
        return
    from deploy.embedded.ports import free_port
    from deploy.embedded.stack import EmbeddedStack

    data_dir = tmp_path_factory.mktemp("embedded")
    stack = EmbeddedStack(data_dir, pg_port=free_port(), kafka_port=free_port())
    stack.start()
    try:
        yield Infrastructure(
            stack.database_url,
            stack.bootstrap_servers,
            False,
            postgres_data_dir=data_dir / "postgres",
            log_files=(data_dir / "postgres.log", data_dir / "broker.log"),
        )
    finally:
        stack.stop()


def plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


_DROP_ATTEMPTS = 50
"""Tries of drop_database, 0.1 s apart."""


async def drop_database(server_url: str, name: str) -> None:
    """DROP DATABASE `name` WITH (FORCE) on the server at `server_url`, tried again for a few seconds while it is
    refused: PostgreSQL will not terminate a session that is still starting up (its role is not known yet, so
    InsufficientPrivilegeError), and a service stopping beside the test may have just opened one."""
    admin = await asyncpg.connect(plain_dsn(server_url))
    try:
        for attempt in itertools.count(1):
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            except (asyncpg.InsufficientPrivilegeError, asyncpg.ObjectInUseError):
                if attempt == _DROP_ATTEMPTS:
                    raise
                await asyncio.sleep(0.1)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def database_url(infrastructure: Infrastructure) -> AsyncIterator[str]:
    """A database of this test session's own, created fresh and dropped at the end."""
    name = f"sailo_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(plain_dsn(infrastructure.database_url))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base, _, _ = infrastructure.database_url.rpartition("/")
    yield f"{base}/{name}"
    await drop_database(infrastructure.database_url, name)


@pytest.fixture(scope="session")
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("keys")
    private, public = directory / "private.pem", directory / "public.pem"
    generate_signing_key(private, public)
    return private, public


@pytest.fixture(scope="session")
def settings(
    infrastructure: Infrastructure,
    database_url: str,
    signing_keys: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    data_dir = tmp_path_factory.mktemp("sailo-data")
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        sailo_env="test",
        service_name="ingest",
        database_url=database_url,
        kafka_bootstrap_servers=infrastructure.kafka_bootstrap_servers,
        kafka_enable_idempotence=infrastructure.kafka_enable_idempotence,
        kafka_topic_prefix=f"sailo-test-{uuid.uuid4().hex[:8]}.",
        kafka_topic_partitions=3,
        sailo_data_dir=data_dir,
        policy_dir=Path(__file__).resolve().parent.parent / "policies",
        auth_public_key_file=signing_keys[1],
        ingest_max_body_bytes=256 * 1024,
        recording_max_bytes=8 * 1024 * 1024,
    )


@pytest.fixture(scope="session")
def token_for(settings: Settings, signing_keys: tuple[Path, Path]):  # type: ignore[no-untyped-def]
    private = signing_keys[0].read_bytes()

    def make(
        role: Role,
        *,
        agent_id: str | None = None,
        institute_id: str | None = None,
        subject: str | None = None,
    ) -> str:
        return mint_token(
            private,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            role=role,
            subject=subject or f"test-{role.value}",
            agent_id=agent_id,
            institute_id=institute_id,
        )

    return make

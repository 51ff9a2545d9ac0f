"""Alembic environment: async engine, and an advisory lock so several instances starting together migrate once."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

# Each import registers its tables on the metadata.
import services.dsr.models
import services.export.models
import services.ingest.apikeys
import services.ingest.models
import services.retention.models  # noqa: F401
import shared.audit.log
import shared.messaging.kafka
import shared.messaging.outbox
import shared.policy.history
import shared.recordstore.keystore
import shared.recordstore.store  # noqa: F401
from shared.platform.db import Base

MIGRATION_LOCK_ID = 0x5A110  # any constant shared by all Sailo processes

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    try:
        context.configure(connection=connection, target_metadata=target_metadata, include_schemas=True)
        with context.begin_transaction():
            context.run_migrations()
    except BaseException:
        # End the failed transaction first, so the unlock below runs and the migration's own error is the
        # one reported.
        connection.rollback()
        raise
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()


async def _run_async() -> None:
    engine = create_async_engine(context.config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


asyncio.run(_run_async())

"""Database plumbing: the declarative base, one engine per process, sessions that commit at the boundary.

Each service owns a PostgreSQL schema (ingest, records, keys, messaging, ...); one Alembic history creates them
all so a deployment migrates once. `python -m shared.platform.db upgrade` applies the migrations.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, Result, Table, TextClause, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from shared.platform.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        # No ping per checkout (a round trip on every transaction); a connection broken by a database
        # restart fails its one statement, which callers treat as transient, and is then replaced.
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": settings.service_name}},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends normally, rolls back on any exception."""
    async with sessionmaker() as session, session.begin():
        yield session


_POSTGRESQL = postgresql.dialect()  # type: ignore[no-untyped-call]


@lru_cache(maxsize=256)
def _bulk_insert_sql(table: Table, columns: tuple[str, ...], tail: str) -> TextClause:
    arrays = ", ".join(
        f"CAST(:{name} AS {table.c[name].type.compile(dialect=_POSTGRESQL)}[])" for name in columns
    )
    names = ", ".join(f'"{name}"' for name in columns)
    # Identifiers come from the table's metadata and `tail` from code, never from input.
    sql = f"INSERT INTO {table.schema}.{table.name} ({names}) SELECT * FROM unnest({arrays}) {tail}"  # noqa: S608
    return text(sql)


async def bulk_insert(
    session: AsyncSession, model: type[Base], rows: Sequence[Mapping[str, Any]], *, tail: str = ""
) -> Result[Any]:
    """INSERT many rows as one statement over `unnest` of one array per column.

    One round trip and one prepared statement whatever the row count: far cheaper than a multi-row VALUES
    list, which SQLAlchemy compiles anew for every batch size. `tail` is the ON CONFLICT / RETURNING clause,
    which may use `EXCLUDED` as in any INSERT.
    """
    columns = tuple(rows[0].keys())
    table = model.__table__
    assert isinstance(table, Table)
    statement = _bulk_insert_sql(table, columns, tail)
    return await session.execute(statement, {name: [row[name] for row in rows] for name in columns})


# The one migration history lives with the composition root (its env imports every service's tables); a
# service applies it on start by its location, which is data, not an import (docs/adr/0003-one-migration-history.md).
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "migrations"


def alembic_config(settings: Settings) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Apply migrations up to `revision`. Safe to run from several processes: Alembic takes a lock row."""
    from alembic import command
    from alembic.config import Config

    config = alembic_config(settings)
    assert isinstance(config, Config)
    command.upgrade(config, revision)


async def upgrade_async(settings: Settings) -> None:
    await asyncio.to_thread(upgrade, settings)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["upgrade"]:
        print("usage: python -m shared.platform.db upgrade [REVISION]", file=sys.stderr)
        return 2
    upgrade(Settings(), args[1] if len(args) > 1 else "head")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

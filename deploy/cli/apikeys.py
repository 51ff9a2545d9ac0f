"""`sailo apikey`: create, list and revoke the platforms' API keys, on DATABASE_URL."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from services.ingest.apikeys import ApiKeyInfo

T = TypeVar("T")


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction on DATABASE_URL (the settings, as `sailo migrate` reads them)."""
    import asyncio

    from shared.platform.db import create_engine, create_sessionmaker, transaction
    from shared.platform.settings import Settings

    async def run() -> T:
        engine = create_engine(Settings())
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _apikey_database_error(exc: Exception) -> int:
    from sqlalchemy.exc import ProgrammingError

    # The exception's own text may quote the connection URL, password included: its type only.
    if isinstance(exc, ProgrammingError):
        print("sailo apikey: the API key table is missing; run `sailo migrate` first", file=sys.stderr)
    else:
        print(f"sailo apikey: the database at DATABASE_URL failed ({type(exc).__name__})", file=sys.stderr)
    return 1


def _operator() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"


def _limits(info: ApiKeyInfo) -> str:
    rate = f"{info.rate_per_second:g}/s" if info.rate_per_second is not None else "default rate"
    burst = f"burst {info.burst}" if info.burst is not None else "default burst"
    return f"{rate}, {burst}"


def cmd_apikey_create(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from sqlalchemy.exc import DBAPIError

    from services.ingest.apikeys import CreatedApiKey, create_api_key

    async def work(session: AsyncSession) -> CreatedApiKey:
        return await create_api_key(
            session,
            platform=args.platform,
            created_by=args.created_by or _operator(),
            now=datetime.now(UTC),
            rate_per_second=args.rate,
            burst=args.burst,
        )

    try:
        created = _in_transaction(work)
    except ValueError as exc:
        print(f"sailo apikey: {exc}", file=sys.stderr)
        return 2
    except (DBAPIError, OSError) as exc:
        return _apikey_database_error(exc)
    info = created.info
    # The key alone on stdout, for scripts; what it is on stderr.
    print(
        f"API key {info.key_id} for platform {info.platform} ({_limits(info)}). "
        "This is the only time it is shown: store it as a secret now.",
        file=sys.stderr,
    )
    print(created.key)
    return 0


def cmd_apikey_list(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import DBAPIError

    from services.ingest.apikeys import list_api_keys

    async def work(session: AsyncSession) -> list[ApiKeyInfo]:
        return await list_api_keys(session, platform=args.platform)

    try:
        keys = _in_transaction(work)
    except (DBAPIError, OSError) as exc:
        return _apikey_database_error(exc)
    print(
        f"{'KEY ID':<16}  {'PLATFORM':<24}  {'LIMITS':<30}  {'CREATED (UTC)':<16}  {'BY':<20}  REVOKED (UTC)"
    )
    for info in keys:
        revoked = f"{info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at is not None else "-"
        print(
            f"{info.key_id:<16}  {info.platform:<24}  {_limits(info):<30}  {info.created_at:%Y-%m-%d %H:%M}  "
            f"{info.created_by:<20}  {revoked}"
        )
    return 0


def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    import re
    from datetime import UTC, datetime

    from sqlalchemy.exc import DBAPIError

    from services.ingest.apikeys import revoke_api_key
    from shared.platform.settings import Settings

    if not re.fullmatch(r"[0-9a-f]{16}", args.key_id):
        print("sailo apikey: KEYID is the 16-character id `sailo apikey list` shows", file=sys.stderr)
        return 2
    now = datetime.now(UTC)

    async def work(session: AsyncSession) -> ApiKeyInfo | None:
        return await revoke_api_key(session, args.key_id, now=now)

    try:
        info = _in_transaction(work)
    except (DBAPIError, OSError) as exc:
        return _apikey_database_error(exc)
    if info is None:
        print(f"sailo apikey: no API key {args.key_id}", file=sys.stderr)
        return 1
    if info.revoked_at is not None and info.revoked_at != now:
        print(
            f"API key {info.key_id} ({info.platform}) was already revoked at {info.revoked_at:%Y-%m-%d %H:%M} UTC"
        )
        return 0
    print(
        f"API key {info.key_id} ({info.platform}) revoked; running services refuse it within "
        f"API_KEY_CACHE_SECONDS ({Settings().api_key_cache_seconds:g} s here)"
    )
    return 0

"""API keys for platforms (telephony, chat, chatbot systems): an alternative to bearer tokens on ingest.

A key looks like ``sailo_<key id>_<secret>``: ``sailo_`` then 16 lowercase hex characters (the public key id,
shown by ``sailo apikey list`` and usable in logs) then 64 lowercase hex characters (256 random bits). The fixed
shape is on purpose: a leaked key is recognisable by secret scanners, with the pattern

    sailo_[0-9a-f]{16}_[0-9a-f]{64}

Only the SHA-256 of the whole key is stored (``access.api_keys``). A slow password hash would add nothing: the
secret is 256 random bits, not something a person chose, so it cannot be guessed from its hash. The comparison
is constant-time all the same. The full key is shown once, when it is created, and never again.

A key carries the platform's name (a code, such as ``genesys-prh``) and may carry its own rate limit (events
per second and burst); without one, ingest's defaults apply (``INGEST_RATE_LIMIT_PER_SECOND``,
``INGEST_RATE_LIMIT_BURST``). A request with a key acts as ``Principal(role=PLATFORM,
subject="platform:<name>")``.

:class:`ApiKeyStore` verifies presented keys for the HTTP services. It remembers each key id's row for
``API_KEY_CACHE_SECONDS`` (monotonic time), so a platform sending a thousand requests a second costs one query
per key and period, not one per request. The price: **a revoked key keeps working for up to
API_KEY_CACHE_SECONDS in every process that looked it up just before it was revoked**; 0 turns the cache off.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from sqlalchemy import CheckConstraint, DateTime, Double, Index, Integer, String, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from shared.platform.db import Base
from shared.platform.settings import Settings
from shared.security.auth import AuthError, Principal, RateLimit, Role

__all__ = [
    "KEY_PATTERN",
    "ApiKey",
    "ApiKeyInfo",
    "ApiKeyStore",
    "CreatedApiKey",
    "create_api_key",
    "list_api_keys",
    "parse_api_key",
    "revoke_api_key",
]

KEY_PREFIX: Final = "sailo_"
KEY_PATTERN: Final = re.compile(r"sailo_(?P<key_id>[0-9a-f]{16})_(?P<secret>[0-9a-f]{64})")
"""The whole of a well-formed key (use ``fullmatch``); what a secret scanner looks for."""
PLATFORM_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
MAX_CREATED_BY_LENGTH: Final = 200

INVALID_KEY: Final = "invalid API key"
"""The one reason for an unknown key, a revoked key and a wrong secret: which of them it was helps only an
attacker (the operator sees the key's state in ``sailo apikey list``)."""
MALFORMED_KEY: Final = "malformed API key"


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("rate_per_second IS NULL OR rate_per_second > 0", name="rate_positive"),
        CheckConstraint("burst IS NULL OR burst >= 1", name="burst_positive"),
        Index("ix_api_keys_platform", "platform"),
        {"schema": "access"},
    )

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    # SHA-256 (hex) of the whole key, id included, so a hash matches only the row it was made for.
    key_sha256: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(64))
    # NULL: ingest's defaults (INGEST_RATE_LIMIT_PER_SECOND / INGEST_RATE_LIMIT_BURST).
    rate_per_second: Mapped[float | None] = mapped_column(Double)
    burst: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str] = mapped_column(String(MAX_CREATED_BY_LENGTH))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class ApiKeyInfo:
    """What may be shown about a key: everything but the secret (which is not stored) and its hash."""

    key_id: str
    platform: str
    rate_per_second: float | None
    burst: int | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None

    @property
    def subject(self) -> str:
        """The principal's subject for requests made with this key: stable across the platform's keys."""
        return f"platform:{self.platform}"

    @classmethod
    def of(cls, row: ApiKey) -> ApiKeyInfo:
        return cls(
            key_id=row.key_id,
            platform=row.platform,
            rate_per_second=row.rate_per_second,
            burst=row.burst,
            created_at=row.created_at,
            created_by=row.created_by,
            revoked_at=row.revoked_at,
        )


@dataclass(frozen=True)
class CreatedApiKey:
    """A new key: ``key`` is the only copy there will ever be (kept out of the repr, so out of logs)."""

    key: str = field(repr=False)
    info: ApiKeyInfo


def parse_api_key(key: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key, else None."""
    # A bound before the regex: header values can be long.
    if len(key) > 128:
        return None
    match = KEY_PATTERN.fullmatch(key)
    if match is None:
        return None
    return match["key_id"], match["secret"]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def _new_key_id() -> str:
    # At least one letter: the log scrubber keeps hex tokens with a letter whole, but would take an all-digit
    # id for a phone or card number.
    while True:
        key_id = secrets.token_hex(8)
        if not key_id.isdigit():
            return key_id


def _check_limits(rate_per_second: float | None, burst: int | None) -> None:
    if rate_per_second is not None and not (math.isfinite(rate_per_second) and rate_per_second > 0):
        raise ValueError("rate_per_second must be a positive number")
    if burst is not None and burst < 1:
        raise ValueError("burst must be at least 1")


async def create_api_key(
    session: AsyncSession,
    *,
    platform: str,
    created_by: str,
    now: datetime,
    rate_per_second: float | None = None,
    burst: int | None = None,
) -> CreatedApiKey:
    """Create a key for ``platform``; the returned :class:`CreatedApiKey` holds the full key, once.

    Flushes, does not commit: the caller's transaction decides.
    """
    if not PLATFORM_PATTERN.fullmatch(platform):
        raise ValueError("platform must be a code: lowercase letters, digits and '-', at most 64 characters")
    if not created_by or len(created_by) > MAX_CREATED_BY_LENGTH:
        raise ValueError(f"created_by must be 1-{MAX_CREATED_BY_LENGTH} characters")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    _check_limits(rate_per_second, burst)
    key_id = _new_key_id()
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_hex(32)}"
    row = ApiKey(
        key_id=key_id,
        key_sha256=_digest(key),
        platform=platform,
        rate_per_second=rate_per_second,
        burst=burst,
        created_at=now,
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    return CreatedApiKey(key=key, info=ApiKeyInfo.of(row))


async def list_api_keys(session: AsyncSession, *, platform: str | None = None) -> list[ApiKeyInfo]:
    """Every key (revoked ones too, for the record), oldest first; never a secret or a hash."""
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.key_id)
    if platform is not None:
        query = query.where(ApiKey.platform == platform)
    return [ApiKeyInfo.of(row) for row in (await session.scalars(query)).all()]


async def revoke_api_key(session: AsyncSession, key_id: str, *, now: datetime) -> ApiKeyInfo | None:
    """Revoke a key; None if there is no such key. Revoking twice keeps the first time.

    Running services stop accepting it within ``API_KEY_CACHE_SECONDS`` (see :class:`ApiKeyStore`).
    """
    await session.execute(
        update(ApiKey)
        .where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    row = await session.scalar(
        select(ApiKey).where(ApiKey.key_id == key_id).execution_options(populate_existing=True)
    )
    return None if row is None else ApiKeyInfo.of(row)


@dataclass(frozen=True)
class _Known:
    """A cached row: the hash to compare with, and the principal it grants (None once revoked)."""

    key_sha256: str
    principal: Principal | None


class ApiKeyStore:
    """Turns a presented ``X-API-Key`` into a :class:`Principal`, or refuses it with :class:`AuthError`.

    Rows are cached per key id for ``cache_seconds`` of ``monotonic`` time, unknown ids too (a misconfigured
    platform repeating a bad key should not cost a query per request). The cache holds the hash, never the
    key, and every request's key is hashed and compared again, so a wrong secret is never let through by it.
    The cache is what bounds revocation: a key revoked in the database still works for up to
    ``cache_seconds`` in a process that had looked it up.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        cache_seconds: float,
        cache_size: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if cache_seconds < 0:
            raise ValueError("cache_seconds must not be negative")
        self._sessionmaker = sessionmaker
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        self._monotonic = monotonic
        self._cache: OrderedDict[str, tuple[float, _Known | None]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> ApiKeyStore:
        return cls(sessionmaker, cache_seconds=settings.api_key_cache_seconds)

    async def authenticate(self, key: str) -> Principal:
        parsed = parse_api_key(key)
        if parsed is None:
            raise AuthError(MALFORMED_KEY)
        known = await self._known(parsed[0])
        # Key ids are not secret, so an unknown or revoked one may answer sooner; the secret is compared in
        # constant time.
        if (
            known is None
            or known.principal is None
            or not hmac.compare_digest(known.key_sha256, _digest(key))
        ):
            raise AuthError(INVALID_KEY)
        return known.principal

    async def _known(self, key_id: str) -> _Known | None:
        now = self._monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._sessionmaker() as session:
            row = await session.get(ApiKey, key_id)
        known = None if row is None else _Known(row.key_sha256, _principal(row))
        if self._cache_seconds > 0:
            self._cache[key_id] = (now + self._cache_seconds, known)
            self._cache.move_to_end(key_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return known


def _principal(row: ApiKey) -> Principal | None:
    if row.revoked_at is not None:
        return None
    return Principal(
        subject=f"platform:{row.platform}",
        role=Role.PLATFORM,
        api_key_id=row.key_id,
        rate_limit=RateLimit(per_second=row.rate_per_second, burst=row.burst),
    )

"""Rate limits per platform: a token bucket per API key (per subject for bearer tokens), refusing with 429.

Each caller's bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; a request costs one
token per event (a batch of N events costs N) and is refused while the bucket holds fewer than it costs. A
refused request takes nothing. A request costing more than the whole burst would never fit: it is let through
when the bucket is full and leaves it in debt, so the platform still averages ``rate`` (send smaller batches to
avoid the wait that follows).

Rates and bursts come from the API key (``sailo apikey create --rate --burst``) or, for a key without its own
and for bearer tokens, from ``INGEST_RATE_LIMIT_PER_SECOND`` and ``INGEST_RATE_LIMIT_BURST``.

**The buckets live in each process**, not in a shared store: N instances (or N ``HTTP_WORKERS``) behind a load
balancer let a platform through at up to N times its rate. That is a deliberate trade: no network round trip
per request, no shared state to fail. Size the per-instance limits for the number of instances, e.g. rate / N.
A restarted process starts every bucket full.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from fastapi import Request
from prometheus_client import Counter

from shared.platform.errors import ApiError, FieldError
from shared.platform.settings import Settings
from shared.security.auth import Principal

__all__ = ["RateLimiter", "TokenBucket", "enforce_rate_limit", "retry_after_seconds"]

RATE_LIMITED = Counter(
    "sailo_rate_limited_requests_total",
    "Requests refused by a rate limit",
    # The key id (public, one per platform key) or "bearer": never a token subject, which may name a person.
    ["api_key"],
)

MAX_BUCKETS: Final = 10_000


class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate_per_second``; times are seconds of a monotonic clock."""

    __slots__ = ("burst", "rate_per_second", "tokens", "updated_at")

    def __init__(self, *, rate_per_second: float, burst: int, now: float) -> None:
        _check(rate_per_second, burst)
        self.rate_per_second = rate_per_second
        self.burst = burst
        self.tokens = float(burst)
        self.updated_at = now

    def reconfigure(self, *, rate_per_second: float, burst: int, now: float) -> None:
        """Take new limits (a key's own changed); the time so far refills at the old rate, and the tokens held
        stay, up to the new burst."""
        _check(rate_per_second, burst)
        self.take(0, now)
        self.rate_per_second = rate_per_second
        self.burst = burst
        self.tokens = min(self.tokens, float(burst))

    def take(self, cost: int, now: float) -> float:
        """Take ``cost`` tokens if they are there: 0.0. Otherwise take nothing and return the seconds until
        they would be."""
        # A clock that went back (never a monotonic one) must not drain the bucket.
        elapsed = max(0.0, now - self.updated_at)
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate_per_second)
        self.updated_at = now
        if cost <= 0:
            return 0.0
        needed = float(min(cost, self.burst))
        if self.tokens >= needed:
            self.tokens -= cost
            return 0.0
        return (needed - self.tokens) / self.rate_per_second


def _check(rate_per_second: float, burst: int) -> None:
    if not (math.isfinite(rate_per_second) and rate_per_second > 0):
        raise ValueError("rate_per_second must be a positive number")
    if burst < 1:
        raise ValueError("burst must be at least 1")


class RateLimiter:
    """The token buckets of one process, by caller; the least recently used go first past ``max_buckets``
    (an evicted caller was idle, so it would have had a full bucket anyway unless it was in debt)."""

    def __init__(
        self,
        *,
        rate_per_second: float,
        burst: int,
        monotonic: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        _check(rate_per_second, burst)
        self.rate_per_second = rate_per_second
        self.burst = burst
        self._monotonic = monotonic
        self._max_buckets = max_buckets
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(
            rate_per_second=settings.ingest_rate_limit_per_second, burst=settings.ingest_rate_limit_burst
        )

    def limits_for(self, principal: Principal) -> tuple[float, int]:
        """The caller's rate and burst: the key's own where it has them, else this limiter's defaults."""
        own = principal.rate_limit
        rate = own.per_second if own is not None and own.per_second is not None else self.rate_per_second
        burst = own.burst if own is not None and own.burst is not None else self.burst
        return rate, burst

    def take(self, principal: Principal, cost: int = 1) -> float:
        """Charge ``cost`` to the caller's bucket: 0.0 if granted, else the seconds to wait (nothing taken)."""
        # Per key: a platform's keys are separate buckets. Bearer tokens: per subject.
        bucket_id = (
            f"key:{principal.api_key_id}" if principal.api_key_id is not None else f"sub:{principal.subject}"
        )
        rate, burst = self.limits_for(principal)
        now = self._monotonic()
        bucket = self._buckets.get(bucket_id)
        if bucket is None:
            bucket = self._buckets[bucket_id] = TokenBucket(rate_per_second=rate, burst=burst, now=now)
            while len(self._buckets) > self._max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(bucket_id)
            if bucket.rate_per_second != rate or bucket.burst != burst:
                bucket.reconfigure(rate_per_second=rate, burst=burst, now=now)
        return bucket.take(cost, now)


def retry_after_seconds(wait: float) -> int:
    """Retry-After is whole seconds: rounded up, and at least 1 (0 would invite an immediate retry)."""
    return max(1, math.ceil(wait))


async def enforce_rate_limit(request: Request, principal: Principal, cost: int = 1) -> None:
    """Charge ``cost`` events to the caller, or refuse the request with 429 and ``Retry-After``.

    The limiter is ``request.app.state.rate_limiter``. Call it once the cost is known (a batch: its number of
    items) and before any work is done for the request.
    """
    limiter = getattr(request.app.state, "rate_limiter", None)
    if not isinstance(limiter, RateLimiter):
        raise RuntimeError("app.state.rate_limiter is not set to a RateLimiter")
    wait = limiter.take(principal, cost)
    if wait <= 0:
        return
    RATE_LIMITED.labels(principal.api_key_id or "bearer").inc()
    rate, burst = limiter.limits_for(principal)
    raise ApiError(
        429,
        "Too many requests",
        [FieldError("rate_limit", f"at most {rate:g} events per second for this platform, {burst} at once")],
        headers={"Retry-After": str(retry_after_seconds(wait))},
    )

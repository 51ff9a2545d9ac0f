"""Unit tests for services.ingest.ratelimit: the token bucket and the 429 it leads to, on a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.ratelimit import RateLimiter, TokenBucket, enforce_rate_limit, retry_after_seconds
from shared.platform.http import PROBLEM_JSON, install_common
from shared.security.auth import Principal, RateLimit, Role


class FakeMonotonic:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def platform(
    subject: str = "platform:genesys", *, key: str | None = None, limit: RateLimit | None = None
) -> Principal:
    return Principal(subject=subject, role=Role.PLATFORM, api_key_id=key, rate_limit=limit)


# -- TokenBucket -----------------------------------------------------------------------------------------------


def test_a_new_bucket_grants_its_burst_then_refuses() -> None:
    bucket = TokenBucket(rate_per_second=2, burst=5, now=0.0)
    assert [bucket.take(1, 0.0) for _ in range(5)] == [0.0] * 5
    assert bucket.take(1, 0.0) == pytest.approx(0.5)  # one token comes in half a second at 2/s


def test_the_bucket_refills_at_its_rate_up_to_the_burst() -> None:
    bucket = TokenBucket(rate_per_second=2, burst=5, now=0.0)
    assert bucket.take(5, 0.0) == 0.0
    assert bucket.take(2, 0.9) > 0  # 1.8 tokens so far
    assert bucket.take(2, 1.0) == 0.0  # 2 tokens
    assert bucket.take(5, 100.0) == 0.0  # long idle: a full bucket, and no more than full
    assert bucket.take(1, 100.0) > 0


def test_a_refused_request_takes_nothing() -> None:
    bucket = TokenBucket(rate_per_second=1, burst=3, now=0.0)
    assert bucket.take(2, 0.0) == 0.0
    assert bucket.take(2, 0.0) == pytest.approx(1.0)
    assert bucket.take(1, 0.0) == 0.0  # the refused 2 did not spend the last token


def test_a_cost_above_the_burst_passes_on_a_full_bucket_and_leaves_a_debt() -> None:
    bucket = TokenBucket(rate_per_second=10, burst=100, now=0.0)
    assert bucket.take(250, 0.0) == 0.0  # would never fit otherwise
    # 150 tokens owed: a single event waits until the debt is paid and one token has come in.
    assert bucket.take(1, 0.0) == pytest.approx(15.1)
    assert bucket.take(1, 15.1) == 0.0


def test_a_bigger_request_waits_until_the_bucket_is_full() -> None:
    bucket = TokenBucket(rate_per_second=10, burst=100, now=0.0)
    assert bucket.take(50, 0.0) == 0.0
    assert bucket.take(250, 0.0) == pytest.approx(5.0)
    assert bucket.take(250, 5.0) == 0.0


def test_a_clock_going_back_does_not_drain_or_fill_the_bucket() -> None:
    bucket = TokenBucket(rate_per_second=1, burst=2, now=10.0)
    assert bucket.take(1, 10.0) == 0.0
    assert bucket.take(1, 5.0) == 0.0
    assert bucket.take(1, 5.0) > 0


def test_zero_cost_is_free() -> None:
    bucket = TokenBucket(rate_per_second=1, burst=1, now=0.0)
    assert bucket.take(1, 0.0) == 0.0
    assert bucket.take(0, 0.0) == 0.0
    assert bucket.take(-5, 0.0) == 0.0
    assert bucket.take(1, 0.0) > 0  # a negative cost added no tokens


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (float("inf"), 1), (float("nan"), 1), (1, 0)])
def test_limits_must_be_positive(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate_per_second=rate, burst=burst, now=0.0)


@given(
    rate=st.floats(min_value=0.1, max_value=1000),
    burst=st.integers(min_value=1, max_value=500),
    steps=st.lists(
        st.tuples(st.floats(min_value=0, max_value=2), st.integers(min_value=1, max_value=500)), max_size=60
    ),
)
def test_granted_events_never_exceed_burst_plus_rate_times_elapsed(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    bucket = TokenBucket(rate_per_second=rate, burst=burst, now=0.0)
    now, granted = 0.0, 0
    for pause, cost in steps:
        now += pause
        cost = min(cost, burst)  # larger requests are the documented debt case
        if bucket.take(cost, now) == 0.0:
            granted += cost
        assert granted <= burst + rate * now + 1e-6


@given(rate=st.floats(min_value=0.5, max_value=100), burst=st.integers(min_value=1, max_value=100))
def test_the_wait_it_names_is_enough(rate: float, burst: int) -> None:
    bucket = TokenBucket(rate_per_second=rate, burst=burst, now=0.0)
    bucket.take(burst, 0.0)
    wait = bucket.take(burst, 0.0)
    assert wait > 0
    assert bucket.take(burst, wait * (1 + 1e-9)) == 0.0


# -- RateLimiter -----------------------------------------------------------------------------------------------


def test_each_key_has_its_own_bucket_and_limits() -> None:
    clock = FakeMonotonic()
    limiter = RateLimiter(rate_per_second=100, burst=100, monotonic=clock)
    small = platform("platform:tiny", key="aaaaaaaaaaaaaaa1", limit=RateLimit(per_second=1, burst=2))
    other = platform("platform:big", key="bbbbbbbbbbbbbbb2")
    assert limiter.take(small) == limiter.take(small) == 0.0
    assert limiter.take(small) == pytest.approx(1.0)
    assert limiter.take(other, 100) == 0.0  # the defaults, untouched by the small key's use
    clock.advance(1.0)
    assert limiter.take(small) == 0.0


def test_a_key_without_limits_of_its_own_gets_the_defaults_field_by_field() -> None:
    limiter = RateLimiter(rate_per_second=7, burst=70, monotonic=FakeMonotonic())
    assert limiter.limits_for(platform(key="k1")) == (7, 70)
    assert limiter.limits_for(platform(key="k1", limit=RateLimit(per_second=2))) == (2, 70)
    assert limiter.limits_for(platform(key="k1", limit=RateLimit(burst=3))) == (7, 3)


def test_bearer_token_callers_are_limited_per_subject() -> None:
    limiter = RateLimiter(rate_per_second=1, burst=1, monotonic=FakeMonotonic())
    assert limiter.take(platform("genesys")) == 0.0
    assert limiter.take(platform("genesys")) > 0
    assert limiter.take(platform("giosg")) == 0.0


def test_two_keys_of_one_platform_are_separate_buckets() -> None:
    limiter = RateLimiter(rate_per_second=1, burst=1, monotonic=FakeMonotonic())
    assert limiter.take(platform(key="aaaaaaaaaaaaaaa1")) == 0.0
    assert limiter.take(platform(key="aaaaaaaaaaaaaaa2")) == 0.0


def test_changed_limits_apply_to_an_existing_bucket() -> None:
    clock = FakeMonotonic()
    limiter = RateLimiter(rate_per_second=1, burst=10, monotonic=clock)
    assert limiter.take(platform(key="k1"), 10) == 0.0
    faster = platform(key="k1", limit=RateLimit(per_second=100, burst=10))
    clock.advance(0.1)  # 0.1 token at the old rate
    assert limiter.take(faster, 10) == pytest.approx(0.099)  # the other 9.9 at the new one
    clock.advance(0.099)
    assert limiter.take(faster, 10) == 0.0


def test_the_least_recently_used_bucket_is_dropped_past_the_bound() -> None:
    limiter = RateLimiter(rate_per_second=1, burst=1, monotonic=FakeMonotonic(), max_buckets=2)
    limiter.take(platform("a"))
    limiter.take(platform("b"))
    limiter.take(platform("a"))  # refused, but "a" is now the most recent
    limiter.take(platform("c"))  # evicts "b"
    assert limiter.take(platform("a")) > 0
    assert limiter.take(platform("b")) == 0.0  # a fresh, full bucket


@pytest.mark.parametrize(("wait", "header"), [(0.001, 1), (0.5, 1), (1.0, 1), (1.01, 2), (99.2, 100)])
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(wait: float, header: int) -> None:
    assert retry_after_seconds(wait) == header


# -- enforce_rate_limit, over HTTP -------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
async def client(clock: FakeMonotonic) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_common(app, service="test", ready_checks=[])
    app.state.rate_limiter = RateLimiter(rate_per_second=1000, burst=1000, monotonic=clock)
    small = platform("platform:tiny", key="0123456789abcdef", limit=RateLimit(per_second=0.4, burst=3))

    @app.post("/events/{count}")
    async def events(request: Request, count: int) -> dict[str, int]:
        await enforce_rate_limit(request, small, cost=count)
        return {"accepted": count}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sailo.test") as http:
        yield http


async def test_over_the_limit_is_429_problem_json_with_retry_after(
    client: httpx.AsyncClient, clock: FakeMonotonic
) -> None:
    assert (await client.post("/events/3")).status_code == 200
    refused = await client.post("/events/1")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert refused.headers["Retry-After"] == "3"  # one token at 0.4/s: 2.5 s, rounded up
    body = refused.json()
    assert body["title"] == "Too many requests"
    assert body["status"] == 429
    clock.advance(2.5)
    assert (await client.post("/events/1")).status_code == 200


async def test_a_batch_costs_its_number_of_events(client: httpx.AsyncClient) -> None:
    assert (await client.post("/events/2")).status_code == 200
    assert (await client.post("/events/2")).status_code == 429
    assert (await client.post("/events/1")).status_code == 200


async def test_enforce_rate_limit_needs_a_limiter() -> None:
    app = FastAPI()

    @app.get("/")
    async def index(request: Request) -> None:
        await enforce_rate_limit(request, platform())

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://sailo.test") as http:
        with pytest.raises(RuntimeError, match="rate_limiter"):
            await http.get("/")

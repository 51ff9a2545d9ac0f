"""How a service process runs: served by uvicorn, its background work in rounds, one way to retry.

Every long-running piece of background work (the consumer loops, the audit and outbox relays, the retention
sweeper, the DSR and loan watches) repeats a round until told to stop, and waits and tries again when a round
fails: :func:`repeat_rounds` is that loop, written once. :func:`in_background` starts a service's pieces of
work with its app and stops them, last started first, when the app stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Protocol

import uvicorn

from shared.platform.logging import configure_logging, get_logger
from shared.platform.settings import Settings

log = get_logger(__name__)


async def repeat_rounds(
    round_: Callable[[], Awaitable[bool]],
    *,
    stopping: asyncio.Event,
    idle_seconds: float,
    failure_event: str,
    backoff: tuple[float, float] | None = (0.5, 10.0),
    recover: Callable[[], Awaitable[None]] | None = None,
    **log_fields: Any,
) -> None:
    """Run `round_` until `stopping` is set: again at once while it answers True (more work waits), else after
    `idle_seconds`.

    A round that fails is logged by its error class only (a message could quote data); `recover` then puts
    things back (a consumer rewinds to its committed offsets), and the round is tried again after a pause
    that doubles from ``backoff[0]`` up to ``backoff[1]`` while failures go on, or after `idle_seconds` when
    `backoff` is None. Every round works in transactions of its own, so a failed one leaves nothing half done.
    """
    wait = backoff[0] if backoff else idle_seconds
    while not stopping.is_set():
        try:
            more = await round_()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next round tries again; nothing was half done
            if stopping.is_set():
                return
            log.warning(failure_event, error=type(exc).__name__, retry_in_seconds=wait, **log_fields)
            if recover is not None:
                with contextlib.suppress(Exception):
                    await recover()
            await pause(stopping, wait)
            if backoff:
                wait = min(wait * 2, backoff[1])
            continue
        wait = backoff[0] if backoff else idle_seconds
        if not more:
            await pause(stopping, idle_seconds)


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stopping` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)


async def stop_task(task: asyncio.Task[None] | None, *, grace_seconds: float) -> None:
    """Wait up to `grace_seconds` for a task already told to stop to finish its round, then cancel it (a round
    cut short rolls back and is done again by whoever runs next)."""
    if task is None:
        return
    done, _ = await asyncio.wait({task}, timeout=grace_seconds)
    if not done:
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class BackgroundWork(Protocol):
    """What :func:`in_background` runs: ``start`` before the app serves, ``run`` as a task, ``stop`` after."""

    @property
    def name(self) -> str: ...

    async def start(self) -> None: ...

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


@asynccontextmanager
async def in_background(*work: BackgroundWork) -> AsyncIterator[None]:
    """Start each piece of `work` and run it as a task while the block runs; on the way out stop them, the
    last started first, and wait for their tasks (a round cut short rolls back and is done again later)."""
    started: list[BackgroundWork] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for piece in work:
            await piece.start()
            started.append(piece)
            tasks.append(asyncio.create_task(piece.run(), name=piece.name))
        yield
    finally:
        for piece in reversed(started):
            await piece.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Periodic:
    """A round of work every `interval_seconds` until stopped: the retention sweeper, the DSR deadline watch
    and the export loan watch. Subclasses define `round()` and name the log event of a failed round in
    `failure_event`; a failed round is tried again at the next interval."""

    name: ClassVar[str] = "periodic"
    failure_event: ClassVar[str]

    def __init__(self, *, interval_seconds: float = 60.0) -> None:
        self.interval_seconds = interval_seconds
        self._stopping = asyncio.Event()

    async def round(self) -> object:
        raise NotImplementedError

    async def start(self) -> None:
        self._stopping.clear()

    async def run(self, interval_seconds: float | None = None) -> None:
        """A round every `interval_seconds` (default: the one it was made with) until `stop()`."""
        interval = self.interval_seconds if interval_seconds is None else interval_seconds

        async def one_round() -> bool:
            await self.round()
            return False

        await repeat_rounds(
            one_round,
            stopping=self._stopping,
            idle_seconds=interval,
            failure_event=self.failure_event,
            backoff=None,
        )

    async def stop(self) -> None:
        self._stopping.set()


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

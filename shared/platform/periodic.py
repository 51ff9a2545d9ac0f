"""A round of background work repeated on an interval until stopped: the retention sweeper, the DSR deadline
watch and the export loan watch.

A round that fails is logged by its error class only (a message could quote data) and simply tried again at the
next interval: each round works in transactions of its own, so a failed one leaves nothing half done.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import ClassVar

from shared.platform.logging import get_logger

log = get_logger(__name__)


class Periodic:
    """Subclasses define `round()` and name the log event of a failed round in `failure_event`."""

    failure_event: ClassVar[str]

    def __init__(self) -> None:
        self._stopping = asyncio.Event()

    async def round(self) -> object:
        raise NotImplementedError

    async def run(self, interval_seconds: float) -> None:
        """A round every `interval_seconds` until `stop()`."""
        while not self._stopping.is_set():
            try:
                await self.round()
            except Exception as exc:  # the next round tries again; nothing was half done
                log.warning(self.failure_event, error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=interval_seconds)

    def stop(self) -> None:
        self._stopping.set()

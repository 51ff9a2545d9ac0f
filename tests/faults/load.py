"""The harness's platform: a stream of contact events sent to ingest in HTTP batches, and the ledger of what
ingest acknowledged.

The sender behaves as a careful telephony platform does: an event counts as delivered only when ingest
answers 202 for it; an event answered 503 is sent again after Retry-After; a request that gets no answer at all
(the process was killed mid-request) is sent again whole, so ingest sees resends of events it may already have.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from tests.faults.cluster import Cluster

BATCH = 250
"""Events per request: a platform's usual batch; small enough that a lost answer resends little."""

EXPIRED_EVERY = 10
"""Every tenth contact is an old one whose retention has already run out, so the sweeper deletes as it goes."""

EXPIRED_AT = "2024-01-15T10:00:00+02:00"
"""Older than PRH's longest customer-service period (two years), after the register began (2017-10-01)."""

RETRY_AFTER_CAP = 5.0


@dataclass
class Window:
    """A span of time on the monotonic clock during which the broker did not answer."""

    start: float
    end: float = float("inf")


@dataclass
class Ledger:
    """What the platform knows: every event it sent, and which ones ingest acknowledged (202)."""

    sent: set[str] = field(default_factory=set)
    acknowledged: set[str] = field(default_factory=set)
    expired: set[str] = field(default_factory=set)
    """Ids of the events of already-expired contacts."""
    expired_contacts: set[str] = field(default_factory=set)
    answers: Counter[str] = field(default_factory=Counter)
    """Item outcomes and request failures, e.g. accepted, duplicate, 503, no answer, HTTP 500."""
    accepted_while_broker_away: list[str] = field(default_factory=list)
    """Event ids answered 'accepted' by a request made wholly while the broker did not answer: must stay empty."""
    unavailable_while_broker_away: int = 0
    """Events answered 503 by a request that overlapped a broker outage."""
    first_sent: float = 0.0
    last_acknowledged: float = 0.0


class EventStream:
    """Contacts of five events (a call with its customer's number and the agent, chat lines), every tenth an
    expired single-event call; endless, so a run sends for as long as its faults take."""

    def __init__(self, run: str) -> None:
        self.run = run
        self._contacts = itertools.count()

    def batches(self) -> Iterator[list[dict[str, Any]]]:
        pending: list[dict[str, Any]] = []
        for number in self._contacts:
            pending.extend(self._contact(number))
            if len(pending) >= BATCH:
                yield pending
                pending = []

    def _contact(self, number: int) -> list[dict[str, Any]]:
        contact_id = f"fault-{self.run}-{number}"
        if number % EXPIRED_EVERY == EXPIRED_EVERY - 1:
            return [_event("call.started", contact_id, EXPIRED_AT, _call_started(number))]
        at = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
        return [
            _event("call.started", contact_id, at, _call_started(number)),
            _event(
                "call.answered", contact_id, at, {"agent": {"id": f"agent-{number % 40}", "name": "Aino A"}}
            ),
            _event(
                "chat.message", contact_id, at, {"sender": "customer", "text": f"Kysymys numero {number}"}
            ),
            _event("chat.message", contact_id, at, {"sender": "agent", "text": "Kiitos, katson asiaa."}),
            _event("call.ended", contact_id, at, {}),
        ]


def _call_started(number: int) -> dict[str, Any]:
    return {
        "direction": "inbound",
        "caller_number": f"+35840{number % 10_000_000:07d}",
        "service_number": "+358295095000",
    }


def _event(event_type: str, contact_id: str, at: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "version": "1",
        "register": "prh-customer-service",
        "contact_id": contact_id,
        "occurred_at": at,
        "producer": "fault-harness",
        "data": data,
    }


class Sender:
    """Sends batches from `stream` with `concurrency` requests in flight, round-robin over the live ingest HTTP
    instances, until `enough()` says so; `rate` (events/s) paces a steady stream instead of a flat-out one."""

    def __init__(
        self,
        cluster: Cluster,
        stream: EventStream,
        ledger: Ledger,
        *,
        concurrency: int = 4,
        rate: float | None = None,
        outages: list[Window] | None = None,
    ) -> None:
        self.cluster = cluster
        self.ledger = ledger
        self.concurrency = concurrency
        self.rate = rate
        self.outages = outages if outages is not None else []
        self._fresh = stream.batches()
        self._retry: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        self._next_instance = itertools.count()
        self._headers = {"Authorization": f"Bearer {cluster.token}", "Content-Type": "application/json"}

    async def run(self, enough: Callable[[], bool]) -> None:
        started = time.monotonic()
        self.ledger.first_sent = started
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=2.0)) as client:

            async def worker() -> None:
                while True:
                    if not self._retry.empty():
                        batch = self._retry.get_nowait()
                    elif enough():
                        return
                    else:
                        batch = next(self._fresh)
                        self._remember(batch)
                        if self.rate is not None:
                            sent = len(self.ledger.sent)
                            await asyncio.sleep(max(0.0, started + sent / self.rate - time.monotonic()))
                    await self._send(client, batch)

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    def _remember(self, batch: list[dict[str, Any]]) -> None:
        for event in batch:
            self.ledger.sent.add(event["event_id"])
            if event["occurred_at"] == EXPIRED_AT:
                self.ledger.expired.add(event["event_id"])
                self.ledger.expired_contacts.add(event["contact_id"])

    def _instance_url(self) -> str | None:
        live = [i for i in self.cluster.of_kind("ingest-http") if i.alive()]
        if not live:
            return None
        return live[next(self._next_instance) % len(live)].url

    async def _send(self, client: httpx.AsyncClient, batch: list[dict[str, Any]]) -> None:
        url = self._instance_url()
        if url is None:
            await asyncio.sleep(0.2)
            await self._retry.put(batch)
            return
        began = time.monotonic()
        try:
            response = await client.post(
                f"{url}/v1/events/batch", content=orjson.dumps(batch), headers=self._headers
            )
        except httpx.HTTPError:
            # No answer (the process died, or the connection was refused): the outcome is unknown, send again.
            self.ledger.answers["no answer (resent)"] += 1
            await asyncio.sleep(0.2)
            await self._retry.put(batch)
            return
        ended = time.monotonic()
        if response.status_code not in (202, 207):
            self.ledger.answers[f"HTTP {response.status_code}"] += 1
            if response.status_code == 503 and self._overlaps_outage(began, ended):
                self.ledger.unavailable_while_broker_away += len(batch)
            await self._honour_retry_after(response)
            await self._retry.put(batch)
            return
        by_id = {event["event_id"]: event for event in batch}
        again = []
        for result in response.json()["results"]:
            event_id = result["event_id"]
            if result["status"] == 202:
                self.ledger.acknowledged.add(event_id)
                self.ledger.answers[result["outcome"]] += 1
                if result["outcome"] == "accepted" and self._inside_outage(began, ended):
                    self.ledger.accepted_while_broker_away.append(event_id)
            elif result["status"] == 503:
                self.ledger.answers["item 503 (resent)"] += 1
                if self._overlaps_outage(began, ended):
                    self.ledger.unavailable_while_broker_away += 1
                again.append(by_id[event_id])
            else:
                self.ledger.answers[f"item {result['status']}"] += 1
        if again:
            await self._honour_retry_after(response)
            await self._retry.put(again)
        self.ledger.last_acknowledged = time.monotonic()

    def _inside_outage(self, began: float, ended: float) -> bool:
        return any(w.start <= began and ended <= w.end for w in self.outages)

    def _overlaps_outage(self, began: float, ended: float) -> bool:
        return any(began <= w.end and w.start <= ended for w in self.outages)

    async def _honour_retry_after(self, response: httpx.Response) -> None:
        try:
            wait = float(response.headers.get("Retry-After", "0.5"))
        except ValueError:
            wait = 0.5
        await asyncio.sleep(min(wait, RETRY_AFTER_CAP))

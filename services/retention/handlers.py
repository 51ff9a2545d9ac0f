"""Retention's consumers, one batch handler per (topic, consumer group):

- ``retention-scheduler`` on the contact events: each contact's facts and schedule (services.retention.service
  .schedule). It reads only the events' clear metadata, never their sealed content.
- ``retention-requests`` on the DSR events: restrictions become holds, erasures make items due now
  (services.retention.service.requests).

Each batch is applied in the consumer loop's transaction with its tracking rows (shared.messaging.kafka), so a
redelivered event changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Final
from uuid import UUID

from aiokafka import ConsumerRecord
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.retention.service import requests
from services.retention.service.schedule import fold_and_schedule, rearm_shredded
from shared.contracts.domain_events import DomainEventHandler, Received, RequestContactsData
from shared.contracts.events import SealedContactEvent
from shared.platform.clock import Clock
from shared.platform.crypto import BlindIndex
from shared.platform.errors import PoisonMessage
from shared.platform.http import pydantic_errors
from shared.policy.registry import PolicyRegistry


class ScheduleHandler:
    """Consumer-loop handler on the contact-events topic (group ``retention-scheduler``)."""

    def __init__(self, policies: PolicyRegistry, blind_index: BlindIndex) -> None:
        self.policies = policies
        self.blind_index = blind_index

    def decode(self, record: ConsumerRecord[bytes, bytes]) -> SealedContactEvent:
        try:
            return SealedContactEvent.model_validate_json(record.value or b"")
        except ValidationError as exc:
            reason = "; ".join(f"{e.field}: {e.reason}" for e in pydantic_errors(exc.errors()))
            raise PoisonMessage(reason[:1000]) from None

    def identify(self, item: SealedContactEvent) -> tuple[UUID, str]:
        return item.event_id, item.content_digest

    async def apply(self, session: AsyncSession, items: list[SealedContactEvent]) -> None:
        await fold_and_schedule(session, self.policies, self.blind_index, items)

    async def apply_repeats(self, session: AsyncSession, items: list[SealedContactEvent]) -> None:
        """Events seen before: only a class shredded since and keyed again needs them (see rearm_shredded)."""
        await rearm_shredded(session, self.policies, self.blind_index, items)


Decision = Callable[[AsyncSession, RequestContactsData, datetime], Awaitable[None]]

DSR_DECISIONS: Final[Mapping[str, Decision]] = {
    "dsr.erasure_decided": requests.erase,
    "dsr.restriction_applied": requests.restrict,
    "dsr.restriction_lifted": requests.lift_restriction,
}
"""The DSR event types retention acts on; the others on the topic are not its business."""


class RequestHandler(DomainEventHandler[RequestContactsData]):
    """Consumer-loop handler on the DSR events topic (group ``retention-requests``)."""

    wants = RequestContactsData
    topic_description = "DSR event"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def apply(self, session: AsyncSession, items: list[Received[RequestContactsData]]) -> None:
        now = self.clock.now()
        for item in items:
            decision = DSR_DECISIONS.get(item.event.type)
            if decision is None or item.data is None or not item.data.contact_refs:
                continue
            await decision(session, item.data, now)

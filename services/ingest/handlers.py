"""The two consumers ingest runs, one batch handler per (topic, consumer group).

- record store (contact-events, ingest-record-store): sealed events into the record store, exactly once per
  event id; what each event type changes in its contact is services.ingest.service.folding's FOLDS table;
- intake (contact-events.intake, ingest-intake): plaintext events that platforms produce straight onto the
  intake topic, through the same validation as HTTP, then sealed and published like an HTTP event. Invalid ones
  go to the intake dead-letter topic.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from aiokafka import ConsumerRecord
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.service.folding import fold_contacts
from services.ingest.service.intake import IntakeService, Validated
from shared.audit.chain import Action
from shared.audit.log import SYSTEM_ROLE, record, system_actor
from shared.contracts.events import SealedContactEvent
from shared.platform.clock import Clock
from shared.platform.errors import PoisonMessage
from shared.platform.http import pydantic_errors
from shared.recordstore.store import RecordStore


def _reason(errors: Any) -> str:
    return "; ".join(f"{e.field}: {e.reason}" for e in errors)[:1000]


class RecordStoreHandler:
    def __init__(self, store: RecordStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def decode(self, record: ConsumerRecord[bytes, bytes]) -> SealedContactEvent:
        try:
            return SealedContactEvent.model_validate_json(record.value or b"")
        except ValidationError as exc:
            raise PoisonMessage(_reason(pydantic_errors(exc.errors()))) from None

    def identify(self, item: SealedContactEvent) -> tuple[UUID, str]:
        return item.event_id, item.content_digest

    async def apply(self, session: AsyncSession, items: list[SealedContactEvent]) -> None:
        await self.store.apply(session, items, fold_contacts(items))
        # The record store changed: one audit entry per batch, in the batch's transaction, naming the contacts.
        await record(
            session,
            actor=system_actor("ingest"),
            role=SYSTEM_ROLE,
            action=Action.CHANGE,
            object_type="contact",
            object_ids=sorted({item.contact_ref for item in items}),
            service="ingest",
            occurred_at=self.clock.now(),
        )


class IntakeHandler:
    def __init__(self, intake: IntakeService) -> None:
        self.intake = intake

    def decode(self, record: ConsumerRecord[bytes, bytes]) -> Validated:
        try:
            raw = orjson.loads(record.value or b"")
        except orjson.JSONDecodeError:
            raise PoisonMessage("body: not valid JSON") from None
        result = self.intake.validate(raw)
        if not isinstance(result, Validated):
            raise PoisonMessage(_reason(result.errors))
        return result

    def identify(self, item: Validated) -> tuple[UUID, str]:
        return item.event.event_id, item.digest

    async def apply(self, session: AsyncSession, items: list[Validated]) -> None:
        # Publishing uses its own transactions (the data keys must be committed before anything sealed under
        # them is published); a failure raises, so this batch's offsets stay uncommitted and come again.
        outcomes = await self.intake.accept_validated(items)
        unavailable = [o for o in outcomes if o.status == 503]
        if unavailable:
            raise ConnectionError(f"broker did not acknowledge {len(unavailable)} event(s)")

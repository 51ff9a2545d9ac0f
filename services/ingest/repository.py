"""Queries of ingest's own table, the ledger of accepted events (ingest.accepted_events)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.models import AcceptedEvent
from shared.contracts.events import SealedContactEvent
from shared.platform.db import bulk_insert

# One array parameter rather than an IN list: the same statement for any number of ids.
_LEDGER_LOOKUP = text(
    "SELECT event_id, content_digest FROM ingest.accepted_events WHERE event_id = ANY(CAST(:ids AS uuid[]))"
)


async def accepted_digests(session: AsyncSession, event_ids: Collection[UUID]) -> dict[UUID, str]:
    """The content digest each of `event_ids` was accepted with, for those the ledger has."""
    rows = await session.execute(_LEDGER_LOOKUP, {"ids": list(event_ids)})
    return {row[0]: row[1] for row in rows}


async def record_accepted(session: AsyncSession, events: Sequence[SealedContactEvent]) -> set[UUID]:
    """Enter the events into the ledger; the ids entered now (an id already there keeps its first entry)."""
    result = await bulk_insert(
        session,
        AcceptedEvent,
        [
            {"event_id": e.event_id, "content_digest": e.content_digest, "register": e.register}
            for e in events
        ],
        tail="ON CONFLICT DO NOTHING RETURNING event_id",
    )
    return set(result.scalars().all())

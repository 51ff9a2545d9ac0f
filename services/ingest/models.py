"""Ingest's own table: the ledger of accepted event ids, so a resend is recognised and a changed resend refused."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import DateTime, String, func
from sqlalchemy.orm import Mapped, mapped_column

from shared.platform.db import Base


class AcceptedEvent(Base):
    __tablename__ = "accepted_events"
    __table_args__ = {"schema": "ingest"}

    event_id: Mapped[UUID] = mapped_column(primary_key=True)
    # Keyed digest of the validated event: equal for a faithful resend, different for a changed one.
    content_digest: Mapped[str] = mapped_column(String(64))
    register: Mapped[str] = mapped_column(String(64))
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

"""The retention service's tables (schema ``retention``): what it knows of each contact, the schedule, and the
certificates of deletion. None of them holds personal data: contacts appear only by their pseudonymous ref."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Date, DateTime, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.platform.db import Base

SCHEMA = "retention"


class ContactFacts(Base):
    """The times a contact's retention clocks start from, folded from the events' clear metadata (never their
    sealed content): first and last event, the end of the call or chat, case status changes, chatbot messages."""

    __tablename__ = "contact_facts"
    __table_args__ = {"schema": SCHEMA}

    contact_ref: Mapped[UUID] = mapped_column(primary_key=True)
    register: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    case_history: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    """[[status, iso time], ...] in time order: "open" from case.opened, "closed" from case.closed."""
    message_times: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    """ISO times of the contact's chatbot messages (field-level redaction runs per message)."""
    case_ref: Mapped[str | None] = mapped_column(String(64))
    """Pseudonym of the contact's case (blind index of register and case number), for holds on a case."""
    artifact_classes: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    """The classes this contact can hold: those of its events, a recording for a call, the identifiers of a
    chatbot conversation. Only these are scheduled: a rule for data the contact never had deletes nothing."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ScheduleItem(Base):
    """When one artifact class of one contact falls due, under which rule; `item` tells apart the per-message
    items of a field-level rule ("" for a class-level one)."""

    __tablename__ = "schedule"
    __table_args__ = (
        # The sweeper's query: due items not yet done, in due order. Partial, so done items cost nothing.
        Index(
            "ix_schedule_due", "due_at", postgresql_where=text("state = 'scheduled' AND due_at IS NOT NULL")
        ),
        {"schema": SCHEMA},
    )

    contact_ref: Mapped[UUID] = mapped_column(primary_key=True)
    artifact_class: Mapped[str] = mapped_column(String(40), primary_key=True)
    item: Mapped[str] = mapped_column(String(40), primary_key=True, default="")
    register: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(10))
    trigger: Mapped[str] = mapped_column(String(20))
    trigger_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(12), default="scheduled")
    """scheduled, or done once deleted or redacted."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Certificate(Base):
    """A certificate of deletion (or redaction): what was destroyed, under which rule, when, and how.
    Append-only: the database refuses UPDATE, DELETE and TRUNCATE."""

    __tablename__ = "certificates"
    __table_args__ = (
        Index("ix_certificates_register_done", "register", "done_at"),
        Index("ix_certificates_contact", "contact_ref"),
        {"schema": SCHEMA},
    )

    certificate_id: Mapped[UUID] = mapped_column(primary_key=True)
    contact_ref: Mapped[UUID] = mapped_column()
    register: Mapped[str] = mapped_column(String(64))
    artifact_class: Mapped[str] = mapped_column(String(40))
    item: Mapped[str] = mapped_column(String(40))
    policy_version: Mapped[str] = mapped_column(String(40))
    rule: Mapped[str] = mapped_column(String(100))
    """The rule as written in the policy: class/period/trigger/action, e.g. "recording/P6M/contact_start/delete"."""
    trigger: Mapped[str] = mapped_column(String(20))
    trigger_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ciphertext_sha256: Mapped[str] = mapped_column(String(64))
    """SHA-256 over the destroyed ciphertext (the encrypted blob, or the sealed rows in a fixed order)."""
    items: Mapped[int] = mapped_column(Integer)
    """How many stored pieces (rows, blobs) the deletion removed or redacted."""
    method: Mapped[str] = mapped_column(String(40))
    """crypto-shredding (data key destroyed, then rows and blobs removed) or redaction."""


class Hold(Base):
    """A legal hold: while it is active, nothing it covers is deleted or redacted, whatever the schedule says.

    `scope` is contact, case, subject or register; `target` is the contact's pseudonymous ref, the case's
    pseudonym, the subject's blind-index digest, or the register id - never an identifier in clear.
    """

    __tablename__ = "holds"
    __table_args__ = (
        Index("ix_holds_active", "scope", "target", postgresql_where=text("lifted_at IS NULL")),
        {"schema": SCHEMA},
    )

    hold_number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(10))
    target: Mapped[str] = mapped_column(String(100))
    register: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))
    legal_reference: Mapped[str] = mapped_column(String(200))
    placed_by: Mapped[UUID] = mapped_column()
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_on: Mapped[date | None] = mapped_column(Date)
    lifted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lifted_by: Mapped[UUID | None] = mapped_column()

    @property
    def hold_id(self) -> str:
        return f"H-{self.hold_number}"


class BlobDeletion(Base):
    """Blobs whose key is already destroyed, to remove from the blob store after the commit; a crash between
    the two leaves the row here and the next sweep removes the blob (unreadable meanwhile: its key is gone)."""

    __tablename__ = "blob_deletions"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    blob_key: Mapped[str] = mapped_column(String(300))
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

"""The record store's tables: contacts, their events, parties, messages, artifacts, the subject index and the
rectification log, in the PostgreSQL schema ``records``.

Only shared/recordstore names these tables (docs/architecture.md): services ask it for what they need through
its functions, so a column rename breaks nothing outside this package without an import to show it.
Personal fields hold ciphertext under the contact's data key for the artifact's retention class
(shared.recordstore.keystore); the clear columns are what access control and retention need.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.platform.db import Base
from shared.recordstore.keystore import key_context

SCHEMA = "records"


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_register_started", "register", "started_at"),
        Index("ix_contacts_agent", "agent_id"),
        {"schema": SCHEMA},
    )

    contact_ref: Mapped[UUID] = mapped_column(primary_key=True)
    register: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    direction: Mapped[str | None] = mapped_column(String(10))
    agent_id: Mapped[str | None] = mapped_column(String(100))
    case_number: Mapped[str | None] = mapped_column(String(100))
    case_status: Mapped[str | None] = mapped_column(String(10))
    case_status_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    restricted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Set while processing is restricted (GDPR Art. 18): stored, but shown only to the legal-claims role."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ContactEventRow(Base):
    """Every accepted event of a contact, sealed as it travelled; the source for access packages."""

    __tablename__ = "contact_events"
    __table_args__ = (Index("ix_contact_events_contact", "contact_ref", "occurred_at"), {"schema": SCHEMA})

    event_id: Mapped[UUID] = mapped_column(primary_key=True)
    contact_ref: Mapped[UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.contacts.contact_ref", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(40))
    artifact_class: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    content_digest: Mapped[str] = mapped_column(String(64))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class Party(Base):
    """A person in a contact: the customer, or the official who handled it."""

    __tablename__ = "parties"
    __table_args__ = (UniqueConstraint("contact_ref", "role", "identity_digest"), {"schema": SCHEMA})

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    contact_ref: Mapped[UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.contacts.contact_ref", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(String(20))
    # Keyed digest of the party's details: the same person seen in several events is one row.
    identity_digest: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str | None] = mapped_column(String(100))
    artifact_class: Mapped[str] = mapped_column(String(40))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_contact", "contact_ref", "sent_at"), {"schema": SCHEMA})

    event_id: Mapped[UUID] = mapped_column(primary_key=True)
    contact_ref: Mapped[UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.contacts.contact_ref", ondelete="CASCADE")
    )
    sender: Mapped[str] = mapped_column(String(20))
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    artifact_class: Mapped[str] = mapped_column(String(40))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class Artifact(Base):
    """One retention unit of a contact: what retention schedules and deletes."""

    __tablename__ = "artifacts"
    __table_args__ = {"schema": SCHEMA}

    contact_ref: Mapped[UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.contacts.contact_ref", ondelete="CASCADE"), primary_key=True
    )
    artifact_class: Mapped[str] = mapped_column(String(40), primary_key=True)
    register: Mapped[str] = mapped_column(String(64))
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20), default="active")
    blob_key: Mapped[str | None] = mapped_column(String(300))
    content_type: Mapped[str | None] = mapped_column(String(100))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    ciphertext_sha256: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SubjectIndex(Base):
    """Blind index: keyed hashes of normalised identifiers -> contacts. No plaintext identifier is stored."""

    __tablename__ = "subject_index"
    __table_args__ = (Index("ix_subject_index_contact", "contact_ref"), {"schema": SCHEMA})

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(30), primary_key=True)
    contact_ref: Mapped[UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.contacts.contact_ref", ondelete="CASCADE"), primary_key=True
    )


class Rectification(Base):
    """What a rectification (GDPR Art. 16) changed in a contact: a corrected customer field, with its earlier
    value, or a supplementary statement added to a recording, transcript or messages, which are never edited.

    `sealed` is under the contact's data key for `artifact_class` (the class the corrected data or the content
    belongs to), so the history is readable exactly as long as that data is kept and is shredded with it.
    """

    __tablename__ = "rectifications"
    __table_args__ = (Index("ix_rectifications_contact", "contact_ref", "made_at"), {"schema": SCHEMA})

    id: Mapped[UUID] = mapped_column(primary_key=True)
    contact_ref: Mapped[UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.contacts.contact_ref", ondelete="CASCADE")
    )
    artifact_class: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    """correction or statement."""
    field: Mapped[str | None] = mapped_column(String(40))
    """The customer field corrected (phone, email, name, nickname, personal_identity_code); none for a
    statement."""
    case_number: Mapped[str] = mapped_column(String(20))
    """The data-subject request that asked for it (DSR-2026-000123)."""
    made_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    """A correction: {"previous": earlier value}. A statement: {"text": ...}."""


def sealed_aad(contact_ref: UUID, artifact_class: str, part: str) -> bytes:
    """Associated data for a sealed value: a ciphertext cannot be moved to another contact, class or column."""
    return key_context(contact_ref, artifact_class) + b"|" + part.encode()

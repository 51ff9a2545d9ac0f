"""The export service's tables (schema ``export``): loans of recordings to research institutes, the items lent,
the institutes' attestations and the notices they must acknowledge, and the register of other disclosures."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.platform.db import Base

SCHEMA = "export"


class Loan(Base):
    """A loan agreement with one institute. Institutes see only their own rows (row-level security too)."""

    __tablename__ = "loans"
    __table_args__ = (Index("ix_loans_institute", "institute_id"), {"schema": SCHEMA})

    loan_id: Mapped[UUID] = mapped_column(primary_key=True)
    institute_id: Mapped[str] = mapped_column(String(64))
    agreement_ref: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(500))
    study_ends_on: Mapped[date] = mapped_column(Date)
    institute_name: Mapped[str] = mapped_column(String(200))
    contact_person: Mapped[str] = mapped_column(String(200))
    """The institute's named contact for the study (an official of the borrower, not a data subject)."""
    legal_basis: Mapped[str] = mapped_column(String(300))
    """The ground of the disclosure, as the agreement states it (e.g. GDPR Art. 6(1)(e) with Art. 89)."""
    commitment: Mapped[str] = mapped_column(String(10))
    """What the institute undertakes at the study's end: return or destroy."""
    status: Mapped[str] = mapped_column(String(20))
    """draft until a second research officer approves it (four eyes); nothing is selected or delivered before."""
    created_by: Mapped[UUID] = mapped_column()
    """Pseudonymous id of the research officer who set the loan up (as in the audit log)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    approved_by: Mapped[UUID | None] = mapped_column()
    """Pseudonymous id of the second research officer who approved it; never the one who set it up."""
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    selection: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """The criteria, the seed, and how many contacts each default exclusion kept out (counts only)."""
    selected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    package_blob_key: Mapped[str | None] = mapped_column(String(300))
    package_sha256: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 of the encrypted package as stored and delivered."""
    package_bytes: Mapped[int | None] = mapped_column(BigInteger)
    package_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The per-loan package key, wrapped by the KEK; released to the institute apart from the package."""
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    packaged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    key_released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lent_on: Mapped[date | None] = mapped_column(Date)
    due_on: Mapped[date | None] = mapped_column(Date)
    """The day every item must be returned or destroyed by: the study's end."""
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    overdue_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[UUID | None] = mapped_column()


class LoanItem(Base):
    """One recording of a loan. The institute knows it only by `item_id`, a random number drawn for this loan."""

    __tablename__ = "loan_items"
    __table_args__ = (
        UniqueConstraint("loan_id", "contact_ref", "artifact_class"),
        Index("ix_loan_items_contact", "contact_ref"),
        {"schema": SCHEMA},
    )

    item_id: Mapped[UUID] = mapped_column(primary_key=True)
    loan_id: Mapped[UUID] = mapped_column(ForeignKey("export.loans.loan_id"))
    contact_ref: Mapped[UUID] = mapped_column()
    artifact_class: Mapped[str] = mapped_column(String(40))
    register: Mapped[str] = mapped_column(String(64))
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 of the audio as the institute receives it (the manifest's checksum)."""
    overridden_exclusion: Mapped[str | None] = mapped_column(String(40))
    """The default exclusion a research officer overrode for this item, if any; who and why are beside it."""
    override_justification: Mapped[str | None] = mapped_column(String(500))
    override_by: Mapped[UUID | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(20))
    """selected -> lent -> returned | destroyed."""
    accounted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attestation_id: Mapped[UUID | None] = mapped_column()


class Attestation(Base):
    """The institute's signed statement that items (or the whole loan) were returned or destroyed."""

    __tablename__ = "attestations"
    __table_args__ = {"schema": SCHEMA}

    attestation_id: Mapped[UUID] = mapped_column(primary_key=True)
    loan_id: Mapped[UUID] = mapped_column(ForeignKey("export.loans.loan_id"))
    outcome: Mapped[str] = mapped_column(String(10))
    destroyed_on: Mapped[date | None] = mapped_column(Date)
    method: Mapped[str | None] = mapped_column(String(10))
    """NIST SP 800-88 sanitisation level: clear, purge or destroy."""
    tool: Mapped[str | None] = mapped_column(String(200))
    signer: Mapped[str] = mapped_column(String(200))
    """The institute's official who signs (not a data subject)."""
    whole_loan: Mapped[bool] = mapped_column(Boolean)
    item_count: Mapped[int] = mapped_column(Integer)
    attested_by: Mapped[UUID] = mapped_column()
    attested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Notice(Base):
    """An item the institute must act on before the study ends (GDPR Art. 19): destroy it (its retention ended,
    or the data subject's data were erased), stop using it (restricted), or note a correction (rectified)."""

    __tablename__ = "notices"
    __table_args__ = (
        UniqueConstraint("source_event_id", "item_id"),
        Index("ix_notices_open", "issued_at", postgresql_where=text("acknowledged_at IS NULL")),
        {"schema": SCHEMA},
    )

    notice_id: Mapped[UUID] = mapped_column(primary_key=True)
    loan_id: Mapped[UUID] = mapped_column(ForeignKey("export.loans.loan_id"))
    item_id: Mapped[UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(20))
    """destroy, restrict, restriction_lifted or rectify."""
    cause: Mapped[str] = mapped_column(String(64))
    """retention_expired, or the DSR ground (art17_1_a, art18_1_c, art16...)."""
    source_event_id: Mapped[UUID] = mapped_column()
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[UUID | None] = mapped_column()
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ContactFlag(Base):
    """What the DSR service decided about a contact, as export needs it for selection: restricted, held for a
    DSR, objected to, or being erased. Kept from the DSR events topic; cleared when lifted."""

    __tablename__ = "contact_flags"
    __table_args__ = {"schema": SCHEMA}

    contact_ref: Mapped[UUID] = mapped_column(primary_key=True)
    flag: Mapped[str] = mapped_column(String(20), primary_key=True)
    case_number: Mapped[str] = mapped_column(String(20), primary_key=True)
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Disclosure(Base):
    """A disclosure other than a research loan, e.g. to the police or another authority when a case needs it."""

    __tablename__ = "disclosures"
    __table_args__ = {"schema": SCHEMA}

    disclosure_id: Mapped[UUID] = mapped_column(primary_key=True)
    register: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(200))
    recipient_kind: Mapped[str] = mapped_column(String(30))
    legal_basis: Mapped[str] = mapped_column(String(300))
    case_reference: Mapped[str] = mapped_column(String(100))
    disclosed_on: Mapped[date] = mapped_column(Date)
    contact_refs: Mapped[list[UUID]] = mapped_column(ARRAY(Uuid))
    description: Mapped[str] = mapped_column(String(500))
    recorded_by: Mapped[UUID] = mapped_column()
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

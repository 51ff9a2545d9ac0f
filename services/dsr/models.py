"""The DSR service's tables (schema ``dsr``): requests, the contacts found for them, and access packages.

What identifies the requester (phone number, e-mail, identity code, name...) is personal data and is kept only
sealed, under a data key of the request (shared.recordstore.keystore, class ``dsr_request``); the clear
columns are what a caseworker's queue and the statutory clock need.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Index, LargeBinary, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.platform.db import Base

SCHEMA = "dsr"
REQUEST_KEY_CLASS = "dsr_request"
"""The keystore class of a request's sealed fields (keyed by the request id)."""


class DataSubjectRequest(Base):
    """One data-subject request, from receipt to its answer."""

    __tablename__ = "requests"
    __table_args__ = (
        Index("ix_requests_status_last_day", "status", "last_day"),
        {"schema": SCHEMA},
    )

    request_id: Mapped[UUID] = mapped_column(primary_key=True)
    case_number: Mapped[str] = mapped_column(String(20), unique=True)
    """What the requester and the caseworker call it: DSR-2026-000123."""
    request_type: Mapped[str] = mapped_column(String(20))
    registers: Mapped[list[Any]] = mapped_column(JSONB)
    """The registers asked about; every register when the requester did not name one."""
    status: Mapped[str] = mapped_column(String(24))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_day: Mapped[date] = mapped_column(Date)
    """The statutory last day (Art. 12(3), rolled to a working day), moved once by an extension."""
    extension_months: Mapped[int] = mapped_column(default=0)
    extension_reasons: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    extended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    identity_method: Mapped[str | None] = mapped_column(String(40))
    identity_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    identity_verified_by: Mapped[UUID | None] = mapped_column()
    sealed_requester: Mapped[bytes] = mapped_column(LargeBinary)
    """The requester's identifiers (kind, value) as given, sealed."""
    sealed_details: Mapped[bytes | None] = mapped_column(LargeBinary)
    """What the request asks beyond its type (a rectification's field and change, the grounds of an objection
    or restriction), sealed: it is the requester's own words."""
    restriction_ground: Mapped[str | None] = mapped_column(String(2))
    """For a restriction: the Art. 18(1) point (a, b, c or d)."""
    decisions: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    """Per register: {register, right, outcome, ground}: the legal ground of every decision."""
    reply: Mapped[str | None] = mapped_column(Text)
    """The letter sent with the answer (fi, sv, en). It names no person: only the case number."""
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    overdue_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    restriction_lifts_on: Mapped[date | None] = mapped_column(Date)
    """The day a granted restriction is to be lifted; the requester is told before (Art. 18(3))."""
    restriction_lifted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[UUID] = mapped_column()
    """Pseudonymous id of the caseworker who registered it (as in the audit log)."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Candidate(Base):
    """A contact the blind index linked to the requester. Phone numbers are shared and recycled, so a candidate
    counts only once a caseworker has confirmed it is the requester's."""

    __tablename__ = "candidates"
    __table_args__ = {"schema": SCHEMA}

    request_id: Mapped[UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.requests.request_id", ondelete="CASCADE"), primary_key=True
    )
    contact_ref: Mapped[UUID] = mapped_column(primary_key=True)
    register: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    matched_by: Mapped[list[Any]] = mapped_column(JSONB)
    """The identifier kinds that matched (phone, email, ...), never their values."""
    decision: Mapped[str] = mapped_column(String(10), default="pending")
    """pending, confirmed or rejected."""
    decided_by: Mapped[UUID | None] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Package(Base):
    """An access package: the ZIP, encrypted at rest under its own key, downloadable until it expires."""

    __tablename__ = "packages"
    __table_args__ = {"schema": SCHEMA}

    package_id: Mapped[UUID] = mapped_column(primary_key=True)
    request_id: Mapped[UUID] = mapped_column(ForeignKey(f"{SCHEMA}.requests.request_id", ondelete="CASCADE"))
    blob_key: Mapped[str] = mapped_column(String(300))
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The package key wrapped by the KEK; emptied when the package is deleted (crypto-shredding)."""
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    downloaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Disclosure(Base):
    """A contact's item in a research loan, as the export service announced it: who received it, under which
    agreement, for how long, and whether it came back. An access reply lists these recipients (Art. 15(1)(c))."""

    __tablename__ = "disclosures"
    __table_args__ = (Index("ix_disclosures_contact", "contact_ref"), {"schema": SCHEMA})

    loan_id: Mapped[UUID] = mapped_column(primary_key=True)
    contact_ref: Mapped[UUID] = mapped_column(primary_key=True)
    artifact_class: Mapped[str] = mapped_column(String(40), primary_key=True)
    institute_name: Mapped[str] = mapped_column(String(200))
    agreement_ref: Mapped[str] = mapped_column(String(100))
    lent_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12))
    """out, returned or destroyed."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

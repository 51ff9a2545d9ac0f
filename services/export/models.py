"""The export service's tables (schema ``export``): loans of recordings to research institutes."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from sqlalchemy import Date, DateTime, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base

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

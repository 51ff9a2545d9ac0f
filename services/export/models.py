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
    status: Mapped[str] = mapped_column(String(20))
    created_by: Mapped[UUID] = mapped_column()
    """Pseudonymous id of the research officer who set the loan up (as in the audit log)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

"""HTTP models of the export API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Institute ids are short codes the research office assigns (e.g. "vtt", "aalto-cs"): never a person's name.
InstituteId = Field(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")


class LoanCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    institute_id: str = InstituteId
    agreement_ref: str = Field(
        min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9/._-]*$", description="Signed agreement"
    )
    purpose: str = Field(
        min_length=1,
        max_length=500,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="What the study assesses (one line of text)",
    )
    study_ends_on: date = Field(
        strict=True, description="Everything lent must be returned or destroyed by this day (YYYY-MM-DD)"
    )

    @field_validator("purpose")
    @classmethod
    def _encodable(cls, value: str) -> str:
        # JSON can carry lone surrogates, which no UTF-8 database column can store.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text") from None
        return value


class LoanRead(BaseModel):
    loan_id: UUID
    institute_id: str
    agreement_ref: str
    purpose: str
    study_ends_on: date
    status: Literal["draft"]
    created_at: datetime


class LoanList(BaseModel):
    loans: list[LoanRead]

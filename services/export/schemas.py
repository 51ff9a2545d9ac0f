"""HTTP models of the export API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Institute ids are short codes the research office assigns (e.g. "vtt", "aalto-cs"): never a person's name.
# One line of printable text: no control characters (a NUL cannot be stored, a newline forges log-like lines).
_ONE_LINE = r"^[^\x00-\x1f\x7f]+$"
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
        pattern=_ONE_LINE,
        description="What the study assesses (one line of text)",
    )
    study_ends_on: date = Field(
        strict=True, description="Everything lent must be returned or destroyed by this day (YYYY-MM-DD)"
    )
    institute_name: str = Field(
        min_length=1,
        max_length=200,
        pattern=_ONE_LINE,
        description="The research institute, as the agreement names it",
    )
    contact_person: str = Field(
        min_length=1, max_length=200, pattern=_ONE_LINE, description="The institute's contact for the study"
    )
    legal_basis: str = Field(
        min_length=1,
        max_length=300,
        pattern=_ONE_LINE,
        description="The ground of the disclosure, e.g. GDPR Art. 6(1)(e) and Art. 89; Act 621/1999 s. 28",
    )
    commitment: Literal["return", "destroy"] = Field(
        description="What the institute undertakes for every item when the study ends"
    )

    @field_validator("purpose", "institute_name", "contact_person", "legal_basis")
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
    institute_name: str
    contact_person: str
    agreement_ref: str
    purpose: str
    legal_basis: str
    study_ends_on: date
    commitment: str
    status: Literal["draft", "approved"]
    created_at: datetime
    approved_at: datetime | None


class LoanList(BaseModel):
    loans: list[LoanRead]

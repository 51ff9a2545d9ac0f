"""DSR's HTTP models. Requester identifiers go in and never come out: a request is shown by its case number,
type, registers, status and dates."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.dsr.letters import ExtensionReason, LiftReason

RequestType = Literal["access", "rectification", "restriction", "erasure", "objection", "portability"]
IdentifierKind = Literal["phone", "email", "personal_identity_code", "name", "nickname", "contact_id"]
IdentityMethod = Literal["strong_electronic_identification", "in_person", "written_with_documents"]
Register = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RequesterIdentifier(_In):
    kind: IdentifierKind
    value: str = Field(min_length=1, max_length=320)


class RequestDetails(_In):
    """The requester's own words where the type needs them: the field and exact change of a rectification
    (DVV's notice asks for both), the grounds of an objection or restriction. Stored sealed."""

    field: str | None = Field(default=None, max_length=200)
    change: str | None = Field(default=None, max_length=2000)
    explanation: str | None = Field(default=None, max_length=5000)


class RequestCreate(_In):
    request_type: RequestType
    registers: list[Register] = Field(
        default_factory=list, max_length=20, description="empty: every register"
    )
    requester: list[RequesterIdentifier] = Field(min_length=1, max_length=20)
    received_at: AwareDatetime | None = Field(default=None, description="when it arrived; now if not given")
    restriction_ground: Literal["a", "b", "c", "d"] | None = Field(
        default=None, description="GDPR Art. 18(1) point, for a restriction"
    )
    details: RequestDetails | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "request_type": "access",
                    "registers": ["prh-customer-service"],
                    "requester": [{"kind": "phone", "value": "+358401234567"}],
                }
            ]
        },
    )


class RequesterRead(BaseModel):
    """For the caseworker handling the request only: who asked, and what they asked in their own words."""

    requester: list[RequesterIdentifier]
    details: RequestDetails | None


class PackageRead(BaseModel):
    package_id: UUID
    size: int
    sha256: str
    created_at: datetime
    expires_at: datetime
    downloaded_at: datetime | None
    deleted_at: datetime | None


class RequestRead(BaseModel):
    request_id: UUID
    case_number: str
    request_type: RequestType
    registers: list[str]
    status: str
    received_at: datetime
    last_day: date
    overdue: bool
    extension_months: int
    extension_reasons: list[str]
    identity_method: str | None
    identity_verified_at: datetime | None
    restriction_ground: str | None
    restriction_lifted_at: datetime | None
    decisions: list[dict[str, Any]]
    closed_at: datetime | None
    package: PackageRead | None = None


class RequestList(BaseModel):
    requests: list[RequestRead]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last one")


class IdentityVerification(_In):
    method: IdentityMethod


class CandidateRead(BaseModel):
    # `register` in JSON; a field of that name would shadow BaseModel.register.
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    contact_ref: UUID
    register_id: str = Field(alias="register")
    channel: str
    started_at: datetime
    matched_by: list[str]
    decision: Literal["pending", "confirmed", "rejected"]


class CandidateList(BaseModel):
    candidates: list[CandidateRead]


class CandidateDecision(_In):
    confirmed: bool


class ExtensionCreate(_In):
    months: Literal[1, 2]
    reasons: list[ExtensionReason] = Field(min_length=1, max_length=5)


class StatusChange(_In):
    status: Literal["awaiting_requester", "in_progress", "withdrawn", "refused"]


class ConditionAnswer(_In):
    # `register` in JSON; a field of that name would shadow BaseModel.register.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, validate_by_name=True)

    register_id: Register = Field(alias="register")
    met: bool = Field(description="whether the condition of the register's conditional right holds")


class CorrectionIn(_In):
    field: Literal["phone", "email", "name", "nickname", "personal_identity_code"]
    value: str = Field(min_length=1, max_length=320, description="the corrected value")


class RectificationAnswer(_In):
    """What the caseworker, having checked the request, corrects. Neither corrections nor a statement: the
    data were found accurate and the rectification is refused (Art. 16)."""

    corrections: list[CorrectionIn] = Field(default_factory=list, max_length=5)
    statement: str | None = Field(
        default=None,
        min_length=1,
        max_length=5000,
        description="a supplementary statement added beside the recordings, transcripts and messages, "
        "which are never edited",
    )


class AnswerCreate(_In):
    # A list rather than a map keyed by register: an error then points at an index, never at a submitted key.
    conditions: list[ConditionAnswer] = Field(
        default_factory=list,
        max_length=20,
        description="for each register whose right is conditional: whether its condition holds",
    )
    rectification: RectificationAnswer | None = Field(
        default=None, description="for a rectification request: what is corrected"
    )


class RestrictionLift(_In):
    reason: LiftReason
    lifts_on: date = Field(description="a later day: the requester is told before the lift (Art. 18(3))")


class StepWithLetter(BaseModel):
    request: RequestRead
    letter: str = Field(description="the letter to send the requester (Finnish, Swedish, English)")

"""HTTP models of the ingest API (the event contracts themselves are in shared.contracts.events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _WithRegister(BaseModel):
    # `register` is the JSON name; pydantic models already have a `register` attribute (from abc).
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    register_id: str = Field(alias="register")


class FieldErrorRead(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. data.caller_number")
    reason: str


class EventOutcomeRead(BaseModel):
    index: int | None = Field(default=None, description="Position in the batch")
    event_id: str | None = None
    status: int = Field(
        description="202 accepted or duplicate; 409 conflicting resend; 422 invalid; 503 broker"
    )
    outcome: Literal["accepted", "duplicate", "conflict", "rejected", "unavailable"]
    errors: list[FieldErrorRead] = []
    dropped_fields: list[str] = Field(
        default=[],
        description="Fields the register's policy does not let us store (e.g. a secret caller number)",
    )


class BatchRead(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventOutcomeRead]


class RecordingRead(_WithRegister):
    contact_id: str
    sha256: str = Field(description="SHA-256 of the audio as uploaded")
    size_bytes: int
    duration_ms: int | None
    content_type: str
    stored: Literal["created", "unchanged"]


class PartyRead(BaseModel):
    role: str
    details: dict[str, Any] | None = Field(description="Null when the data has been deleted")


class EventRead(BaseModel):
    event_id: str
    type: str
    occurred_at: datetime
    artifact_class: str
    data: dict[str, Any] | None = Field(description="Null when the data has been deleted")


class ArtifactRead(BaseModel):
    artifact_class: str
    status: str
    first_at: datetime
    last_at: datetime


class RecordingInfo(BaseModel):
    sha256: str | None
    size_bytes: int | None
    duration_ms: int | None
    content_type: str | None
    href: str


class RectificationRead(BaseModel):
    """A rectification (GDPR Art. 16) of this contact: a corrected field (the data shown are already corrected;
    the earlier value stays in the history for the data subject's access request), or a supplementary
    statement the data subject gave beside a recording or conversation, which is never edited."""

    kind: Literal["correction", "statement"]
    field: str | None
    artifact_class: str
    case_number: str = Field(description="the data-subject request that asked for it")
    made_at: datetime
    statement: str | None = Field(default=None, description="the supplementary statement")


class ContactRead(_WithRegister):
    contact_id: str
    policy_version: str
    channel: str
    started_at: datetime
    ended_at: datetime | None
    direction: str | None
    agent_id: str | None
    case_number: str | None
    case_status: str | None
    parties: list[PartyRead]
    events: list[EventRead]
    artifacts: list[ArtifactRead]
    recording: RecordingInfo | None
    rectifications: list[RectificationRead] = Field(default_factory=list)

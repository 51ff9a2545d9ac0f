"""HTTP models of the retention API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ONE_LINE = r"^[^\x00-\x1f\x7f]+$"
_REGISTER = Field(default=None, alias="register", max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")


class _Model(BaseModel):
    # `register` is the JSON name; pydantic models already have a `register` attribute (from abc).
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)


def _utf8(value: str) -> str:
    # JSON can carry lone surrogates, which no UTF-8 database column can store.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


class SubjectRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["phone", "email", "personal_identity_code", "name", "nickname"]
    value: str = Field(min_length=1, max_length=200, pattern=_ONE_LINE)

    _text = field_validator("value")(_utf8)


class HoldCreate(_Model):
    """What a hold covers: a contact (register + contact_id), a case (register + case_number), a subject (an
    identifier, found through the blind index) or a whole register."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, serialize_by_alias=True)

    scope: Literal["contact", "case", "subject", "register"]
    register_id: str | None = _REGISTER
    contact_id: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@+=-]+$"
    )
    case_number: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._/:-]+$"
    )
    subject: SubjectRef | None = None
    reason: str = Field(min_length=1, max_length=500, pattern=_ONE_LINE)
    legal_reference: str = Field(min_length=1, max_length=200, pattern=_ONE_LINE)
    ends_on: date | None = Field(
        default=None, strict=True, description="Last day the hold is in force (Helsinki time), YYYY-MM-DD"
    )

    _texts = field_validator("reason", "legal_reference")(_utf8)

    @model_validator(mode="after")
    def _target_given(self) -> HoldCreate:
        needs = {
            "contact": ("register_id", "contact_id"),
            "case": ("register_id", "case_number"),
            "subject": ("subject",),
            "register": ("register_id",),
        }[self.scope]
        missing = [
            name.removesuffix("_id") if name == "register_id" else name
            for name in needs
            if getattr(self, name) is None
        ]
        if missing:
            raise ValueError(f"a {self.scope} hold needs {' and '.join(missing)}")
        return self


class HoldRead(_Model):
    hold_id: str
    scope: str
    register_id: str | None = Field(alias="register")
    reason: str
    legal_reference: str
    placed_at: datetime
    ends_on: date | None
    lifted_at: datetime | None
    active: bool


class HoldList(BaseModel):
    holds: list[HoldRead]


class ScheduleEntryRead(BaseModel):
    artifact_class: str
    item: str = Field(description='"" for the whole class; a message time for a per-message redaction')
    action: str
    state: Literal["scheduled", "held", "done", "waiting"]
    due_at: datetime | None
    reason: str = Field(description="Why it is still kept, as a data protection officer reads it")
    held_by: list[str] = []


class ContactScheduleRead(_Model):
    contact_ref: UUID
    register_id: str = Field(alias="register")
    entries: list[ScheduleEntryRead]


class ForecastDay(BaseModel):
    day: date
    artifact_class: str
    items: int


class ForecastRead(_Model):
    register_id: str | None = Field(alias="register")
    from_day: date
    to_day: date
    days: list[ForecastDay]


class CertificateRead(_Model):
    certificate_id: UUID
    contact_ref: UUID
    register_id: str = Field(alias="register")
    artifact_class: str
    item: str
    policy_version: str
    rule: str
    trigger: str
    trigger_at: datetime | None
    due_at: datetime
    done_at: datetime
    ciphertext_sha256: str
    items: int
    method: str


class CertificateList(BaseModel):
    certificates: list[CertificateRead]


class PolicyVersionRead(BaseModel):
    version: str
    effective_from: date
    retention: list[str]


class PolicyRead(_Model):
    register_id: str = Field(alias="register")
    versions: list[PolicyVersionRead]


class PolicyList(BaseModel):
    policies: list[PolicyRead]

"""Register policies: the privacy notices of the registers as versioned YAML files, loaded and validated.

One file per register in the policy directory (``policies/<register>.yaml``)::

    format_version: 1
    register: prh-customer-service
    versions:                       # sorted by effective_from, no two on one date
      - version: "2021-10-20"
        effective_from: 2021-10-20
        ...                         # controller, legal basis, intake, retention, rights, ...

The models of a policy file: its sections, their values and the checks each value carries.
This package only loads and validates. It computes no due dates and decides nothing about a contact: the
retention, ingest, DSR and export services read the validated values and apply their own rules to them.
Every problem is reported as a `PolicyError` naming the file, the field path and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StrictBool,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from shared.contracts.vocabulary import ArtifactClass, Channel, EventType

FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------------- errors


class PolicyError(Exception):
    """A policy file that cannot be used. The message names the file, the field path and the reason."""

    def __init__(self, file: Path | str, path: str, reason: str, *, more: tuple[tuple[str, str], ...] = ()):
        self.file = str(file)
        self.path = path
        self.reason = reason
        # Further problems found in the same file (path, reason), reported after the first.
        self.more = more
        message = f"{self.file}: {path}: {reason}"
        if more:
            message += f" (and {len(more)} more: " + "; ".join(f"{p}: {r}" for p, r in more[:5])
            message += ", ..." if len(more) > 5 else ""
            message += ")"
        super().__init__(message)


class UnknownRegister(KeyError):
    """No policy file defines this register."""

    def __init__(self, register: str, known: list[str]):
        self.register = register
        self.known = known
        super().__init__(register)

    def __str__(self) -> str:
        return f"unknown register {self.register!r}; known: {', '.join(self.known) or '(none)'}"


class UnknownPolicyVersion(KeyError):
    """The register has no version with this id."""

    def __init__(self, register: str, version: str, known: list[str]):
        self.register = register
        self.version = version
        self.known = known
        super().__init__(version)

    def __str__(self) -> str:
        known = ", ".join(self.known)
        return f"register {self.register!r} has no policy version {self.version!r}; known: {known}"


# --------------------------------------------------------------------------------------------------- Period

_PERIOD_RE = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)
_MAX_PERIOD_DAYS = 100 * 366  # nothing a privacy notice promises is kept longer than a century


@dataclass(frozen=True, slots=True)
class Period:
    """A retention period as written in the policy (ISO 8601 duration), calendar units kept as they are.

    ``P6M`` is six calendar months, not 180 days: the code that adds a period to an instant decides how month
    ends fall. Weeks are read as seven days; seconds are not a unit any notice uses and are refused.
    """

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0

    def __post_init__(self) -> None:
        for name in ("years", "months", "days", "hours", "minutes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Period.{name} must be a non-negative integer, got {value!r}")

    @classmethod
    def parse(cls, text: str) -> Period:
        """Parse an ISO 8601 duration such as ``P6M``, ``P2Y``, ``P35D`` or ``PT1H``; raises ValueError."""
        if not isinstance(text, str):
            raise ValueError(f"expected an ISO 8601 duration string such as P6M, got {type(text).__name__}")
        match = _PERIOD_RE.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"{text!r} is not an ISO 8601 duration (expected e.g. P6M, P12M, P2Y, P35D, PT1H; "
                "whole numbers, upper-case designators)"
            )
        parts = {name: int(value) for name, value in match.groupdict().items() if value is not None}
        if parts.get("seconds"):
            raise ValueError(
                f"{text!r}: seconds are not supported in a retention period (use minutes or more)"
            )
        period = cls(
            years=parts.get("years", 0),
            months=parts.get("months", 0),
            days=parts.get("days", 0) + 7 * parts.get("weeks", 0),
            hours=parts.get("hours", 0),
            minutes=parts.get("minutes", 0),
        )
        if period.is_zero:
            raise ValueError(f"{text!r}: a retention period must be longer than zero")
        if period.approximate_days > _MAX_PERIOD_DAYS:
            raise ValueError(f"{text!r}: a retention period longer than 100 years is not plausible")
        return period

    @property
    def is_zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours or self.minutes)

    @property
    def approximate_days(self) -> float:
        """An upper estimate for plausibility checks and sorting only; never for computing a due date."""
        return self.years * 366 + self.months * 31 + self.days + self.hours / 24 + self.minutes / 1440

    def isoformat(self) -> str:
        date_part = "".join(
            f"{value}{unit}"
            for value, unit in ((self.years, "Y"), (self.months, "M"), (self.days, "D"))
            if value
        )
        time_part = "".join(
            f"{value}{unit}" for value, unit in ((self.hours, "H"), (self.minutes, "M")) if value
        )
        return "P" + date_part + (f"T{time_part}" if time_part else "") if not self.is_zero else "PT0M"

    def __str__(self) -> str:
        return self.isoformat()

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def validate(value: Any) -> Period:
            if isinstance(value, Period):
                return value
            try:
                return cls.parse(value)
            except ValueError as exc:
                raise PydanticCustomError("iso_duration", str(exc)) from None

        return core_schema.no_info_plain_validator_function(
            validate,
            json_schema_input_schema=core_schema.str_schema(pattern=_PERIOD_RE.pattern),
            serialization=core_schema.plain_serializer_function_ser_schema(
                str, return_schema=core_schema.str_schema()
            ),
        )


# --------------------------------------------------------------------------------------------------- enums


class Trigger(StrEnum):
    """The instant a retention clock starts."""

    CONTACT_START = "contact_start"
    CONTACT_END = "contact_end"
    CASE_CLOSED = "case_closed"
    MESSAGE_SENT = "message_sent"


class Action(StrEnum):
    """What happens when a period ends: the artifact is deleted, or (field level) its values are redacted."""

    DELETE = "delete"
    REDACT = "redact"


class LegalBasis(StrEnum):
    """GDPR Art. 6(1) grounds."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"
    PUBLIC_TASK = "public_task"
    LEGITIMATE_INTERESTS = "legitimate_interests"

    @property
    def article(self) -> str:
        letter = {
            LegalBasis.CONSENT: "a",
            LegalBasis.CONTRACT: "b",
            LegalBasis.LEGAL_OBLIGATION: "c",
            LegalBasis.VITAL_INTERESTS: "d",
            LegalBasis.PUBLIC_TASK: "e",
            LegalBasis.LEGITIMATE_INTERESTS: "f",
        }[self]
        return f"GDPR Art. 6(1)({letter})"


class RightStatus(StrEnum):
    GRANTED = "granted"
    REFUSED = "refused"
    CONDITIONAL = "conditional"
    NOT_APPLICABLE = "not_applicable"


class RightName(StrEnum):
    ACCESS = "access"
    RECTIFICATION = "rectification"
    RESTRICTION = "restriction"
    ERASURE = "erasure"
    OBJECTION = "objection"
    PORTABILITY = "portability"


class CallDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class RecipientKind(StrEnum):
    RESEARCH_INSTITUTE = "research_institute"
    AUTHORITY = "authority"
    POLICE = "police"
    PROCESSOR = "processor"


class Safeguard(StrEnum):
    """GDPR Chapter V grounds for a transfer outside the EU/EEA."""

    ADEQUACY_DECISION = "adequacy_decision"
    STANDARD_CONTRACTUAL_CLAUSES = "standard_contractual_clauses"
    BINDING_CORPORATE_RULES = "binding_corporate_rules"


class IdentityVerification(StrEnum):
    """Whether a data-subject request needs the requester's identity proven."""

    REQUIRED = "required"
    WHEN_NEEDED = "when_needed"
    NOT_STATED = "not_stated"


class NoticeLanguage(StrEnum):
    FI = "fi"
    SV = "sv"
    EN = "en"


def _enum_parser(enum_cls: type[StrEnum], what: str) -> Callable[[Any], Any]:
    """A before-validator giving a readable reason ("unknown trigger 'x'; expected one of: ...")."""

    def parse(value: Any) -> Any:
        if isinstance(value, enum_cls):
            return value
        if isinstance(value, str):
            try:
                return enum_cls(value)
            except ValueError:
                pass
        expected = ", ".join(member.value for member in enum_cls)
        raise ValueError(f"unknown {what} {value!r}; expected one of: {expected}")

    return parse


ArtifactClassField = Annotated[ArtifactClass, BeforeValidator(_enum_parser(ArtifactClass, "artifact class"))]
TriggerField = Annotated[Trigger, BeforeValidator(_enum_parser(Trigger, "trigger"))]
ActionField = Annotated[Action, BeforeValidator(_enum_parser(Action, "action"))]
LegalBasisField = Annotated[LegalBasis, BeforeValidator(_enum_parser(LegalBasis, "legal basis"))]
RightStatusField = Annotated[RightStatus, BeforeValidator(_enum_parser(RightStatus, "right status"))]
EventTypeField = Annotated[EventType, BeforeValidator(_enum_parser(EventType, "event type"))]
ChannelField = Annotated[Channel, BeforeValidator(_enum_parser(Channel, "channel"))]
CallDirectionField = Annotated[CallDirection, BeforeValidator(_enum_parser(CallDirection, "call direction"))]
RecipientKindField = Annotated[RecipientKind, BeforeValidator(_enum_parser(RecipientKind, "recipient kind"))]
SafeguardField = Annotated[Safeguard, BeforeValidator(_enum_parser(Safeguard, "transfer safeguard"))]
IdentityVerificationField = Annotated[
    IdentityVerification, BeforeValidator(_enum_parser(IdentityVerification, "identity verification"))
]
NoticeLanguageField = Annotated[
    NoticeLanguage, BeforeValidator(_enum_parser(NoticeLanguage, "notice language"))
]


# --------------------------------------------------------------------------------------------- scalar types


def _strict_date(value: Any) -> Any:
    # YAML turns 2021-10-20 into a date; a timestamp there is a mistake, not a date with a time to drop.
    if isinstance(value, datetime):
        raise ValueError("expected a date (YYYY-MM-DD), got a date and time")
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None
    if not isinstance(value, date):
        raise ValueError(f"expected a date (YYYY-MM-DD), got {type(value).__name__}")
    return value


def _version_id(value: Any) -> Any:
    # An unquoted `version: 2021-10-20` arrives as a date; it is meant as the id "2021-10-20".
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return value


def _unique(values: tuple[Any, ...]) -> tuple[Any, ...]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate entry {str(value)!r}")
        seen.add(value)
    return values


def _check_business_id(value: str) -> str:
    """Finnish business id (Y-tunnus) NNNNNNN-C with its modulus 11 check digit."""
    digits = [int(c) for c in value[:7]]
    remainder = sum(d * w for d, w in zip(digits, (7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
    if remainder == 1 or (0 if remainder == 0 else 11 - remainder) != int(value[8]):
        raise ValueError(f"business id {value!r} has a wrong check digit")
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
RegisterId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}[a-z0-9]$")]
VersionId = Annotated[
    str, BeforeValidator(_version_id), StringConstraints(pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")
]
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
PolicyDate = Annotated[date, BeforeValidator(_strict_date)]
Email = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$", max_length=320)
]
PhoneText = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 ()-]{4,29}$")]
BusinessId = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{7}-[0-9]$"),
    AfterValidator(_check_business_id),
    Field(description="Finnish business id (Y-tunnus)"),
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True, validate_default=True)


# ------------------------------------------------------------------------------------------------ sections


class Notice(_Model):
    """The published privacy notice this version transcribes."""

    title: Text
    language: NoticeLanguageField
    updated: PolicyDate | None = Field(default=None, description="the notice's own date; None when undated")
    source: ShortText = Field(description="where the notice text is kept, e.g. shared/seeds/000_....txt")


class ContactPerson(_Model):
    name: ShortText | None = None
    role: ShortText | None = None
    email: Email | None = None
    phone: PhoneText | None = None

    @model_validator(mode="after")
    def _named(self) -> Self:
        if self.name is None and self.role is None:
            raise ValueError("a contact person needs a name or a role")
        return self


class Controller(_Model):
    name: ShortText
    short_name: ShortText | None = None
    business_id: BusinessId | None = None
    postal_address: ShortText | None = None
    visiting_address: ShortText | None = None
    phone: PhoneText | None = None
    email: Email | None = None
    contact_person: ContactPerson | None = None
    representative: ContactPerson | None = None
    data_protection_officer: ContactPerson | None = None


class LegalGround(_Model):
    ground: LegalBasisField
    law: Text | None = Field(default=None, description="the national law the notice names, if any")
    note: Text | None = None

    @property
    def article(self) -> str:
        return self.ground.article


class DataCategory(_Model):
    name: ShortText
    items: Annotated[tuple[ShortText, ...], Field(min_length=1)]
    artifact_classes: Annotated[tuple[ArtifactClassField, ...], AfterValidator(_unique)] = ()
    # Described in the notice but kept in another register (e.g. PRH's beneficial-owner identification data).
    stored_in_register: RegisterId | None = None

    @model_validator(mode="after")
    def _where_kept(self) -> Self:
        if not self.artifact_classes and self.stored_in_register is None:
            raise ValueError("a data category names the artifact_classes that hold it, or stored_in_register")
        if self.artifact_classes and self.stored_in_register is not None:
            raise ValueError(
                "a data category is kept either here (artifact_classes) or in stored_in_register"
            )
        return self


class Intake(_Model):
    """What ingest accepts for the register."""

    event_types: Annotated[tuple[EventTypeField, ...], Field(min_length=1), AfterValidator(_unique)]
    forbidden_fields: Annotated[tuple[Identifier, ...], AfterValidator(_unique)] = ()
    store_restricted_caller_number: StrictBool
    register_start: PolicyDate | None = None
    call_directions: Annotated[tuple[CallDirectionField, ...], AfterValidator(_unique)] = ()

    def accepts(self, event_type: EventType | str) -> bool:
        return str(event_type) in {e.value for e in self.event_types}


class RetentionRule(_Model):
    artifact_class: ArtifactClassField = Field(alias="class")
    period: Period
    trigger: TriggerField
    action: ActionField
    note: Text | None = None


class Right(_Model):
    status: RightStatusField
    ground: Text | None = Field(
        default=None, description="the legal ground of a refusal, condition or absence"
    )
    note: Text | None = None

    @model_validator(mode="after")
    def _ground_given(self) -> Self:
        if self.status is not RightStatus.GRANTED and self.ground is None:
            raise ValueError(f"a right that is {self.status.value} needs its legal ground (ground)")
        return self


class ComplaintAuthority(_Model):
    name: ShortText
    local_name: ShortText | None = None
    postal_address: ShortText | None = None
    visiting_address: ShortText | None = None
    email: Email | None = None
    phone: PhoneText | None = None
    website: Annotated[str, StringConstraints(pattern=r"^https://\S+$")] | None = None


class Rights(_Model):
    access: Right
    rectification: Right
    restriction: Right
    erasure: Right
    objection: Right
    portability: Right
    identity_verification: IdentityVerificationField
    request_requirements: tuple[Text, ...] = ()
    submit_to: ShortText | None = None
    complaint_authority: ComplaintAuthority

    def of(self, right: RightName | str) -> Right:
        name = RightName(right)
        result: Right = getattr(self, name.value)
        return result


class Recipient(_Model):
    name: ShortText
    kind: RecipientKindField
    purpose: Text
    condition: Text | None = None
    artifact_classes: Annotated[tuple[ArtifactClassField, ...], AfterValidator(_unique)] = ()
    temporary_loan: StrictBool = False
    return_or_destroy: StrictBool = False

    @model_validator(mode="after")
    def _loan_terms(self) -> Self:
        if self.return_or_destroy and not self.temporary_loan:
            raise ValueError("return_or_destroy applies to a temporary_loan only")
        return self


class Transfers(_Model):
    """Transfers outside the EU/EEA."""

    allowed: StrictBool
    purpose: Text | None = None
    processor: ShortText | None = None
    safeguards: Annotated[tuple[SafeguardField, ...], AfterValidator(_unique)] = ()
    storage_location: ShortText | None = None
    note: Text | None = None

    @model_validator(mode="after")
    def _safeguarded(self) -> Self:
        if self.allowed and (not self.safeguards or self.purpose is None):
            raise ValueError("a transfer outside the EU/EEA needs its purpose and at least one safeguard")
        if not self.allowed and self.safeguards:
            raise ValueError("safeguards are listed but transfers are not allowed")
        return self


class AccessRules(_Model):
    need_to_know: StrictBool = True
    agents_see_only_own_contacts: StrictBool
    listen_roles: Annotated[tuple[Identifier, ...], AfterValidator(_unique)] = Field(
        default=(), description="roles that may listen to recordings"
    )
    read_roles: Annotated[tuple[Identifier, ...], AfterValidator(_unique)] = Field(
        default=(), description="roles that may read other artifacts"
    )
    note: Text | None = None


class AutomatedDecisions(_Model):
    automated_decision_making: StrictBool
    profiling: StrictBool


# ------------------------------------------------------------------------------------------------ versions


class PolicyVersion(_Model):
    """One version of a register's policy, in force from `effective_from` until the next version."""

    # Stored as register_id: a field called `register` would shadow ABCMeta.register on the model class.
    register_id: RegisterId = Field(alias="register")
    version: VersionId
    effective_from: PolicyDate
    notice: Notice
    register_name: ShortText
    controller: Controller
    time_zone: ZoneInfo
    legal_basis: Annotated[tuple[LegalGround, ...], Field(min_length=1)]
    purposes: Annotated[tuple[Text, ...], Field(min_length=1)]
    data_subjects: Annotated[tuple[ShortText, ...], Field(min_length=1)]
    data_categories: Annotated[tuple[DataCategory, ...], Field(min_length=1)]
    sources: Annotated[tuple[Text, ...], Field(min_length=1)]
    channels: Annotated[tuple[ChannelField, ...], Field(min_length=1), AfterValidator(_unique)]
    intake: Intake
    retention: Annotated[tuple[RetentionRule, ...], Field(min_length=1)]
    rights: Rights
    recipients: tuple[Recipient, ...] = ()
    transfers_outside_eea: Transfers
    access: AccessRules
    automated_decisions: AutomatedDecisions

    @model_validator(mode="after")
    def _grounds_once(self) -> Self:
        grounds = [g.ground for g in self.legal_basis]
        if len(set(grounds)) != len(grounds):
            raise ValueError("legal_basis lists a ground twice")
        return self

    @property
    def register(self) -> str:
        """The register this version belongs to."""
        return self.register_id

    @property
    def classes(self) -> tuple[ArtifactClass, ...]:
        """The artifact classes this version keeps."""
        return tuple(rule.artifact_class for rule in self.retention)

    def keeps(self, artifact_class: ArtifactClass | str) -> bool:
        return self.retention_for(artifact_class) is not None

    def retention_for(self, artifact_class: ArtifactClass | str) -> RetentionRule | None:
        """The rule for one artifact class, or None when this version does not keep that class."""
        wanted = ArtifactClass(artifact_class)
        for rule in self.retention:
            if rule.artifact_class is wanted:
                return rule
        return None

    @property
    def id(self) -> str:
        """`register@version`, for records and audit events that name the policy that governed them."""
        return f"{self.register}@{self.version}"


class RegisterPolicy(_Model):
    """One register's policy file: its versions in effective-date order."""

    format_version: Literal[1]
    register_id: RegisterId = Field(alias="register")
    versions: Annotated[tuple[PolicyVersion, ...], Field(min_length=1)]

    @model_validator(mode="before")
    @classmethod
    def _versions_know_their_register(cls, data: Any) -> Any:
        # The file names the register once; each version carries it so it can be passed around on its own.
        if isinstance(data, dict) and isinstance(data.get("versions"), list):
            register = data.get("register")
            data = {
                **data,
                "versions": [
                    {"register": register, **v} if isinstance(v, dict) and "register" not in v else v
                    for v in data["versions"]
                ],
            }
        return data

    @property
    def register(self) -> str:
        return self.register_id

    @property
    def time_zone(self) -> ZoneInfo:
        return self.latest.time_zone

    @property
    def latest(self) -> PolicyVersion:
        return self.versions[-1]

    def starts_at(self) -> date:
        """The first local date on which some version is in force (effective_from or register_start)."""
        first = self.versions[0]
        start = first.intake.register_start
        return max(first.effective_from, start) if start is not None else first.effective_from

    def forbidden_fields_any_version(self) -> frozenset[str]:
        """Field names some version refuses: a cheap first check before the event's version is known."""
        return frozenset(name for version in self.versions for name in version.intake.forbidden_fields)

    def version(self, version_id: str) -> PolicyVersion:
        for candidate in self.versions:
            if candidate.version == version_id:
                return candidate
        raise UnknownPolicyVersion(self.register, version_id, [v.version for v in self.versions])

    def version_at(self, at: datetime) -> PolicyVersion | None:
        """The version in force at `at` (timezone-aware), judged by the local date in the register's zone.

        None before the first version takes effect, and before the register started (intake.register_start).
        """
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("version_at needs a timezone-aware datetime")
        chosen: PolicyVersion | None = None
        for candidate in self.versions:
            if at.astimezone(candidate.time_zone).date() >= candidate.effective_from:
                chosen = candidate
        if chosen is None:
            return None
        start = chosen.intake.register_start
        if start is not None and at.astimezone(chosen.time_zone).date() < start:
            return None
        return chosen

"""HTTP models of the export API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from services.export.statistics import STATISTICS_REGISTERS, THRESHOLD, Service
from shared.contracts.events import RegisterId

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
    status: Literal["draft", "approved", "delivered", "closed"]
    created_at: datetime
    approved_at: datetime | None
    selected_at: datetime | None
    packaged_at: datetime | None
    delivered_at: datetime | None
    lent_on: date | None
    due_on: date | None = Field(description="Every item must be returned or destroyed by this day")
    closed_at: datetime | None


class LoanList(BaseModel):
    loans: list[LoanRead]


def _unicode(value: str) -> str:
    # JSON can carry lone surrogates, which no UTF-8 database column can store.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Unicode = AfterValidator(_unicode)
OneLine = Annotated[str, Field(min_length=1, max_length=200, pattern=_ONE_LINE), Unicode]
Channel = Literal["phone", "chat", "chatbot", "sms", "email"]
AgentId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")]


class SelectionOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_ref: UUID
    justification: Annotated[str, Unicode] = Field(
        min_length=10,
        max_length=500,
        pattern=_ONE_LINE,
        description="Why this contact is lent despite its default exclusion (kept with the item)",
    )


class SelectionCreate(BaseModel):
    """What to lend. Criteria combine (all must hold); `sample_size` then draws that many at random."""

    model_config = ConfigDict(extra="forbid")

    registers: list[RegisterId] = Field(min_length=1, max_length=10)
    channels: list[Channel] = Field(default_factory=list, max_length=5)
    started_from: date | None = Field(
        default=None, strict=True, description="First day (YYYY-MM-DD), Helsinki"
    )
    started_to: date | None = Field(default=None, strict=True, description="Last day (YYYY-MM-DD), Helsinki")
    agent_ids: list[AgentId] = Field(default_factory=list, max_length=100)
    contact_refs: list[UUID] = Field(default_factory=list, max_length=10_000)
    sample_size: int | None = Field(default=None, ge=1, le=10_000)
    seed: int | None = Field(
        default=None, ge=0, lt=2**31, description="Repeats a sample exactly; drawn and recorded when omitted"
    )
    overrides: list[SelectionOverride] = Field(default_factory=list, max_length=100)


class SelectionRead(BaseModel):
    loan_id: UUID
    selected: int
    candidates: int
    excluded: dict[str, int] = Field(description="Contacts kept out, by reason")
    overridden: dict[str, int] = Field(description="Default exclusions overridden, by reason")
    seed: int | None
    selected_at: datetime


class ItemRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    item_id: UUID = Field(description="The item's pseudonym in this loan, as in the package's manifest")
    status: Literal["selected", "withdrawn", "lent", "returned", "destroyed"]
    duration_ms: int | None
    sha256: str | None
    accounted_at: datetime | None
    contact_ref: UUID | None = Field(default=None, description="Not shown to the institute")
    register_id: str | None = Field(default=None, alias="register", description="Not shown to the institute")
    overridden_exclusion: str | None = Field(default=None, description="Not shown to the institute")
    override_justification: str | None = Field(default=None, description="Not shown to the institute")


class ItemList(BaseModel):
    loan_id: UUID
    items: list[ItemRead]
    counts: dict[str, int] = Field(description="Items by status")


class AttestationCreate(BaseModel):
    """The institute's statement for the whole loan (no `items`) or for the listed items."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["returned", "destroyed"]
    items: list[UUID] | None = Field(default=None, min_length=1, max_length=10_000)
    destroyed_on: date | None = Field(default=None, strict=True, description="Required when destroyed")
    method: Literal["clear", "purge", "destroy"] | None = Field(
        default=None, description="NIST SP 800-88 sanitisation level; required when destroyed"
    )
    tool: Annotated[str, Unicode] | None = Field(
        default=None, min_length=1, max_length=200, pattern=_ONE_LINE
    )
    signer: Annotated[str, Unicode] = Field(
        min_length=1, max_length=200, pattern=_ONE_LINE, description="The institute's official who signs"
    )


class AttestationRead(BaseModel):
    attestation_id: UUID
    loan_id: UUID
    outcome: str
    whole_loan: bool
    item_count: int
    destroyed_on: date | None
    method: str | None
    tool: str | None
    signer: str
    attested_at: datetime


class AttestationList(BaseModel):
    loan_id: UUID
    attestations: list[AttestationRead]
    outstanding: int = Field(description="Items neither returned nor destroyed")


class Discrepancy(BaseModel):
    item_id: UUID
    status: str
    problem: Literal["not_attested", "notice_unacknowledged"]


class Discrepancies(BaseModel):
    loan_id: UUID
    due_on: date | None
    overdue: bool
    discrepancies: list[Discrepancy]


RecipientKindName = Literal["authority", "police", "processor", "research_institute"]


class DisclosureCreate(BaseModel):
    """A disclosure outside research loans, e.g. to the police when a case requires it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    register_id: RegisterId = Field(alias="register")
    recipient: OneLine
    recipient_kind: RecipientKindName
    legal_basis: Annotated[str, Unicode] = Field(min_length=1, max_length=300, pattern=_ONE_LINE)
    case_reference: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9/._-]*$")
    disclosed_on: date = Field(strict=True)
    contact_refs: list[UUID] = Field(min_length=1, max_length=10_000)
    description: Annotated[str, Unicode] = Field(min_length=1, max_length=500, pattern=_ONE_LINE)


class DisclosureEntry(BaseModel):
    """One line of the disclosure register: a research loan or another disclosure."""

    kind: Literal["research_loan", "disclosure"]
    id: UUID
    registers: list[str]
    recipient: str
    recipient_kind: str
    legal_basis: str
    reference: str
    disclosed_on: date | None
    due_on: date | None
    items: int
    status: str
    accounted: int | None = Field(default=None, description="Loan items returned or destroyed")


class DisclosureRegister(BaseModel):
    entries: list[DisclosureEntry]
    total: int


# --- packages -------------------------------------------------------------------------------------------------


class PackageSummary(BaseModel):
    loan_id: UUID
    items: int = Field(description="Recordings in the package")
    package_bytes: int = Field(description="Size of the encrypted package")
    package_sha256: str = Field(description="Hex SHA-256 of the encrypted package, as downloaded")
    packaged_at: datetime


class ManifestItem(BaseModel):
    item_id: UUID = Field(description="The item's pseudonymous id, drawn at random for this loan")
    file: str
    duration_ms: int | None
    size_bytes: int
    sha256: str = Field(description="Hex SHA-256 of the recording")


class Manifest(BaseModel):
    """The package's manifest.json: the loan and, per recording, its checks; nothing about the customer."""

    loan_id: UUID
    agreement_ref: str
    institute_id: str
    created_at: datetime
    commitment: str
    study_ends_on: date
    items: list[ManifestItem]


class PackageKey(BaseModel):
    loan_id: UUID
    key: str = Field(description="The package key, 32 bytes, base64")
    algorithm: str = Field(description="How the package is encrypted with it")
    associated_data: str = Field(description="The associated data to decrypt with (UTF-8)")
    package_sha256: str = Field(description="Hex SHA-256 of the encrypted package it opens")


# --- notices --------------------------------------------------------------------------------------------------

NoticeStatus = Literal["open", "acknowledged", "escalated"]


class NoticeRead(BaseModel):
    notice_id: UUID
    loan_id: UUID
    item_id: UUID = Field(description="The item as the package's manifest names it")
    kind: Literal["destroy", "restrict", "restriction_lifted", "rectify"]
    cause: str = Field(description="retention_expired, or the data-subject request's ground (art17_1_a...)")
    action: str = Field(description="What the institute must do")
    status: NoticeStatus = Field(
        description="open until acknowledged; escalated when still open past the time to acknowledge"
    )
    issued_at: datetime
    acknowledged_at: datetime | None
    escalated_at: datetime | None


class NoticeList(BaseModel):
    notices: list[NoticeRead]
    total: int = Field(description="Notices matching the filters, on every page")
    limit: int
    offset: int


# --- statistics -----------------------------------------------------------------------------------------------

# Days as the calendar writes them: a plain date parser would also take a number as seconds since 1970.
DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
WEEK_PATTERN = r"^[0-9]{4}-W[0-9]{2}$"
STATISTICS_REGISTER_NAMES = ", ".join(sorted(STATISTICS_REGISTERS))

Count = Annotated[
    int | None, Field(ge=0, description=f"null when withheld (fewer than {THRESHOLD} contacts)")
]
Seconds = Annotated[int | None, Field(ge=0)]


class _WithRegister(BaseModel):
    # `register` is the JSON name; pydantic models already have a `register` attribute (from abc).
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    register_id: str = Field(alias="register")


class StatisticsCell(_WithRegister):
    week: str = Field(pattern=WEEK_PATTERN, description="ISO week on the Helsinki calendar, e.g. 2026-W47")
    channel: str
    service: Service = Field(description="who started the contact: inbound, outbound or unspecified")
    contacts: Count
    ended: Count = Field(description="contacts with a recorded end, which the durations cover")
    duration_total_seconds: Seconds
    duration_median_seconds: Seconds
    suppressed: bool = Field(description="the cell's counts are withheld (small, or to protect a small one)")


class StatisticsTotal(_WithRegister):
    week: str = Field(pattern=WEEK_PATTERN)
    contacts: Count
    suppressed: bool


class StatisticsReport(BaseModel):
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    threshold: int = Field(description="the fewest contacts a published count describes")
    register_id: str | None = Field(alias="register", description="the register asked for (null: all)")
    first_day: date | None = Field(description="Monday the period starts (null: from the first contact)")
    last_day: date = Field(description="Sunday the period ends: at the latest, the last completed week's")
    cells: list[StatisticsCell]
    totals: list[StatisticsTotal]

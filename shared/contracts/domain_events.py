"""Contracts of the events the services publish about their own state: retention, DSR and export.

Contact events (shared.contracts.events) come from the platforms; these come from Sailo itself, through the outbox
(shared.messaging.outbox), so a state change and its event commit together. Each travels in the envelope
`{id, type, version, occurred_at, producer, correlation_id, data}`; `id` is the idempotency key a consumer
tracks, since the outbox relay delivers at least once.

They name contacts, holds, cases and loans by pseudonyms only (a contact's `contact_ref`, numbers Sailo draws):
the topics are read by other services and by recipients' integrations, and carry no personal data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Final, Generic, Literal, TypeVar
from uuid import UUID

from aiokafka import ConsumerRecord
from pydantic import AwareDatetime, Field, TypeAdapter

from shared.contracts.events import Contract, RegisterId
from shared.platform.errors import PoisonMessage

RETENTION_EVENTS_TOPIC: Final = "retention-events"
"""Topic (after KAFKA_TOPIC_PREFIX) of deletions, redactions and hold changes; keyed by contact_ref or hold."""

DSR_EVENTS_TOPIC: Final = "dsr-events"
"""Topic of data-subject request steps; keyed by request id. Retention acts on restrictions and erasures, export
tells the recipients of lent items (GDPR Art. 19)."""

EXPORT_EVENTS_TOPIC: Final = "export-events"
"""Topic of research-loan steps; keyed by loan id. DSR keeps from it which loans included a data subject's
contacts, for the recipients an access reply lists (Art. 15(1)(c)) and tells (Art. 19)."""

Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


class ArtifactDeletedData(Contract):
    """An artifact class of a contact is gone (crypto-shredded) or had its identifiers redacted.

    Recipients that hold a copy (a research institute with a lent recording) must now destroy theirs; the
    certificate is the proof on Sailo's side.
    """

    contact_ref: UUID
    register_id: RegisterId = Field(alias="register")
    artifact_class: Code
    item: str = Field(max_length=40, description="'' for the whole class; a message's time for a redaction")
    method: Literal["crypto-shredding", "redaction"]
    reason: Code = Field(description="retention_expired, or the DSR ground that erased it")
    certificate_id: UUID
    policy_version: str = Field(max_length=40)
    due_at: AwareDatetime
    done_at: AwareDatetime


class HoldChangedData(Contract):
    """A legal hold placed or lifted. The target is named only where it is already a pseudonym, and the reason
    and legal reference (free text a person typed) stay behind the retention API."""

    hold_number: int = Field(ge=1)
    scope: Literal["contact", "case", "subject", "register"]
    contact_ref: UUID | None = Field(default=None, description="for a hold on one contact")
    register_id: RegisterId | None = Field(default=None, alias="register")
    ends_on: date | None = None


CaseNumber = Annotated[str, Field(pattern=r"^DSR-[0-9]{4}-[0-9]{6}$")]


class RequestChangedData(Contract):
    """A data-subject request moved to another status (received, identity_verified, in_progress, extended,
    awaiting_requester, completed, partially_granted, refused, withdrawn)."""

    request_id: UUID
    case_number: CaseNumber
    request_type: Code
    status: Code
    previous_status: Code | None = None
    registers: list[RegisterId]
    last_day: date


class DeadlineData(Contract):
    """A request's last day is near (reminder) or has passed unanswered (overdue)."""

    request_id: UUID
    case_number: CaseNumber
    status: Code
    last_day: date


class RequestContactsData(Contract):
    """A decision that acts on the requester's contacts: restricted or restriction lifted (Art. 18), erased
    (Art. 17, or an objection upheld under Art. 21). Holders of copies are told (Art. 19)."""

    request_id: UUID
    case_number: CaseNumber
    ground: Code = Field(description="e.g. art18_1_a, art17_1_c, art16")
    contact_refs: list[UUID]


class RectifiedData(Contract):
    """A rectification (Art. 16) changed these contacts: the fields corrected (their names, never the values)
    and whether a supplementary statement was added. Holders of copies are told (Art. 19)."""

    request_id: UUID
    case_number: CaseNumber
    ground: Code = Field(description="art16")
    contact_refs: list[UUID]
    fields: list[Code] = Field(description="phone, email, name, nickname, personal_identity_code")
    statement_added: bool


class LoanItem(Contract):
    contact_ref: UUID
    artifact_class: Code


class LoanItemsData(Contract):
    """Items of a research loan changed hands: delivered to the institute (lent), or accounted for by it
    (returned, destroyed). The institute and agreement are organisations and references, never people."""

    loan_id: UUID
    institute_id: Code
    institute_name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    agreement_ref: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9/._-]*$")
    lent_on: date
    due_on: date
    status: Literal["lent", "returned", "destroyed"]
    items: list[LoanItem] = Field(min_length=1)


class LoanChangedData(Contract):
    """A research loan moved to another status: approved (four eyes), delivered, closed (every item accounted
    for)."""

    loan_id: UUID
    institute_id: Code
    status: Literal["approved", "delivered", "closed"]
    previous_status: Code


class LoanDueData(Contract):
    """A delivered loan's due day is near (reminder) or has passed with items still out (overdue)."""

    loan_id: UUID
    institute_id: Code
    due_on: date
    outstanding: int = Field(ge=0, description="items neither returned nor destroyed")


class NoticeData(Contract):
    """An institute must act on one lent item (GDPR Art. 19): destroy it (retention ended or the data were
    erased), stop using it (restricted) or note a correction (rectified); and then acknowledge. The item is named
    by the loan's own pseudonym, the one in the package's manifest."""

    notice_id: UUID
    loan_id: UUID
    institute_id: Code
    item_id: UUID
    kind: Literal["destroy", "restrict", "restriction_lifted", "rectify"]
    cause: Code = Field(description="retention_expired, or the DSR ground (art17_1_a, art18_1_c, art16...)")


EVENT_DATA: Final[dict[tuple[str, int], type[Contract]]] = {
    ("retention.artifact_deleted", 1): ArtifactDeletedData,
    ("retention.hold_placed", 1): HoldChangedData,
    ("retention.hold_lifted", 1): HoldChangedData,
    ("dsr.request_changed", 1): RequestChangedData,
    ("dsr.deadline_reminder", 1): DeadlineData,
    ("dsr.deadline_overdue", 1): DeadlineData,
    ("dsr.restriction_applied", 1): RequestContactsData,
    ("dsr.restriction_lifted", 1): RequestContactsData,
    ("dsr.erasure_decided", 1): RequestContactsData,
    ("dsr.rectified", 1): RectifiedData,
    ("export.items_lent", 1): LoanItemsData,
    ("export.items_accounted", 1): LoanItemsData,
    ("export.loan_changed", 1): LoanChangedData,
    ("export.loan_due_reminder", 1): LoanDueData,
    ("export.loan_overdue", 1): LoanDueData,
    ("export.notice_issued", 1): NoticeData,
    ("export.notice_acknowledged", 1): NoticeData,
    ("export.notice_escalated", 1): NoticeData,
}
"""(type, version) -> the model of `data`. A consumer refuses (dead-letters) what is not here."""


class DomainEvent(Contract):
    id: UUID
    type: str = Field(max_length=64)
    version: int = Field(ge=1)
    occurred_at: AwareDatetime
    producer: Code
    correlation_id: str | None = Field(default=None, max_length=100)
    data: dict[str, Any]

    def payload(self) -> Contract:
        """`data` as its typed contract (raises KeyError for an unknown type, ValidationError for bad data)."""
        return EVENT_DATA[self.type, self.version].model_validate(self.data)


DOMAIN_EVENT_ADAPTER: Final = TypeAdapter(DomainEvent)


def parse_domain_event(raw: bytes | str | dict[str, Any]) -> tuple[DomainEvent, Contract]:
    """The envelope and its typed data; ValueError (ValidationError or unknown type) for anything else."""
    event = DomainEvent.model_validate(raw) if isinstance(raw, dict) else DomainEvent.model_validate_json(raw)
    try:
        return event, event.payload()
    except KeyError:
        raise ValueError(f"unknown event type {event.type} v{event.version}") from None


def json_schemas() -> dict[str, dict[str, Any]]:
    """The published contracts of the domain events, keyed by file name under schemas/."""
    schemas = {"domain-event.v1.json": DomainEvent.model_json_schema()}
    for (event_type, version), model in EVENT_DATA.items():
        schemas[f"{event_type}.v{version}.json"] = model.model_json_schema()
    return schemas


D = TypeVar("D", bound=Contract)


@dataclass(frozen=True)
class Received(Generic[D]):
    """One domain event as a consumer received it."""

    event: DomainEvent
    data: D | None
    """None: another kind of event on the topic, which this consumer has nothing to do with."""
    digest: str
    """SHA-256 of the message as received (the consumer loop's redelivery check)."""


class DomainEventHandler(Generic[D]):
    """The decoding half of a consumer-loop handler (shared.messaging.kafka.BatchHandler) on a domain-event topic: an
    envelope that does not parse is poison (dead-lettered with the reason), one of another kind is passed on
    with no data, and the event id is the idempotency key. Subclasses set `wants` and write `apply`."""

    wants: type[D]
    topic_description: str = "domain event"

    def decode(self, record: ConsumerRecord[bytes, bytes]) -> Received[D]:
        raw = record.value or b""
        try:
            event, data = parse_domain_event(raw)
        except ValueError as exc:
            raise PoisonMessage(f"not a valid {self.topic_description}: {type(exc).__name__}") from None
        kept = data if isinstance(data, self.wants) else None
        return Received(event, kept, hashlib.sha256(raw).hexdigest())

    def identify(self, item: Received[D]) -> tuple[UUID, str]:
        return item.event.id, item.digest

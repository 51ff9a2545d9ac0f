"""Event contracts: one frozen model per contact event type, shared by producers and consumers.

Two shapes travel:
- `ContactEvent` is what a platform sends (HTTP body or a message on the intake topic): an envelope
  `{event_id, type, version, register, contact_id, occurred_at, producer, correlation_id, data}` in plaintext.
- `SealedContactEvent` is what ingest puts on the contact-events topic after validation: the same envelope with
  the personal part encrypted under the contact's data key for the event's retention class, so every copy in
  Kafka becomes unreadable when retention destroys that key.

Identifier fields are validated here (phone numbers, identity codes with their check character, e-mail) so a
platform producing straight to Kafka meets exactly the rules an HTTP client meets. Additive optional fields keep
the version; anything else bumps it and registers an upcaster in UPCASTERS.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
)

from shared.contracts.identifiers import (
    normalise_email,
    normalise_phone,
    validate_personal_identity_code,
)
from shared.contracts.vocabulary import ArtifactClass, Channel

CONTRACT_VERSION = 1
CONTACT_EVENTS_TOPIC = "contact-events"
"""Topic (after KAFKA_TOPIC_PREFIX) of the sealed contact events: ingest publishes, the record store and
retention consume."""


def _phone(value: str) -> str:
    return normalise_phone(value)


def _hetu(value: str) -> str:
    return validate_personal_identity_code(value)


def _email(value: str) -> str:
    return normalise_email(value)


PhoneNumber = Annotated[str, Field(min_length=3, max_length=40), AfterValidator(_phone)]
PersonalIdentityCode = Annotated[str, Field(min_length=11, max_length=11), AfterValidator(_hetu)]
EmailAddress = Annotated[str, Field(min_length=3, max_length=320), AfterValidator(_email)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
FreeText = Annotated[str, Field(min_length=1, max_length=20_000)]


RegisterId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]
ContactId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@/+=-]+$")]


class Contract(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", str_strip_whitespace=True, validate_by_name=True, serialize_by_alias=True
    )


class RegisteredContract(Contract):
    """An envelope naming its register. The JSON name is `register`; in Python it is `register_id` because
    pydantic models already have a `register` attribute (from abc), which a field of that name would shadow."""

    register_id: RegisterId = Field(alias="register")

    @property
    def register(self) -> str:
        return self.register_id


class Agent(Contract):
    """The official who handled the contact. `id` is the platform's user id; it decides what an agent may see."""

    id: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:@-]+$")]
    name: ShortText | None = None
    phone: PhoneNumber | None = None
    title: ShortText | None = None
    organisation: ShortText | None = None


class CallData(Contract):
    direction: Literal["inbound", "outbound"] | None = None
    caller_number: PhoneNumber | None = None
    callee_number: PhoneNumber | None = None
    caller_presentation: Literal["allowed", "restricted"] = "allowed"
    service_number: PhoneNumber | None = None
    agent: Agent | None = None


class CallStartedData(CallData):
    direction: Literal["inbound", "outbound"]


class ChatCustomer(Contract):
    nickname: ShortText | None = None
    name: ShortText | None = None
    email: EmailAddress | None = None
    phone: PhoneNumber | None = None


class ChatParticipant(Contract):
    """Technical participant data a chat service records (Statistics Finland lists exactly these)."""

    source_page: Annotated[str, Field(max_length=2000)] | None = None
    ip_address: Annotated[str, Field(max_length=45)] | None = None
    operator: ShortText | None = None
    country: ShortText | None = None
    city: ShortText | None = None
    browser: ShortText | None = None
    os: ShortText | None = None
    current_page: Annotated[str, Field(max_length=2000)] | None = None


class ChatStartedData(Contract):
    customer: ChatCustomer | None = None
    participant: ChatParticipant | None = None
    agent: Agent | None = None


class ChatMessageData(Contract):
    sender: Literal["customer", "agent", "bot"]
    text: FreeText
    agent: Agent | None = None


class ChatEndedData(Contract):
    reason: Literal["customer_left", "agent_closed", "timeout", "transferred"] | None = None


class ChatbotMessageData(Contract):
    sender: Literal["customer", "bot"]
    text: FreeText


class SmsSurveySentData(Contract):
    phone_number: PhoneNumber
    survey_id: ShortText
    question: FreeText | None = None


class SmsSurveyAnsweredData(Contract):
    phone_number: PhoneNumber | None = None
    survey_id: ShortText
    answer: FreeText


class CaseOpenedData(Contract):
    case_number: Annotated[str, Field(min_length=1, max_length=100)]
    subject: ShortText | None = None
    agent: Agent | None = None


class CaseClosedData(Contract):
    case_number: Annotated[str, Field(min_length=1, max_length=100)]
    resolution: ShortText | None = None


class Attachment(Contract):
    filename: ShortText
    content_type: Annotated[str, Field(max_length=200, pattern=r"^[\w.+-]+/[\w.+-]+$")]
    size_bytes: Annotated[int, Field(ge=0, le=10 * 1024**3)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None


class EmailReceivedData(Contract):
    from_address: EmailAddress
    from_name: ShortText | None = None
    subject: ShortText | None = None
    body: FreeText | None = None
    case_number: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    attachments: Annotated[list[Attachment], Field(max_length=100)] = []


class IdentificationData(Contract):
    """Beneficial-owner information requests: who asked (PRH keeps this in its own register for 5 years)."""

    name: ShortText
    personal_identity_code: PersonalIdentityCode
    method: Literal["suomi_fi", "in_person", "written"] = "suomi_fi"


class EventSpec(BaseModel):
    """One row of the event-type table: everything Sailo knows about an event type, in one place."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    data_model: type[Contract]
    artifact_class: ArtifactClass
    channel: Channel
    example: dict[str, Any]
    # Where a register does not keep `artifact_class`, the event is kept under this class instead, without the
    # fields listed in `dropped_with_fallback` (data the register's notice does not say it stores).
    fallback_class: ArtifactClass | None = None
    dropped_with_fallback: tuple[str, ...] = ()
    # It carries a message of its own, so a `message_sent` retention clock has something to start from.
    carries_message: bool = False
    # It ends its contact: the contact's end time, where a `contact_end` retention clock starts.
    ends_contact: bool = False
    # Where the customer's identifiers sit in `data` (field -> path). A call's customer number is the far end
    # of the call and depends on its direction: see `customer_field_paths`.
    customer_fields: dict[str, tuple[str, ...]] = {}


EVENT_TYPES: dict[str, EventSpec] = {
    "call.started": EventSpec(
        data_model=CallStartedData,
        artifact_class=ArtifactClass.CONTACT_HISTORY,
        channel=Channel.PHONE,
        example={
            "direction": "inbound",
            "caller_number": "+358401234567",
            "caller_presentation": "allowed",
            "service_number": "+358295095000",
        },
    ),
    "call.answered": EventSpec(
        data_model=CallData,
        artifact_class=ArtifactClass.CONTACT_HISTORY,
        channel=Channel.PHONE,
        example={"agent": {"id": "agent-17", "name": "Aino Agentti", "phone": "+358295095123"}},
    ),
    "call.ended": EventSpec(
        data_model=CallData,
        artifact_class=ArtifactClass.CONTACT_HISTORY,
        channel=Channel.PHONE,
        ends_contact=True,
        example={},
    ),
    "chat.started": EventSpec(
        data_model=ChatStartedData,
        artifact_class=ArtifactClass.PARTICIPANT_DATA,
        channel=Channel.CHAT,
        customer_fields={name: ("customer", name) for name in ("nickname", "name", "email", "phone")},
        fallback_class=ArtifactClass.MESSAGES,
        dropped_with_fallback=("participant",),
        example={
            "customer": {"nickname": "kysyjä"},
            "participant": {
                "source_page": "https://www.prh.fi/fi/kaupparekisteri.html",
                "ip_address": "192.0.2.10",
                "operator": "Example Operator",
                "country": "FI",
                "city": "Helsinki",
                "browser": "Firefox",
                "os": "Linux",
                "current_page": "https://www.prh.fi/fi/yhteystiedot.html",
            },
        },
    ),
    "chat.message": EventSpec(
        data_model=ChatMessageData,
        artifact_class=ArtifactClass.MESSAGES,
        channel=Channel.CHAT,
        carries_message=True,
        example={"sender": "customer", "text": "Miten rekisteröin toiminimen?"},
    ),
    "chat.ended": EventSpec(
        data_model=ChatEndedData,
        artifact_class=ArtifactClass.MESSAGES,
        channel=Channel.CHAT,
        ends_contact=True,
        example={"reason": "customer_left"},
    ),
    "chatbot.message": EventSpec(
        data_model=ChatbotMessageData,
        artifact_class=ArtifactClass.MESSAGES,
        channel=Channel.CHATBOT,
        carries_message=True,
        example={"sender": "customer", "text": "Mikä on kaupparekisterin puhelinnumero?"},
    ),
    "sms_survey.sent": EventSpec(
        data_model=SmsSurveySentData,
        artifact_class=ArtifactClass.SURVEY_ANSWERS,
        channel=Channel.SMS,
        customer_fields={"phone": ("phone_number",)},
        example={"phone_number": "+358401234567", "survey_id": "nps-2026", "question": "Arvioi palvelu 1-5"},
    ),
    "sms_survey.answered": EventSpec(
        data_model=SmsSurveyAnsweredData,
        artifact_class=ArtifactClass.SURVEY_ANSWERS,
        channel=Channel.SMS,
        carries_message=True,
        customer_fields={"phone": ("phone_number",)},
        example={"phone_number": "+358401234567", "survey_id": "nps-2026", "answer": "5"},
    ),
    "case.opened": EventSpec(
        data_model=CaseOpenedData,
        artifact_class=ArtifactClass.CASE_DATA,
        channel=Channel.CASE,
        example={"case_number": "DVV-2026-001234", "subject": "Osoitteenmuutos"},
    ),
    "case.closed": EventSpec(
        data_model=CaseClosedData,
        artifact_class=ArtifactClass.CASE_DATA,
        channel=Channel.CASE,
        example={"case_number": "DVV-2026-001234", "resolution": "answered"},
    ),
    "email.received": EventSpec(
        data_model=EmailReceivedData,
        artifact_class=ArtifactClass.CASE_DATA,
        channel=Channel.EMAIL,
        carries_message=True,
        customer_fields={"email": ("from_address",), "name": ("from_name",)},
        example={
            "from_address": "asiakas@example.fi",
            "subject": "Kysymys",
            "body": "Hei, kysyisin osoitteenmuutoksesta.",
            "case_number": "DVV-2026-001234",
            "attachments": [
                {"filename": "liite.pdf", "content_type": "application/pdf", "size_bytes": 20480}
            ],
        },
    ),
    "identification": EventSpec(
        data_model=IdentificationData,
        artifact_class=ArtifactClass.IDENTIFICATION,
        channel=Channel.IDENTIFICATION,
        customer_fields={"name": ("name",), "personal_identity_code": ("personal_identity_code",)},
        example={"name": "Maija Meikäläinen", "personal_identity_code": "131052-308T", "method": "suomi_fi"},
    ),
}

MESSAGE_EVENT_TYPES: frozenset[str] = frozenset(
    name for name, spec in EVENT_TYPES.items() if spec.carries_message
)
"""Event types that carry a message of their own."""

ENDING_EVENT_TYPES: frozenset[str] = frozenset(
    name for name, spec in EVENT_TYPES.items() if spec.ends_contact
)
"""Event types that end their contact."""

CUSTOMER_FIELDS = ("phone", "email", "name", "nickname", "personal_identity_code")
"""The customer details an event can hold (and a rectification can correct)."""


def customer_field_paths(event_type: str, data: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Where each customer field this event holds sits in its data, from the event-type table: the one answer
    to "where are the customer's identifiers" for the record store, the blind index and rectification."""
    spec = EVENT_TYPES.get(event_type)
    if spec is None:
        return {}
    paths = dict(spec.customer_fields)
    if spec.channel is Channel.PHONE:
        # The customer is the far end of the call: the caller of an inbound call, the callee of an outbound one.
        inbound = data.get("direction", "inbound") == "inbound"
        paths["phone"] = ("caller_number",) if inbound else ("callee_number",)
    return {name: path for name, path in paths.items() if path_value(data, path) is not None}


def path_value(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at `path` in nested `data`, or None where any step is missing."""
    value: Any = data
    for step in path:
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


EXAMPLE_REGISTER = {
    "call.started": "prh-customer-service",
    "call.answered": "prh-customer-service",
    "call.ended": "prh-customer-service",
    "chat.started": "statfi-chat",
    "chat.message": "prh-customer-service",
    "chat.ended": "prh-customer-service",
    "chatbot.message": "prh-customer-service",
    "sms_survey.sent": "prh-customer-service",
    "sms_survey.answered": "prh-customer-service",
    "case.opened": "dvv-personal-customer-service",
    "case.closed": "dvv-personal-customer-service",
    "email.received": "dvv-personal-customer-service",
    "identification": "prh-beneficial-owner-customers",
}


class ContactEvent(RegisteredContract):
    """A contact event as a platform sends it. `event_id` is the idempotency key."""

    event_id: UUID
    type: str
    version: Annotated[int, Field(ge=1)] = CONTRACT_VERSION
    contact_id: ContactId
    occurred_at: AwareDatetime
    producer: ShortText | None = None
    correlation_id: ShortText | None = None
    data: Contract

    @property
    def spec(self) -> EventSpec:
        return EVENT_TYPES[self.type]


def _typed_event_model(event_type: str, spec: EventSpec) -> type[ContactEvent]:
    """The JSON-Schema-visible model of one event type (envelope with `type` fixed and `data` typed)."""
    name = "".join(part.capitalize() for part in event_type.replace(".", "_").split("_")) + "Event"
    annotations = {"type": Literal[event_type], "data": spec.data_model}
    namespace: dict[str, Any] = {
        "__annotations__": annotations,
        "__module__": __name__,
        "model_config": ConfigDict(
            validate_by_name=True,
            serialize_by_alias=True,
            frozen=True,
            extra="forbid",
            json_schema_extra={"examples": [example_event(event_type)]},
        ),
    }
    return type(name, (ContactEvent,), namespace)


def example_event(
    event_type: str, *, event_id: str = "0b7f6a8e-4f3c-4c1e-9a65-3f1f7d2b9c01"
) -> dict[str, Any]:
    """A valid example of one event type, as shown in the OpenAPI document."""
    return {
        "event_id": event_id,
        "type": event_type,
        "version": CONTRACT_VERSION,
        "register": EXAMPLE_REGISTER[event_type],
        "contact_id": "call-2026-0001"
        if event_type.startswith("call.")
        else f"{event_type.split('.')[0]}-0001",
        "occurred_at": "2026-03-02T09:15:00+02:00",
        "producer": "example-platform",
        "data": EVENT_TYPES[event_type].example,
    }


TYPED_EVENT_MODELS: dict[str, type[ContactEvent]] = {
    event_type: _typed_event_model(event_type, spec) for event_type, spec in EVENT_TYPES.items()
}

# One validator for every type, discriminated on "type": errors point at the exact field.
_TYPED_UNION: Any = Annotated[
    # Built from the registry so that a new type needs only its EVENT_TYPES entry.
    Union[tuple(TYPED_EVENT_MODELS.values())],  # noqa: UP007
    Field(discriminator="type"),
]
CONTACT_EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(_TYPED_UNION)


# Upcasters turn an older version of an event into the current one before validation.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcast(raw: dict[str, Any]) -> dict[str, Any]:
    """Bring a raw event up to CONTRACT_VERSION through the registered upcasters (none needed yet)."""
    version = raw.get("version", CONTRACT_VERSION)
    event_type = raw.get("type")
    while isinstance(version, int) and version < CONTRACT_VERSION:
        step = UPCASTERS.get((str(event_type), version))
        if step is None:
            break
        raw = step(raw)
        version = raw.get("version", version + 1)
    return raw


def parse_contact_event(raw: Any) -> ContactEvent:
    """Validate a decoded JSON value as a contact event; raises pydantic.ValidationError."""
    if isinstance(raw, dict):
        raw = upcast(raw)
    event: ContactEvent = CONTACT_EVENT_ADAPTER.validate_python(raw)
    return event


IdentifierKind = Literal["phone", "email", "personal_identity_code", "name", "nickname", "contact_id"]


class BlindIndexEntry(Contract):
    kind: IdentifierKind
    digest: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class SealedContactEvent(RegisteredContract):
    """A validated contact event on the contact-events topic; personal data only inside `sealed`.

    `contact_ref` is a keyed pseudonym of (register, contact_id). `sealed` is base64 of AES-256-GCM ciphertext
    of `{"contact_id": ..., "data": {...}}` under the data key of (contact_ref, artifact_class). `attributes`
    holds only what routing and access control need in clear: direction, sender, agent id, case number.
    """

    event_id: UUID
    type: str
    version: int
    policy_version: str
    contact_ref: UUID
    channel: Channel
    artifact_class: ArtifactClass
    occurred_at: AwareDatetime
    received_at: AwareDatetime
    producer: str | None = None
    correlation_id: str | None = None
    content_digest: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    attributes: dict[str, str] = {}
    blind_index: list[BlindIndexEntry] = []
    sealed: str
    # The fingerprint of the data key `sealed` is under (shared.platform.crypto.data_key_id). A copy sealed under a key
    # that has since been destroyed is then recognised as shredded, not mistaken for a damaged message.
    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")] | None = None


class DeadLetter(Contract):
    """What the dead-letter topics carry: where the bad message came from and why, never its content."""

    source_topic: str
    source_partition: int
    source_offset: int
    consumer_group: str
    reason: str
    failed_at: datetime
    payload_sha256: str

"""Intake rules: validate a contact event against its contract and its register's policy, seal it, publish it.

The same path serves HTTP clients and platforms that produce straight onto the intake topic, so both meet the
same rules. An event is answered "accepted" only after the broker acknowledged it (acks=all); its data key is
committed before anything sealed under it is published, so the record store can always open what it receives.

So this service opens its own transactions instead of working in a route's session: the data keys commit before
the broker is asked, and the ledger (ingest.accepted_events) is written only after the broker acknowledged; one
transaction around both would publish events under keys a failed commit never stored.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.repository import accepted_digests, record_accepted
from shared.contracts.events import (
    EVENT_TYPES,
    BlindIndexEntry,
    ContactEvent,
    IdentifierKind,
    SealedContactEvent,
    customer_field_paths,
    parse_contact_event,
    path_value,
)
from shared.contracts.identifiers import normalise_name, normalise_nickname
from shared.contracts.vocabulary import ArtifactClass
from shared.platform.clock import Clock
from shared.platform.crypto import BlindIndex, data_key_id, seal
from shared.platform.errors import ApiError, FieldError
from shared.platform.faults import fault_point
from shared.platform.http import pydantic_errors
from shared.platform.logging import get_logger
from shared.policy.model import PolicyVersion, UnknownRegister
from shared.policy.registry import PolicyRegistry
from shared.recordstore.keystore import KeyStore
from shared.recordstore.store import sealed_part_aad

log = get_logger(__name__)

# Names and nicknames are indexed in a normal form, so a request spelling them a little differently still finds
# the contact; the other identifiers were normalised by their contract already.
_NORMALISED: dict[str, Callable[[str], str]] = {"name": normalise_name, "nickname": normalise_nickname}

# A platform's clock may run a little ahead of ours; beyond this an event "from the future" is refused.
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass
class Rejected:
    status: int
    errors: list[FieldError]
    event_id: str | None = None


@dataclass
class Validated:
    """An event that passed every rule, with what sealing needs computed once."""

    event: ContactEvent
    policy: PolicyVersion
    artifact_class: ArtifactClass
    contact_ref: UUID
    data: dict[str, Any]  # the data as stored: JSON types, absent fields left out
    digest: str  # keyed digest of the whole event: equal for a faithful resend
    dropped_fields: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """What happened to one submitted event: accepted, duplicate, or rejected with a status and reasons."""

    status: int
    outcome: str
    event_id: str | None = None
    errors: list[FieldError] = field(default_factory=list)
    dropped_fields: list[str] = field(default_factory=list)

    def read(self, index: int | None = None) -> dict[str, Any]:
        """This item's answer, shaped as EventOutcomeRead (built as a dict: a batch has many)."""
        return {
            "index": index,
            "event_id": self.event_id,
            "status": self.status,
            "outcome": self.outcome,
            "errors": [e.as_dict() for e in self.errors],
            "dropped_fields": self.dropped_fields,
        }


@dataclass
class BatchAnswer:
    """The answer to a batch: the per-item results are its body, shaped as BatchRead."""

    body: dict[str, Any]
    status: int
    headers: dict[str, str] | None = None


# The title of a single event's refusal, by its status.
_TITLES = {409: "Conflicting resend", 422: "Invalid event", 503: "Broker unavailable"}


def _find_forbidden(data: Any, forbidden: frozenset[str], path: str = "data") -> str | None:
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{path}.{key}"
            if key in forbidden:
                return here
            if (hit := _find_forbidden(value, forbidden, here)) is not None:
                return hit
    elif isinstance(data, list):
        for index, value in enumerate(data):
            if (hit := _find_forbidden(value, forbidden, f"{path}.{index}")) is not None:
                return hit
    return None


class IntakeService:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        policies: PolicyRegistry,
        keystore: KeyStore,
        blind_index: BlindIndex,
        clock: Clock,
        topic: str,
        producer_name: str = "ingest",
    ) -> None:
        self.sessionmaker = sessionmaker
        self.producer = producer
        self.policies = policies
        self.keystore = keystore
        self.blind_index = blind_index
        self.clock = clock
        self.topic = topic
        self.producer_name = producer_name
        self._coalescer = _Coalescer(self.accept_validated)

    # -- validation (no I/O) ---------------------------------------------------------------------------------

    def validate(self, raw: Any) -> Validated | Rejected:
        if not isinstance(raw, dict):
            return Rejected(422, [FieldError("body", "an event must be a JSON object")])
        event_id = raw.get("event_id") if isinstance(raw.get("event_id"), str) else None
        event_type = raw.get("type")
        if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
            return Rejected(
                422, [FieldError("type", f"unknown event type; known: {', '.join(EVENT_TYPES)}")], event_id
            )
        register = raw.get("register")
        try:
            register_policy = self.policies.get(str(register))
        except UnknownRegister:
            return Rejected(
                422,
                [FieldError("register", f"unknown register; known: {', '.join(self.policies.registers())}")],
                event_id,
            )
        # The register's own rules come before the contract, so the reason names the rule, not a symptom.
        if not any(version.intake.accepts(event_type) for version in register_policy.versions):
            reason = f"register {register} does not accept {event_type} events"
            return Rejected(422, [FieldError("type", reason)], event_id)
        forbidden = frozenset(register_policy.forbidden_fields_any_version())
        if forbidden and (hit := _find_forbidden(raw.get("data"), forbidden)) is not None:
            return Rejected(
                422,
                [
                    FieldError(
                        hit, f"register {register} does not accept this field ({hit.rsplit('.', 1)[-1]})"
                    )
                ],
                event_id,
            )
        try:
            event = parse_contact_event(raw)
        except ValidationError as exc:
            return Rejected(422, pydantic_errors(exc.errors(), drop_prefix=1), event_id)
        event_id = str(event.event_id)

        now = self.clock.now()
        if event.occurred_at > now + FUTURE_TOLERANCE:
            return Rejected(422, [FieldError("occurred_at", "is in the future")], event_id)
        policy = self.policies.version_at(event.register, event.occurred_at)
        if policy is None:
            start = register_policy.starts_at()
            return Rejected(
                422,
                [FieldError("occurred_at", f"is before the register {event.register} began ({start})")],
                event_id,
            )
        intake = policy.intake
        if event.register and event.type not in intake.event_types:
            return Rejected(
                422,
                [FieldError("type", f"register {event.register} does not accept {event.type} events")],
                event_id,
            )
        # Re-check against the version in force: an older version may refuse more than the union above.
        if intake.forbidden_fields and (
            hit := _find_forbidden(raw.get("data"), frozenset(intake.forbidden_fields))
        ):
            return Rejected(
                422, [FieldError(hit, f"register {event.register} does not accept this field")], event_id
            )

        dropped: list[str] = []
        data = event.data
        spec = event.spec
        artifact_class = spec.artifact_class
        if not policy.keeps(artifact_class):
            if spec.fallback_class is None or not policy.keeps(spec.fallback_class):
                reason = f"register {event.register} keeps no {artifact_class.value} data"
                return Rejected(422, [FieldError("type", reason)], event_id)
            artifact_class = spec.fallback_class
            present = [name for name in spec.dropped_with_fallback if getattr(data, name, None) is not None]
            if present:
                data = data.model_copy(update=dict.fromkeys(present))
                dropped.extend(f"data.{name}" for name in present)
        if (
            getattr(data, "caller_presentation", None) == "restricted"
            and getattr(data, "caller_number", None) is not None
            and not intake.store_restricted_caller_number
        ):
            # HSY: the customer's number is stored only if it is not secret.
            data = data.model_copy(update={"caller_number": None})
            dropped.append("data.caller_number")
        if dropped:
            event = event.model_copy(update={"data": data})
        stored = data.model_dump(mode="json", exclude_none=True)
        canonical = {
            "event_id": event_id,
            "type": event.type,
            "version": event.version,
            "register": event.register,
            "contact_id": event.contact_id,
            "occurred_at": event.occurred_at.isoformat(),
            "producer": event.producer,
            "correlation_id": event.correlation_id,
            "data": stored,
        }
        digest = self.blind_index.content_digest(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS))
        return Validated(
            event,
            policy,
            artifact_class,
            self.contact_ref(event.register, event.contact_id),
            stored,
            digest,
            dropped,
        )

    # -- acceptance ------------------------------------------------------------------------------------------

    async def accept_one(self, raw: Any) -> Outcome:
        """One event: its outcome when accepted or a faithful resend; otherwise refused with the item's status
        and reasons (409 for a changed resend, 422 for a broken rule, 503 with Retry-After when the broker did
        not acknowledge it)."""
        outcome = (await self.accept([raw]))[0]
        if outcome.status == 202:
            return outcome
        headers = {"Retry-After": "5"} if outcome.status == 503 else None
        raise ApiError(
            outcome.status, _TITLES.get(outcome.status, "Rejected"), outcome.errors, headers=headers
        )

    async def accept_batch(self, items: list[Any], unparsable: Mapping[int, FieldError]) -> BatchAnswer:
        """Each item answered on its own, so one bad item never sinks the good ones: 202 when every item was
        accepted (or was a faithful resend), 207 otherwise. `unparsable` names the positions of items that were
        not JSON at all (an NDJSON line), answered 400 with the given reason."""
        positions = [i for i in range(len(items)) if i not in unparsable]
        outcomes = await self.accept([items[i] for i in positions])
        results: list[dict[str, Any] | None] = [None] * len(items)
        for i, outcome in zip(positions, outcomes, strict=True):
            results[i] = outcome.read(i)
        for i, error in unparsable.items():
            results[i] = Outcome(400, "rejected", None, [error]).read(i)
        final = [r for r in results if r is not None]
        rejected = sum(r["status"] != 202 for r in final)
        body = {
            "accepted": sum(r["outcome"] == "accepted" for r in final),
            "duplicates": sum(r["outcome"] == "duplicate" for r in final),
            "rejected": rejected,
            "results": final,
        }
        headers = {"Retry-After": "5"} if any(r["status"] == 503 for r in final) else None
        return BatchAnswer(body, 202 if rejected == 0 else 207, headers)

    async def accept(self, raws: list[Any]) -> list[Outcome]:
        """Validate, deduplicate, seal and publish a batch; one outcome per input, in order."""
        outcomes: list[Outcome | None] = [None] * len(raws)
        valid: list[tuple[int, Validated]] = []
        for index, raw in enumerate(raws):
            result = self.validate(raw)
            if isinstance(result, Rejected):
                outcomes[index] = Outcome(result.status, "rejected", result.event_id, result.errors)
            else:
                valid.append((index, result))
        if valid:
            published = await self._coalescer.submit([v for _, v in valid])
            for (index, _), outcome in zip(valid, published, strict=True):
                outcomes[index] = outcome
        return [o for o in outcomes if o is not None]

    async def accept_validated(self, items: list[Validated]) -> list[Outcome]:
        """Deduplicate against the batch and the ledger, then publish the new events; outcomes in order."""
        outcomes: list[Outcome | None] = [None] * len(items)
        candidates: dict[UUID, tuple[int, Validated, str]] = {}
        for index, validated in enumerate(items):
            digest = validated.digest
            event_id = validated.event.event_id
            if event_id in candidates:
                same = candidates[event_id][2] == digest
                outcomes[index] = Outcome(202, "duplicate", str(event_id)) if same else _conflict(event_id)
                continue
            candidates[event_id] = (index, validated, digest)

        keys: dict[tuple[UUID, str], bytes] = {}
        if candidates:
            # One transaction: which ids the ledger already has, and the data keys of the new ones. The keys are
            # committed before publishing: the record store must find every key a published event needs.
            async with self.sessionmaker() as session, session.begin():
                known = await accepted_digests(session, list(candidates))
                refs = {
                    (validated.contact_ref, validated.artifact_class.value)
                    for event_id, (_index, validated, _digest) in candidates.items()
                    if event_id not in known
                }
                if refs:
                    keys = await self.keystore.get_or_create(session, refs)
            for event_id, digest in known.items():
                index, _validated, mine = candidates.pop(event_id)
                outcomes[index] = (
                    Outcome(202, "duplicate", str(event_id)) if digest == mine else _conflict(event_id)
                )

        if candidates:
            failures = await self._publish(list(candidates.values()), keys)
            for event_id, (index, validated, _digest) in candidates.items():
                outcomes[index] = failures.get(event_id) or Outcome(
                    202, "accepted", str(event_id), dropped_fields=validated.dropped_fields
                )
        return [o for o in outcomes if o is not None]

    async def _publish(
        self, items: list[tuple[int, Validated, str]], keys: dict[tuple[UUID, str], bytes]
    ) -> dict[UUID, Outcome]:
        """Seal and produce; record the ledger. Returns the outcome of each item that was NOT accepted."""
        received_at = self.clock.now()
        sealed_events = [
            self._seal(validated, digest, keys, received_at) for _index, validated, digest in items
        ]

        failures: dict[UUID, Outcome] = {}
        futures = []
        try:
            for sealed_event in sealed_events:
                futures.append(
                    await self.producer.send(
                        self.topic,
                        key=sealed_event.contact_ref.bytes,
                        value=sealed_event.model_dump_json().encode(),
                    )
                )
            results = await asyncio.gather(*futures, return_exceptions=True)
        except KafkaError as exc:
            results = [exc] * len(sealed_events)
        acked: list[SealedContactEvent] = []
        for sealed_event, result in zip(
            sealed_events, results + [None] * (len(sealed_events) - len(results)), strict=True
        ):
            if isinstance(result, BaseException) or result is None:
                failures[sealed_event.event_id] = Outcome(
                    503,
                    "unavailable",
                    str(sealed_event.event_id),
                    [FieldError("broker", "the event broker did not acknowledge the event; retry later")],
                )
            else:
                acked.append(sealed_event)
        if failures:
            log.warning("ingest.broker_unavailable", failed=len(failures))
        if acked:
            # A crash here: the broker has the events, the ledger and the client do not. The client resends and
            # the record store keeps the first copy (its consumer applies an event id once).
            fault_point("ingest.after_broker_ack")

        if acked:
            async with self.sessionmaker() as session, session.begin():
                inserted = await record_accepted(session, acked)
                raced = [e for e in acked if e.event_id not in inserted]
                if raced:
                    # Another request accepted the same id meanwhile; the record store keeps the first.
                    winners = await accepted_digests(session, [e.event_id for e in raced])
                    for e in raced:
                        if winners.get(e.event_id) != e.content_digest:
                            failures[e.event_id] = _conflict(e.event_id)
        return failures

    def contact_ref(self, register: str, contact_id: str) -> UUID:
        return self.blind_index.pseudonym("contact", register, contact_id)

    def _seal(
        self, validated: Validated, digest: str, keys: dict[tuple[UUID, str], bytes], received_at: datetime
    ) -> SealedContactEvent:
        event = validated.event
        artifact_class = validated.artifact_class.value
        contact_ref = validated.contact_ref
        data = validated.data
        document = orjson.dumps({"contact_id": event.contact_id, "data": data})
        data_key = keys[(contact_ref, artifact_class)]
        sealed = seal(
            data_key,
            document,
            aad=sealed_part_aad(contact_ref, artifact_class, "event"),
        )
        # Every part was validated above; constructing without re-validation keeps the hot path lean.
        return SealedContactEvent.model_construct(
            event_id=event.event_id,
            type=event.type,
            version=event.version,
            register_id=event.register,
            policy_version=validated.policy.version,
            contact_ref=contact_ref,
            channel=event.spec.channel,
            artifact_class=validated.artifact_class,
            occurred_at=event.occurred_at,
            received_at=received_at,
            producer=event.producer or self.producer_name,
            correlation_id=event.correlation_id,
            content_digest=digest,
            attributes=_clear_attributes(data),
            blind_index=self._blind_entries(event.type, event.contact_id, data),
            sealed=base64.b64encode(sealed).decode(),
            key_id=data_key_id(data_key),
        )

    def _blind_entries(self, event_type: str, contact_id: str, data: dict[str, Any]) -> list[BlindIndexEntry]:
        """Keyed hashes of the customer's identifiers, so a data subject's request finds this contact."""
        found: list[tuple[IdentifierKind, str]] = [("contact_id", contact_id)]
        for name, path in customer_field_paths(event_type, data).items():
            if value := path_value(data, path):
                found.append((cast(IdentifierKind, name), _NORMALISED.get(name, str)(value)))
        return [
            BlindIndexEntry.model_construct(kind=kind, digest=self.blind_index.digest(kind, value).hex())
            for kind, value in sorted(set(found))
        ]


def _clear_attributes(data: dict[str, Any]) -> dict[str, str]:
    """The non-personal attributes the record store keeps in clear for routing and access control."""
    attributes: dict[str, str] = {
        name: str(data[name])
        for name in ("direction", "sender", "caller_presentation", "case_number")
        if name in data
    }
    agent = data.get("agent")
    if agent is not None:
        attributes["agent_id"] = agent["id"]
    return attributes


class _Coalescer:
    """Lets concurrent requests share one publish: one ledger query, one key transaction, one broker flush.

    Each database transaction costs far more than sealing an event, so a thousand single-event requests a
    second would otherwise mean thousands of transactions a second. Requests that arrive while a publish is in
    flight form the next one; there is no added delay, and an idle service publishes each request at once.
    """

    def __init__(
        self,
        publish: Callable[[list[Validated]], Awaitable[list[Outcome]]],
        *,
        max_events: int = 1000,
        max_in_flight: int = 2,
    ) -> None:
        self._publish = publish
        self._max_events = max_events
        self._slots = asyncio.Semaphore(max_in_flight)
        self._pending: list[tuple[list[Validated], asyncio.Future[list[Outcome]]]] = []

    async def submit(self, items: list[Validated]) -> list[Outcome]:
        future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self._pending.append((items, future))
        async with self._slots:
            if not future.done() and self._pending:
                await self._publish_pending()
        return await future

    async def _publish_pending(self) -> None:
        taken: list[tuple[list[Validated], asyncio.Future[list[Outcome]]]] = []
        count = 0
        while self._pending and (not taken or count + len(self._pending[0][0]) <= self._max_events):
            entry = self._pending.pop(0)
            taken.append(entry)
            count += len(entry[0])
        try:
            outcomes = await self._publish([item for items, _ in taken for item in items])
        except Exception as exc:
            for _, future in taken:
                if not future.done():
                    future.set_exception(exc)
            return
        position = 0
        for items, future in taken:
            if not future.done():
                future.set_result(outcomes[position : position + len(items)])
            position += len(items)


def _conflict(event_id: UUID) -> Outcome:
    return Outcome(
        409,
        "conflict",
        str(event_id),
        [
            FieldError(
                "event_id", "already accepted with different content; use a new event_id for a new event"
            )
        ],
    )

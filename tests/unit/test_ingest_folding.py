"""What a batch of sealed events changes in its contact (services.ingest.service.folding), and where intake and
the record store find the customer's identifiers: pure rules, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import uuid4

from services.ingest.service.folding import fold_contacts
from services.ingest.service.intake import IntakeService
from shared.contracts.events import SealedContactEvent, example_event, parse_contact_event
from shared.contracts.identifiers import normalise_name
from shared.contracts.vocabulary import ArtifactClass, Channel
from shared.platform.crypto import BlindIndex
from shared.recordstore.store import _parties

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REF = uuid4()


def sealed(event_type: str, minutes: int, **attributes: str) -> SealedContactEvent:
    channel = Channel.CASE if event_type.startswith("case.") else Channel.PHONE
    artifact_class = ArtifactClass.CASE_DATA if channel is Channel.CASE else ArtifactClass.CONTACT_HISTORY
    return SealedContactEvent.model_construct(
        event_id=uuid4(),
        type=event_type,
        version=1,
        register_id="prh-customer-service",
        policy_version="2026-01",
        contact_ref=REF,
        channel=channel,
        artifact_class=artifact_class,
        occurred_at=T0 + timedelta(minutes=minutes),
        received_at=T0,
        content_digest="0" * 64,
        attributes=attributes,
        blind_index=[],
        sealed="",
    )


def test_events_out_of_order_fold_into_the_earliest_start_the_latest_end_and_the_newest_case_status() -> None:
    events = [
        sealed("call.ended", 10),
        sealed("call.answered", 2, agent_id="agent-1"),
        sealed("call.started", 0, direction="inbound"),
        sealed("case.closed", 30, case_number="C-1"),
        sealed("case.opened", 20, case_number="C-1"),
    ]
    update = fold_contacts(events)[REF]
    assert update.started_at == T0
    assert update.ended_at == T0 + timedelta(minutes=10)
    assert update.last_event_at == T0 + timedelta(minutes=30)
    assert (update.direction, update.agent_id, update.case_number) == ("inbound", "agent-1", "C-1")
    assert (update.case_status, update.case_status_at) == ("closed", T0 + timedelta(minutes=30))
    assert update.event_count == 5
    assert update.artifact_spans == {
        "contact_history": (T0, T0 + timedelta(minutes=10)),
        "case_data": (T0 + timedelta(minutes=20), T0 + timedelta(minutes=30)),
    }


def _data(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    raw = example_event(event_type)
    raw["data"] = data
    return parse_contact_event(raw).data.model_dump(mode="json", exclude_none=True)


def test_the_customer_of_a_call_is_its_far_end() -> None:
    outbound = _data(
        "call.started",
        {"direction": "outbound", "caller_number": "+358401111111", "callee_number": "+358402222222"},
    )
    inbound = _data(
        "call.started",
        {"direction": "inbound", "caller_number": "+358401111111", "callee_number": "+358402222222"},
    )
    assert _parties("call.started", outbound) == [("customer", {"phone": "+358402222222"})]
    assert _parties("call.started", inbound) == [("customer", {"phone": "+358401111111"})]


def test_parties_name_the_agent_and_the_customer_as_the_event_gives_them() -> None:
    chat = _data(
        "chat.started",
        {"customer": {"nickname": "kysyjä", "email": "a@example.fi"}, "agent": {"id": "agent-3"}},
    )
    assert _parties("chat.started", chat) == [
        ("agent", {"id": "agent-3"}),
        ("customer", {"nickname": "kysyjä", "email": "a@example.fi"}),
    ]
    email = _data("email.received", {"from_address": "a@example.fi"})
    assert _parties("email.received", email) == [("customer", {"email": "a@example.fi"})]
    assert _parties("call.ended", _data("call.ended", {})) == []


def test_the_blind_index_holds_each_customer_identifier_normalised_as_a_request_will_be() -> None:
    blind_index = BlindIndex(b"\x01" * 32)
    intake = IntakeService(
        sessionmaker=cast(Any, None),
        producer=cast(Any, None),
        policies=cast(Any, None),
        keystore=cast(Any, None),
        blind_index=blind_index,
        clock=cast(Any, None),
        topic="contact-events",
    )
    data = _data("email.received", {"from_address": "A@Example.fi", "from_name": "Åsa  Öberg"})
    expected = {
        ("contact_id", "email-0001"),
        ("email", "a@example.fi"),
        ("name", normalise_name("Åsa  Öberg")),
    }
    entries = intake._blind_entries("email.received", "email-0001", data)
    assert [(e.kind, e.digest) for e in entries] == [
        (kind, blind_index.digest(kind, value).hex()) for kind, value in sorted(expected)
    ]
    outbound = _data("call.started", {"direction": "outbound", "callee_number": "+358402222222"})
    assert [e.kind for e in intake._blind_entries("call.started", "call-1", outbound)] == [
        "contact_id",
        "phone",
    ]

"""The published event contracts: checked-in JSON Schema, valid examples, and identifier rules in the contract."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from shared.contracts.events import EVENT_TYPES, example_event, parse_contact_event
from shared.contracts.published import SCHEMA_DIR, json_schemas


def test_checked_in_json_schemas_match_the_contracts() -> None:
    """Platforms integrate against schemas/: a contract change must be a deliberate `make schemas` commit."""
    for name, schema in json_schemas().items():
        path = SCHEMA_DIR / name
        assert path.exists(), f"{path} missing: run `make schemas`"
        assert json.loads(path.read_text(encoding="utf-8")) == schema, f"{name} changed: run `make schemas`"


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_example_is_valid(event_type: str) -> None:
    event = parse_contact_event(example_event(event_type))
    assert event.type == event_type
    assert isinstance(event.data, EVENT_TYPES[event_type].data_model)


def _errors(raw: dict[str, Any]) -> list[tuple[str, ...]]:
    with pytest.raises(ValidationError) as caught:
        parse_contact_event(raw)
    return [tuple(str(p) for p in e["loc"][1:]) for e in caught.value.errors()]


def test_identifiers_are_validated_and_normalised_in_the_contract() -> None:
    raw = example_event("call.started")
    raw["data"] = {"direction": "inbound", "caller_number": "040 123 4567"}
    assert parse_contact_event(raw).data.caller_number == "+358401234567"  # type: ignore[attr-defined]
    raw["data"] = {"direction": "inbound", "caller_number": "123"}
    assert ("data", "caller_number") in _errors(raw)

    ident = example_event("identification")
    ident["data"] = {**ident["data"], "personal_identity_code": "131052-308U"}
    assert ("data", "personal_identity_code") in _errors(ident)


def test_envelope_rules() -> None:
    naive = example_event("call.ended")
    naive["occurred_at"] = "2026-03-02T09:15:00"
    assert ("occurred_at",) in _errors(naive)
    extra = example_event("call.ended")
    extra["data"] = {"unexpected": 1}
    assert ("data", "unexpected") in _errors(extra)

"""Events built in SQL from the contracts (shared/messaging/outbox.py: envelope_fields, envelope_sql), and the
sweeper's artifact-deleted event among them: the same contract as an event built in Python, whichever way.

No database here: the SQL expressions of each JSON key are evaluated the way PostgreSQL's jsonb_build_object
renders the values (tests/integration/test_outbox.py runs the same SQL on PostgreSQL)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from services.retention.repository import ARTIFACT_DELETED_DATA
from shared.contracts.domain_events import ArtifactDeletedData, DomainEvent, parse_domain_event
from shared.messaging.outbox import envelope, envelope_fields, envelope_sql

DONE_AT = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def _jsonb(value: object) -> object:
    """A value as jsonb_build_object puts it in JSON: uuids and timestamps as text (ISO 8601, with offset)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def evaluate(fields: Mapping[str, Any], row: Mapping[str, object]) -> dict[str, Any]:
    """The JSON object the expressions of `fields` build for one row (`row`: SQL expression -> its value)."""
    built: dict[str, Any] = {}
    for key, expression in fields.items():
        if not isinstance(expression, str):
            built[key] = evaluate(expression, row)
        elif expression == "gen_random_uuid()":
            built[key] = str(uuid.uuid4())
        elif expression == "NULL":
            built[key] = None
        elif re.fullmatch(r"[0-9]+", expression):
            built[key] = int(expression)
        elif literal := re.fullmatch(r"'((?:[^']|'')*)'", expression):
            built[key] = literal.group(1).replace("''", "'")
        else:
            built[key] = _jsonb(row[expression])
    return built


def _deleted(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "contact_ref": uuid.uuid4(),
        "register": "prh-customer-service",
        "artifact_class": "recording",
        "item": "",
        "method": "crypto-shredding",
        "reason": "retention_expired",
        "certificate_id": uuid.uuid4(),
        "policy_version": "2021-10-20",
        "due_at": datetime(2026, 5, 31, 21, 0, tzinfo=UTC),
        "done_at": DONE_AT,
    }
    return data | changes


@pytest.mark.parametrize(
    "changes",
    [{}, {"method": "redaction", "item": "20260531T120000.000000Z", "reason": "erasure_request"}],
)
def test_the_sweepers_sql_built_event_is_the_python_built_one(changes: dict[str, object]) -> None:
    data = _deleted(**changes)
    fields = envelope_fields(
        "retention.artifact_deleted",
        ARTIFACT_DELETED_DATA,
        producer="retention",
        occurred_at="CAST(:done_at AS timestamptz)",
    )
    # The row as the sweeper's statement sees it: its columns `c.*` and the batch's time.
    row = {f"c.{name}": value for name, value in data.items()} | {"CAST(:done_at AS timestamptz)": DONE_AT}
    from_sql, contract_from_sql = parse_domain_event(evaluate(fields, row))
    python_built = envelope("retention.artifact_deleted", data, producer="retention", occurred_at=DONE_AT)
    from_python, contract_from_python = parse_domain_event(python_built.model_dump(mode="json"))

    assert isinstance(contract_from_sql, ArtifactDeletedData)
    assert contract_from_sql == contract_from_python
    assert from_sql.model_dump(exclude={"id", "data"}) == from_python.model_dump(exclude={"id", "data"})
    assert from_sql.id != from_python.id  # each event its own id, the consumers' idempotency key


def test_every_envelope_field_and_every_contract_field_is_built() -> None:
    fields = envelope_fields(
        "retention.artifact_deleted", ARTIFACT_DELETED_DATA, producer="retention", occurred_at="now()"
    )
    assert set(fields) == {info.alias or name for name, info in DomainEvent.model_fields.items()}
    assert set(fields["data"]) == {
        info.alias or name for name, info in ArtifactDeletedData.model_fields.items()
    }
    sql = envelope_sql(
        "retention.artifact_deleted", ARTIFACT_DELETED_DATA, producer="retention", occurred_at="now()"
    )
    assert sql.startswith("jsonb_build_object('id', gen_random_uuid(), 'type', 'retention.artifact_deleted',")
    assert "'data', jsonb_build_object('contact_ref', c.contact_ref, 'register', c.register," in sql


def test_a_mapping_that_drifts_from_the_contract_is_refused_when_the_statement_is_built() -> None:
    missing = {name: sql for name, sql in ARTIFACT_DELETED_DATA.items() if name != "certificate_id"}
    with pytest.raises(ValueError, match="certificate_id"):
        envelope_sql("retention.artifact_deleted", missing, producer="retention", occurred_at="now()")
    extra = dict(ARTIFACT_DELETED_DATA) | {"contact": "c.contact"}
    with pytest.raises(ValueError, match="contact"):
        envelope_sql("retention.artifact_deleted", extra, producer="retention", occurred_at="now()")
    with pytest.raises(KeyError):
        envelope_sql(
            "retention.artifact_shredded", ARTIFACT_DELETED_DATA, producer="retention", occurred_at="now()"
        )


def test_optional_fields_are_mapped_too_and_literals_are_quoted() -> None:
    fields = envelope_fields(
        "retention.hold_placed",
        {
            "hold_number": "h.n",
            "scope": "'contact'",
            "contact_ref": "NULL",
            "register": "NULL",
            "ends_on": "NULL",
        },
        producer="retention",
        occurred_at="now()",
        correlation_id="'it''s'",
    )
    built = evaluate(fields, {"h.n": 12, "now()": DONE_AT})
    event, data = parse_domain_event(built)
    assert event.correlation_id == "it's"
    assert data.model_dump(by_alias=True) == {
        "hold_number": 12,
        "scope": "contact",
        "contact_ref": None,
        "register": None,
        "ends_on": None,
    }
    with pytest.raises(ValueError, match="ends_on"):
        envelope_fields(
            "retention.hold_placed",
            {"hold_number": "h.n", "scope": "'contact'", "contact_ref": "NULL", "register": "NULL"},
            producer="retention",
            occurred_at="now()",
        )

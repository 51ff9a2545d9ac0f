"""Ingest over HTTP on real PostgreSQL and a real broker: what a platform engineer checks."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from shared.contracts.events import EVENT_TYPES, example_event
from shared.security.auth import Role
from tests.integration.conftest import Ingest, eventually, new_id, wav_bytes

pytestmark = pytest.mark.integration


def event(event_type: str, **overrides: Any) -> dict[str, Any]:
    body = example_event(event_type, event_id=new_id())
    body["contact_id"] = overrides.pop("contact_id", f"c-{new_id()}")
    data = overrides.pop("data", None)
    if data is not None:
        body["data"] = data
    body.update(overrides)
    return body


async def stored_contact(
    ingest: Ingest, contact_id: str, *, events: int = 1, register: str | None = None
) -> Any:
    params = {"register": register} if register else None

    async def check() -> Any:
        response = await ingest.client.get(
            f"/v1/contacts/{contact_id}", headers=ingest.auth(Role.MANAGER), params=params
        )
        if response.status_code == 200 and len(response.json()["events"]) >= events:
            return response.json()
        return None

    return await eventually(check)


async def test_every_openapi_example_is_accepted_and_stored(ingest: Ingest) -> None:
    spec = (await ingest.client.get("/openapi.json")).json()
    examples = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert set(examples) == set(EVENT_TYPES)
    for name, example in examples.items():
        body = copy.deepcopy(example["value"])
        body["event_id"] = new_id()
        body["contact_id"] = f"example-{new_id()}"
        response = await ingest.client.post("/v1/events", json=body, headers=ingest.auth())
        assert response.status_code == 202, (name, response.text)
        assert response.json()["outcome"] == "accepted"
        contact = await stored_contact(ingest, body["contact_id"])
        assert contact["register"] == body["register"]
        assert contact["events"][0]["type"] == name
        assert contact["events"][0]["data"] is not None


async def test_call_is_stored_decrypted_for_a_manager(ingest: Ingest) -> None:
    contact_id = f"call-{new_id()}"
    started = event(
        "call.started",
        contact_id=contact_id,
        occurred_at="2026-03-02T09:15:00+02:00",
        data={"direction": "inbound", "caller_number": "040 123 4567", "service_number": "029 509 5000"},
    )
    answered = event(
        "call.answered",
        contact_id=contact_id,
        occurred_at="2026-03-02T09:15:20+02:00",
        data={"agent": {"id": "agent-17", "name": "Aino Agentti"}},
    )
    ended = event("call.ended", contact_id=contact_id, occurred_at="2026-03-02T09:20:00+02:00", data={})
    for body in (started, answered, ended):
        assert (await ingest.client.post("/v1/events", json=body, headers=ingest.auth())).status_code == 202
    contact = await stored_contact(ingest, contact_id, events=3)
    assert contact["channel"] == "phone"
    assert contact["direction"] == "inbound"
    assert contact["agent_id"] == "agent-17"
    assert contact["started_at"].startswith("2026-03-02T07:15:00")
    assert contact["ended_at"].startswith("2026-03-02T07:20:00")
    # Identifiers are normalised to E.164 before they are sealed.
    assert contact["events"][0]["data"]["caller_number"] == "+358401234567"
    roles = sorted(p["role"] for p in contact["parties"])
    assert roles == ["agent", "customer"]


async def test_resend_is_202_and_changes_nothing_but_changed_resend_is_409(ingest: Ingest) -> None:
    body = event("chat.message", data={"sender": "customer", "text": "Hei, kysyisin yrityksestä"})
    first = await ingest.client.post("/v1/events", json=body, headers=ingest.auth())
    again = await ingest.client.post("/v1/events", json=body, headers=ingest.auth())
    assert (first.status_code, first.json()["outcome"]) == (202, "accepted")
    assert (again.status_code, again.json()["outcome"]) == (202, "duplicate")
    changed = copy.deepcopy(body)
    changed["data"]["text"] = "Toinen viesti"
    conflict = await ingest.client.post("/v1/events", json=changed, headers=ingest.auth())
    assert conflict.status_code == 409
    assert conflict.json()["errors"][0]["field"] == "event_id"
    contact = await stored_contact(ingest, body["contact_id"])
    assert len(contact["events"]) == 1
    assert contact["events"][0]["data"]["text"] == "Hei, kysyisin yrityksestä"


async def test_batch_answers_per_item_and_keeps_the_good_ones(ingest: Ingest) -> None:
    contact_id = f"chat-{new_id()}"
    good = [
        event("chat.message", contact_id=contact_id, data={"sender": "customer", "text": f"viesti {i}"})
        for i in range(3)
    ]
    bad_phone = event("call.started", data={"direction": "inbound", "caller_number": "12"})
    unknown_type = event("chat.message")
    unknown_type["type"] = "chat.teleported"
    batch = [good[0], bad_phone, good[1], unknown_type, good[2], good[0]]
    response = await ingest.client.post("/v1/events/batch", json=batch, headers=ingest.auth())
    assert response.status_code == 207
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202, 422, 202, 422, 202, 202]
    assert [r["outcome"] for r in results] == [
        "accepted",
        "rejected",
        "accepted",
        "rejected",
        "accepted",
        "duplicate",
    ]
    assert results[1]["errors"][0]["field"] == "data.caller_number"
    assert results[3]["errors"][0]["field"] == "type"
    contact = await stored_contact(ingest, contact_id, events=3)
    assert sorted(e["data"]["text"] for e in contact["events"]) == ["viesti 0", "viesti 1", "viesti 2"]


async def test_ndjson_batch_with_a_broken_line(ingest: Ingest) -> None:
    contact_id = f"bot-{new_id()}"
    lines = [
        json.dumps(
            event(
                "chatbot.message", contact_id=contact_id, data={"sender": "customer", "text": f"kysymys {i}"}
            )
        )
        for i in range(2)
    ]
    body = "\n".join([lines[0], "{not json", lines[1]]) + "\n"
    response = await ingest.client.post(
        "/v1/events/batch", content=body, headers={**ingest.auth(), "Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 207
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202, 400, 202]
    assert results[1]["errors"][0]["field"] == "line 2"
    await stored_contact(ingest, contact_id, events=2)


async def test_all_events_of_a_batch_answered_202(ingest: Ingest) -> None:
    batch = [event("call.started") for _ in range(20)]
    response = await ingest.client.post("/v1/events/batch", json=batch, headers=ingest.auth())
    assert response.status_code == 202
    assert response.json()["accepted"] == 20


BAD_EVENTS: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("wrong type", {"type": "call.started", "data": {"direction": 5}}, 422, "data.direction", "inbound"),
    ("missing field", {"type": "call.started", "data": {}}, 422, "data.direction", "required"),
    ("unknown field", {"type": "chat.ended", "data": {"mood": "happy"}}, 422, "data.mood", "not permitted"),
    ("unknown type", {"type": "fax.received"}, 422, "type", "unknown event type"),
    (
        "unknown field named like a phone number",
        {"type": "chat.ended", "data": {"0401234567": "x"}},
        422,
        "data.(unknown field)",
        "not permitted",
    ),
    ("unknown register", {"register": "no-such-register"}, 422, "register", "unknown register"),
    (
        "invalid phone",
        {"type": "call.started", "data": {"direction": "inbound", "caller_number": "+358 12"}},
        422,
        "data.caller_number",
        "phone",
    ),
    (
        "identity code check character",
        {
            "type": "identification",
            "register": "prh-beneficial-owner-customers",
            "data": {"name": "Maija Meikäläinen", "personal_identity_code": "131052-308U"},
        },
        422,
        "data.personal_identity_code",
        "check character",
    ),
    (
        "identity code in the call register",
        {"type": "call.started", "data": {"direction": "inbound", "personal_identity_code": "131052-308T"}},
        422,
        "data.personal_identity_code",
        "does not accept",
    ),
    (
        "identification outside its register",
        {"type": "identification", "register": "prh-customer-service"},
        422,
        "type",
        "does not accept",
    ),
    ("naive timestamp", {"occurred_at": "2026-03-02T09:15:00"}, 422, "occurred_at", "timezone"),
    ("not a timestamp", {"occurred_at": "yesterday"}, 422, "occurred_at", "datetime"),
    ("future timestamp", {"occurred_at": "2999-01-01T00:00:00+00:00"}, 422, "occurred_at", "future"),
    ("before the register began", {"occurred_at": "2017-09-30T12:00:00+03:00"}, 422, "occurred_at", "before"),
    ("bad event id", {"event_id": "not-a-uuid"}, 422, "event_id", "UUID"),
    ("bad contact id", {"contact_id": "has spaces in it"}, 422, "contact_id", "pattern"),
]


@pytest.mark.parametrize(
    ("case", "change", "status", "field", "reason"), BAD_EVENTS, ids=[c[0] for c in BAD_EVENTS]
)
async def test_bad_event_gets_a_4xx_naming_the_field(
    ingest: Ingest, case: str, change: dict[str, Any], status: int, field: str, reason: str
) -> None:
    body = event("call.started", data={"direction": "inbound", "caller_number": "+358401234567"})
    body.update(change)
    response = await ingest.client.post("/v1/events", json=body, headers=ingest.auth())
    assert response.status_code == status, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = [e["field"] for e in problem["errors"]]
    assert field in fields, problem
    assert any(reason.lower() in e["reason"].lower() for e in problem["errors"]), problem
    # The submitted values are never echoed back.
    for value in ("131052-308", "+358 12", "has spaces in it", "0401234567"):
        assert value not in response.text


async def test_malformed_json_oversize_and_content_type(ingest: Ingest) -> None:
    broken = await ingest.client.post(
        "/v1/events", content=b'{"event_id": ', headers={**ingest.auth(), "Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["errors"][0]["field"] == "body"

    huge = event("chat.message", data={"sender": "customer", "text": "x" * 10})
    huge["padding"] = "y" * (ingest.settings.ingest_max_body_bytes + 1)
    too_big = await ingest.client.post("/v1/events", json=huge, headers=ingest.auth())
    assert too_big.status_code == 413

    as_text = await ingest.client.post(
        "/v1/events",
        content=json.dumps(event("call.ended")),
        headers={**ingest.auth(), "Content-Type": "text/plain"},
    )
    assert as_text.status_code == 415
    assert as_text.json()["errors"][0]["field"] == "content-type"

    too_many = [event("call.ended") for _ in range(ingest.settings.ingest_max_batch_items + 1)]
    over = await ingest.client.post(
        "/v1/events/batch",
        content=json.dumps(too_many, separators=(",", ":")),
        headers={**ingest.auth(), "Content-Type": "application/json"},
    )
    assert over.status_code == 413


async def test_secret_caller_number_is_not_stored_for_hsy(ingest: Ingest) -> None:
    body = event(
        "call.started",
        register="hsy-customer-service",
        data={"direction": "inbound", "caller_number": "+358401112223", "caller_presentation": "restricted"},
    )
    response = await ingest.client.post("/v1/events", json=body, headers=ingest.auth())
    assert response.status_code == 202
    assert response.json()["dropped_fields"] == ["data.caller_number"]
    contact = await stored_contact(ingest, body["contact_id"])
    assert "caller_number" not in contact["events"][0]["data"]
    assert contact["parties"] == []


async def test_authentication_and_roles(ingest: Ingest) -> None:
    body = event("call.ended")
    assert (await ingest.client.post("/v1/events", json=body)).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert (await ingest.client.post("/v1/events", json=body, headers=bad)).status_code == 401
    manager = await ingest.client.post("/v1/events", json=body, headers=ingest.auth(Role.MANAGER))
    assert manager.status_code == 403
    reader = await ingest.client.get(f"/v1/contacts/{body['contact_id']}", headers=ingest.auth(Role.PLATFORM))
    assert reader.status_code == 403


async def test_agent_sees_only_own_contacts(ingest: Ingest, token_for: Any) -> None:
    mine, theirs = f"call-{new_id()}", f"call-{new_id()}"
    for contact_id, agent in ((mine, "agent-1"), (theirs, "agent-2")):
        body = event(
            "call.answered",
            contact_id=contact_id,
            register="hsy-customer-service",
            data={"agent": {"id": agent, "name": "Agentti"}},
        )
        assert (await ingest.client.post("/v1/events", json=body, headers=ingest.auth())).status_code == 202
        await stored_contact(ingest, contact_id)
    agent_1 = {"Authorization": f"Bearer {token_for(Role.AGENT, agent_id='agent-1')}"}
    assert (await ingest.client.get(f"/v1/contacts/{mine}", headers=agent_1)).status_code == 200
    other = await ingest.client.get(f"/v1/contacts/{theirs}", headers=agent_1)
    assert other.status_code == 404


async def test_recording_round_trip(ingest: Ingest) -> None:
    contact_id = f"call-{new_id()}"
    body = event("call.started", contact_id=contact_id, data={"direction": "inbound"})
    assert (await ingest.client.post("/v1/events", json=body, headers=ingest.auth())).status_code == 202
    await stored_contact(ingest, contact_id)
    audio = wav_bytes(3.0)
    headers = {**ingest.auth(), "Content-Type": "audio/wav"}
    put = await ingest.client.put(f"/v1/contacts/{contact_id}/recording", content=audio, headers=headers)
    assert put.status_code == 201, put.text
    import hashlib

    assert put.json()["sha256"] == hashlib.sha256(audio).hexdigest()
    assert put.json()["size_bytes"] == len(audio)
    assert put.json()["duration_ms"] == 3000

    got = await ingest.client.get(f"/v1/contacts/{contact_id}/recording", headers=ingest.auth(Role.MANAGER))
    assert got.status_code == 200
    assert got.headers["content-type"] == "audio/wav"
    assert got.content == audio

    again = await ingest.client.put(f"/v1/contacts/{contact_id}/recording", content=audio, headers=headers)
    assert again.status_code == 200
    assert again.json()["stored"] == "unchanged"
    other = await ingest.client.put(
        f"/v1/contacts/{contact_id}/recording", content=wav_bytes(1.0), headers=headers
    )
    assert other.status_code == 409

    contact = await stored_contact(ingest, contact_id)
    assert contact["recording"]["sha256"] == hashlib.sha256(audio).hexdigest()


async def test_bad_recordings(ingest: Ingest) -> None:
    contact_id = f"call-{new_id()}"
    body = event("call.started", contact_id=contact_id, data={"direction": "inbound"})
    assert (await ingest.client.post("/v1/events", json=body, headers=ingest.auth())).status_code == 202
    await stored_contact(ingest, contact_id)
    url = f"/v1/contacts/{contact_id}/recording"
    mp3 = await ingest.client.put(
        url, content=b"ID3....", headers={**ingest.auth(), "Content-Type": "audio/mpeg"}
    )
    assert mp3.status_code == 415
    not_wav = await ingest.client.put(
        url, content=b"hello" * 100, headers={**ingest.auth(), "Content-Type": "audio/wav"}
    )
    assert not_wav.status_code == 415
    assert not_wav.json()["errors"][0]["field"] == "body"
    huge = await ingest.client.put(
        url,
        content=wav_bytes(1.0) + b"\0" * ingest.settings.recording_max_bytes,
        headers={**ingest.auth(), "Content-Type": "audio/wav"},
    )
    assert huge.status_code == 413
    unknown = await ingest.client.put(
        f"/v1/contacts/nobody-{new_id()}/recording",
        content=wav_bytes(0.1),
        headers={**ingest.auth(), "Content-Type": "audio/wav"},
    )
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["field"] == "contact_id"
    # Nothing was stored by the refused uploads.
    contact = await stored_contact(ingest, contact_id)
    assert contact["recording"] is None


async def test_health_readiness_metrics(ingest: Ingest) -> None:
    assert (await ingest.client.get("/healthz")).json()["status"] == "ok"
    ready = await ingest.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    metrics = await ingest.client.get("/metrics")
    assert metrics.status_code == 200
    assert "sailo_http_requests_total" in metrics.text
    # Route templates, never concrete contact ids, label the metrics.
    assert "/v1/contacts/{contact_id}" in metrics.text or "/v1/events" in metrics.text
    assert "nobody-" not in metrics.text

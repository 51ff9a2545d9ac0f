"""A full day of customer-service traffic through all four services, then a search for the canaries.

Canary personal data (a customer's name, phone number in two spellings, e-mail address, personal identity code,
chat nickname and text, an agent's name, an audio marker, an API key's secret) goes in through every door a
platform and a user have: single events and batches over HTTP (with a bearer token and with an API key), the
Kafka intake topic, recordings; it is read, listened to, refused, mistyped and sent without a token. Afterwards
no log line, error body, metric label or audit event may contain any of it. The test first proves that the
canaries really are in the system (an authorised reader gets them back), so the search cannot pass vacuously.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from services.dsr.app import create_app as create_dsr
from services.export.app import create_app as create_export
from services.ingest.apikeys import create_api_key
from services.ingest.app import INTAKE
from services.retention.app import create_app as create_retention
from shared.contracts.events import EVENT_TYPES, example_event
from shared.platform.settings import Settings
from shared.security.auth import Role
from tests.integration.conftest import Ingest, eventually, new_id, read_topic, wav_bytes

pytestmark = pytest.mark.integration

DAY = "2026-11-20"
HETU_CHECK = "0123456789ABCDEFHJKLMNPRSTUVWXY"
CONTACTS_PER_KIND = 6


def _identity_code() -> str:
    """A valid personal identity code (check character included), random enough to be unique to this run."""
    day, month, year = secrets.randbelow(28) + 1, secrets.randbelow(12) + 1, secrets.randbelow(50) + 50
    individual = secrets.randbelow(797) + 2
    number = int(f"{day:02d}{month:02d}{year:02d}{individual:03d}")
    return f"{day:02d}{month:02d}{year:02d}-{individual:03d}{HETU_CHECK[number % 31]}"


class Canaries:
    def __init__(self) -> None:
        tag = secrets.token_hex(5).upper()
        digits = f"{secrets.randbelow(10**7):07d}"
        self.phone_e164, self.phone_national = f"+35850{digits}", f"050{digits}"
        self.name = f"Kanarian{tag} Lintunen"
        self.agent_name = f"Agentti{tag} Kanarinen"
        self.email = f"kanari.{tag.lower()}@example.fi"
        self.identity_code = _identity_code()
        self.nickname = f"lintu{tag.lower()}"
        self.text = f"Hei, olen Kanarian{tag} ja numeroni on {self.phone_national}"
        self.audio = f"AUDIOCANARY{tag}".encode()
        self.tag = tag
        self.api_key = ""

    def needles(self) -> list[str]:
        needles = [
            self.tag,
            self.tag.lower(),
            self.phone_e164,
            self.phone_national,
            self.phone_e164[4:],
            self.email,
            self.identity_code,
            self.nickname,
            self.audio.decode(),
        ]
        if self.api_key:
            needles.append(self.api_key.rsplit("_", 1)[1])  # the secret part; the key id is not secret
        return needles

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """The example event with its personal data replaced by the canaries."""
        raw = json.dumps(body, ensure_ascii=False)
        for example, canary in (
            ("+358401234567", self.phone_e164),
            ("Aino Agentti", self.agent_name),
            ("kysyjä", self.nickname),
            ("Miten rekisteröin toiminimen?", self.text),
            ("Mikä on kaupparekisterin puhelinnumero?", f"Soita minulle {self.phone_national}"),
            ("asiakas@example.fi", self.email),
            ("Hei, kysyisin osoitteenmuutoksesta.", self.text),
            ("Maija Meikäläinen", self.name),
            ("131052-308T", self.identity_code),
        ):
            raw = raw.replace(example, canary)
        result: dict[str, Any] = json.loads(raw)
        return result


# The day's contacts: (kind, register, event types in order). Each kind runs CONTACTS_PER_KIND times.
KINDS = (
    ("call", "prh-customer-service", ("call.started", "call.answered", "call.ended")),
    ("hsy-call", "hsy-customer-service", ("call.started", "call.answered", "call.ended")),
    ("chat", "statfi-chat", ("chat.started", "chat.message", "chat.ended")),
    ("chatbot", "prh-customer-service", ("chatbot.message",)),
    ("sms", "prh-customer-service", ("sms_survey.sent", "sms_survey.answered")),
    ("case", "dvv-personal-customer-service", ("case.opened", "email.received", "case.closed")),
    ("owner", "prh-beneficial-owner-customers", ("identification",)),
)


def day_events(canaries: Canaries) -> list[list[dict[str, Any]]]:
    """Contacts from 08:00 to 19:59 local time, their events a few minutes apart."""
    assert set(t for _, _, types in KINDS for t in types) <= set(EVENT_TYPES)
    contacts = []
    slot = 0
    for round_ in range(CONTACTS_PER_KIND):
        for kind, register, types in KINDS:
            contact_id = f"{kind}-{DAY}-{round_}-{new_id()[:8]}"
            hour, minute = 8 + (slot * 7) // 60 % 12, (slot * 7) % 60
            slot += 1
            events = []
            for step, event_type in enumerate(types):
                body = canaries.apply(example_event(event_type, event_id=new_id()))
                body.update(
                    contact_id=contact_id,
                    register=register,
                    occurred_at=f"{DAY}T{hour:02d}:{minute:02d}:{step * 10:02d}+02:00",
                )
                if event_type == "call.answered":
                    body["data"]["agent"]["id"] = f"agent-{round_ % 3}"
                    if register == "hsy-customer-service":
                        body["data"]["agent"].pop("phone", None)
                if register == "hsy-customer-service" and event_type == "call.started":
                    body["data"].pop("service_number", None)
                events.append(body)
            contacts.append(events)
    return contacts


class Day:
    """Every request of the day goes through here, so every error body is kept for the search."""

    def __init__(self, clients: dict[str, httpx.AsyncClient]) -> None:
        self.clients = clients
        self.error_bodies: list[str] = []
        self.statuses: dict[int, int] = {}

    async def call(self, service: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = await self.clients[service].request(method, url, **kwargs)
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        if response.status_code >= 400:
            self.error_bodies.append(response.text)
        return response


@pytest.fixture(scope="module")
async def clients(ingest: Ingest, settings: Settings) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with AsyncExitStack() as stack:
        clients = {"ingest": ingest.client}
        for name, factory in (
            ("retention", create_retention),
            ("dsr", create_dsr),
            ("export", create_export),
        ):
            app = factory(settings.model_copy(update={"service_name": name}))
            await stack.enter_async_context(app.router.lifespan_context(app))
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}.test")
            )
        yield clients


async def _topic_values(settings: Settings, topic: str) -> list[bytes]:
    """Each message's value, key and headers as one byte string: whatever part a leak could hide in."""
    return [
        (r.value or b"") + (r.key or b"") + b"".join(v for _, v in r.headers or ())
        for r in await read_topic(settings, topic)
    ]


async def test_a_full_day_leaves_no_personal_data_in_logs_errors_metrics_or_audit(
    ingest: Ingest, clients: dict[str, httpx.AsyncClient], settings: Settings, token_for: Any
) -> None:
    canaries = Canaries()
    day = Day(clients)
    sessionmaker = ingest.app.state.runtime.sessionmaker
    async with sessionmaker() as session, session.begin():
        created = await create_api_key(
            session, platform="contact-centre", created_by="full-day-test", now=datetime.now(UTC)
        )
    canaries.api_key = created.key
    platform = ingest.auth(Role.PLATFORM)
    keyed = {"X-API-Key": created.key}
    contacts = day_events(canaries)

    # Morning: contacts one event at a time, alternating bearer token and API key.
    half = len(contacts) // 2
    for index, events in enumerate(contacts[:half]):
        for body in events:
            response = await day.call(
                "ingest", "POST", "/v1/events", json=body, headers=platform if index % 2 else keyed
            )
            assert response.status_code == 202, response.text
    # Afternoon: the rest in NDJSON batches, one bad item among them.
    afternoon = [body for events in contacts[half:] for body in events]
    broken = canaries.apply(example_event("call.started", event_id=new_id()))
    broken["data"]["direction"] = f"sideways {canaries.name}"
    lines = [json.dumps(body, ensure_ascii=False) for body in [*afternoon, broken]]
    batch = await day.call(
        "ingest",
        "POST",
        "/v1/events/batch",
        content="\n".join(lines).encode(),
        headers={**platform, "Content-Type": "application/x-ndjson"},
    )
    assert batch.status_code == 207, batch.text
    assert batch.json()["rejected"] == 1

    # Evening: a platform that produces straight onto the intake topic, good events and garbage.
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        evening_id = f"call-{DAY}-evening-{new_id()[:8]}"
        evening = canaries.apply(example_event("call.started", event_id=new_id()))
        evening.update(contact_id=evening_id, occurred_at=f"{DAY}T20:30:00+02:00")
        await producer.send_and_wait(settings.topic(INTAKE), json.dumps(evening).encode())
        for garbage in (f"{canaries.text} {{", json.dumps({"type": "call.started", "note": canaries.email})):
            await producer.send_and_wait(settings.topic(INTAKE), garbage.encode())
    finally:
        await producer.stop()

    # Mistakes and intruders, each carrying canaries.
    wrong = canaries.apply(example_event("chat.message", event_id=new_id()))
    wrong["register"] = "no-such-register"
    for kwargs in (
        {"json": wrong, "headers": platform},
        {"json": wrong, "headers": {}},
        {"json": wrong, "headers": {"X-API-Key": f"sailo_{canaries.tag.lower()}_{canaries.phone_national}"}},
        {"json": wrong, "headers": {"Authorization": f"Bearer {canaries.email}"}},
        {"content": canaries.text.encode(), "headers": {**platform, "Content-Type": "text/plain"}},
        {
            "content": f'{{"text": "{canaries.text}"'.encode(),
            "headers": {**platform, "Content-Type": "application/json"},
        },
        {"json": wrong, "headers": ingest.auth(Role.MANAGER)},
    ):
        response = await day.call("ingest", "POST", "/v1/events", **kwargs)
        assert 400 <= response.status_code < 500, response.text

    # Everything stored; the authorised reader gets the canaries back (so the search below means something).
    manager = ingest.auth(Role.MANAGER)
    call_id = contacts[0][0]["contact_id"]

    async def all_stored() -> bool:
        for events in [*contacts, [evening]]:
            got = await ingest.client.get(
                f"/v1/contacts/{events[0]['contact_id']}",
                headers=manager,
                params={"register": events[0]["register"]},
            )
            if got.status_code != 200 or len(got.json()["events"]) < len(events):
                return False
        return True

    await eventually(all_stored, attempts=400)
    read = await day.call("ingest", "GET", f"/v1/contacts/{call_id}", headers=manager)
    assert canaries.phone_e164 in read.text and canaries.agent_name in read.text

    # Recordings of the calls, listened to by managers and by the agents who took them (and not by others).
    for events in contacts:
        if events[0]["type"] != "call.started":
            continue
        contact_id, register = events[0]["contact_id"], events[0]["register"]
        params = {"register": register}
        put = await day.call(
            "ingest",
            "PUT",
            f"/v1/contacts/{contact_id}/recording",
            content=wav_bytes(0.5, marker=canaries.audio),
            headers={**platform, "Content-Type": "audio/wav"},
            params=params,
        )
        assert put.status_code == 201, put.text
        agent = events[1]["data"]["agent"]["id"]
        own = {"Authorization": f"Bearer {token_for(Role.AGENT, agent_id=agent)}"}
        other = {"Authorization": f"Bearer {token_for(Role.AGENT, agent_id='agent-elsewhere')}"}
        heard = await day.call(
            "ingest", "GET", f"/v1/contacts/{contact_id}/recording", headers=own, params=params
        )
        assert heard.status_code == 200 and canaries.audio in heard.content
        assert (
            await day.call("ingest", "GET", f"/v1/contacts/{contact_id}", headers=other, params=params)
        ).status_code == 404
        assert (
            await day.call(
                "ingest", "GET", f"/v1/contacts/{contact_id}/recording", headers=manager, params=params
            )
        ).status_code == 200

    # The other services' day: a research loan set up and looked at; refused roles; health checks.
    officer = {"Authorization": f"Bearer {token_for(Role.RESEARCH_OFFICER)}"}
    loan = await day.call(
        "export",
        "POST",
        "/v1/loans",
        json={
            "institute_id": "inst-day",
            "agreement_ref": "AGR-2026-7",
            "purpose": "call quality study",
            "study_ends_on": "2027-03-31",
            "institute_name": "Puheentutkimuksen laitos",
            "contact_person": "Tutkimusjohtaja",
            "legal_basis": "GDPR Art. 6(1)(e) and Art. 89",
            "commitment": "return",
        },
        headers=officer,
    )
    assert loan.status_code == 201, loan.text
    bad_loan = await day.call(
        "export",
        "POST",
        "/v1/loans",
        json={"institute_id": canaries.email, "agreement_ref": canaries.phone_e164, "purpose": canaries.text},
        headers=officer,
    )
    assert bad_loan.status_code == 422
    institute = {"Authorization": f"Bearer {token_for(Role.INSTITUTE, institute_id='inst-day')}"}
    assert (await day.call("export", "GET", "/v1/loans", headers=institute)).status_code == 200
    assert (await day.call("export", "GET", "/v1/loans", headers=manager)).status_code == 403
    for service in ("retention", "dsr", "export", "ingest"):
        assert (await day.call(service, "GET", "/readyz")).status_code == 200

    # --- the search ---------------------------------------------------------------------------------------
    needles = canaries.needles()

    def hits(haystack: str) -> list[str]:
        return [needle for needle in needles if needle in haystack]

    assert len(day.error_bodies) >= 15
    for body in day.error_bodies:
        assert hits(body) == [], body

    for service, client in clients.items():
        metrics = (await client.get("/metrics")).text
        assert "sailo_http_requests_total" in metrics
        assert hits(metrics) == [], service

    # The audit trail: every entry and checkpoint on the topic, and the stored chain.
    async def audit_caught_up() -> list[bytes] | None:
        async with sessionmaker() as session:
            pending = await session.scalar(text("SELECT count(*) FROM audit.outbox"))
        return None if pending else await _topic_values(settings, settings.topic("audit"))

    published = await eventually(audit_caught_up, attempts=400)
    entries = [json.loads(value) for value in published if b'"checkpoint"' not in value[:20]]
    actions = {(entry["action"], entry["outcome"]) for entry in entries}
    assert {
        ("read", "success"),
        ("listen", "success"),
        ("change", "success"),
        ("create", "success"),
    } <= actions
    assert ("read", "failed") in actions and ("create", "denied") in actions
    assert ("login_refused", "denied") in actions
    for value in published:
        assert hits(value.decode()) == [], value
    async with sessionmaker() as session:
        stored = (await session.scalars(text("SELECT entry FROM audit.entries"))).all()
    assert len(stored) >= len(entries) > 50
    for entry in stored:
        assert hits(entry) == [], entry

    # Every log line of the services (they all log to this session's log file) and of the servers.
    assert ingest.log_file is not None
    log_text = ingest.log_file.read_text(encoding="utf-8", errors="replace")
    assert log_text.count("\n") > 20
    assert [line for line in log_text.splitlines() if hits(line)] == []

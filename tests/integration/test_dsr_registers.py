"""Data-subject requests register by register, as a caseworker answers them and a data protection officer checks
them against each privacy notice: on real PostgreSQL and a real broker, through the DSR API, with contacts
ingested over HTTP.

- Statistics Finland: an anonymous chat found by its nickname or the chat's own id, answered with a copy of the
  conversation and the 35-day retention; nothing found is the "we hold no data about you" answer.
- PRH beneficial-owner customers: the identification (name, personal identity code) is in its own register,
  given in the access copy; erasure is refused while the five years run.
- HSY: an objection upheld and carried out through retention's deletion path; portability does not apply.
- DVV: portability does not apply to a public task; an objection is as a rule refused, with the notice's ground.
- PRH customer service: a restriction while accuracy is contested, enforced on the data, with no legal hold.
- Requests spanning registers: each register decides on its own policy and ground.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select

from services.retention.models import Hold, ScheduleItem
from shared.contracts.domain_events import (
    DSR_EVENTS_TOPIC,
    DomainEvent,
    RequestChangedData,
    RequestContactsData,
    parse_domain_event,
)
from shared.contracts.identifiers import personal_identity_code_check_character
from shared.messaging.kafka import ProcessedEvent
from shared.platform.settings import Settings
from shared.security.auth import Role
from tests.conftest import Infrastructure
from tests.integration.conftest import eventually, new_id, read_topic, wav_bytes
from tests.integration.dsr_env import Dsr, dsr_env, erased_by_retention
from tests.integration.retention_env import (
    Env,
    contact_ref_of,
    make_event,
    post_events,
    wait_until_stored,
)

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
# Ingest refuses events from the future: contacts are dated a few days back, well inside every retention period.
CALL_AT = NOW - timedelta(days=12)

PRH = "prh-customer-service"
BENEFICIAL = "prh-beneficial-owner-customers"
DVV = "dvv-personal-customer-service"
HSY = "hsy-customer-service"
STATFI = "statfi-chat"
EVERY_REGISTER = sorted([BENEFICIAL, PRH, DVV, HSY, STATFI])

PRH_TITLE = "Kundtjänstens telefon-, chatt- och chattbot-samtalsinspelningar (Patent- och registerstyrelsen)"
BENEFICIAL_TITLE = "Kundregister för informationstjänsten om förmånstagare (Patent- och registerstyrelsen)"
HSY_TITLE = (
    "Register över inkommande kontakter till HRM:s kundtjänst "
    "(Samkommunen Helsingforsregionens miljötjänster HRM)"
)
STATFI_TITLE = "Statistikcentralens chatt-kundtjänst (Statistikcentralen)"
DVV_TITLE = (
    "Personkundtjänstens flerkanaliga kundservicesystem (Myndigheten för digitalisering och befolkningsdata)"
)


@pytest.fixture(scope="module")
async def dsr(
    infrastructure: Infrastructure,
    settings: Settings,
    token_for: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Dsr]:
    data_dir = tmp_path_factory.mktemp("dsr-registers-data")
    async with dsr_env(infrastructure, settings, token_for, data_dir, now=NOW) as running:
        yield running


# -- people and their contacts --------------------------------------------------------------------------------


def _phone() -> str:
    """A valid Finnish mobile number of this test's own."""
    return f"+35840{1_000_000 + secrets.randbelow(9_000_000)}"


def _personal_identity_code() -> str:
    """A valid personal identity code of someone born in the 1900s, of this test's own."""
    born = date(1950, 1, 1) + timedelta(days=secrets.randbelow(45 * 365))
    digits = f"{born:%d%m%y}{2 + secrets.randbelow(897):03d}"
    return f"{digits[:6]}-{digits[6:]}{personal_identity_code_check_character(digits)}"


def _event(register: str, event_type: str, contact_id: str, at: datetime, **data: Any) -> dict[str, Any]:
    body = make_event(event_type, contact_id, at, **data)
    body["register"] = register
    return body


async def _store(env: Env, register: str, contact_id: str, *bodies: dict[str, Any]) -> UUID:
    """Send the contact's events to ingest, wait until the record store has them all; the contact's ref."""
    await post_events(env, *bodies)
    await wait_until_stored(env, f"{contact_id}?register={register}", len(bodies))
    return contact_ref_of(env, register, contact_id)


async def _call(env: Env, register: str, phone: str, *, audio: bytes | None = None) -> tuple[str, UUID]:
    call_id = f"call-{new_id()}"
    ref = await _store(
        env,
        register,
        call_id,
        _event(register, "call.started", call_id, CALL_AT, direction="inbound", caller_number=phone),
    )
    if audio is not None:
        put = await env.ingest.put(
            f"/v1/contacts/{call_id}/recording?register={register}",
            content=audio,
            headers={**env.headers[Role.PLATFORM], "Content-Type": "audio/wav"},
        )
        assert put.status_code == 201, put.text
    return call_id, ref


async def _chat(
    env: Env,
    at: datetime,
    messages: list[tuple[str, str]],
    *,
    customer: dict[str, str] | None = None,
    participant: dict[str, str] | None = None,
) -> tuple[str, UUID]:
    """A Statistics Finland chat: started (with the customer's and technical participant details, if any),
    its messages a minute apart, ended."""
    chat_id = f"chat-{new_id()}"
    started: dict[str, Any] = {}
    if customer is not None:
        started["customer"] = customer
    if participant is not None:
        started["participant"] = participant
    bodies = [_event(STATFI, "chat.started", chat_id, at, **started)]
    for minute, (sender, text) in enumerate(messages, start=1):
        bodies.append(
            _event(STATFI, "chat.message", chat_id, at + timedelta(minutes=minute), sender=sender, text=text)
        )
    bodies.append(
        _event(
            STATFI, "chat.ended", chat_id, at + timedelta(minutes=len(messages) + 1), reason="customer_left"
        )
    )
    return chat_id, await _store(env, STATFI, chat_id, *bodies)


async def _identification(env: Env, name: str, code: str) -> tuple[str, UUID]:
    """PRH identifies a customer through Suomi.fi before disclosing beneficial-owner information."""
    contact_id = f"identification-{new_id()}"
    ref = await _store(
        env,
        BENEFICIAL,
        contact_id,
        _event(
            BENEFICIAL,
            "identification",
            contact_id,
            NOW - timedelta(days=9),
            name=name,
            personal_identity_code=code,
            method="suomi_fi",
        ),
    )
    return contact_id, ref


async def _email(env: Env, address: str) -> tuple[str, UUID]:
    """An e-mail to DVV's personal customer service, filed under a case."""
    email_id = f"email-{new_id()}"
    ref = await _store(
        env,
        DVV,
        email_id,
        _event(
            DVV,
            "email.received",
            email_id,
            NOW - timedelta(days=15),
            from_address=address,
            subject="Osoitteenmuutos",
            body="Muutin uuteen osoitteeseen, miten ilmoitan siitä?",
            case_number=f"DVV-2026-{secrets.randbelow(1_000_000):06d}",
        ),
    )
    return email_id, ref


async def _read_as(
    env: Env, register: str, contact_id: str, headers: dict[str, str], suffix: str = ""
) -> int:
    response = await env.ingest.get(
        f"/v1/contacts/{contact_id}{suffix}", params={"register": register}, headers=headers
    )
    return response.status_code


async def _scheduled(env: Env, ref: UUID) -> None:
    """Wait until retention has scheduled the contact: an erasure makes the scheduled items due."""

    async def count() -> int:
        async with env.sessionmaker() as session:
            rows = await session.scalar(
                select(func.count()).select_from(ScheduleItem).where(ScheduleItem.contact_ref == ref)
            )
        return int(rows or 0)

    await eventually(count, attempts=400)


async def _erased(env: Env, register: str, contact_id: str, ref: UUID) -> None:
    """Retention has made every item of the contact due on the data subject's request; a sweep deletes and
    certifies them, and the contact is gone."""
    await erased_by_retention(env, ref)
    assert await _read_as(env, register, contact_id, env.headers[Role.MANAGER]) == 404


async def _request_events(env: Env, request_id: str) -> list[tuple[DomainEvent, Any]]:
    """The DSR topic's events about one request, once its answer (the closing status change) is on the topic.
    The request's events share a partition, so whatever the answer produced before it is there too."""
    topic = env.settings.topic(DSR_EVENTS_TOPIC)

    async def check() -> list[tuple[DomainEvent, Any]] | None:
        seen = []
        for message in await read_topic(env.settings, topic):
            event, data = parse_domain_event(message.value)
            if str(getattr(data, "request_id", "")) == request_id:
                seen.append((event, data))
        closed = any(
            isinstance(data, RequestChangedData)
            and data.status in ("completed", "partially_granted", "refused")
            for _, data in seen
        )
        return seen if closed else None

    result: list[tuple[DomainEvent, Any]] = await eventually(check, attempts=10)
    return result


def _contact_decisions(events: list[tuple[DomainEvent, Any]], event_type: str) -> list[RequestContactsData]:
    return [
        data for event, data in events if event.type == event_type and isinstance(data, RequestContactsData)
    ]


def _parts(letter: str) -> dict[str, str]:
    """The Finnish, Swedish and English parts of a letter, in that order."""
    fi_at, sv_at, en_at = letter.index("SUOMEKSI"), letter.index("PÅ SVENSKA"), letter.index("IN ENGLISH")
    assert fi_at < sv_at < en_at
    return {"fi": letter[fi_at:sv_at], "sv": letter[sv_at:en_at], "en": letter[en_at:]}


def _assert_complaint_right(letter: str) -> None:
    parts = _parts(letter)
    assert "Oikeus tehdä valitus valvontaviranomaiselle" in parts["fi"]
    assert "Tietosuojavaltuutetun toimisto" in parts["fi"]
    assert "Rätt att lämna klagomål till tillsynsmyndigheten" in parts["sv"]
    assert "Dataombudsmannens byrå" in parts["sv"]
    assert "Right to lodge a complaint with the supervisory authority" in parts["en"]
    assert "lodge a complaint with the supervisory authority (GDPR Art. 77)" in parts["en"]
    assert all("tietosuoja@om.fi" in part for part in parts.values())


# -- Statistics Finland: chat ---------------------------------------------------------------------------------


async def test_statfi_anonymous_chats_found_by_nickname_and_chat_id_are_given_with_their_messages(
    dsr: Dsr,
) -> None:
    env = dsr.env
    nickname = f"Tilastoharrastaja-{secrets.token_hex(3)}"
    _, own_ref = await _chat(
        env,
        NOW - timedelta(days=3),
        [
            ("customer", "Mistä löydän väestöennusteen kunnittain?"),
            ("agent", "StatFin-tietokannasta, taulukko 139f."),
        ],
        customer={"nickname": nickname},
        participant={
            "source_page": "https://stat.fi/tup/tilastotietokannat",
            "ip_address": "192.0.2.77",
            "country": "FI",
            "city": "Tampere",
            "browser": "Firefox",
            "os": "Linux",
        },
    )
    # An anonymous chat without any nickname: the requester kept the conversation id the chat window showed.
    anonymous_chat, anonymous_ref = await _chat(
        env, NOW - timedelta(days=2), [("customer", "Kiitos eilisestä vastauksesta!")]
    )
    # Someone else's chat the same week.
    _, other_ref = await _chat(
        env,
        NOW - timedelta(days=2),
        [("customer", "Toisen henkilön kysymys työttömyysasteesta")],
        customer={"nickname": f"Joku-muu-{secrets.token_hex(3)}"},
    )

    # The nickname as the requester writes it: case and a handle's "@" do not matter.
    created = await dsr.open_request(
        "access", [STATFI], ("nickname", f"@{nickname.upper()}"), ("contact_id", anonymous_chat)
    )
    request_id = created["request_id"]
    assert nickname not in json.dumps(created) and anonymous_chat not in json.dumps(created)
    candidates = await dsr.verified_candidates(request_id)
    assert {c["contact_ref"]: (c["register"], c["channel"], c["matched_by"]) for c in candidates} == {
        str(own_ref): (STATFI, "chat", ["nickname"]),
        str(anonymous_ref): (STATFI, "chat", ["contact_id"]),
    }
    assert str(other_ref) not in {c["contact_ref"] for c in candidates}
    await dsr.confirm_only(request_id, candidates, own_ref, anonymous_ref)

    answered = await dsr.post(f"/v1/requests/{request_id}/answer", {})
    assert answered["status"] == "completed"
    [decision] = answered["decisions"]
    assert {key: decision[key] for key in ("register", "policy_version", "right", "status", "outcome")} == {
        "register": STATFI,
        "policy_version": "2018-05-23",
        "right": "access",
        "status": "granted",
        "outcome": "granted",
    }
    assert decision["ground"] is None
    assert answered["package"] is not None

    archive = await dsr.package(request_id)
    assert archive.namelist() == [
        "cover-letter.txt",
        "contacts.json",
        "contacts.csv",
        f"messages/1-{STATFI}.txt",
        f"messages/2-{STATFI}.txt",
    ]
    own_messages = archive.read(f"messages/1-{STATFI}.txt").decode()
    assert own_messages.index("customer:") < own_messages.index("Mistä löydän väestöennusteen kunnittain?")
    assert own_messages.index("Mistä löydän") < own_messages.index("agent:")
    assert "StatFin-tietokannasta, taulukko 139f." in own_messages
    assert "Kiitos eilisestä vastauksesta!" in archive.read(f"messages/2-{STATFI}.txt").decode()
    contacts = json.loads(archive.read("contacts.json"))
    assert [(c["number"], c["register"], c["channel"]) for c in contacts] == [
        (1, STATFI, "chat"),
        (2, STATFI, "chat"),
    ]
    # Everything the chat service collected about the participant is in the copy.
    assert contacts[0]["events"][0]["type"] == "chat.started"
    assert contacts[0]["events"][0]["data"]["participant"]["ip_address"] == "192.0.2.77"
    assert contacts[0]["events"][0]["data"]["participant"]["city"] == "Tampere"
    assert {"role": "customer", "details": {"nickname": nickname}} in contacts[0]["parties"]
    assert [e["type"] for e in contacts[1]["events"]] == ["chat.started", "chat.message", "chat.ended"]
    # The other person's chat is nowhere in the copy.
    everything = b"".join(archive.read(name) for name in archive.namelist()).decode()
    assert "työttömyysasteesta" not in everything
    assert str(own_ref) not in everything and str(anonymous_ref) not in everything

    letter = archive.read("cover-letter.txt").decode()
    assert await dsr.reply(request_id) == letter
    parts = _parts(letter)
    assert all(created["case_number"] in part and STATFI_TITLE in part for part in parts.values())
    assert (
        "- Contacts: 2" in parts["en"] and "- Messages: 3" in parts["en"] and "- Recordings: 0" in parts["en"]
    )
    assert "- Yhteydenotot: 2" in parts["fi"] and "- Meddelanden: 3" in parts["sv"]
    # The 35 days, in each language.
    assert (
        "participant data: 35 days from the start of the contact, after which the data are deleted." in letter
    )
    assert "messages and conversations: 35 days from the start of the contact" in parts["en"]
    assert "keskustelun osallistujatiedot: 35 päivää yhteydenoton alkamisesta" in parts["fi"]
    assert "deltagaruppgifter: 35 dagar från kontaktens början" in parts["sv"]
    # The processor may handle the data outside the EU/EEA, under the standard contractual clauses.
    assert "Transfers outside the EU/EEA: the data may be transferred outside the EU/EEA." in parts["en"]
    assert "Processor: Elisa" in parts["en"]
    assert "the EU standard contractual clauses" in parts["en"]
    assert "EU:s standardavtalsklausuler" in parts["sv"]
    assert "right to data portability (GDPR Art. 20): does not apply to this processing." in parts["en"]
    assert "Data protection officer: e-mail tietosuoja@stat.fi" in parts["en"]
    # The letter names no one: neither the requester's nickname nor the controller's staff.
    assert nickname not in letter and nickname.lower() not in letter
    assert "Elina Tavast" not in letter and "Maija Lauren" not in letter
    _assert_complaint_right(letter)


async def test_statfi_access_with_nothing_found_is_answered_we_hold_no_data_about_you(dsr: Dsr) -> None:
    created = await dsr.open_request("access", [STATFI], ("nickname", f"Ei-koskaan-{secrets.token_hex(4)}"))
    request_id = created["request_id"]
    assert await dsr.verified_candidates(request_id) == []

    answered = await dsr.post(f"/v1/requests/{request_id}/answer", {})
    assert answered["status"] == "completed"
    assert [(d["register"], d["right"], d["outcome"]) for d in answered["decisions"]] == [
        (STATFI, "access", "granted")
    ]
    assert answered["package"] is None
    missing = await dsr.client.get(f"/v1/requests/{request_id}/package", headers=dsr.headers)
    assert missing.status_code == 404

    parts = _parts(await dsr.reply(request_id))
    assert "Vastaus pyyntöösi: sinusta ei ole tietoja" in parts["fi"]
    assert "Niissä ei ole sinua koskevia henkilötietoja." in parts["fi"]
    assert "Svar på din begäran: det finns inga uppgifter om dig" in parts["sv"]
    assert "De innehåller inga personuppgifter om dig." in parts["sv"]
    assert "Reply to your request: we hold no data about you" in parts["en"]
    assert "We have searched the registers listed below. They hold no personal data about you." in parts["en"]
    assert all(f"- {STATFI_TITLE}" in part and created["case_number"] in part for part in parts.values())
    # Not a cover letter: no copy is promised.
    assert "Contents of the copy" not in parts["en"]
    _assert_complaint_right(await dsr.reply(request_id))


# -- PRH: beneficial-owner customers --------------------------------------------------------------------------


async def test_prh_beneficial_owner_identification_is_given_from_its_own_register(dsr: Dsr) -> None:
    env = dsr.env
    code, namesakes_code = _personal_identity_code(), _personal_identity_code()
    _, own_ref = await _identification(env, "Aino Omistajatieto", code)
    _, namesake_ref = await _identification(env, "Aino Omistajatieto", namesakes_code)

    # The identity code and the name as the requester writes it; customer service is searched as well.
    created = await dsr.open_request(
        "access",
        [BENEFICIAL, PRH],
        ("personal_identity_code", code.lower()),
        ("name", "  aino OMISTAJATIETO "),
    )
    request_id = created["request_id"]
    assert code not in json.dumps(created) and code.lower() not in json.dumps(created)
    candidates = await dsr.verified_candidates(request_id)
    # The identification is kept in the beneficial-owner register only, never in customer service's system;
    # a namesake is found by the name alone, and rejected.
    assert {c["contact_ref"]: (c["register"], c["channel"], c["matched_by"]) for c in candidates} == {
        str(own_ref): (BENEFICIAL, "identification", ["name", "personal_identity_code"]),
        str(namesake_ref): (BENEFICIAL, "identification", ["name"]),
    }
    await dsr.confirm_only(request_id, candidates, own_ref)

    answered = await dsr.post(f"/v1/requests/{request_id}/answer", {})
    assert answered["status"] == "completed"
    assert [(d["register"], d["policy_version"], d["outcome"]) for d in answered["decisions"]] == [
        (BENEFICIAL, "2021-10-20", "granted"),
        (PRH, "2021-10-20", "granted"),
    ]

    archive = await dsr.package(request_id)
    assert archive.namelist() == ["cover-letter.txt", "contacts.json", "contacts.csv"]
    contacts = json.loads(archive.read("contacts.json"))
    assert len(contacts) == 1
    assert (contacts[0]["register"], contacts[0]["channel"]) == (BENEFICIAL, "identification")
    assert contacts[0]["events"][0]["type"] == "identification"
    assert contacts[0]["events"][0]["data"] == {
        "name": "Aino Omistajatieto",
        "personal_identity_code": code,
        "method": "suomi_fi",
    }
    assert namesakes_code not in archive.read("contacts.json").decode()

    letter = archive.read("cover-letter.txt").decode()
    assert await dsr.reply(request_id) == letter
    parts = _parts(letter)
    assert all(BENEFICIAL_TITLE in part for part in parts.values())
    assert "- Contacts: 1" in parts["en"] and "- Recordings: 0" in parts["en"]
    assert "Identification data: personal name, personal identity code" in parts["en"]
    assert (
        "identification data: 5 years from the start of the contact, after which the data are deleted."
        in letter
    )
    assert "tunnistustiedot: 5 vuotta yhteydenoton alkamisesta" in parts["fi"]
    assert "identifieringsuppgifter: 5 år från kontaktens början" in parts["sv"]
    assert "compliance with a legal obligation of the controller (GDPR Art. 6(1)(c))" in parts["en"]
    assert "through the Suomi.fi identification service" in parts["en"]
    assert "Transfers outside the EU/EEA: the data are not transferred outside the EU/EEA." in parts["en"]
    # The letter carries no personal data: not the name, not the identity code.
    assert code not in letter and "Aino Omistajatieto" not in letter
    _assert_complaint_right(letter)


async def test_prh_beneficial_owner_erasure_is_refused_while_the_five_years_run(dsr: Dsr) -> None:
    env = dsr.env
    code = _personal_identity_code()
    identification_id, ref = await _identification(env, "Erkki Edunsaaja", code)
    created = await dsr.open_request("erasure", [BENEFICIAL], ("personal_identity_code", code))
    request_id = created["request_id"]
    candidates = await dsr.verified_candidates(request_id)
    assert [c["contact_ref"] for c in candidates] == [str(ref)]
    await dsr.confirm_only(request_id, candidates, ref)

    answered = await dsr.post(f"/v1/requests/{request_id}/answer", {})
    assert answered["status"] == "refused"
    [decision] = answered["decisions"]
    assert (decision["register"], decision["right"], decision["status"], decision["outcome"]) == (
        BENEFICIAL,
        "erasure",
        "refused",
        "refused",
    )
    assert "legal obligation (GDPR Art. 6(1)(c))" in decision["ground"]
    assert "17(3)(b)" in decision["ground"] and "five years" in decision["ground"]

    parts = _parts(await dsr.reply(request_id))
    assert "You asked for your personal data to be erased (GDPR Art. 17)." in parts["en"]
    assert f"1. {BENEFICIAL_TITLE}\nDecision: your request is refused." in parts["en"]
    assert f"Ground according to the privacy notice: {decision['ground']}" in parts["en"]
    assert "Päätös: pyyntöäsi ei hyväksytä." in parts["fi"] and decision["ground"] in parts["fi"]
    assert "Beslut: din begäran avslås." in parts["sv"] and decision["ground"] in parts["sv"]
    assert "Right to a judicial remedy" in parts["en"]

    # Nothing is handed to retention for deletion: the identification stays for its five years.
    events = await _request_events(env, request_id)
    assert _contact_decisions(events, "dsr.erasure_decided") == []
    assert await _read_as(env, BENEFICIAL, identification_id, env.headers[Role.MANAGER]) == 200


# -- HSY ------------------------------------------------------------------------------------------------------


async def test_hsy_objection_upheld_by_the_caseworker_erases_the_contacts(dsr: Dsr) -> None:
    env = dsr.env
    phone = _phone()
    call_id, ref = await _call(env, HSY, phone)
    await _scheduled(env, ref)
    explanation = "Puhelussa kerrottiin terveydentilastani, en halua sen tallenteen säilyvän."
    created = await dsr.open_request(
        "objection", [HSY], ("phone", phone), details={"explanation": explanation}
    )
    request_id = created["request_id"]
    # The requester's grounds are kept sealed: the request shows none of them, nor the number.
    assert explanation not in json.dumps(created) and phone not in json.dumps(created)
    candidates = await dsr.verified_candidates(request_id)
    assert [(c["contact_ref"], c["matched_by"]) for c in candidates] == [(str(ref), ["phone"])]
    await dsr.confirm_only(request_id, candidates, ref)

    # HSY grants objection "in some situations": without the caseworker's word the request cannot be decided.
    unanswered = await dsr.client.post(f"/v1/requests/{request_id}/answer", json={}, headers=dsr.headers)
    assert unanswered.status_code == 422
    error = unanswered.json()["errors"][0]
    assert error["field"] == "conditions" and HSY in error["reason"]

    answered = await dsr.post(
        f"/v1/requests/{request_id}/answer", {"conditions": [{"register": HSY, "met": True}]}
    )
    assert answered["status"] == "completed"
    [decision] = answered["decisions"]
    assert (decision["register"], decision["policy_version"], decision["right"]) == (
        HSY,
        "2018-05-25",
        "objection",
    )
    assert (decision["status"], decision["outcome"]) == ("conditional", "granted")
    assert decision["ground"].startswith("In some situations")
    assert "Refused only on statutory grounds." in decision["ground"]

    parts = _parts(await dsr.reply(request_id))
    assert "You objected to the processing of your personal data (GDPR Art. 21)." in parts["en"]
    assert f"1. {HSY_TITLE}\nDecision: your request is granted." in parts["en"]
    assert "Processing of the data about you stops and the data are erased" in parts["en"]
    assert "tietosuoja-asetuksen 19 artikla" in parts["fi"] and "artikel 19 i" in parts["sv"]
    assert "Vastustit sinua koskevien henkilötietojen käsittelyä" in parts["fi"]
    assert "Päätös: pyyntösi hyväksytään." in parts["fi"]
    assert "Du invände mot behandlingen av dina personuppgifter" in parts["sv"]
    assert "Beslut: din begäran bifalls." in parts["sv"]
    assert explanation not in parts["fi"] and phone not in "".join(parts.values())
    _assert_complaint_right(await dsr.reply(request_id))

    # The upheld objection is an erasure of those contacts (Art. 21(1)), carried out by retention.
    [erasure] = _contact_decisions(await _request_events(env, request_id), "dsr.erasure_decided")
    assert erasure.ground == "art21_1" and erasure.contact_refs == [ref]
    await _erased(env, HSY, call_id, ref)


async def test_hsy_portability_does_not_apply_to_a_legal_obligation(dsr: Dsr) -> None:
    env = dsr.env
    phone = _phone()
    call_id, ref = await _call(env, HSY, phone)
    created = await dsr.open_request("portability", [HSY], ("phone", phone))
    request_id = created["request_id"]
    candidates = await dsr.verified_candidates(request_id)
    await dsr.confirm_only(request_id, candidates, ref)

    answered = await dsr.post(f"/v1/requests/{request_id}/answer", {})
    assert answered["status"] == "refused"
    assert answered["package"] is None
    [decision] = answered["decisions"]
    assert (decision["register"], decision["right"], decision["status"], decision["outcome"]) == (
        HSY,
        "portability",
        "not_applicable",
        "refused",
    )
    assert "GDPR Art. 20(1)(a) covers processing based on consent or a contract only" in decision["ground"]
    assert "legal obligation" in decision["ground"]

    parts = _parts(await dsr.reply(request_id))
    assert (
        "You asked for your personal data to be transmitted to another system (GDPR Art. 20)." in parts["en"]
    )
    assert f"1. {HSY_TITLE}\nDecision: your request is refused." in parts["en"]
    assert f"Ground according to the privacy notice: {decision['ground']}" in parts["en"]
    assert f"Peruste tietosuojaselosteen mukaan (englanniksi): {decision['ground']}" in parts["fi"]
    assert f"Grund enligt dataskyddsbeskrivningen (på engelska): {decision['ground']}" in parts["sv"]
    _assert_complaint_right(await dsr.reply(request_id))
    # A refusal changes nothing: the contact is there as before.
    assert await _read_as(env, HSY, call_id, env.headers[Role.MANAGER]) == 200


# -- DVV ------------------------------------------------------------------------------------------------------


async def test_dvv_portability_does_not_apply_to_a_public_task(dsr: Dsr) -> None:
    env = dsr.env
    address = f"asiakas-{secrets.token_hex(4)}@example.fi"
    _, ref = await _email(env, address)
    created = await dsr.open_request("portability", [DVV], ("email", address.upper()))
    request_id = created["request_id"]
    candidates = await dsr.verified_candidates(request_id)
    assert [(c["contact_ref"], c["channel"], c["matched_by"]) for c in candidates] == [
        (str(ref), "email", ["email"])
    ]
    await dsr.confirm_only(request_id, candidates, ref)

    answered = await dsr.post(f"/v1/requests/{request_id}/answer", {})
    assert answered["status"] == "refused"
    [decision] = answered["decisions"]
    # The notice says the subject "cannot demand ... transfer"; with a public task and a legal obligation as
    # the basis, Art. 20 does not apply at all.
    assert (decision["register"], decision["policy_version"], decision["right"]) == (
        DVV,
        "2020-01-01",
        "portability",
    )
    assert (decision["status"], decision["outcome"]) == ("not_applicable", "refused")
    assert "Art. 20(3) excludes public tasks" in decision["ground"]
    assert (
        "kan du inte kräva att dina personuppgifter ... överförs till ett annat system" in decision["ground"]
    )

    parts = _parts(await dsr.reply(request_id))
    assert f"1. {DVV_TITLE}\nDecision: your request is refused." in parts["en"]
    assert f"Ground according to the privacy notice: {decision['ground']}" in parts["en"]
    assert "Du begärde att få dina personuppgifter överförda till ett annat system" in parts["sv"]
    assert "Beslut: din begäran avslås." in parts["sv"] and decision["ground"] in parts["sv"]
    assert "Pyysit saada sinua koskevat henkilötiedot siirrettäviksi järjestelmästä toiseen" in parts["fi"]
    assert "Päätös: pyyntöäsi ei hyväksytä." in parts["fi"] and decision["ground"] in parts["fi"]
    assert "Right to a judicial remedy" in parts["en"]
    _assert_complaint_right(await dsr.reply(request_id))


async def test_dvv_objection_is_as_a_rule_refused_citing_the_notice(dsr: Dsr) -> None:
    env = dsr.env
    address = f"vastustaja-{secrets.token_hex(4)}@example.fi"
    email_id, ref = await _email(env, address)
    created = await dsr.open_request(
        "objection", [DVV], ("email", address), details={"explanation": "En halua viestejäni säilytettävän."}
    )
    request_id = created["request_id"]
    candidates = await dsr.verified_candidates(request_id)
    await dsr.confirm_only(request_id, candidates, ref)

    unanswered = await dsr.client.post(f"/v1/requests/{request_id}/answer", json={}, headers=dsr.headers)
    assert unanswered.status_code == 422
    assert DVV in unanswered.json()["errors"][0]["reason"]
    # The caseworker finds that DVV's statutory task overrides the requester's grounds.
    answered = await dsr.post(
        f"/v1/requests/{request_id}/answer", {"conditions": [{"register": DVV, "met": False}]}
    )
    assert answered["status"] == "refused"
    [decision] = answered["decisions"]
    assert (decision["register"], decision["right"], decision["status"], decision["outcome"]) == (
        DVV,
        "objection",
        "conditional",
        "refused",
    )
    assert decision["ground"].startswith("GDPR Art. 21(1)")
    assert "compelling legitimate grounds" in decision["ground"]
    assert "du kan i regel inte heller motsätta dig behandlingen" in decision["ground"]

    parts = _parts(await dsr.reply(request_id))
    assert "You objected to the processing of your personal data (GDPR Art. 21)." in parts["en"]
    assert f"1. {DVV_TITLE}\nDecision: your request is refused." in parts["en"]
    assert f"Ground according to the privacy notice: {decision['ground']}" in parts["en"]
    assert decision["ground"] in parts["fi"] and decision["ground"] in parts["sv"]
    _assert_complaint_right(await dsr.reply(request_id))

    # Refused: nothing goes to retention for deletion, and the e-mail is there as before.
    events = await _request_events(env, request_id)
    assert _contact_decisions(events, "dsr.erasure_decided") == []
    assert await _read_as(env, DVV, email_id, env.headers[Role.MANAGER]) == 200


# -- PRH: customer service ------------------------------------------------------------------------------------


async def test_prh_restriction_while_accuracy_is_contested_is_enforced_without_a_hold(dsr: Dsr) -> None:
    env = dsr.env
    phone = _phone()
    call_id, ref = await _call(env, PRH, phone, audio=wav_bytes(0.2))
    created = await dsr.open_request(
        "restriction",
        [PRH],
        ("phone", phone),
        restriction_ground="a",
        details={"field": "call start time", "explanation": "En soittanut PRH:lle tuona päivänä."},
    )
    request_id = created["request_id"]
    assert created["restriction_ground"] == "a"
    candidates = await dsr.verified_candidates(request_id)
    await dsr.confirm_only(request_id, candidates, ref)

    answered = await dsr.post(
        f"/v1/requests/{request_id}/answer", {"conditions": [{"register": PRH, "met": True}]}
    )
    assert answered["status"] == "completed"
    [decision] = answered["decisions"]
    assert (decision["register"], decision["right"], decision["status"], decision["outcome"]) == (
        PRH,
        "restriction",
        "conditional",
        "granted",
    )
    assert decision["ground"].startswith("GDPR Art. 18(1)(a) - while the subject contests the accuracy")

    # Enforced on the data: a manager can no longer read or listen; the role handling legal claims can.
    manager = env.headers[Role.MANAGER]
    lawyer = {"Authorization": f"Bearer {dsr.token_for(Role.LEGAL_CLAIMS)}"}
    assert await _read_as(env, PRH, call_id, manager) == 403
    assert await _read_as(env, PRH, call_id, manager, "/recording") == 403
    assert await _read_as(env, PRH, call_id, lawyer) == 200

    reply = await dsr.reply(request_id)
    parts = _parts(reply)
    assert (
        "You asked for the processing of your personal data to be restricted (GDPR Art. 18)." in parts["en"]
    )
    assert f"1. {PRH_TITLE}\nDecision: your request is granted." in parts["en"]
    assert "Pyysit sinua koskevien henkilötietojen käsittelyn rajoittamista" in parts["fi"]
    assert "Du begärde begränsning av behandlingen av dina personuppgifter" in parts["sv"]
    _assert_complaint_right(reply)
    assert "En soittanut" not in reply and phone not in reply

    # Ground (a) only limits processing; unlike (c) and (d) it does not keep the data past its retention period.
    events = await _request_events(env, request_id)
    [applied] = _contact_decisions(events, "dsr.restriction_applied")
    assert applied.ground == "art18_1_a" and applied.contact_refs == [ref]
    event_id = next(event.id for event, _ in events if event.type == "dsr.restriction_applied")

    async def handled_by_retention() -> bool:
        async with env.sessionmaker() as session:
            rows = await session.scalar(
                select(func.count()).select_from(ProcessedEvent).where(ProcessedEvent.event_id == event_id)
            )
        return bool(rows)

    await eventually(handled_by_retention, attempts=400)
    async with env.sessionmaker() as session:
        holds = (await session.scalars(select(Hold).where(Hold.target == str(ref)))).all()
    assert holds == []

    # Once the accuracy is checked, the requester is told before the restriction is lifted (Art. 18(3)).
    lifts_on = NOW.date() + timedelta(days=5)
    notice = await dsr.post(
        f"/v1/requests/{request_id}/restriction/lift",
        {"reason": "accuracy_verified", "lifts_on": lifts_on.isoformat()},
    )
    lift_parts = _parts(notice["letter"])
    assert "GDPR Art. 18(3)" in lift_parts["en"]
    assert "because the accuracy of the data has been verified" in lift_parts["en"]
    assert "koska tietojen paikkansapitävyys on tarkistettu" in lift_parts["fi"]
    assert "eftersom uppgifternas riktighet har kontrollerats" in lift_parts["sv"]
    assert notice["request"]["restriction_lifted_at"] is None
    assert await _read_as(env, PRH, call_id, manager) == 403


# -- several registers ----------------------------------------------------------------------------------------


async def test_access_to_every_register_answers_from_each_register_holding_data(dsr: Dsr) -> None:
    env = dsr.env
    phone = _phone()
    _, prh_ref = await _call(env, PRH, phone, audio=wav_bytes(0.3))
    _, hsy_ref = await _call(env, HSY, phone)

    # No registers named: every register.
    created = await dsr.open_request("access", [], ("phone", phone))
    request_id = created["request_id"]
    assert created["registers"] == EVERY_REGISTER
    candidates = await dsr.verified_candidates(request_id)
    assert {c["contact_ref"]: c["register"] for c in candidates} == {str(prh_ref): PRH, str(hsy_ref): HSY}
    await dsr.confirm_only(request_id, candidates, prh_ref, hsy_ref)

    answered = await dsr.post(f"/v1/requests/{request_id}/answer", {})
    assert answered["status"] == "completed"
    # A decision per register, each on the version of its own notice in force.
    assert [
        (d["register"], d["policy_version"], d["right"], d["outcome"]) for d in answered["decisions"]
    ] == [
        (DVV, "2020-01-01", "access", "granted"),
        (HSY, "2018-05-25", "access", "granted"),
        (BENEFICIAL, "2021-10-20", "access", "granted"),
        (PRH, "2021-10-20", "access", "granted"),
        (STATFI, "2018-05-23", "access", "granted"),
    ]

    archive = await dsr.package(request_id)
    contacts = json.loads(archive.read("contacts.json"))
    assert sorted((c["register"], c["channel"]) for c in contacts) == [(HSY, "phone"), (PRH, "phone")]
    assert [name for name in archive.namelist() if name.startswith("recordings/")] == [
        next(f"recordings/{c['number']}-{PRH}.wav" for c in contacts if c["register"] == PRH)
    ]

    letter = archive.read("cover-letter.txt").decode()
    assert await dsr.reply(request_id) == letter
    parts = _parts(letter)
    en = parts["en"]
    assert "- Contacts: 2" in en and "- Recordings: 1" in en
    # Each register with its own controller, notice and retention periods.
    hsy_section, prh_section = en.index(f". {HSY_TITLE}"), en.index(f". {PRH_TITLE}")
    assert hsy_section < prh_section
    assert "recordings: 12 months from the start of the contact" in en[hsy_section:prh_section]
    assert "Controller: Samkommunen Helsingforsregionens miljötjänster HRM" in en[hsy_section:prh_section]
    assert "recordings: 6 months from the start of the contact" in en[prh_section:]
    assert "Controller: Patent- och registerstyrelsen" in en[prh_section:]
    assert all(HSY_TITLE in part and PRH_TITLE in part for part in parts.values())
    assert phone not in letter
    _assert_complaint_right(letter)


async def test_an_objection_to_two_registers_is_decided_by_each_on_its_own_ground(dsr: Dsr) -> None:
    env = dsr.env
    phone = _phone()
    prh_call, prh_ref = await _call(env, PRH, phone)
    hsy_call, hsy_ref = await _call(env, HSY, phone)
    await _scheduled(env, hsy_ref)
    created = await dsr.open_request("objection", [PRH, HSY], ("phone", phone))
    request_id = created["request_id"]
    candidates = await dsr.verified_candidates(request_id)
    assert {c["contact_ref"]: c["register"] for c in candidates} == {str(prh_ref): PRH, str(hsy_ref): HSY}
    await dsr.confirm_only(request_id, candidates, prh_ref, hsy_ref)

    answered = await dsr.post(
        f"/v1/requests/{request_id}/answer", {"conditions": [{"register": HSY, "met": True}]}
    )
    assert answered["status"] == "partially_granted"
    decisions = {d["register"]: d for d in answered["decisions"]}
    assert set(decisions) == {PRH, HSY}
    # PRH relies on a legal obligation, which Art. 21(1) does not reach.
    assert (decisions[PRH]["status"], decisions[PRH]["outcome"]) == ("not_applicable", "refused")
    assert decisions[PRH]["ground"] == (
        "GDPR Art. 21(1) covers processing under Art. 6(1)(e) or (f) only; this register relies on a legal "
        "obligation (Art. 6(1)(c))."
    )
    # HSY's notice grants it "in some situations", and the caseworker found this is one.
    assert (decisions[HSY]["status"], decisions[HSY]["outcome"]) == ("conditional", "granted")
    assert decisions[HSY]["ground"].startswith("In some situations")

    parts = _parts(await dsr.reply(request_id))
    en = parts["en"]
    assert f"{PRH_TITLE}\nDecision: your request is refused." in en
    assert f"Ground according to the privacy notice: {decisions[PRH]['ground']}" in en
    assert f"{HSY_TITLE}\nDecision: your request is granted." in en
    assert decisions[HSY]["ground"] not in en
    assert f"{PRH_TITLE}\nPäätös: pyyntöäsi ei hyväksytä." in parts["fi"]
    assert f"{HSY_TITLE}\nPäätös: pyyntösi hyväksytään." in parts["fi"]
    assert f"{PRH_TITLE}\nBeslut: din begäran avslås." in parts["sv"]
    assert f"{HSY_TITLE}\nBeslut: din begäran bifalls." in parts["sv"]
    # Signed by both controllers.
    assert set(en.rstrip().splitlines()[-2:]) == {
        "Patent- och registerstyrelsen",
        "Samkommunen Helsingforsregionens miljötjänster HRM",
    }
    _assert_complaint_right(await dsr.reply(request_id))

    # Only HSY's contact is erased; PRH's stays for its retention period.
    [erasure] = _contact_decisions(await _request_events(env, request_id), "dsr.erasure_decided")
    assert erasure.ground == "art21_1" and erasure.contact_refs == [hsy_ref]
    await _erased(env, HSY, hsy_call, hsy_ref)
    assert await _read_as(env, PRH, prh_call, env.headers[Role.MANAGER]) == 200


async def test_access_confirms_no_data_in_a_searched_register_that_holds_none(dsr: Dsr) -> None:
    env = dsr.env
    phone = _phone()
    _, ref = await _call(env, PRH, phone)
    # The requester asks both of PRH's registers; only customer service holds anything about them.
    created = await dsr.open_request("access", [BENEFICIAL, PRH], ("phone", phone))
    request_id = created["request_id"]
    candidates = await dsr.verified_candidates(request_id)
    assert [c["contact_ref"] for c in candidates] == [str(ref)]
    await dsr.confirm_only(request_id, candidates, ref)
    answered = await dsr.post(f"/v1/requests/{request_id}/answer", {})
    assert answered["status"] == "completed"
    assert {d["register"] for d in answered["decisions"]} == {BENEFICIAL, PRH}

    parts = _parts(await dsr.reply(request_id))
    assert all(PRH_TITLE in part for part in parts.values())
    # The beneficial-owner register was searched too: the reply says it holds nothing about the requester.
    assert all(BENEFICIAL_TITLE in part for part in parts.values())
    assert re.search(r"holds? no (personal )?data about you", parts["en"])

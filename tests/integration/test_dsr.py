"""Data-subject requests on real PostgreSQL and a real broker: ingest, retention and DSR in one process each,
a scenario per register, as a caseworker carries them out through the DSR API."""

from __future__ import annotations

import io
import json
import re
import uuid
import wave
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from services.dsr.deadlines import statutory_deadline
from services.dsr.models import Disclosure
from services.dsr.watch import DeadlineWatch
from services.retention.models import Hold, ScheduleItem
from shared.contracts.domain_events import (
    DSR_EVENTS_TOPIC,
    EXPORT_EVENTS_TOPIC,
    RequestChangedData,
    parse_domain_event,
)
from shared.messaging.outbox import enqueue, envelope
from shared.platform.settings import Settings
from shared.recordstore.models import Rectification
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
CALL_AT = NOW - timedelta(days=20)


@pytest.fixture(scope="module")
async def dsr(
    infrastructure: Infrastructure,
    settings: Settings,
    token_for: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Dsr]:
    data_dir = tmp_path_factory.mktemp("dsr-data")
    async with dsr_env(infrastructure, settings, token_for, data_dir, now=NOW) as running:
        yield running


async def _call(env: Env, register: str, phone: str, *, audio: bytes | None = None) -> str:
    call_id = f"call-{new_id()}"
    body = make_event("call.started", call_id, CALL_AT, direction="inbound", caller_number=phone)
    body["register"] = register
    await post_events(env, body)
    await wait_until_stored(env, f"{call_id}?register={register}")
    if audio is not None:
        put = await env.ingest.put(
            f"/v1/contacts/{call_id}/recording?register={register}",
            content=audio,
            headers={**env.headers[Role.PLATFORM], "Content-Type": "audio/wav"},
        )
        assert put.status_code == 201, put.text
    return call_id


async def test_prh_access_finds_the_callers_contacts_and_answers_with_a_package(dsr: Dsr) -> None:
    env = dsr.env
    phone = f"+35840{new_id()[-7:].translate(str.maketrans('abcdef', '123456'))}"
    audio = wav_bytes(0.5, marker=b"DSR-AUDIO-CANARY")
    own = await _call(env, "prh-customer-service", phone, audio=audio)
    # A recycled number: the same phone number, another person's call. Found, and rejected by the caseworker.
    other = await _call(env, "prh-customer-service", phone)
    own_ref = contact_ref_of(env, "prh-customer-service", own)
    other_ref = contact_ref_of(env, "prh-customer-service", other)

    created = await dsr.open_request("access", ["prh-customer-service"], ("phone", phone))
    request_id = created["request_id"]
    assert re.fullmatch(r"DSR-\d{4}-\d{6}", created["case_number"])
    assert created["status"] == "received"
    assert created["last_day"] == statutory_deadline(NOW).last_day.isoformat()
    assert phone not in str(created)

    # Nothing about the subject's data before their identity is proven.
    refused = await dsr.client.post(f"/v1/requests/{request_id}/search", headers=dsr.headers)
    assert refused.status_code == 409
    assert refused.json()["errors"][0]["field"] == "identity"

    candidates = await dsr.verified_candidates(request_id)
    assert {c["contact_ref"] for c in candidates} == {str(own_ref), str(other_ref)}
    assert all(c["matched_by"] == ["phone"] and c["decision"] == "pending" for c in candidates)
    early = await dsr.client.post(f"/v1/requests/{request_id}/answer", json={}, headers=dsr.headers)
    assert early.status_code == 409 and early.json()["errors"][0]["field"] == "candidates"
    await dsr.post(f"/v1/requests/{request_id}/candidates/{own_ref}", {"confirmed": True})
    await dsr.post(f"/v1/requests/{request_id}/candidates/{other_ref}", {"confirmed": False})

    answered = await dsr.post(f"/v1/requests/{request_id}/answer", {})
    assert answered["status"] == "completed"
    assert answered["decisions"][0]["outcome"] == "granted"
    assert answered["package"] is not None

    package = await dsr.get(f"/v1/requests/{request_id}/package")
    assert package.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(package.content))
    names = archive.namelist()
    letter = archive.read("cover-letter.txt").decode()
    assert created["case_number"] in letter
    assert "Tietosuojavaltuutetun toimisto" in letter
    recordings = [name for name in names if name.startswith("recordings/")]
    assert len(recordings) == 1  # the rejected contact is not in it
    with wave.open(io.BytesIO(archive.read(recordings[0]))) as played:
        assert played.getnframes() == 4000  # 0.5 s at 8 kHz: the whole call
    assert archive.read(recordings[0]) == audio
    assert str(own_ref) not in " ".join(names)

    # The reply is the cover letter, in Finnish, Swedish and English, naming the case and the complaint right.
    reply = (await dsr.get(f"/v1/requests/{request_id}/reply")).text
    assert reply == letter
    assert reply.index("SUOMEKSI") < reply.index("PÅ SVENSKA") < reply.index("IN ENGLISH")

    # Each step is an event for whoever follows requests, in order.
    topic = env.settings.topic(DSR_EVENTS_TOPIC)

    async def statuses() -> list[str] | None:
        seen = []
        for message in await read_topic(env.settings, topic):
            _event, data = parse_domain_event(message.value)
            if isinstance(data, RequestChangedData) and str(data.request_id) == request_id:
                seen.append(data.status)
        return seen if "completed" in seen else None

    assert await eventually(statuses, attempts=10) == [
        "received",
        "identity_verified",
        "in_progress",
        "completed",
    ]


async def test_a_bad_request_is_refused_naming_the_field_never_repeating_the_value(dsr: Dsr) -> None:
    body = {
        "request_type": "access",
        "registers": ["statfi-chat", "no-such-register"],
        "requester": [{"kind": "phone", "value": "+358401112233"}],
    }
    unknown = await dsr.client.post("/v1/requests", json=body, headers=dsr.headers)
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "registers[1]"
    assert "no-such-register" not in unknown.text
    bad_phone = {**body, "registers": ["statfi-chat"], "requester": [{"kind": "phone", "value": "12x45"}]}
    refused = await dsr.client.post("/v1/requests", json=bad_phone, headers=dsr.headers)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "requester[0].value"
    assert "12x45" not in refused.text


async def test_dvv_refuses_erasure_citing_its_legal_ground(dsr: Dsr) -> None:
    created = await dsr.open_request(
        "erasure", ["dvv-personal-customer-service"], ("email", f"someone-{new_id()}@example.fi")
    )
    request_id = created["request_id"]
    assert await dsr.verified_candidates(request_id) == []
    answered = await dsr.post(f"/v1/requests/{request_id}/answer", {})
    assert answered["status"] == "refused"
    decision = answered["decisions"][0]
    assert decision["outcome"] == "refused" and "17(3)(b)" in decision["ground"]
    reply = (await dsr.get(f"/v1/requests/{request_id}/reply")).text
    assert "17(3)(b)" in reply
    assert "Office of the Data Protection Ombudsman" in reply


async def test_hsy_erasure_goes_through_retentions_deletion_path(dsr: Dsr) -> None:
    env = dsr.env
    phone = "+358409876543"
    call_id = await _call(env, "hsy-customer-service", phone)
    ref = contact_ref_of(env, "hsy-customer-service", call_id)

    async def scheduled() -> int:
        async with env.sessionmaker() as session:
            count = await session.scalar(
                select(func.count()).select_from(ScheduleItem).where(ScheduleItem.contact_ref == ref)
            )
        return int(count or 0)

    await eventually(scheduled, attempts=400)
    created = await dsr.open_request("erasure", ["hsy-customer-service"], ("phone", phone))
    request_id = created["request_id"]
    for candidate in await dsr.verified_candidates(request_id):
        await dsr.post(
            f"/v1/requests/{request_id}/candidates/{candidate['contact_ref']}",
            {"confirmed": candidate["contact_ref"] == str(ref)},
        )
    # HSY grants erasure "in some situations": the caseworker must say whether this is one.
    unanswered = await dsr.client.post(f"/v1/requests/{request_id}/answer", json={}, headers=dsr.headers)
    assert unanswered.status_code == 422
    error = unanswered.json()["errors"][0]
    assert error["field"] == "conditions" and "hsy-customer-service" in error["reason"]
    answered = await dsr.post(
        f"/v1/requests/{request_id}/answer",
        {"conditions": [{"register": "hsy-customer-service", "met": True}]},
    )
    assert answered["status"] == "completed"
    await erased_by_retention(env, ref)
    gone = await env.ingest.get(
        f"/v1/contacts/{call_id}",
        params={"register": "hsy-customer-service"},
        headers=env.headers[Role.MANAGER],
    )
    assert gone.status_code == 404


async def test_a_restriction_for_legal_claims_is_enforced_held_and_lifted_after_notice(dsr: Dsr) -> None:
    env = dsr.env
    phone = "+358401239876"
    call_id = await _call(env, "prh-customer-service", phone, audio=wav_bytes(0.2))
    ref = contact_ref_of(env, "prh-customer-service", call_id)
    body = {
        "request_type": "restriction",
        "registers": ["prh-customer-service"],
        "requester": [{"kind": "phone", "value": phone}],
        "restriction_ground": "c",
    }
    request_id = (await dsr.post("/v1/requests", body, expect=201))["request_id"]
    for candidate in await dsr.verified_candidates(request_id):
        await dsr.post(
            f"/v1/requests/{request_id}/candidates/{candidate['contact_ref']}",
            {"confirmed": candidate["contact_ref"] == str(ref)},
        )
    answered = await dsr.post(
        f"/v1/requests/{request_id}/answer",
        {"conditions": [{"register": "prh-customer-service", "met": True}]},
    )
    assert answered["status"] == "completed"

    # Enforced on the data: a manager can no longer read or listen; the role handling legal claims can.
    manager = env.headers[Role.MANAGER]
    lawyer = {"Authorization": f"Bearer {dsr.token_for(Role.LEGAL_CLAIMS)}"}
    assert (await env.ingest.get(f"/v1/contacts/{call_id}", headers=manager)).status_code == 403
    assert (await env.ingest.get(f"/v1/contacts/{call_id}/recording", headers=manager)).status_code == 403
    assert (await env.ingest.get(f"/v1/contacts/{call_id}", headers=lawyer)).status_code == 200

    # Ground (c) keeps the data past its retention period: retention holds the contact.
    async def holds() -> list[Hold]:
        async with env.sessionmaker() as session:
            return list(
                (
                    await session.scalars(
                        select(Hold).where(Hold.target == str(ref), Hold.lifted_at.is_(None))
                    )
                ).all()
            )

    placed = await eventually(holds, attempts=400)
    assert placed[0].legal_reference == "GDPR Art. 18(1)(c)"

    # Lifting: the requester is told first, and the lift happens on the day set.
    today = NOW.date()
    same_day = await dsr.client.post(
        f"/v1/requests/{request_id}/restriction/lift",
        json={"reason": "legal_claims_concluded", "lifts_on": today.isoformat()},
        headers=dsr.headers,
    )
    assert same_day.status_code == 409
    notice = await dsr.post(
        f"/v1/requests/{request_id}/restriction/lift",
        {"reason": "legal_claims_concluded", "lifts_on": (today + timedelta(days=3)).isoformat()},
    )
    assert "Art. 18(3)" in notice["letter"]
    assert notice["request"]["restriction_lifted_at"] is None  # told first, lifted later
    assert (await env.ingest.get(f"/v1/contacts/{call_id}", headers=manager)).status_code == 403
    watch: DeadlineWatch = dsr.app.state.watch
    dsr.clock.set(NOW + timedelta(days=3))
    try:
        await watch.tick()
    finally:
        dsr.clock.set(NOW)
    assert (await env.ingest.get(f"/v1/contacts/{call_id}", headers=manager)).status_code == 200

    async def released() -> bool:
        return not await holds()

    await eventually(released, attempts=400)


async def test_reminder_and_overdue_events_come_once_each(dsr: Dsr) -> None:
    received = NOW - timedelta(days=40)
    body = {
        "request_type": "access",
        "registers": ["statfi-chat"],
        "requester": [{"kind": "email", "value": "late@example.fi"}],
        "received_at": received.isoformat(),
    }
    created = await dsr.post("/v1/requests", body, expect=201)
    assert created["overdue"] is True
    await dsr.post("/v1/requests", {**body, "received_at": NOW.isoformat()}, expect=201)
    watch: DeadlineWatch = dsr.app.state.watch
    first = await watch.tick()
    second = await watch.tick()
    assert first[1] >= 1  # this one, at least, is overdue
    assert second[:2] == (0, 0)  # and said once
    # The queue, a page at a time, the nearest last day first: the overdue one leads.
    listed = (await dsr.get("/v1/requests?open_only=true&limit=1")).json()
    assert [r["request_id"] for r in listed["requests"]] == [created["request_id"]]
    assert listed["next_cursor"]
    rest = (await dsr.get(f"/v1/requests?open_only=true&cursor={listed['next_cursor']}")).json()
    assert rest["requests"] and created["request_id"] not in {r["request_id"] for r in rest["requests"]}
    assert all(r["last_day"] >= created["last_day"] for r in rest["requests"])


def _number(seed: str) -> str:
    return f"+35840{seed[-7:].translate(str.maketrans('abcdef', '123456'))}"


async def test_prh_rectification_corrects_the_number_keeps_the_old_one_sealed_and_never_edits_audio(
    dsr: Dsr,
) -> None:
    env = dsr.env
    wrong, right = _number(new_id()), _number(new_id())
    audio = wav_bytes(0.3)
    call_id = await _call(env, "prh-customer-service", wrong, audio=audio)
    ref = contact_ref_of(env, "prh-customer-service", call_id)

    # A rectification names the field and the exact change (DVV's and PRH's notices both ask for it).
    vague = await dsr.client.post(
        "/v1/requests",
        json={
            "request_type": "rectification",
            "registers": ["prh-customer-service"],
            "requester": [{"kind": "phone", "value": wrong}],
        },
        headers=dsr.headers,
    )
    assert vague.status_code == 422 and vague.json()["errors"][0]["field"] == "details"
    created = await dsr.post(
        "/v1/requests",
        {
            "request_type": "rectification",
            "registers": ["prh-customer-service"],
            "requester": [{"kind": "phone", "value": wrong}, {"kind": "phone", "value": right}],
            "details": {
                "field": "my phone number",
                "change": f"{wrong} is not mine, mine is {right}",
                "explanation": "I said on the call that I also want it noted the advice I got was wrong.",
            },
        },
        expect=201,
    )
    request_id = created["request_id"]
    # The caseworker reads what was asked; the audit log records that they did.
    asked = (await dsr.get(f"/v1/requests/{request_id}/requester")).json()
    assert asked["details"]["change"] == f"{wrong} is not mine, mine is {right}"
    assert {i["value"] for i in asked["requester"]} == {wrong, right}
    auditor = {"Authorization": f"Bearer {dsr.token_for(Role.AUDITOR)}"}
    assert (await dsr.client.get(f"/v1/requests/{request_id}/requester", headers=auditor)).status_code == 403

    candidates = await dsr.verified_candidates(request_id)
    for candidate in candidates:
        await dsr.post(
            f"/v1/requests/{request_id}/candidates/{candidate['contact_ref']}",
            {"confirmed": candidate["contact_ref"] == str(ref)},
        )
    bad = await dsr.client.post(
        f"/v1/requests/{request_id}/answer",
        json={"rectification": {"corrections": [{"field": "phone", "value": "12x45"}]}},
        headers=dsr.headers,
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "rectification.corrections[0].value"
    assert "12x45" not in bad.text
    absent = await dsr.client.post(
        f"/v1/requests/{request_id}/answer",
        json={"rectification": {"corrections": [{"field": "email", "value": "a@example.fi"}]}},
        headers=dsr.headers,
    )
    assert absent.status_code == 422  # a call records no e-mail address: nothing to correct there
    assert absent.json()["errors"][0]["field"] == "rectification.corrections[0].field"

    statement = "The caller states that the advice given on this call about the filing fee was wrong."
    answered = await dsr.post(
        f"/v1/requests/{request_id}/answer",
        {"rectification": {"corrections": [{"field": "phone", "value": right}], "statement": statement}},
    )
    assert answered["status"] == "completed"
    assert answered["decisions"][0]["outcome"] == "granted"
    reply = (await dsr.get(f"/v1/requests/{request_id}/reply")).text
    for words in ("puhelinnumero", "telefonnummer", "phone number", "19 artikla", "artikel 19", "Art. 19"):
        assert words in reply
    assert wrong not in reply and right not in reply  # the letter names fields, never values

    # The contact now shows the corrected number wherever it was recorded, and the statement beside it.
    manager = env.headers[Role.MANAGER]
    read = (await env.ingest.get(f"/v1/contacts/{call_id}", headers=manager)).json()
    customer = next(p for p in read["parties"] if p["role"] == "customer")
    assert customer["details"]["phone"] == right
    started = next(e for e in read["events"] if e["type"] == "call.started")
    assert started["data"]["caller_number"] == right
    assert wrong not in str(read)
    kinds = {(r["kind"], r["field"]) for r in read["rectifications"]}
    assert kinds == {("correction", "phone"), ("statement", None)}
    assert next(r for r in read["rectifications"] if r["kind"] == "statement")["statement"] == statement
    # The recording itself is untouched.
    listened = await env.ingest.get(f"/v1/contacts/{call_id}/recording", headers=manager)
    assert listened.status_code == 200 and listened.content == audio

    # The blind index follows the correction: the wrong number finds nothing now, the right one finds the call.
    again = await dsr.open_request("access", ["prh-customer-service"], ("phone", wrong))
    assert await dsr.verified_candidates(again["request_id"]) == []
    access = await dsr.open_request("access", ["prh-customer-service"], ("phone", right))
    found = await dsr.verified_candidates(access["request_id"])
    assert [c["contact_ref"] for c in found] == [str(ref)]

    # The earlier value is kept, sealed, and is the requester's data too: the access package shows it.
    async with env.sessionmaker() as session:
        history = (await session.scalars(select(Rectification).where(Rectification.contact_ref == ref))).all()
    assert {(h.kind, h.field) for h in history} == {("correction", "phone"), ("statement", None)}
    assert all(wrong.encode() not in h.sealed and statement.encode() not in h.sealed for h in history)
    await dsr.post(f"/v1/requests/{access['request_id']}/candidates/{ref}", {"confirmed": True})
    await dsr.post(f"/v1/requests/{access['request_id']}/answer", {})
    package = await dsr.get(f"/v1/requests/{access['request_id']}/package")
    archive = zipfile.ZipFile(io.BytesIO(package.content))
    contacts = json.loads(archive.read("contacts.json"))
    corrections = [r for r in contacts[0]["rectifications"] if r["kind"] == "correction"]
    assert corrections[0]["previous"] == [wrong]
    assert contacts[0]["parties"][0]["details"]["phone"] == right

    # Recipients are told (Art. 19): one dsr.rectified event naming the contact and the field, never a value.
    topic = env.settings.topic(DSR_EVENTS_TOPIC)

    async def rectified() -> list[tuple[Any, bytes]] | None:
        seen = []
        for message in await read_topic(env.settings, topic):
            event, data = parse_domain_event(message.value)
            if event.type == "dsr.rectified" and str(data.request_id) == request_id:  # type: ignore[attr-defined]
                seen.append((data, message.value))
        return seen or None

    events = await eventually(rectified, attempts=10)
    assert len(events) == 1
    data, raw = events[0]
    assert data.contact_refs == [ref] and data.fields == ["phone"] and data.statement_added
    assert wrong.encode() not in raw and right.encode() not in raw and statement.encode() not in raw

    # The history lives as long as the data it belonged to: when retention deletes the classes, it goes too.
    async with env.sessionmaker() as session:
        await session.execute(
            update(ScheduleItem)
            .where(ScheduleItem.contact_ref == ref)
            .values(due_at=NOW - timedelta(minutes=1))
        )
        await session.commit()
    await env.sweeper.sweep()
    async with env.sessionmaker() as session:
        left = await session.scalar(
            select(func.count()).select_from(Rectification).where(Rectification.contact_ref == ref)
        )
    assert left == 0


async def test_dvv_rectification_of_accurate_data_is_refused_on_art_16(dsr: Dsr) -> None:
    env = dsr.env
    phone = _number(new_id())
    call_id = await _call(env, "dvv-personal-customer-service", phone)
    ref = contact_ref_of(env, "dvv-personal-customer-service", call_id)
    created = await dsr.post(
        "/v1/requests",
        {
            "request_type": "rectification",
            "registers": ["dvv-personal-customer-service"],
            "requester": [{"kind": "phone", "value": phone}],
            "details": {"field": "phone number", "change": "the number on my call is wrong"},
        },
        expect=201,
    )
    request_id = created["request_id"]
    for candidate in await dsr.verified_candidates(request_id):
        await dsr.post(
            f"/v1/requests/{request_id}/candidates/{candidate['contact_ref']}",
            {"confirmed": candidate["contact_ref"] == str(ref)},
        )
    # Checked and accurate: nothing corrected, the refusal cites Art. 16 and the complaint right.
    answered = await dsr.post(f"/v1/requests/{request_id}/answer", {"rectification": {}})
    assert answered["status"] == "refused"
    decision = answered["decisions"][0]
    assert decision["statutory_ground"] == "data_accurate" and "Art. 16" in decision["ground"]
    reply = (await dsr.get(f"/v1/requests/{request_id}/reply")).text
    assert "there is nothing to rectify" in reply
    assert "Office of the Data Protection Ombudsman" in reply
    read = (await env.ingest.get(f"/v1/contacts/{call_id}", headers=env.headers[Role.MANAGER])).json()
    assert read["rectifications"] == []


async def _lend(env: Env, refs: list[Any], *, status: str, institute: str, agreement: str) -> None:
    """A research loan's items, announced on the export events topic through the outbox, as export does."""
    loan_id = uuid.uuid5(uuid.NAMESPACE_URL, f"loan:{agreement}")
    async with env.sessionmaker() as session:
        await enqueue(
            session,
            topic=EXPORT_EVENTS_TOPIC,
            key=loan_id,
            event=envelope(
                "export.items_lent" if status == "lent" else "export.items_accounted",
                {
                    "loan_id": loan_id,
                    "institute_id": "tutkimuslaitos",
                    "institute_name": institute,
                    "agreement_ref": agreement,
                    "lent_on": (NOW - timedelta(days=10)).date(),
                    "due_on": (NOW + timedelta(days=80)).date(),
                    "status": status,
                    "items": [{"contact_ref": ref, "artifact_class": "recording"} for ref in refs],
                },
                producer="export",
                occurred_at=NOW,
            ),
        )
        await session.commit()


async def test_an_access_reply_lists_the_research_loans_that_included_the_callers_recordings(
    dsr: Dsr,
) -> None:
    env = dsr.env
    phone = _number(new_id())
    call_id = await _call(env, "prh-customer-service", phone, audio=wav_bytes(0.1))
    ref = contact_ref_of(env, "prh-customer-service", call_id)
    stranger = await _call(env, "prh-customer-service", _number(new_id()), audio=wav_bytes(0.1))
    await _lend(env, [ref], status="lent", institute="Laatututkimuslaitos Oy", agreement="TUT-2026/7")
    await _lend(
        env,
        [contact_ref_of(env, "prh-customer-service", stranger)],
        status="lent",
        institute="Muu Instituutti",
        agreement="MUU-1",
    )
    await _lend(env, [ref], status="lent", institute="Puheyliopisto", agreement="PY-12")
    await _lend(env, [ref], status="destroyed", institute="Puheyliopisto", agreement="PY-12")

    async def known() -> bool:
        async with env.sessionmaker() as session:
            rows = (await session.scalars(select(Disclosure).where(Disclosure.contact_ref == ref))).all()
        return len(rows) == 2 and {r.status for r in rows} == {"out", "destroyed"}

    await eventually(known, attempts=400)
    created = await dsr.open_request("access", ["prh-customer-service"], ("phone", phone))
    request_id = created["request_id"]
    for candidate in await dsr.verified_candidates(request_id):
        await dsr.post(
            f"/v1/requests/{request_id}/candidates/{candidate['contact_ref']}", {"confirmed": True}
        )
    await dsr.post(f"/v1/requests/{request_id}/answer", {})
    letter = (await dsr.get(f"/v1/requests/{request_id}/reply")).text
    english = letter[letter.index("IN ENGLISH") :]
    assert "Research loans that included your data:" in english
    assert "Laatututkimuslaitos Oy, agreement TUT-2026/7" in english
    assert "Puheyliopisto, agreement PY-12" in english
    assert "Muu Instituutti" not in letter  # another person's loan
    loan_lines = [line for line in english.splitlines() if "agreement" in line]
    assert "destroyed" in next(line for line in loan_lines if "PY-12" in line)
    assert "destroyed" not in next(line for line in loan_lines if "TUT-2026/7" in line)

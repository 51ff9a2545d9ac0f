"""Each register's seed rules followed through time, one register per test, at the exact boundaries.

For every artifact class a scenario sweeps one second before its due time (everything is still there) and at
its due time (that class is crypto-shredded, with a certificate naming the rule as the policy file writes it),
while every other class and contact of the scenario stays untouched until its own due time. The periods,
triggers and accepted event types are those of policies/*.yaml; the expected due times are written out here as
Helsinki wall-clock times, not computed with the code under test.

Ingest refuses events from the future by the real clock, so the contacts are dated in 2024-2026; the sweeper and
the holds read the FrozenClock the test moves.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from services.retention.models import Certificate, ScheduleItem
from shared.recordstore.keystore import DataKey
from shared.recordstore.models import SubjectIndex
from shared.security.auth import Role
from tests.integration.conftest import eventually, new_id, wav_bytes
from tests.integration.retention_env import (
    Env,
    contact_ref_of,
    make_event,
    module_env,
    post_events,
    read_contact,
    wait_until_stored,
)

pytestmark = pytest.mark.integration

HELSINKI = ZoneInfo("Europe/Helsinki")
SECOND = timedelta(seconds=1)


def at(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    """A Helsinki wall-clock time (none of those used here falls in a repeated or skipped hour)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=HELSINKI)


env = module_env("retention-registers", at(2025, 1, 1, 0, 0))


# -- helpers ---------------------------------------------------------------------------------------------------


def event(register: str, event_type: str, contact_id: str, when: datetime, **data: Any) -> dict[str, Any]:
    body = make_event(event_type, contact_id, when, **data)
    body["register"] = register
    return body


async def put_recording(env: Env, contact_id: str) -> None:
    await wait_until_stored(env, contact_id)  # a recording is accepted only for a contact the store knows
    response = await env.ingest.put(
        f"/v1/contacts/{contact_id}/recording",
        content=wav_bytes(0.2),
        headers={**env.headers[Role.PLATFORM], "Content-Type": "audio/wav"},
    )
    assert response.status_code == 201, response.text


async def wait_for_due(
    env: Env, ref: uuid.UUID, artifact_class: str, due: datetime | None, item: str = ""
) -> ScheduleItem:
    """The contact's pending schedule row for the class once the scheduler has folded in the events that
    make it fall due at `due` (None: no clock running)."""

    async def check() -> ScheduleItem | None:
        async with env.sessionmaker() as session:
            row = await session.scalar(
                select(ScheduleItem).where(
                    ScheduleItem.contact_ref == ref,
                    ScheduleItem.artifact_class == artifact_class,
                    ScheduleItem.item == item,
                    ScheduleItem.state == "scheduled",
                )
            )
        return row if row is not None and row.due_at == due else None

    row: ScheduleItem = await eventually(check, attempts=400)
    return row


async def key_classes(env: Env, refs: Iterable[uuid.UUID]) -> dict[uuid.UUID, set[str]]:
    """For each contact, the classes whose data key still exists: what is still readable anywhere."""
    wanted = list(refs)
    async with env.sessionmaker() as session:
        rows = (
            await session.execute(
                select(DataKey.contact_ref, DataKey.artifact_class).where(DataKey.contact_ref.in_(wanted))
            )
        ).all()
    found: dict[uuid.UUID, set[str]] = {ref: set() for ref in wanted}
    for ref, artifact_class in rows:
        found[ref].add(artifact_class)
    return found


async def certificates(env: Env, ref: uuid.UUID) -> list[Certificate]:
    """The contact's certificates, oldest first."""
    async with env.sessionmaker() as session:
        rows = (
            await session.scalars(
                select(Certificate)
                .where(Certificate.contact_ref == ref)
                .order_by(Certificate.done_at, Certificate.artifact_class, Certificate.item)
            )
        ).all()
    return list(rows)


async def sweep_at(env: Env, when: datetime) -> None:
    env.clock.set(when)
    await env.sweeper.sweep()


async def cross(
    env: Env, due: datetime, gone: dict[uuid.UUID, dict[str, str]], watched: Iterable[uuid.UUID]
) -> None:
    """Sweep one second before `due`, then at `due`.

    `gone` maps a contact to the classes that fall due at `due`, each with the rule text its certificate must
    carry. One second before, every watched contact keeps every key it had; at `due`, exactly the `gone`
    classes lose theirs (a contact with nothing left loses its row too) and get one certificate each, and
    nothing else changes.
    """
    watched = set(watched) | set(gone)
    before = await key_classes(env, watched)
    for ref, classes in gone.items():
        assert set(classes) <= before[ref], (ref, before[ref])
    await sweep_at(env, due - SECOND)
    assert await key_classes(env, watched) == before
    for ref in gone:
        assert [c for c in await certificates(env, ref) if c.due_at == due] == []

    await sweep_at(env, due)
    expected = {ref: classes - set(gone.get(ref, {})) for ref, classes in before.items()}
    assert await key_classes(env, watched) == expected
    for ref, classes in gone.items():
        issued = [c for c in await certificates(env, ref) if c.due_at == due]
        assert sorted((c.artifact_class, c.item, c.rule) for c in issued) == sorted(
            (artifact_class, "", rule) for artifact_class, rule in classes.items()
        )
        for certificate in issued:
            assert certificate.done_at == due
            assert certificate.method == "crypto-shredding"
            assert len(certificate.ciphertext_sha256) == 64


def texts(contact: dict[str, Any]) -> list[str]:
    return [e["data"]["text"] for e in contact["events"] if e["data"] and "text" in e["data"]]


def retention_client(env: Env) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=env.retention_app)
    return httpx.AsyncClient(transport=transport, base_url="http://retention.test")


def bearer(token_for: Any, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(role)}"}


async def schedule_entries(
    env: Env, token_for: Any, register: str, contact_id: str
) -> dict[str, dict[str, Any]]:
    """The contact's schedule as an auditor reads it, by class (class-level entries only)."""
    async with retention_client(env) as retention:
        response = await retention.get(
            f"/v1/contacts/{contact_id}/schedule",
            params={"register": register},
            headers=bearer(token_for, Role.AUDITOR),
        )
    assert response.status_code == 200, response.text
    return {e["artifact_class"]: e for e in response.json()["entries"] if e["item"] == ""}


# -- PRH: customer service -------------------------------------------------------------------------------------

PRH = "prh-customer-service"


async def test_prh_customer_service_call_sms_chatbot_and_chat(env: Env) -> None:
    """PRH's 2021 notice: call recordings 6 months, call history 12 months, SMS survey answers and history 12
    months, chat and chatbot conversations 2 years, numbers typed into the chatbot redacted after an hour."""
    tag = new_id()
    call_id, sms_id, bot_id, chat_id = (f"{kind}-{tag}" for kind in ("call", "sms", "chatbot", "chat"))
    # The last day of August, in summer time: six months on is the last day of February, in winter time.
    call_at = at(2025, 8, 31, 14, 5)
    sms_at = at(2025, 8, 31, 14, 20)  # the survey sent after the call
    bot_at = at(2025, 8, 31, 14, 40)
    chat_at = at(2025, 8, 31, 15, 0)

    await post_events(
        env,
        event(PRH, "call.started", call_id, call_at, direction="inbound", caller_number="+358401234567"),
        event(PRH, "call.answered", call_id, call_at + 20 * SECOND, agent={"id": "agent-7", "name": "Aino"}),
        event(PRH, "call.ended", call_id, call_at + timedelta(minutes=6)),
        event(
            PRH,
            "sms_survey.sent",
            sms_id,
            sms_at,
            phone_number="+358401234567",
            survey_id="prh-nps-2025",
            question="Arvioi palvelu 1-5",
        ),
        event(
            PRH,
            "sms_survey.answered",
            sms_id,
            sms_at + timedelta(minutes=7),
            phone_number="+358401234567",
            survey_id="prh-nps-2025",
            answer="5, nopea vastaus",
        ),
        event(
            PRH, "chatbot.message", bot_id, bot_at, sender="customer", text="Numeroni on 040 765 4321, soita"
        ),
        event(PRH, "chatbot.message", bot_id, bot_at + 5 * SECOND, sender="bot", text="Välitän viestin."),
    )
    # The 2021 notice keeps no technical participant data of a chat: the chat is kept without it.
    started, *_ = await post_events(
        env,
        event(
            PRH,
            "chat.started",
            chat_id,
            chat_at,
            customer={"nickname": "yrittäjä"},
            participant={"ip_address": "192.0.2.10", "browser": "Firefox"},
        ),
        event(PRH, "chat.message", chat_id, chat_at + 40 * SECOND, sender="customer", text="Miten muutan?"),
        event(PRH, "chat.message", chat_id, chat_at + 90 * SECOND, sender="agent", text="Lomakkeella Y3."),
        event(PRH, "chat.ended", chat_id, chat_at + timedelta(minutes=4), reason="customer_left"),
    )
    assert started.json()["dropped_fields"] == ["data.participant"]
    await put_recording(env, call_id)
    for contact_id, count in ((call_id, 3), (sms_id, 2), (bot_id, 2), (chat_id, 4)):
        await wait_until_stored(env, contact_id, count)

    call, sms, bot, chat = (contact_ref_of(env, PRH, c) for c in (call_id, sms_id, bot_id, chat_id))
    everyone = [call, sms, bot, chat]
    # 31 August + 6 months: February has no 31st, so the end of its last day, winter time.
    recording_due = datetime.combine(date(2026, 2, 28), time.max, tzinfo=HELSINKI)
    history_due = at(2026, 8, 31, 14, 5)
    sms_due = at(2026, 8, 31, 14, 20)
    bot_due = at(2027, 8, 31, 14, 40)
    chat_due = at(2027, 8, 31, 15, 0)
    redact_due = bot_at + timedelta(hours=1)
    assert (await wait_for_due(env, call, "recording", recording_due)).reason == (
        "kept until 2026-02-28 by prh-customer-service v2021-10-20 recording/6 months from contact start"
    )
    await wait_for_due(env, call, "contact_history", history_due)
    await wait_for_due(env, sms, "survey_answers", sms_due)
    await wait_for_due(env, bot, "messages", bot_due)
    await wait_for_due(env, chat, "messages", chat_due)
    async with env.sessionmaker() as session:
        redactions = (
            await session.scalars(
                select(ScheduleItem)
                .where(ScheduleItem.contact_ref == bot, ScheduleItem.artifact_class == "chatbot_identifiers")
                .order_by(ScheduleItem.due_at)
            )
        ).all()
    assert [r.due_at for r in redactions] == [redact_due, redact_due + 5 * SECOND]
    assert redactions[0].reason == (
        "redacted at 2025-08-31 15:40 by prh-customer-service v2021-10-20 chatbot_identifiers/1 hour from "
        "the message"
    )

    # An hour after the customer typed the number: the number goes, the rest of the conversation stays.
    keys = await key_classes(env, everyone)
    await sweep_at(env, redact_due - SECOND)
    assert texts(await wait_until_stored(env, bot_id, 2))[0] == "Numeroni on 040 765 4321, soita"
    assert await certificates(env, bot) == []
    await sweep_at(env, redact_due)
    assert texts(await wait_until_stored(env, bot_id, 2)) == [
        "Numeroni on [redacted: phone], soita",
        "Välitän viestin.",
    ]
    # The bot's reply has its own item an hour after it: nothing to redact there, and it is certified so.
    await sweep_at(env, redact_due + 5 * SECOND)
    issued = await certificates(env, bot)
    assert [(c.rule, c.method, c.due_at, c.done_at, c.items) for c in issued] == [
        ("chatbot_identifiers/PT1H/message_sent/redact", "redaction", when, when, pieces)
        for when, pieces in ((redact_due, 2), (redact_due + 5 * SECOND, 0))
    ]
    assert await key_classes(env, everyone) == keys  # a redaction destroys no key

    # Six months from the call: its recording, in every copy; the call's history, the survey and the chats stay.
    await cross(env, recording_due, {call: {"recording": "recording/P6M/contact_start/delete"}}, everyone)
    assert (await read_contact(env, call_id, "/recording")).status_code in (404, 410)
    assert (await read_contact(env, call_id)).json()["events"][0]["data"]["caller_number"] == "+358401234567"
    blob_root = Path(env.settings.resolved_blob_store_url.removeprefix("file://"))
    assert not [p for p in blob_root.rglob("*.enc") if str(call) in str(p)]

    # Twelve months from the call: its history, and with it the contact.
    await cross(
        env, history_due, {call: {"contact_history": "contact_history/P12M/contact_start/delete"}}, everyone
    )
    assert (await read_contact(env, call_id)).status_code == 404
    # Twelve months from the survey (sent 15 minutes after the call): the answers and the survey's history.
    survey = await wait_until_stored(env, sms_id, 2)
    assert [e["data"].get("answer") for e in survey["events"]] == [None, "5, nopea vastaus"]
    await cross(env, sms_due, {sms: {"survey_answers": "survey_answers/P12M/contact_start/delete"}}, everyone)
    assert (await read_contact(env, sms_id)).status_code == 404

    # Two years: the chatbot conversation, then the chat.
    await cross(env, bot_due, {bot: {"messages": "messages/P2Y/contact_start/delete"}}, everyone)
    assert (await read_contact(env, bot_id)).status_code == 404
    assert texts(await wait_until_stored(env, chat_id, 4)) == ["Miten muutan?", "Lomakkeella Y3."]
    await cross(env, chat_due, {chat: {"messages": "messages/P2Y/contact_start/delete"}}, everyone)
    assert (await read_contact(env, chat_id)).status_code == 404
    assert await key_classes(env, everyone) == {ref: set() for ref in everyone}


# -- PRH: beneficial-owner customers ---------------------------------------------------------------------------

BENEFICIAL = "prh-beneficial-owner-customers"


async def test_prh_beneficial_owner_identification_is_kept_five_years(env: Env) -> None:
    contact_id = f"identification-{new_id()}"
    identified_at = at(2024, 2, 29, 12, 0)  # a leap day: five years on, 28 February
    identification = event(
        BENEFICIAL,
        "identification",
        contact_id,
        identified_at,
        name="Maija Meikäläinen",
        personal_identity_code="131052-308T",
        method="suomi_fi",
    )
    # The identification of beneficial-owner requests is kept in this register, never in customer service's.
    refused = await env.ingest.post(
        "/v1/events", json={**identification, "register": PRH}, headers=env.headers[Role.PLATFORM]
    )
    assert refused.status_code == 422
    assert "does not accept identification events" in refused.text
    await post_events(env, identification)
    stored = await wait_until_stored(env, contact_id)
    assert stored["events"][0]["data"]["personal_identity_code"] == "131052-308T"

    ref = contact_ref_of(env, BENEFICIAL, contact_id)
    # A leap day + 5 years: February 2029 has no 29th, so the end of its last day.
    due = datetime.combine(date(2029, 2, 28), time.max, tzinfo=HELSINKI)
    row = await wait_for_due(env, ref, "identification", due)
    assert row.reason == (
        "kept until 2029-02-28 by prh-beneficial-owner-customers v2021-10-20 identification/5 years from "
        "contact start"
    )
    await cross(env, due, {ref: {"identification": "identification/P5Y/contact_start/delete"}}, [])
    assert (await read_contact(env, contact_id)).status_code == 404
    async with env.sessionmaker() as session:
        indexed = await session.scalar(
            select(func.count()).select_from(SubjectIndex).where(SubjectIndex.contact_ref == ref)
        )
    assert indexed == 0  # nor can the identity code find the contact any more


# -- DVV: personal customer service ----------------------------------------------------------------------------

DVV = "dvv-personal-customer-service"


async def test_dvv_case_data_runs_from_the_closing_and_recordings_from_the_end_of_the_call(
    env: Env, token_for: Any
) -> None:
    """DVV: what the case system holds is kept a year after the case is closed; a reopening stops that clock
    and the next closing starts it again. Phone recordings are kept a year after the contact (contact_end)."""
    tag = new_id()
    case_id, call_id, case_number = f"case-{tag}", f"call-{tag}", f"DVV-2024-{tag[:8]}"
    case = contact_ref_of(env, DVV, case_id)
    call = contact_ref_of(env, DVV, call_id)
    closing = {"case_number": case_number}

    # A case from an e-mail: opened, closed, and closed again without a reopening (that changes nothing).
    first_closed = at(2024, 1, 22, 15, 30)
    await post_events(
        env,
        event(
            DVV,
            "email.received",
            case_id,
            at(2024, 1, 15, 8, 45),
            from_address="asiakas@example.fi",
            subject="Osoitteenmuutos",
            body="Muutin 1.1. uuteen osoitteeseen.",
            case_number=case_number,
        ),
        event(DVV, "case.opened", case_id, at(2024, 1, 15, 9, 0), case_number=case_number, subject="Muutto"),
        event(DVV, "case.closed", case_id, first_closed, case_number=case_number, resolution="answered"),
        event(DVV, "case.closed", case_id, at(2024, 1, 24, 10, 0), **closing),
    )
    old_due = at(2025, 1, 22, 15, 30)
    first = await wait_for_due(env, case, "case_data", old_due)
    assert first.trigger_at == first_closed
    assert first.reason == (
        "kept until 2025-01-22 by dvv-personal-customer-service v2020-01-01 case_data/1 year from case closing"
    )

    # The customer comes back in November: the case is reopened, and its clock stops.
    await post_events(env, event(DVV, "case.opened", case_id, at(2024, 11, 4, 10, 0), **closing))
    await wait_for_due(env, case, "case_data", None)
    await wait_until_stored(env, case_id, 5)
    entries = await schedule_entries(env, token_for, DVV, case_id)
    assert entries["case_data"]["state"] == "waiting"
    assert entries["case_data"]["reason"] == (
        "clock stopped: the case was reopened on 2024-11-04; waits for the case to be closed again (case_closed)"
    )
    keys = await key_classes(env, [case])
    assert keys == {case: {"case_data"}}
    for when in (old_due - SECOND, old_due, old_due + timedelta(days=30)):
        await sweep_at(env, when)
        assert await key_classes(env, [case]) == keys
    assert await certificates(env, case) == []

    # Closed again in February: a year from this closing.
    reclosed = at(2025, 2, 17, 11, 45)
    await post_events(env, event(DVV, "case.closed", case_id, reclosed, **closing))
    second_due = at(2026, 2, 17, 11, 45)
    assert (await wait_for_due(env, case, "case_data", second_due)).trigger_at == reclosed
    await wait_until_stored(env, case_id, 6)

    # A phone call with no case: its recording's clock starts when the call ends. The call's history is case
    # system data, kept a year from a case closing: with no case it has no clock, and is reported as waiting,
    # never deleted by guess.
    call_start, call_end = at(2025, 6, 10, 9, 58, 30), at(2025, 6, 10, 10, 12, 45)
    await post_events(
        env,
        event(DVV, "call.started", call_id, call_start, direction="inbound", caller_number="+358501234567"),
        event(DVV, "call.answered", call_id, call_start + 40 * SECOND, agent={"id": "dvv-agent-3"}),
        event(DVV, "call.ended", call_id, call_end),
    )
    await put_recording(env, call_id)
    await wait_until_stored(env, call_id, 3)
    recording_due = at(2026, 6, 10, 10, 12, 45)
    recording = await wait_for_due(env, call, "recording", recording_due)
    assert (recording.trigger, recording.trigger_at) == ("contact_end", call_end)
    await wait_for_due(env, call, "contact_history", None)
    watched = [case, call]

    await cross(env, second_due, {case: {"case_data": "case_data/P1Y/case_closed/delete"}}, watched)
    assert [c.trigger_at for c in await certificates(env, case)] == [reclosed]
    assert (await read_contact(env, case_id)).status_code == 404

    # In April the customer writes about the same case again and it is reopened and closed: the new case data
    # gets a year from the new closing, like any other. Months pass between the deletion and the return, so
    # no process still holds the destroyed key in its cache (see shared.recordstore.keystore).
    env.ingest_app.state.keystore.forget([(case, "case_data")])
    third_closed = at(2026, 4, 14, 9, 10)
    await post_events(
        env,
        event(
            DVV,
            "email.received",
            case_id,
            at(2026, 4, 7, 13, 20),
            from_address="asiakas@example.fi",
            subject="Osoitteenmuutos uudelleen",
            case_number=case_number,
        ),
        event(DVV, "case.opened", case_id, at(2026, 4, 7, 13, 30), **closing),
        event(DVV, "case.closed", case_id, third_closed, **closing),
    )
    third_due = at(2027, 4, 14, 9, 10)
    assert (await wait_for_due(env, case, "case_data", third_due)).trigger_at == third_closed
    await wait_until_stored(env, case_id, 3)

    # A year from the start of the call is not yet a year from the contact: the call lasted 14 minutes.
    keys = await key_classes(env, watched)
    assert keys == {case: {"case_data"}, call: {"contact_history", "recording"}}
    await sweep_at(env, at(2026, 6, 10, 9, 58, 30))
    assert await key_classes(env, watched) == keys
    await cross(env, recording_due, {call: {"recording": "recording/P1Y/contact_end/delete"}}, watched)
    assert (await read_contact(env, call_id, "/recording")).status_code in (404, 410)
    assert [c.trigger_at for c in await certificates(env, call)] == [call_end]
    assert (await read_contact(env, call_id)).status_code == 200  # the history waits for a case closing

    await cross(env, third_due, {case: {"case_data": "case_data/P1Y/case_closed/delete"}}, watched)
    assert [c.trigger_at for c in await certificates(env, case)] == [reclosed, third_closed]
    assert (await read_contact(env, case_id)).status_code == 404
    assert await key_classes(env, watched) == {case: set(), call: {"contact_history"}}
    entries = await schedule_entries(env, token_for, DVV, call_id)
    assert entries["contact_history"]["state"] == "waiting"
    assert (
        entries["contact_history"]["reason"] == "no clock yet: waits for the case to be closed (case_closed)"
    )


# -- Statistics Finland: chat ----------------------------------------------------------------------------------

STATFI = "statfi-chat"


async def test_statfi_chat_is_kept_35_days(env: Env) -> None:
    contact_id = f"chat-{new_id()}"
    # Two days before clocks go forward: 35 calendar days later is the same wall-clock time in summer time,
    # an hour less than 35 x 24 hours.
    started = at(2026, 3, 27, 20, 15)
    responses = await post_events(
        env,
        event(
            STATFI,
            "chat.started",
            contact_id,
            started,
            customer={"nickname": "tutkija"},
            participant={"source_page": "https://stat.fi/tilasto/vaerak", "ip_address": "192.0.2.44"},
        ),
        event(
            STATFI, "chat.message", contact_id, started + timedelta(minutes=1), sender="customer", text="Hei?"
        ),
        event(
            STATFI, "chat.message", contact_id, started + timedelta(minutes=3), sender="agent", text="Hei!"
        ),
        event(STATFI, "chat.ended", contact_id, started + timedelta(minutes=10), reason="agent_closed"),
    )
    assert responses[0].json()["dropped_fields"] == []  # Statistics Finland keeps the participant data
    stored = await wait_until_stored(env, contact_id, 4)
    assert stored["events"][0]["data"]["participant"]["ip_address"] == "192.0.2.44"

    ref = contact_ref_of(env, STATFI, contact_id)
    due = at(2026, 5, 1, 20, 15)
    assert due.astimezone(UTC) - started.astimezone(UTC) == timedelta(days=35, hours=-1)
    await wait_for_due(env, ref, "messages", due)
    await wait_for_due(env, ref, "participant_data", due)
    await cross(
        env,
        due,
        {
            ref: {
                "messages": "messages/P35D/contact_start/delete",
                "participant_data": "participant_data/P35D/contact_start/delete",
            }
        },
        [],
    )
    assert (await read_contact(env, contact_id)).status_code == 404


# -- HSY: customer service -------------------------------------------------------------------------------------

HSY = "hsy-customer-service"


async def test_hsy_recordings_go_at_12_months_unless_a_hold_keeps_them(env: Env, token_for: Any) -> None:
    """HSY keeps recordings 12 months, "longer where applicable law or binding obligations towards third
    parties require": the longer storage is a legal hold on the contact, and the recording goes once it is
    lifted."""
    tag = new_id()
    held_id, free_id = f"call-held-{tag}", f"call-free-{tag}"
    called = at(2025, 5, 12, 8, 30)
    held_call = await post_events(
        env,
        event(
            HSY,
            "call.started",
            held_id,
            called,
            direction="inbound",
            caller_number="+358401112233",
            caller_presentation="restricted",
        ),
        event(HSY, "call.ended", held_id, called + timedelta(minutes=9)),
    )
    assert held_call[0].json()["dropped_fields"] == ["data.caller_number"]  # a secret number is not stored
    await post_events(
        env,
        event(HSY, "call.started", free_id, called, direction="outbound", callee_number="+358407654321"),
        event(HSY, "call.ended", free_id, called + timedelta(minutes=3)),
    )
    for contact_id in (held_id, free_id):
        await put_recording(env, contact_id)
        await wait_until_stored(env, contact_id, 2)
    held, free = contact_ref_of(env, HSY, held_id), contact_ref_of(env, HSY, free_id)
    due = at(2026, 5, 12, 8, 30)
    for ref in (held, free):
        await wait_for_due(env, ref, "recording", due)
        await wait_for_due(env, ref, "contact_history", due)

    lawyer = bearer(token_for, Role.LEGAL_CLAIMS)
    env.clock.set(at(2026, 4, 20, 9, 0))
    async with retention_client(env) as retention:
        placed = await retention.post(
            "/v1/holds",
            json={
                "scope": "contact",
                "register": HSY,
                "contact_id": held_id,
                "reason": "Claim for damages: the recording proves the customer's instructions",
                "legal_reference": "Vahingonkorvauslaki 412/1974; binding obligation to the insurer",
            },
            headers=lawyer,
        )
    assert placed.status_code == 201, placed.text
    hold_id = placed.json()["hold_id"]

    # Twelve months from the call: the free call goes entirely; the held one stays, recording and all.
    rules = {
        "recording": "recording/P12M/contact_start/delete",
        "contact_history": "contact_history/P12M/contact_start/delete",
    }
    await sweep_at(env, due - SECOND)
    assert await key_classes(env, [held, free]) == {held: set(rules), free: set(rules)}
    await sweep_at(env, due)
    assert await key_classes(env, [held, free]) == {held: set(rules), free: set()}
    assert sorted(c.rule for c in await certificates(env, free)) == sorted(rules.values())
    assert (await read_contact(env, free_id)).status_code == 404
    assert (await read_contact(env, held_id, "/recording")).status_code == 200
    entries = await schedule_entries(env, token_for, HSY, held_id)
    assert entries["recording"]["state"] == "held" and entries["recording"]["held_by"] == [hold_id]
    assert entries["recording"]["reason"] == (
        f"held by {hold_id}; kept until 2026-05-12 by hsy-customer-service v2018-05-25 recording/12 months "
        "from contact start"
    )

    # Half a year past the twelve months, still held.
    lifted_at = at(2026, 11, 12, 10, 0)
    await sweep_at(env, lifted_at)
    assert await key_classes(env, [held]) == {held: set(rules)}
    assert await certificates(env, held) == []

    # The obligation ends: lifted, and the next sweep shreds what was overdue, under the original rule.
    async with retention_client(env) as retention:
        lifted = await retention.post(f"/v1/holds/{hold_id}/lift", headers=lawyer)
    assert lifted.status_code == 200 and lifted.json()["active"] is False
    await env.sweeper.sweep()
    assert await key_classes(env, [held]) == {held: set()}
    assert (await read_contact(env, held_id)).status_code == 404
    issued = await certificates(env, held)
    assert sorted(c.rule for c in issued) == sorted(rules.values())
    assert all(c.due_at == due and c.done_at == lifted_at for c in issued)
    async with retention_client(env) as retention:
        listed = await retention.get(
            "/v1/certificates", params={"register": HSY}, headers=bearer(token_for, Role.AUDITOR)
        )
    shown = [c for c in listed.json()["certificates"] if c["contact_ref"] in (str(held), str(free))]
    assert sorted((c["contact_ref"] == str(held), c["rule"]) for c in shown) == sorted(
        (is_held, rule) for is_held in (False, True) for rule in rules.values()
    )

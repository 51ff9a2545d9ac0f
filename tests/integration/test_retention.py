"""Retention on real PostgreSQL and a real broker, with the sweeper's clock in the test's hand.

Each test module gets its own database and topics: the sweeper deletes whatever falls due, and the clock here
jumps years ahead, so it must not see the rest of the session's contacts.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select, text

from services.retention.models import Certificate, ScheduleItem
from services.retention.service.schedule import replan
from services.retention.sweeper import Sweeper
from shared.contracts.domain_events import (
    RETENTION_EVENTS_TOPIC,
    ArtifactDeletedData,
    HoldChangedData,
    parse_domain_event,
)
from shared.contracts.events import CONTACT_EVENTS_TOPIC, SealedContactEvent
from shared.platform.crypto import open_sealed
from shared.policy.loader import load_policies
from shared.recordstore.keystore import DataKey
from shared.recordstore.models import sealed_aad
from shared.security.auth import Role
from tests.integration.conftest import eventually, new_id, read_topic, wav_bytes
from tests.integration.retention_env import (
    Env,
    contact_ref_of,
    make_event,
    module_env,
    post_events,
    read_contact,
    wait_for_schedule,
    wait_until_stored,
)

pytestmark = pytest.mark.integration

HELSINKI = ZoneInfo("Europe/Helsinki")
CALL_AT = datetime(2026, 3, 2, 11, 15, tzinfo=HELSINKI)


env = module_env("retention-data", CALL_AT)


async def test_a_prh_call_and_chatbot_follow_the_policy_to_the_day(env: Env) -> None:
    call_id = f"call-{new_id()}"
    started = CALL_AT
    await post_events(
        env,
        make_event("call.started", call_id, started, direction="inbound", caller_number="+358401234567"),
        make_event("call.ended", call_id, started + timedelta(minutes=4)),
    )
    audio = wav_bytes(0.5)

    async def stored() -> bool:
        return (await read_contact(env, call_id)).status_code == 200

    await eventually(stored)
    put = await env.ingest.put(
        f"/v1/contacts/{call_id}/recording",
        content=audio,
        headers={**env.headers[Role.PLATFORM], "Content-Type": "audio/wav"},
    )
    assert put.status_code == 201, put.text
    chat_id = f"chatbot-{new_id()}"
    typed_at = started + timedelta(minutes=30)
    await post_events(
        env,
        make_event(
            "chatbot.message",
            chat_id,
            typed_at,
            sender="customer",
            text="Soittakaa minulle numeroon 040 765 4321, kiitos",
        ),
    )

    call_ref = contact_ref_of(env, "prh-customer-service", call_id)
    schedule = await wait_for_schedule(env, call_ref, 2)
    # PRH: recording 6 months and contact history 12 months from the call, by the Helsinki calendar: 11:15 local
    # time in winter and in summer alike (09:15 UTC in March, 08:15 UTC in September).
    assert schedule[("recording", "")].due_at == datetime(2026, 9, 2, 11, 15, tzinfo=HELSINKI)
    assert schedule[("contact_history", "")].due_at == datetime(2027, 3, 2, 11, 15, tzinfo=HELSINKI)
    assert "recording" in schedule[("recording", "")].reason

    chat_ref = contact_ref_of(env, "prh-customer-service", chat_id)
    chat_schedule = await wait_for_schedule(env, chat_ref, 2)

    async def chat_stored() -> bool:
        return (await read_contact(env, chat_id)).status_code == 200

    await eventually(chat_stored)
    redaction = next(row for (cls, _), row in chat_schedule.items() if cls == "chatbot_identifiers")
    assert redaction.due_at == typed_at + timedelta(hours=1)

    # One second before the hour nothing happens; at the hour the number goes and the rest of the text stays.
    env.clock.set(typed_at + timedelta(hours=1) - timedelta(seconds=1))
    before = await env.sweeper.sweep()
    assert (before.deleted, before.redacted) == (0, 0)
    env.clock.set(typed_at + timedelta(hours=1))
    result = await env.sweeper.sweep()
    assert result.redacted == 1
    chat = (await read_contact(env, chat_id)).json()
    assert chat["events"][0]["data"]["text"] == "Soittakaa minulle numeroon [redacted: phone], kiitos"

    # Six months on: the recording is gone in every copy, the contact history is not.
    env.clock.set(datetime(2026, 9, 2, 11, 15, tzinfo=HELSINKI))
    result = await env.sweeper.sweep()
    assert result.deleted >= 1 and result.blobs_removed >= 1
    assert (await read_contact(env, call_id, "/recording")).status_code in (404, 410)
    assert (await read_contact(env, call_id)).status_code == 200
    async with env.sessionmaker() as session:
        keys = await session.scalar(
            select(func.count())
            .select_from(DataKey)
            .where(DataKey.contact_ref == call_ref, DataKey.artifact_class == "recording")
        )
        certificate = await session.scalar(
            select(Certificate).where(
                Certificate.contact_ref == call_ref, Certificate.artifact_class == "recording"
            )
        )
    assert keys == 0
    assert certificate is not None
    assert certificate.method == "crypto-shredding"
    assert certificate.rule == "recording/P6M/contact_start/delete"
    assert certificate.due_at == datetime(2026, 9, 2, 11, 15, tzinfo=HELSINKI)
    assert len(certificate.ciphertext_sha256) == 64
    blob_root = Path(env.settings.resolved_blob_store_url.removeprefix("file://"))
    assert not [p for p in blob_root.rglob("*.enc") if str(call_ref) in str(p)]

    # Twelve months on the last class goes, and with it the contact.
    env.clock.set(datetime(2027, 3, 2, 11, 15, tzinfo=HELSINKI))
    await env.sweeper.sweep()
    assert (await read_contact(env, call_id)).status_code == 404


async def test_two_sweepers_at_once_delete_each_item_exactly_once(env: Env) -> None:
    at = CALL_AT + timedelta(days=1)
    ids = [f"statfi-{new_id()}" for _ in range(30)]
    for contact_id in ids:
        body = make_event("chat.message", contact_id, at, sender="customer", text="Hei")
        body["register"] = "statfi-chat"
        await post_events(env, body)
    refs = [contact_ref_of(env, "statfi-chat", contact_id) for contact_id in ids]
    for ref in refs:
        await wait_for_schedule(env, ref, 1)
    async with env.sessionmaker() as session:
        due = await session.scalar(
            select(func.count()).select_from(ScheduleItem).where(ScheduleItem.contact_ref.in_(refs))
        )
    assert due is not None and due >= 30
    env.clock.set(at + timedelta(days=400))
    first = Sweeper(
        sessionmaker=env.sessionmaker,
        keystore=env.sweeper.keystore,
        blobs=env.sweeper.blobs,
        clock=env.clock,
        policies=env.sweeper.policies,
        batch_size=4,
    )
    second = Sweeper(
        sessionmaker=env.sessionmaker,
        keystore=env.sweeper.keystore,
        blobs=env.sweeper.blobs,
        clock=env.clock,
        policies=env.sweeper.policies,
        batch_size=4,
    )
    results = await asyncio.gather(first.sweep(), second.sweep())
    async with env.sessionmaker() as session:
        certificates = await session.scalar(
            select(func.count()).select_from(Certificate).where(Certificate.contact_ref.in_(refs))
        )
        left = await session.scalar(
            text("SELECT count(*) FROM records.contacts WHERE contact_ref = ANY(:refs)"), {"refs": refs}
        )
    assert certificates == due
    assert left == 0
    assert sum(r.deleted for r in results) >= due
    assert all(r.deleted > 0 for r in results)  # both took a share


async def test_a_write_under_a_held_key_is_shredded_with_the_rest(env: Env) -> None:
    """The record store read the key just before the sweeper came and stores the contact while it sweeps: the
    sweeper waits for that commit, and what was written goes with the rest. Without the hold, the contact stayed
    behind after its deletion was certified, under a key nobody had any more."""
    at = CALL_AT + timedelta(days=2)
    contact_id = f"statfi-{new_id()}"
    body = make_event("chat.message", contact_id, at, sender="customer", text="Hei")
    body["register"] = "statfi-chat"
    await post_events(env, body)
    ref = contact_ref_of(env, "statfi-chat", contact_id)
    await wait_for_schedule(env, ref, 1)
    await wait_until_stored(env, contact_id)
    # Take the stored rows out again: the record store is now "late", about to store them.
    tables = ("records.messages", "records.parties", "records.contact_events", "records.contacts")
    async with env.sessionmaker() as session, session.begin():
        late = {
            table: [
                dict(row)
                for row in (
                    await session.execute(
                        text(f"SELECT * FROM {table} WHERE contact_ref = :ref"), {"ref": ref}
                    )
                ).mappings()
            ]
            for table in tables
        }
        for table in tables:
            await session.execute(text(f"DELETE FROM {table} WHERE contact_ref = :ref"), {"ref": ref})
    assert late["records.contacts"] and late["records.contact_events"]
    env.clock.set(at + timedelta(days=400))
    async with env.sessionmaker() as writer, writer.begin():
        held = await env.sweeper.keystore.get(writer, {(ref, "messages")}, hold=True)
        assert set(held) == {(ref, "messages")}
        for table in reversed(tables):
            for row in late[table]:
                columns = ", ".join(row)
                values = ", ".join(f":{name}" for name in row)
                await writer.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), row)
        sweep = asyncio.create_task(env.sweeper.sweep())

        async def sweeper_waits() -> bool | None:
            async with env.sessionmaker() as session:
                waiting = await session.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                )
            return True if waiting or sweep.done() else None

        await eventually(sweeper_waits, attempts=200)
        assert not sweep.done(), "the sweeper shredded the key while a writer held it"
    await sweep
    async with env.sessionmaker() as session:
        left = {
            table: await session.scalar(
                text(f"SELECT count(*) FROM {table} WHERE contact_ref = :ref"),
                {"ref": ref},
            )
            for table in tables
        }
        certified = await session.scalar(select(Certificate.items).where(Certificate.contact_ref == ref))
    assert set(left.values()) == {0}, left
    assert certified is not None and certified >= len(late["records.contact_events"])


def _sweep_in_a_process(env: Env, now: datetime, faults: str) -> int:
    environment = {
        **os.environ,
        "DATABASE_URL": env.settings.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": env.settings.kafka_bootstrap_servers,
        "BLOB_STORE_URL": env.settings.resolved_blob_store_url,
        "POLICY_DIR": str(env.settings.policy_dir),
        "SAILO_FAULTS": faults,
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.sweep_once", now.isoformat()],
        cwd=Path(__file__).parents[2],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode


async def _counts(env: Env, ref: uuid.UUID) -> tuple[int, int, int]:
    async with env.sessionmaker() as session:
        keys = await session.scalar(
            select(func.count()).select_from(DataKey).where(DataKey.contact_ref == ref)
        )
        certificates = await session.scalar(
            select(func.count()).select_from(Certificate).where(Certificate.contact_ref == ref)
        )
        queued = await session.scalar(text("SELECT count(*) FROM retention.blob_deletions"))
    return int(keys or 0), int(certificates or 0), int(queued or 0)


@pytest.mark.parametrize("point", ["retention.before_commit", "retention.after_commit"])
async def test_a_sweeper_killed_mid_batch_leaves_each_item_untouched_or_finished(
    env: Env, point: str
) -> None:
    at = CALL_AT + timedelta(days=3)
    call_id = f"call-{new_id()}"
    await post_events(env, make_event("call.started", call_id, at, direction="inbound"))

    async def stored() -> bool:
        return (await read_contact(env, call_id)).status_code == 200

    await eventually(stored)
    put = await env.ingest.put(
        f"/v1/contacts/{call_id}/recording",
        content=wav_bytes(0.2),
        headers={**env.headers[Role.PLATFORM], "Content-Type": "audio/wav"},
    )
    assert put.status_code == 201
    ref = contact_ref_of(env, "prh-customer-service", call_id)
    await wait_for_schedule(env, ref, 2)
    keys_before, _, _ = await _counts(env, ref)
    assert keys_before == 2

    later = at + timedelta(days=200)  # the recording is due, the contact history not yet
    assert await asyncio.to_thread(_sweep_in_a_process, env, later, f"{point}:1") == 137
    keys, certificates, queued = await _counts(env, ref)
    if point == "retention.before_commit":
        assert (keys, certificates) == (2, 0)  # untouched
        assert (await read_contact(env, call_id, "/recording")).status_code == 200
    else:
        assert (keys, certificates) == (1, 1)  # finished; only the blob removal was cut short
        assert queued >= 1
    env.clock.set(later)
    await env.sweeper.sweep()
    keys, certificates, queued = await _counts(env, ref)
    assert (keys, certificates, queued) == (1, 1, 0)
    assert (await read_contact(env, call_id, "/recording")).status_code in (404, 410)


async def test_certificates_cannot_be_changed_or_removed(env: Env) -> None:
    async with env.sessionmaker() as session:
        for statement in (
            "UPDATE retention.certificates SET method = 'x'",
            "DELETE FROM retention.certificates",
        ):
            with pytest.raises(Exception, match="append-only"):
                async with session.begin():
                    await session.execute(text(statement))


async def test_a_hold_keeps_what_is_due_and_its_lift_lets_it_go(env: Env, token_for: Any) -> None:
    at = CALL_AT + timedelta(days=5)
    held_id, free_id = f"statfi-{new_id()}", f"statfi-{new_id()}"
    for contact_id in (held_id, free_id):
        body = make_event("chat.message", contact_id, at, sender="customer", text="Hei")
        body["register"] = "statfi-chat"
        await post_events(env, body)
    held_ref, free_ref = (
        contact_ref_of(env, "statfi-chat", held_id),
        contact_ref_of(env, "statfi-chat", free_id),
    )
    await wait_for_schedule(env, held_ref, 1)
    await wait_for_schedule(env, free_ref, 1)
    lawyer = {"Authorization": f"Bearer {token_for(Role.LEGAL_CLAIMS)}"}
    auditor = {"Authorization": f"Bearer {token_for(Role.AUDITOR)}"}
    transport = httpx.ASGITransport(app=env.retention_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://retention.test") as retention:
        placed = await retention.post(
            "/v1/holds",
            json={
                "scope": "contact",
                "register": "statfi-chat",
                "contact_id": held_id,
                "reason": "Complaint under review",
                "legal_reference": "Hallintolaki 434/2003",
            },
            headers=lawyer,
        )
        assert placed.status_code == 201, placed.text
        hold_id = placed.json()["hold_id"]
        assert hold_id.startswith("H-")

        # Statistics Finland keeps chats 35 days: on day 36 the free contact goes, the held one stays.
        env.clock.set(at + timedelta(days=36))
        await env.sweeper.sweep()
        free = await retention.get(
            f"/v1/contacts/{free_id}/schedule", params={"register": "statfi-chat"}, headers=auditor
        )
        assert free.status_code == 404  # nothing is left of it, not even its schedule
        kept = await retention.get(
            f"/v1/contacts/{held_id}/schedule", params={"register": "statfi-chat"}, headers=auditor
        )
        assert kept.status_code == 200, kept.text
        entries = kept.json()["entries"]
        assert entries and all(entry["state"] == "held" for entry in entries)
        assert all(entry["held_by"] == [hold_id] for entry in entries)
        assert entries[0]["reason"].startswith(f"held by {hold_id}; ")
        assert "statfi-chat" in entries[0]["reason"]

        lifted = await retention.post(f"/v1/holds/{hold_id}/lift", headers=lawyer)
        assert lifted.status_code == 200 and lifted.json()["active"] is False
        again = await retention.post(f"/v1/holds/{hold_id}/lift", headers=lawyer)
        assert again.status_code == 409
        await env.sweeper.sweep()
        gone = await retention.get(
            f"/v1/contacts/{held_id}/schedule", params={"register": "statfi-chat"}, headers=auditor
        )
        assert gone.status_code == 404

        # The certificates of both, as JSON and as CSV, with no personal data: only pseudonyms and rules.
        listed = await retention.get("/v1/certificates", params={"register": "statfi-chat"}, headers=auditor)
        refs = {c["contact_ref"] for c in listed.json()["certificates"]}
        assert {str(held_ref), str(free_ref)} <= refs
        as_csv = await retention.get(
            "/v1/certificates", params={"register": "statfi-chat", "format": "csv"}, headers=auditor
        )
        assert as_csv.headers["content-type"].startswith("text/csv")
        header, *lines = as_csv.text.strip().splitlines()
        assert header.startswith("certificate_id,contact_ref,register,artifact_class")
        assert any(str(held_ref) in line and "P35D" in line for line in lines)
        assert held_id not in as_csv.text and free_id not in as_csv.text

        holds = await retention.get("/v1/holds", headers=auditor)
        assert any(h["hold_id"] == hold_id and not h["active"] for h in holds.json()["holds"])

    # Recipients learn of each deletion and hold change from the retention events topic (through the outbox,
    # committed with the change): one artifact_deleted per certificate, naming it, and no personal data.
    certificate_ids = {
        c["certificate_id"]
        for c in listed.json()["certificates"]
        if c["contact_ref"] in {str(held_ref), str(free_ref)}
    }
    topic = env.settings.topic(RETENTION_EVENTS_TOPIC)

    async def announced() -> bool:
        events = [parse_domain_event(r.value) for r in await read_topic(env.settings, topic)]
        deleted = {
            str(data.certificate_id)
            for event, data in events
            if isinstance(data, ArtifactDeletedData) and data.contact_ref in (held_ref, free_ref)
        }
        hold_changes = [
            event.type
            for event, data in events
            if isinstance(data, HoldChangedData) and f"H-{data.hold_number}" == hold_id
        ]
        return deleted == certificate_ids and hold_changes == [
            "retention.hold_placed",
            "retention.hold_lifted",
        ]

    await eventually(announced, attempts=10)
    raw = b"".join(r.value for r in await read_topic(env.settings, topic))
    for secret in (held_id.encode(), free_id.encode(), b"Complaint under review", b"Hallintolaki"):
        assert secret not in raw


async def test_a_subject_hold_covers_every_contact_of_that_person(env: Env, token_for: Any) -> None:
    at = CALL_AT + timedelta(days=6)
    number = "+358401112233"
    call_ids = [f"call-{new_id()}" for _ in range(2)]
    for contact_id in call_ids:
        await post_events(
            env, make_event("call.started", contact_id, at, direction="inbound", caller_number=number)
        )
    someone_else = f"call-{new_id()}"
    await post_events(
        env, make_event("call.started", someone_else, at, direction="inbound", caller_number="+358409998877")
    )
    refs = [
        contact_ref_of(env, "prh-customer-service", contact_id) for contact_id in [*call_ids, someone_else]
    ]
    for ref in refs:
        await wait_for_schedule(env, ref, 2)
    # A subject hold finds its contacts through the record store's blind index, which a consumer of its own
    # writes: the contacts must be stored before the sweep, or the hold has nothing to match yet.
    for contact_id in [*call_ids, someone_else]:
        await wait_until_stored(env, contact_id)
    lawyer = {"Authorization": f"Bearer {token_for(Role.LEGAL_CLAIMS)}"}
    transport = httpx.ASGITransport(app=env.retention_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://retention.test") as retention:
        placed = await retention.post(
            "/v1/holds",
            json={
                "scope": "subject",
                "subject": {"kind": "phone", "value": "040 111 2233"},
                "reason": "Pending court case",
                "legal_reference": "OK 17:35",
                "ends_on": "2099-12-31",
            },
            headers=lawyer,
        )
        assert placed.status_code == 201, placed.text
        bad = await retention.post(
            "/v1/holds",
            json={"scope": "subject", "reason": "x", "legal_reference": "y"},
            headers=lawyer,
        )
        assert bad.status_code == 422
        assert "subject" in bad.text
    env.clock.set(at + timedelta(days=800))
    await env.sweeper.sweep()
    for call_id in call_ids:
        assert (await read_contact(env, call_id)).status_code == 200
    # The hold is on that person only: another caller's contact from the same day is gone.
    assert (await read_contact(env, someone_else)).status_code == 404


async def test_the_forecast_counts_upcoming_deletions_per_day_and_class(env: Env, token_for: Any) -> None:
    at = CALL_AT + timedelta(days=7)
    for _ in range(3):
        body = make_event("chat.message", f"statfi-{new_id()}", at, sender="customer", text="Hei")
        body["register"] = "statfi-chat"
        await post_events(env, body)
    due_day = (at + timedelta(days=35)).astimezone(HELSINKI).date()

    async def counted() -> int:
        transport = httpx.ASGITransport(app=env.retention_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://retention.test") as retention:
            response = await retention.get(
                "/v1/forecast",
                params={"register": "statfi-chat", "from": str(due_day), "to": str(due_day)},
                headers={"Authorization": f"Bearer {token_for(Role.AUDITOR)}"},
            )
        assert response.status_code == 200, response.text
        return sum(day["items"] for day in response.json()["days"] if day["day"] == str(due_day))

    assert await eventually(lambda: _at_least(counted, 3)) >= 3


async def _at_least(check: Any, minimum: int) -> int | None:
    value: int = await check()
    return value if value >= minimum else None


async def test_a_policy_change_is_shown_as_a_dry_run_diff_before_it_rewrites_the_schedule(
    env: Env, tmp_path: Path
) -> None:
    at = CALL_AT + timedelta(days=8)
    contact_id = f"statfi-{new_id()}"
    body = make_event("chat.message", contact_id, at, sender="customer", text="Hei")
    body["register"] = "statfi-chat"
    await post_events(env, body)
    ref = contact_ref_of(env, "statfi-chat", contact_id)
    await wait_for_schedule(env, ref, 1)
    shutil.copytree(env.settings.policy_dir, tmp_path / "policies")
    edited = tmp_path / "policies" / "statfi-chat.yaml"
    edited.write_text(
        edited.read_text(encoding="utf-8").replace("period: P35D", "period: P30D", 1), encoding="utf-8"
    )
    changed = load_policies(tmp_path / "policies")

    async with env.sessionmaker() as session, session.begin():
        dry = await replan(session, changed, apply=False)
        await session.rollback()
    mine = [c for c in dry if c.contact_ref == ref]
    assert [(c.kind, c.new_due - c.old_due) for c in mine if c.old_due and c.new_due] == [
        ("earlier", timedelta(days=-5))
    ]
    async with env.sessionmaker() as session:
        still = await session.scalar(select(ScheduleItem.due_at).where(ScheduleItem.contact_ref == ref))
    assert still == at + timedelta(days=35)  # the dry run changed nothing

    async with env.sessionmaker() as session, session.begin():
        await replan(session, changed, apply=True)
    async with env.sessionmaker() as session:
        now_due = await session.scalar(select(ScheduleItem.due_at).where(ScheduleItem.contact_ref == ref))
    assert now_due == at + timedelta(days=30)
    async with env.sessionmaker() as session, session.begin():
        await replan(session, load_policies(env.settings.policy_dir), apply=True)  # back as it was


async def _sealed_events_on_the_topic(env: Env, contact_ref: uuid.UUID) -> list[SealedContactEvent]:
    records = await read_topic(env.settings, env.settings.topic(CONTACT_EVENTS_TOPIC))
    events = [SealedContactEvent.model_validate_json(record.value or b"") for record in records]
    return [event for event in events if event.contact_ref == contact_ref]


async def test_after_deletion_the_canaries_cannot_be_read_from_any_copy(env: Env) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    number = f"+35845{int(tag, 16) % 10**7:07d}"
    call_id = f"call-{new_id()}"
    at = CALL_AT + timedelta(days=9)
    await post_events(env, make_event("call.started", call_id, at, direction="inbound", caller_number=number))

    async def stored() -> bool:
        return (await read_contact(env, call_id)).status_code == 200

    await eventually(stored)
    assert number in (await read_contact(env, call_id)).text
    marker = f"AUDIOCANARY{tag}".encode()
    put = await env.ingest.put(
        f"/v1/contacts/{call_id}/recording",
        content=wav_bytes(0.3, marker=marker),
        headers={**env.headers[Role.PLATFORM], "Content-Type": "audio/wav"},
    )
    assert put.status_code == 201
    ref = contact_ref_of(env, "prh-customer-service", call_id)
    await wait_for_schedule(env, ref, 2)
    keystore = env.sweeper.keystore

    def readable(events: list[SealedContactEvent], keys: dict[Any, bytes]) -> list[str]:
        texts = []
        for event in events:
            key = keys.get((ref, event.artifact_class.value))
            if key is not None:
                aad = sealed_aad(ref, event.artifact_class.value, "event")
                texts.append(open_sealed(key, base64.b64decode(event.sealed), aad=aad).decode())
        return texts

    replay = await _sealed_events_on_the_topic(env, ref)
    assert replay
    async with env.sessionmaker() as session:
        keys = await keystore.get(session, {(ref, e.artifact_class.value) for e in replay})
    assert any(number in text for text in readable(replay, keys))  # the copy on the topic is readable now

    env.clock.set(at + timedelta(days=800))
    await env.sweeper.sweep()
    keystore.forget({(ref, e.artifact_class.value) for e in replay})
    async with env.sessionmaker() as session:
        keys_after = await keystore.get(session, {(ref, e.artifact_class.value) for e in replay})
        rows = await session.scalar(
            text("SELECT count(*) FROM records.contact_events WHERE contact_ref = :ref"), {"ref": ref}
        )
    async with env.sessionmaker() as session:
        states = (
            await session.execute(
                select(ScheduleItem.artifact_class, ScheduleItem.state, ScheduleItem.due_at).where(
                    ScheduleItem.contact_ref == ref
                )
            )
        ).all()

    assert keys_after == {}, states
    assert rows == 0
    assert readable(await _sealed_events_on_the_topic(env, ref), keys_after) == []
    blob_root = Path(env.settings.resolved_blob_store_url.removeprefix("file://"))
    assert not [p for p in blob_root.rglob("*") if p.is_file() and marker in p.read_bytes()]
    assert not [p for p in blob_root.rglob("*.enc") if str(ref) in str(p)]
    assert (await read_contact(env, call_id)).status_code == 404

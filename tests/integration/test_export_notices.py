"""Early destroy, restrict and rectify notices to research institutes (GDPR Art. 19), and the loan watch, on real
PostgreSQL and a real broker: retention's and the DSR service's events go through the outbox, the relay and
the broker to export's consumers, and the institutes see and acknowledge the notices through the API."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

import httpx
import orjson
import pytest
from aiokafka import ConsumerRecord
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.export.app import create_app as create_export
from services.export.handlers import NoticeHandler
from services.export.models import ContactFlag, Loan, LoanItem, Notice
from services.export.watch import LoanWatch
from shared.audit.log import AuditEntry, system_actor
from shared.contracts.domain_events import (
    DSR_EVENTS_TOPIC,
    EXPORT_EVENTS_TOPIC,
    RETENTION_EVENTS_TOPIC,
    DomainEvent,
    Received,
    parse_domain_event,
)
from shared.messaging.kafka import DLQ_SUFFIX, ProcessedEvent, header
from shared.messaging.outbox import enqueue, envelope
from shared.platform.clock import HELSINKI, FrozenClock
from shared.platform.settings import Settings
from shared.security.auth import Role
from tests.integration.conftest import eventually, read_topic

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
TODAY = NOW.astimezone(HELSINKI).date()
FAR = TODAY + timedelta(days=300)
"""A due day the watch never reaches in these tests."""


@dataclass
class Export:
    app: FastAPI
    client: httpx.AsyncClient
    clock: FrozenClock
    settings: Settings
    token_for: Any

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        maker: async_sessionmaker[AsyncSession] = self.app.state.runtime.sessionmaker
        return maker

    def institute(self, institute_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_for(Role.INSTITUTE, institute_id=institute_id)}"}

    def role(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_for(role)}"}

    async def notices(self, headers: dict[str, str], **params: Any) -> dict[str, Any]:
        response = await self.client.get("/v1/notices", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="module")
async def export(settings: Settings, token_for: Any) -> AsyncIterator[Export]:
    clock = FrozenClock(NOW)
    app = create_export(settings, clock=clock, run_watch=False)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://export.test")
        )
        yield Export(app, client, clock, settings, token_for)


def _institute_id() -> str:
    return f"inst-{uuid.uuid4().hex[:8]}"


def _case_number() -> str:
    return f"DSR-{TODAY.year}-{random.randrange(10**6):06d}"


async def _loan(
    export: Export,
    institute_id: str,
    items: list[tuple[UUID, str]],
    *,
    status: str = "lent",
    delivered: bool = True,
    due_on: date = FAR,
) -> tuple[UUID, dict[tuple[UUID, str], UUID]]:
    """A loan with `items` (contact_ref, artifact_class) in `status`, written as the export steps leave it; the
    loan's id and each item's pseudonym."""
    loan_id = uuid.uuid4()
    item_ids = {item: uuid.uuid4() for item in items}
    async with export.sessionmaker() as session:
        session.add(
            Loan(
                loan_id=loan_id,
                institute_id=institute_id,
                agreement_ref=f"TUT-{loan_id.hex[:6]}",
                purpose="Assessing the quality of telephone customer service",
                study_ends_on=due_on,
                institute_name="Puheentutkimuksen laboratorio",
                contact_person="Tutkimusjohtaja A. Tutkija",
                legal_basis="GDPR Art. 6(1)(e) and Art. 89",
                commitment="destroy",
                status="delivered" if delivered else "approved",
                created_by=uuid.uuid4(),
                approved_by=uuid.uuid4(),
                approved_at=NOW - timedelta(days=40),
                delivered_at=NOW - timedelta(days=30) if delivered else None,
                lent_on=(TODAY - timedelta(days=30)) if delivered else None,
                due_on=due_on if delivered else None,
            )
        )
        await session.flush()
        for (ref, artifact_class), item_id in item_ids.items():
            session.add(
                LoanItem(
                    item_id=item_id,
                    loan_id=loan_id,
                    contact_ref=ref,
                    artifact_class=artifact_class,
                    register="prh-customer-service",
                    status=status,
                )
            )
        await session.commit()
    return loan_id, item_ids


async def _publish(export: Export, topic: str, key: UUID, event: DomainEvent) -> DomainEvent:
    """`event` through the outbox, as the retention and DSR services send theirs."""
    async with export.sessionmaker() as session:
        await enqueue(session, topic=topic, key=key, event=event)
        await session.commit()
    return event


def _deleted(
    ref: UUID, *, artifact_class: str = "recording", method: str = "crypto-shredding"
) -> DomainEvent:
    return envelope(
        "retention.artifact_deleted",
        {
            "contact_ref": ref,
            "register": "prh-customer-service",
            "artifact_class": artifact_class,
            "item": "",
            "method": method,
            "reason": "retention_expired",
            "certificate_id": uuid.uuid4(),
            "policy_version": "2026.1",
            "due_at": NOW - timedelta(hours=1),
            "done_at": NOW,
        },
        producer="retention",
        occurred_at=NOW,
    )


def _decided(event_type: str, ground: str, case_number: str, *refs: UUID) -> DomainEvent:
    data: dict[str, Any] = {
        "request_id": uuid.uuid4(),
        "case_number": case_number,
        "ground": ground,
        "contact_refs": list(refs),
    }
    if event_type == "dsr.rectified":
        data |= {"fields": ["name"], "statement_added": False}
    return envelope(event_type, data, producer="dsr", occurred_at=NOW)


async def _processed(export: Export, group: str, event_id: UUID) -> None:
    """Wait until export's consumer group has applied the event (its tracking row committed)."""

    async def done() -> bool:
        async with export.sessionmaker() as session:
            found = await session.scalar(
                select(ProcessedEvent.event_id).where(
                    ProcessedEvent.consumer_group == group, ProcessedEvent.event_id == event_id
                )
            )
        return found is not None

    await eventually(done, attempts=600)


async def _notices_of(export: Export, loan_id: UUID) -> list[Notice]:
    async with export.sessionmaker() as session:
        return list(
            (
                await session.scalars(
                    select(Notice).where(Notice.loan_id == loan_id).order_by(Notice.issued_at)
                )
            ).all()
        )


async def _item_status(export: Export, item_id: UUID) -> str:
    async with export.sessionmaker() as session:
        status = await session.scalar(select(LoanItem.status).where(LoanItem.item_id == item_id))
    assert status is not None
    return status


async def _export_events(
    export: Export, **match: str
) -> list[tuple[DomainEvent, ConsumerRecord[bytes, bytes]]]:
    """The export events whose data has each of `match`'s values (compared as strings)."""
    found = []
    for record in await read_topic(export.settings, export.settings.topic(EXPORT_EVENTS_TOPIC)):
        event, _data = parse_domain_event(record.value or b"")
        if all(str(event.data.get(key)) == value for key, value in match.items()):
            found.append((event, record))
    return found


async def _audited(export: Export, object_id: UUID, reason: str) -> dict[str, Any]:
    """The one audit entry naming `object_id` with `reason`, once the audit relay has chained it."""

    async def find() -> list[dict[str, Any]]:
        async with export.sessionmaker() as session:
            rows = (
                await session.scalars(
                    select(AuditEntry.entry).where(AuditEntry.entry.contains(str(object_id)))
                )
            ).all()
        return [entry for entry in map(orjson.loads, rows) if entry["reason"] == reason]

    (entry,) = await eventually(find, attempts=200)
    assert str(object_id) in entry["object_ids"]
    return entry


async def test_a_deleted_recording_is_a_destroy_notice_for_its_institute_alone(export: Export) -> None:
    lent, kept, other_ref = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    institute, other = _institute_id(), _institute_id()
    loan_id, items = await _loan(export, institute, [(lent, "recording"), (kept, "recording")])
    other_loan, _ = await _loan(export, other, [(other_ref, "recording")])
    # Selected for another loan, not delivered yet: it must now stay behind.
    pending_loan, pending = await _loan(
        export, other, [(lent, "recording")], status="selected", delivered=False
    )

    await _publish(export, RETENTION_EVENTS_TOPIC, lent, _deleted(lent))

    async def listed() -> dict[str, Any] | None:
        body = await export.notices(export.institute(institute), loan_id=str(loan_id))
        return body if body["total"] else None

    body = await eventually(listed, attempts=600)
    assert body["total"] == 1
    (notice,) = body["notices"]
    assert notice["item_id"] == str(items[lent, "recording"])
    assert (notice["kind"], notice["cause"], notice["status"]) == ("destroy", "retention_expired", "open")
    assert notice["action"].startswith("Destroy this item")
    assert notice["acknowledged_at"] is None and notice["escalated_at"] is None
    assert str(lent) not in str(body)

    # The other institute sees nothing of it, even naming the loan; its own loan has no notice.
    assert (await export.notices(export.institute(other), loan_id=str(loan_id)))["total"] == 0
    assert (await export.notices(export.institute(other), loan_id=str(other_loan)))["total"] == 0
    assert all(
        n["loan_id"] != str(loan_id) for n in (await export.notices(export.institute(other)))["notices"]
    )
    # The research office sees it.
    office = await export.notices(export.role(Role.RESEARCH_OFFICER), loan_id=str(loan_id))
    assert [n["notice_id"] for n in office["notices"]] == [notice["notice_id"]]

    assert await _item_status(export, pending[lent, "recording"]) == "withdrawn"
    assert await _item_status(export, items[kept, "recording"]) == "lent"
    system = str(system_actor("export"))
    issued_entry = await _audited(export, UUID(notice["notice_id"]), "notice_issued")
    withdrawn_entry = await _audited(export, pending[lent, "recording"], "withdrawn")
    assert issued_entry["actor"] == withdrawn_entry["actor"] == system
    assert issued_entry["role"] == withdrawn_entry["role"] == "system"
    assert await _item_status(export, items[lent, "recording"]) == "lent"  # until the institute attests
    assert await _notices_of(export, pending_loan) == []

    # The institute's integration hears of it on the export events topic, by the item's pseudonym only.
    announced = await eventually(lambda: _export_events(export, notice_id=notice["notice_id"]), attempts=10)
    ((issued, record),) = announced
    assert issued.type == "export.notice_issued"
    assert issued.data == {
        "notice_id": notice["notice_id"],
        "loan_id": str(loan_id),
        "institute_id": institute,
        "item_id": notice["item_id"],
        "kind": "destroy",
        "cause": "retention_expired",
    }
    assert record.key == str(loan_id).encode()
    assert str(lent).encode() not in (record.value or b"")
    assert b"contact_ref" not in (record.value or b"")

    # A redaction (identifiers out of a transcript) and another class of the contact make no notice.
    redacted = await _publish(export, RETENTION_EVENTS_TOPIC, kept, _deleted(kept, method="redaction"))
    transcript = await _publish(
        export, RETENTION_EVENTS_TOPIC, kept, _deleted(kept, artifact_class="chat_transcript")
    )
    await _processed(export, "export-notices-retention", redacted.id)
    await _processed(export, "export-notices-retention", transcript.id)
    assert [n.item_id for n in await _notices_of(export, loan_id)] == [items[lent, "recording"]]


async def test_an_institute_acknowledges_its_notice_once_and_cannot_touch_anothers(export: Export) -> None:
    ref = uuid.uuid4()
    institute, other = _institute_id(), _institute_id()
    loan_id, items = await _loan(export, institute, [(ref, "recording")])
    await _publish(export, RETENTION_EVENTS_TOPIC, ref, _deleted(ref))

    async def issued() -> list[Notice]:
        return await _notices_of(export, loan_id)

    (notice,) = await eventually(issued, attempts=600)
    path = f"/v1/notices/{notice.notice_id}/acknowledgement"

    # Another institute's notice is answered exactly like one that does not exist.
    foreign = await export.client.post(path, headers=export.institute(other))
    missing = await export.client.post(
        f"/v1/notices/{uuid.uuid4()}/acknowledgement", headers=export.institute(other)
    )
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert foreign.json()["errors"] == [{"field": "notice_id", "reason": "no such notice"}]
    officer = await export.client.post(path, headers=export.role(Role.RESEARCH_OFFICER))
    assert officer.status_code == 403

    first = await export.client.post(path, headers=export.institute(institute))
    assert first.status_code == 200, first.text
    acknowledged = first.json()
    assert acknowledged["status"] == "acknowledged"
    assert acknowledged["acknowledged_at"] == NOW.isoformat().replace("+00:00", "Z")

    export.clock.advance(timedelta(minutes=5))
    try:
        again = await export.client.post(path, headers=export.institute(institute))
    finally:
        export.clock.set(NOW)
    assert again.status_code == 200 and again.json() == acknowledged
    (stored,) = await _notices_of(export, loan_id)
    assert stored.acknowledged_at == NOW and stored.acknowledged_by is not None
    entry = await _audited(export, notice.notice_id, "notice_acknowledged")
    assert (entry["role"], entry["actor"]) == ("institute", str(stored.acknowledged_by))
    await _audited(export, notice.notice_id, "already_acknowledged")

    listed = await export.notices(export.institute(institute), loan_id=str(loan_id), status="acknowledged")
    assert [n["notice_id"] for n in listed["notices"]] == [str(notice.notice_id)]
    assert (await export.notices(export.institute(institute), loan_id=str(loan_id), status="open"))[
        "total"
    ] == 0

    events = await eventually(
        lambda: _export_events(export, notice_id=str(notice.notice_id)),
        attempts=10,
    )
    kinds = sorted(event.type for event, _record in events)
    assert kinds == ["export.notice_acknowledged", "export.notice_issued"]
    assert all(event.data["item_id"] == str(items[ref, "recording"]) for event, _record in events)


async def test_the_list_pages_and_refuses_a_bad_filter_naming_it(export: Export) -> None:
    institute = _institute_id()
    refs = [uuid.uuid4() for _ in range(3)]
    loan_id, _items = await _loan(export, institute, [(ref, "recording") for ref in refs])
    case_number = _case_number()
    await _publish(export, DSR_EVENTS_TOPIC, refs[0], _decided("dsr.rectified", "art16", case_number, *refs))

    async def three() -> bool:
        return len(await _notices_of(export, loan_id)) == 3

    await eventually(three, attempts=600)
    headers = export.institute(institute)
    first = await export.notices(headers, loan_id=str(loan_id), limit=2)
    second = await export.notices(headers, loan_id=str(loan_id), limit=2, offset=2)
    assert (first["total"], second["total"]) == (3, 3)
    assert len(first["notices"]) == 2 and len(second["notices"]) == 1
    seen = {n["notice_id"] for n in first["notices"] + second["notices"]}
    assert len(seen) == 3
    assert {n["kind"] for n in first["notices"]} == {"rectify"}
    assert {n["cause"] for n in first["notices"]} == {"art16"}

    bad = await export.client.get("/v1/notices", params={"status": "closed-by-me"}, headers=headers)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.status"
    assert "closed-by-me" not in bad.text
    auditor = await export.notices(export.role(Role.AUDITOR), loan_id=str(loan_id))
    assert auditor["total"] == 3


async def test_dsr_decisions_flag_the_contacts_notify_the_institute_and_withdraw_the_undelivered(
    export: Export,
) -> None:
    restricted, held, erased, objected = (uuid.uuid4() for _ in range(4))
    institute = _institute_id()
    everyone = [restricted, held, erased, objected]
    loan_id, items = await _loan(export, institute, [(ref, "recording") for ref in everyone])
    _pending_loan, pending = await _loan(
        export, institute, [(ref, "recording") for ref in everyone], status="selected", delivered=False
    )
    case_a, case_c, case_erase, case_object = (_case_number() for _ in range(4))

    applied = [
        await _publish(
            export,
            DSR_EVENTS_TOPIC,
            restricted,
            _decided("dsr.restriction_applied", "art18_1_a", case_a, restricted),
        ),
        await _publish(
            export, DSR_EVENTS_TOPIC, held, _decided("dsr.restriction_applied", "art18_1_c", case_c, held)
        ),
        await _publish(
            export, DSR_EVENTS_TOPIC, erased, _decided("dsr.erasure_decided", "art17_1_a", case_erase, erased)
        ),
        await _publish(
            export,
            DSR_EVENTS_TOPIC,
            objected,
            _decided("dsr.erasure_decided", "art21_1", case_object, objected),
        ),
    ]
    for event in applied:
        await _processed(export, "export-notices-dsr", event.id)

    async def flags() -> dict[tuple[UUID, str, str], datetime | None]:
        async with export.sessionmaker() as session:
            rows = (
                await session.scalars(select(ContactFlag).where(ContactFlag.contact_ref.in_(everyone)))
            ).all()
        return {(row.contact_ref, row.flag, row.case_number): row.cleared_at for row in rows}

    assert await flags() == {
        (restricted, "restricted", case_a): None,
        (held, "dsr_hold", case_c): None,
        (erased, "erasure", case_erase): None,
        (objected, "objection", case_object): None,
    }
    by_item = {(n.item_id, n.kind, n.cause) for n in await _notices_of(export, loan_id)}
    assert by_item == {
        (items[restricted, "recording"], "restrict", "art18_1_a"),
        (items[held, "recording"], "restrict", "art18_1_c"),
        (items[erased, "recording"], "destroy", "art17_1_a"),
        (items[objected, "recording"], "destroy", "art21_1"),
    }
    for ref in everyone:
        assert await _item_status(export, pending[ref, "recording"]) == "withdrawn"

    # Lifting the restriction clears its case's flag (and only that), and the institute is told.
    lifted = await _publish(
        export,
        DSR_EVENTS_TOPIC,
        restricted,
        _decided("dsr.restriction_lifted", "art18_1_a", case_a, restricted),
    )
    # Retention carries out the erasure: the institute already knows to destroy the item, and is told once.
    carried_out = await _publish(export, RETENTION_EVENTS_TOPIC, erased, _deleted(erased))
    await _processed(export, "export-notices-dsr", lifted.id)
    await _processed(export, "export-notices-retention", carried_out.id)
    after = await flags()
    assert after[restricted, "restricted", case_a] == NOW
    assert after[held, "dsr_hold", case_c] is None
    assert after[erased, "erasure", case_erase] is None
    notices = await _notices_of(export, loan_id)
    assert sorted(n.kind for n in notices if n.item_id == items[restricted, "recording"]) == [
        "restrict",
        "restriction_lifted",
    ]
    assert [n.kind for n in notices if n.item_id == items[erased, "recording"]] == ["destroy"]


async def test_a_redelivered_event_issues_no_second_notice(export: Export) -> None:
    ref = uuid.uuid4()
    loan_id, _items = await _loan(export, _institute_id(), [(ref, "recording")])
    event = _decided("dsr.restriction_applied", "art18_1_b", _case_number(), ref)
    # The relay delivers at least once: the same event twice on the topic.
    await _publish(export, DSR_EVENTS_TOPIC, ref, event)
    await _publish(export, DSR_EVENTS_TOPIC, ref, event)
    await _processed(export, "export-notices-dsr", event.id)
    # Past the consumer loop's tracking row too: the effect applied again in a transaction of its own.
    handler = NoticeHandler(export.clock)
    raw = orjson.dumps(event.model_dump(mode="json"))
    _event, data = parse_domain_event(raw)
    async with export.sessionmaker() as session, session.begin():
        await handler.apply(session, [Received(event, data, "digest")])
    later = _decided("dsr.rectified", "art16", _case_number(), ref)
    await _publish(export, DSR_EVENTS_TOPIC, ref, later)
    await _processed(export, "export-notices-dsr", later.id)
    assert sorted(n.kind for n in await _notices_of(export, loan_id)) == ["rectify", "restrict"]
    issued = await _export_events(export, loan_id=str(loan_id))
    assert sorted(e.type for e, _r in issued) == ["export.notice_issued", "export.notice_issued"]


async def test_an_event_that_does_not_parse_is_dead_lettered(export: Export) -> None:
    topic = export.settings.topic(DSR_EVENTS_TOPIC)
    marker = uuid.uuid4().hex.encode()
    producer = export.app.state.runtime.producer
    await producer.send_and_wait(topic, value=b'{"not": "an event", "marker": "' + marker + b'"}')
    follow = _decided("dsr.rectified", "art16", _case_number(), uuid.uuid4())
    await _publish(export, DSR_EVENTS_TOPIC, uuid.uuid4(), follow)
    await _processed(export, "export-notices-dsr", follow.id)

    async def dead() -> list[ConsumerRecord[bytes, bytes]]:
        return [
            record
            for record in await read_topic(export.settings, topic + DLQ_SUFFIX)
            if marker in (record.value or b"")
            and header(record, "sailo-dlq-consumer-group") == "export-notices-dsr"
        ]

    (letter,) = await eventually(dead, attempts=20)
    reason = header(letter, "sailo-dlq-reason") or ""
    assert reason.startswith("not a valid domain event") and marker.decode() not in reason


async def test_the_watch_reminds_escalates_and_marks_overdue_once_each(export: Export) -> None:
    """Runs last in the module: its clock moves weeks ahead over every loan and notice in the database."""
    institute = _institute_id()
    refs = [uuid.uuid4() for _ in range(3)]
    due_on = TODAY + timedelta(days=10)
    loan_id, items = await _loan(export, institute, [(ref, "recording") for ref in refs], due_on=due_on)
    later_loan, _ = await _loan(
        export, institute, [(uuid.uuid4(), "recording")], due_on=TODAY + timedelta(days=60)
    )
    async with export.sessionmaker() as session:
        returned = await session.get(LoanItem, items[refs[2], "recording"])
        assert returned is not None
        returned.status = "returned"
        await session.commit()
    await _publish(export, RETENTION_EVENTS_TOPIC, refs[0], _deleted(refs[0]))
    await _publish(export, RETENTION_EVENTS_TOPIC, refs[1], _deleted(refs[1]))

    async def two() -> list[Notice] | None:
        notices = await _notices_of(export, loan_id)
        return notices if len(notices) == 2 else None

    notices = await eventually(two, attempts=600)
    acknowledged = next(n for n in notices if n.item_id == items[refs[1], "recording"])
    response = await export.client.post(
        f"/v1/notices/{acknowledged.notice_id}/acknowledgement", headers=export.institute(institute)
    )
    assert response.status_code == 200, response.text
    unanswered = next(n for n in notices if n.item_id == items[refs[0], "recording"])

    clock = FrozenClock(NOW)
    watches = [
        LoanWatch(sessionmaker=export.sessionmaker, clock=clock, reminder_days=14, escalation_days=7)
        for _ in range(2)
    ]
    # Two instances at once: the reminder is still sent once.
    await asyncio.gather(*(watch.tick() for watch in watches))
    await watches[0].tick()
    async with export.sessionmaker() as session:
        loan = await session.get(Loan, loan_id)
        assert loan is not None and loan.reminded_at == NOW and loan.overdue_at is None
        later = await session.get(Loan, later_loan)
        assert later is not None and later.reminded_at is None

    clock.set(NOW + timedelta(days=8))
    await asyncio.gather(*(watch.tick() for watch in watches))
    await watches[1].tick()
    listed = await export.notices(export.institute(institute), loan_id=str(loan_id), status="escalated")
    assert [n["notice_id"] for n in listed["notices"]] == [str(unanswered.notice_id)]

    # The day after the due day, Helsinki time.
    clock.set(datetime.combine(due_on + timedelta(days=1), time(0, 30), HELSINKI))
    await asyncio.gather(*(watch.tick() for watch in watches))
    await watches[0].tick()
    async with export.sessionmaker() as session:
        loan = await session.get(Loan, loan_id)
        assert loan is not None and loan.overdue_at == clock.now()

    async def sent() -> dict[str, list[dict[str, Any]]] | None:
        by_type: dict[str, list[dict[str, Any]]] = {}
        for event, _record in await _export_events(export, loan_id=str(loan_id)):
            by_type.setdefault(event.type, []).append(event.data)
        return by_type if "export.loan_overdue" in by_type else None

    by_type = await eventually(sent, attempts=10)
    expected = {
        "loan_id": str(loan_id),
        "institute_id": institute,
        "due_on": due_on.isoformat(),
        "outstanding": 2,
    }
    assert by_type["export.loan_due_reminder"] == [expected]
    assert by_type["export.loan_overdue"] == [expected]
    assert [data["notice_id"] for data in by_type["export.notice_escalated"]] == [str(unanswered.notice_id)]
    for object_id, reason in (
        (loan_id, "loan_due_reminder"),
        (loan_id, "loan_overdue"),
        (unanswered.notice_id, "notice_escalated"),
    ):
        assert (await _audited(export, object_id, reason))["actor"] == str(system_actor("export"))
    assert len(by_type["export.notice_issued"]) == 2

"""Data-subject requests on real PostgreSQL and a real broker: ingest, retention and DSR in one process each,
a scenario per register, as a caseworker carries them out through the DSR API."""

from __future__ import annotations

import io
import re
import wave
import zipfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.dsr.app import create_app as create_dsr
from services.dsr.deadlines import statutory_deadline
from services.dsr.watch import DeadlineWatch
from services.retention.models import Certificate, Hold, ScheduleItem
from shared.auth import Role
from shared.clock import FrozenClock
from shared.domain_events import DSR_EVENTS_TOPIC, RequestChangedData, parse_domain_event
from shared.settings import Settings
from tests.conftest import Infrastructure
from tests.integration.conftest import eventually, new_id, read_topic, wav_bytes
from tests.integration.retention_env import (
    Env,
    contact_ref_of,
    make_event,
    post_events,
    retention_env,
    wait_until_stored,
)

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
CALL_AT = NOW - timedelta(days=20)


class Dsr:
    def __init__(self, env: Env, client: httpx.AsyncClient, app: Any, clock: FrozenClock, token_for: Any):
        self.env = env
        self.client = client
        self.app = app
        self.clock = clock
        self.headers = {"Authorization": f"Bearer {token_for(Role.CASEWORKER)}"}
        self.token_for = token_for

    async def post(self, path: str, body: dict[str, Any] | None = None, expect: int = 200) -> Any:
        response = await self.client.post(path, json=body or {}, headers=self.headers)
        assert response.status_code == expect, response.text
        return response.json()

    async def get(self, path: str, expect: int = 200) -> httpx.Response:
        response = await self.client.get(path, headers=self.headers)
        assert response.status_code == expect, response.text
        return response

    async def open_request(self, request_type: str, register: str, **requester: str) -> dict[str, Any]:
        body = {
            "request_type": request_type,
            "registers": [register],
            "requester": [{"kind": kind, "value": value} for kind, value in requester.items()],
        }
        created: dict[str, Any] = await self.post("/v1/requests", body, expect=201)
        return created

    async def verified_candidates(self, request_id: str) -> list[dict[str, Any]]:
        await self.post(f"/v1/requests/{request_id}/identity", {"method": "strong_electronic_identification"})
        found = await self.post(f"/v1/requests/{request_id}/search")
        candidates: list[dict[str, Any]] = found["candidates"]
        return candidates


@pytest.fixture(scope="module")
async def dsr(
    infrastructure: Infrastructure,
    settings: Settings,
    token_for: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Dsr]:
    data_dir = tmp_path_factory.mktemp("dsr-data")
    async with retention_env(infrastructure, settings, token_for, data_dir, clock_at=NOW) as env:
        clock = FrozenClock(NOW)
        app = create_dsr(env.settings, clock=clock, run_watch=False)
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dsr.test")
            )
            yield Dsr(env, client, app, clock, token_for)


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

    created = await dsr.open_request("access", "prh-customer-service", phone=phone)
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
        "erasure", "dvv-personal-customer-service", email=f"someone-{new_id()}@example.fi"
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
    created = await dsr.open_request("erasure", "hsy-customer-service", phone=phone)
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

    async def due_now() -> bool:
        async with env.sessionmaker() as session:
            triggers = (
                await session.scalars(select(ScheduleItem.trigger).where(ScheduleItem.contact_ref == ref))
            ).all()
        return bool(triggers) and set(triggers) == {"erasure_request"}

    await eventually(due_now, attempts=400)
    await env.sweeper.sweep()
    async with env.sessionmaker() as session:
        certificates = (
            await session.scalars(select(Certificate).where(Certificate.contact_ref == ref))
        ).all()
    assert certificates and all(c.trigger == "erasure_request" for c in certificates)
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

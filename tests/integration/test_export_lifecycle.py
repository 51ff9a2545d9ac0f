"""A research loan from agreement to close-out on real PostgreSQL, broker and blob store: four-eyes approval,
selection with its default exclusions and an override, the package, delivery, a recording whose retention ends
during the loan, overdue, the institute's attestations, discrepancies, closing, and the disclosure register."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import text

from services.export.app import create_app as create_export
from shared.audit.log import actor_ref
from shared.contracts.domain_events import EXPORT_EVENTS_TOPIC, parse_domain_event
from shared.platform.settings import Settings
from shared.security.auth import Role
from tests.conftest import Infrastructure
from tests.integration.conftest import eventually, new_id, read_topic, wav_bytes
from tests.integration.retention_env import (
    Env,
    contact_ref_of,
    make_event,
    post_events,
    retention_env,
    wait_for_schedule,
    wait_until_stored,
)

pytestmark = pytest.mark.integration

HELSINKI = ZoneInfo("Europe/Helsinki")
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=HELSINKI)
REGISTER = "prh-customer-service"
STUDY_ENDS = date(2027, 3, 31)
AGREEMENT = {
    "institute_id": "puhelab",
    "institute_name": "Puheentutkimuksen laboratorio",
    "contact_person": "Tutkimusjohtaja A. Tutkija",
    "agreement_ref": "PRH-TUT-2026/15",
    "purpose": "Assessing the quality of telephone customer service",
    "legal_basis": "GDPR Art. 6(1)(e) and Art. 89; research permit PRH/2026/15",
    "study_ends_on": STUDY_ENDS.isoformat(),
    "commitment": "destroy",
}


class Export:
    """The export service in-process on the retention environment's clock, called by role."""

    def __init__(self, env: Env, client: httpx.AsyncClient, app: Any, token_for: Any) -> None:
        self.env, self.client, self.app = env, client, app
        self.anna = {"Authorization": f"Bearer {token_for(Role.RESEARCH_OFFICER, subject='officer-anna')}"}
        self.ben = {"Authorization": f"Bearer {token_for(Role.RESEARCH_OFFICER, subject='officer-ben')}"}
        self.institute = {"Authorization": f"Bearer {token_for(Role.INSTITUTE, institute_id='puhelab')}"}
        self.other_institute = {"Authorization": f"Bearer {token_for(Role.INSTITUTE, institute_id='muulab')}"}
        self.auditor = {"Authorization": f"Bearer {token_for(Role.AUDITOR)}"}
        self.manager = {"Authorization": f"Bearer {token_for(Role.MANAGER)}"}

    async def call(
        self, method: str, path: str, headers: dict[str, str], body: Any = None, expect: int = 200
    ) -> Any:
        response = await self.client.request(method, path, json=body, headers=headers)
        assert response.status_code == expect, response.text
        return response.json()

    async def approved_loan(self, **changes: Any) -> str:
        loan = await self.call("POST", "/v1/loans", self.anna, {**AGREEMENT, **changes}, expect=201)
        await self.call("POST", f"/v1/loans/{loan['loan_id']}/approval", self.ben)
        loan_id: str = loan["loan_id"]
        return loan_id


@pytest.fixture(scope="module")
async def export(
    infrastructure: Infrastructure,
    settings: Settings,
    token_for: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Export]:
    data_dir: Path = tmp_path_factory.mktemp("export-data")
    async with retention_env(infrastructure, settings, token_for, data_dir, clock_at=NOW) as env:
        app = create_export(env.settings, clock=env.clock, run_watch=False)
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://export.test")
            )
            yield Export(env, client, app, token_for)


UPLOADED: dict[UUID, str] = {}
"""contact_ref -> SHA-256 of the audio uploaded for it."""


async def a_call(env: Env, at: datetime, audio: bytes, *, agent: str = "agent-17") -> UUID:
    """A PRH call with its recording, stored and scheduled; returns its contact_ref."""
    call_id = f"call-{new_id()}"
    await post_events(
        env,
        make_event("call.started", call_id, at, direction="inbound", caller_number="+358401234567"),
        make_event("call.answered", call_id, at + timedelta(seconds=20), agent={"id": agent, "name": "Aino"}),
        make_event("call.ended", call_id, at + timedelta(minutes=4)),
    )
    await wait_until_stored(env, call_id, events=3)
    put = await env.ingest.put(
        f"/v1/contacts/{call_id}/recording",
        content=audio,
        headers={**env.headers[Role.PLATFORM], "Content-Type": "audio/wav"},
    )
    assert put.status_code == 201, put.text
    ref = contact_ref_of(env, REGISTER, call_id)
    UPLOADED[ref] = hashlib.sha256(audio).hexdigest()
    schedule = await wait_for_schedule(env, ref, 1)

    async def recording_scheduled() -> bool:
        rows = await wait_for_schedule(env, ref, len(schedule))
        return any(cls == "recording" for cls, _ in rows)

    await eventually(recording_scheduled, attempts=400)
    return ref


async def restrict(env: Env, ref: UUID) -> None:
    """Mark a contact restricted as the record store does on a DSR restriction (tested end to end in the DSR
    tests)."""
    async with env.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE records.contacts SET restricted_at = now() WHERE contact_ref = :ref"), {"ref": ref}
        )


@pytest.fixture(scope="module")
async def calls(export: Export) -> dict[str, UUID]:
    env = export.env
    november = datetime(2026, 11, 10, 9, 0, tzinfo=HELSINKI)
    refs = {
        name: await a_call(
            env, november + timedelta(hours=index), wav_bytes(1.0 + index / 4, marker=name.encode())
        )
        for index, name in enumerate(("first", "second", "third", "restricted"))
    }
    # A June call: its recording is kept six months, so it would have to go back before the study ends.
    refs["june"] = await a_call(
        env, datetime(2026, 6, 3, 9, 0, tzinfo=HELSINKI), wav_bytes(1.0, marker=b"june")
    )
    refs["other_agent"] = await a_call(
        env, november + timedelta(days=1), wav_bytes(1.0, marker=b"other"), agent="agent-99"
    )
    await restrict(env, refs["restricted"])
    return refs


async def test_selection_waits_for_approval_and_lends_only_what_the_notice_allows(
    export: Export, calls: dict[str, UUID]
) -> None:
    draft = await export.call("POST", "/v1/loans", export.anna, AGREEMENT, expect=201)
    body = {"registers": [REGISTER]}
    refused = await export.call(
        "POST", f"/v1/loans/{draft['loan_id']}/selection", export.anna, body, expect=409
    )
    assert refused["errors"][0]["field"] == "status"
    loan_id = await export.approved_loan()
    hsy = await export.call(
        "POST",
        f"/v1/loans/{loan_id}/selection",
        export.anna,
        {"registers": ["hsy-customer-service"]},
        expect=422,
    )
    assert hsy["errors"][0] == {
        "field": "body.registers.0",
        "reason": "the register's privacy notice allows no research loans",
    }
    restricted = await export.call(
        "POST",
        f"/v1/loans/{loan_id}/selection",
        export.anna,
        {
            "registers": [REGISTER],
            "overrides": [{"contact_ref": str(calls["restricted"]), "justification": "needed for the study"}],
        },
        expect=409,
    )
    assert restricted["errors"][0]["field"] == "body.overrides.0.contact_ref"
    assert str(calls["restricted"]) not in str(restricted)


async def test_default_exclusions_are_counted_and_an_override_records_who_and_why(
    export: Export, calls: dict[str, UUID]
) -> None:
    loan_id = await export.approved_loan()
    mine = [calls[name] for name in ("first", "second", "third", "restricted", "june")]
    selected = await export.call(
        "POST",
        f"/v1/loans/{loan_id}/selection",
        export.anna,
        {"registers": [REGISTER], "contact_refs": [str(ref) for ref in mine]},
    )
    assert (selected["selected"], selected["candidates"]) == (3, 5)
    assert selected["excluded"] == {"restricted": 1, "retention_ends_before_study_end": 1}
    assert selected["overridden"] == {}

    justification = "The June calls are the only ones before the new call-back service"
    overridden = await export.call(
        "POST",
        f"/v1/loans/{loan_id}/selection",
        export.anna,
        {
            "registers": [REGISTER],
            "contact_refs": [str(ref) for ref in mine],
            "overrides": [{"contact_ref": str(calls["june"]), "justification": justification}],
        },
    )
    assert overridden["selected"] == 4
    assert overridden["excluded"] == {"restricted": 1}
    assert overridden["overridden"] == {"retention_ends_before_study_end": 1}
    items = await export.call("GET", f"/v1/loans/{loan_id}/items", export.anna)
    assert items["counts"] == {"selected": 4}
    june = [item for item in items["items"] if item["contact_ref"] == str(calls["june"])]
    assert june[0]["overridden_exclusion"] == "retention_ends_before_study_end"
    assert june[0]["override_justification"] == justification
    async with export.env.sessionmaker() as session:
        by = await session.scalar(
            text("SELECT override_by FROM export.loan_items WHERE contact_ref = :ref AND loan_id = :loan"),
            {"ref": calls["june"], "loan": UUID(loan_id)},
        )
    assert by == actor_ref(export.app.state.blind_index, "officer-anna")  # her pseudonym, as in the audit log

    # Criteria narrow the candidates: another agent's call only.
    by_agent = await export.call(
        "POST",
        f"/v1/loans/{loan_id}/selection",
        export.anna,
        {"registers": [REGISTER], "agent_ids": ["agent-99"]},
    )
    assert (by_agent["selected"], by_agent["candidates"]) == (1, 1)
    by_days = await export.call(
        "POST",
        f"/v1/loans/{loan_id}/selection",
        export.anna,
        {"registers": [REGISTER], "started_from": "2026-06-01", "started_to": "2026-06-30"},
    )
    assert by_days["candidates"] == 1 and by_days["excluded"] == {"retention_ends_before_study_end": 1}


async def test_a_seeded_sample_is_the_same_sample_again(export: Export, calls: dict[str, UUID]) -> None:
    loan_id = await export.approved_loan()
    body = {"registers": [REGISTER], "channels": ["phone"], "sample_size": 2, "seed": 2026}

    async def sampled() -> list[str]:
        made = await export.call("POST", f"/v1/loans/{loan_id}/selection", export.anna, body)
        assert made["selected"] == 2 and made["seed"] == body["seed"]
        items = await export.call("GET", f"/v1/loans/{loan_id}/items", export.anna)
        return sorted(item["contact_ref"] for item in items["items"])

    first = await sampled()
    assert await sampled() == first
    unseeded = await export.call(
        "POST",
        f"/v1/loans/{loan_id}/selection",
        export.anna,
        {key: value for key, value in body.items() if key != "seed"},
    )
    # The seed drawn for it is recorded, and repeats that sample exactly.
    drawn = sorted(
        item["contact_ref"]
        for item in (await export.call("GET", f"/v1/loans/{loan_id}/items", export.anna))["items"]
    )
    body["seed"] = unseeded["seed"]
    assert await sampled() == drawn


async def test_a_loan_from_agreement_to_close_out(export: Export, calls: dict[str, UUID]) -> None:
    env = export.env
    loan_id = await export.approved_loan()
    lent = [calls[name] for name in ("first", "second", "june")]
    await export.call(
        "POST",
        f"/v1/loans/{loan_id}/selection",
        export.anna,
        {
            "registers": [REGISTER],
            "contact_refs": [str(ref) for ref in lent],
            "overrides": [
                {"contact_ref": str(calls["june"]), "justification": "the study needs summer calls"}
            ],
        },
    )
    early = await export.call("POST", f"/v1/loans/{loan_id}/delivery", export.anna, expect=409)
    assert early["errors"][0]["field"] == "package"
    await export.call("POST", f"/v1/loans/{loan_id}/package", export.anna)
    manifest = await export.call("GET", f"/v1/loans/{loan_id}/manifest", export.institute)
    assert sorted(item["sha256"] for item in manifest["items"]) == sorted(UPLOADED[ref] for ref in lent)
    assert "contact_ref" not in str(manifest) and not any(str(ref) in str(manifest) for ref in lent)

    # The institute cannot take the package or attest before delivery.
    assert (
        await export.client.get(f"/v1/loans/{loan_id}/package", headers=export.institute)
    ).status_code == 409
    delivered = await export.call("POST", f"/v1/loans/{loan_id}/delivery", export.anna)
    assert (delivered["status"], delivered["due_on"], delivered["lent_on"]) == (
        "delivered",
        STUDY_ENDS.isoformat(),
        NOW.date().isoformat(),
    )
    items = await export.call("GET", f"/v1/loans/{loan_id}/items", export.institute)
    assert items["counts"] == {"lent": 3}
    hidden = ("contact_ref", "register", "overridden_exclusion", "override_justification")
    assert all(item[name] is None for item in items["items"] for name in hidden)
    assert {item["sha256"] for item in items["items"]} == {item["sha256"] for item in manifest["items"]}
    # Another institute sees nothing of it, exactly as if it did not exist.
    other = await export.client.get(f"/v1/loans/{loan_id}/items", headers=export.other_institute)
    assert other.status_code == 404

    # The June recording's retention ends during the loan: the sweeper deletes it, the institute is told.
    env.clock.set(datetime(2026, 12, 4, 9, 0, tzinfo=HELSINKI))
    await env.sweeper.sweep()
    june_item = next(
        item["item_id"]
        for item in (await export.call("GET", f"/v1/loans/{loan_id}/items", export.anna))["items"]
        if item["contact_ref"] == str(calls["june"])
    )

    async def notice() -> dict[str, Any] | None:
        found = await export.call("GET", f"/v1/notices?loan_id={loan_id}", export.institute)
        return next((n for n in found["notices"] if n["item_id"] == june_item), None)

    destroy = await eventually(notice, attempts=400)
    assert (destroy["kind"], destroy["cause"]) == ("destroy", "retention_expired")
    await export.call("POST", f"/v1/notices/{destroy['notice_id']}/acknowledgement", export.institute)

    # Past the study's end with items still out: discrepancies, and the loan cannot close.
    env.clock.set(datetime(2027, 4, 2, 9, 0, tzinfo=HELSINKI))
    gaps = await export.call("GET", f"/v1/loans/{loan_id}/discrepancies", export.auditor)
    assert gaps["overdue"] is True
    assert sorted(g["problem"] for g in gaps["discrepancies"]) == ["not_attested"] * 3
    refused = await export.call("POST", f"/v1/loans/{loan_id}/closure", export.anna, expect=409)
    assert refused["errors"][0]["field"] == "items"

    # The institute destroys the June item as told, then attests the rest for the whole loan.
    missing = await export.call(
        "POST",
        f"/v1/loans/{loan_id}/attestations",
        export.institute,
        {"outcome": "destroyed", "items": [june_item], "signer": "Dr A. Tutkija"},
        expect=422,
    )
    assert missing["errors"][0]["field"] == "body.destroyed_on"
    one = await export.call(
        "POST",
        f"/v1/loans/{loan_id}/attestations",
        export.institute,
        {
            "outcome": "destroyed",
            "items": [june_item],
            "destroyed_on": "2026-12-05",
            "method": "purge",
            "tool": "shred 9.4, 3 passes",
            "signer": "Dr A. Tutkija",
        },
        expect=201,
    )
    assert (one["item_count"], one["whole_loan"]) == (1, False)
    again = await export.call(
        "POST",
        f"/v1/loans/{loan_id}/attestations",
        export.institute,
        {"outcome": "returned", "items": [june_item], "signer": "Dr A. Tutkija"},
        expect=409,
    )
    assert again["errors"][0]["field"] == "body.items"
    rest = await export.call(
        "POST",
        f"/v1/loans/{loan_id}/attestations",
        export.institute,
        {
            "outcome": "destroyed",
            "destroyed_on": "2027-03-30",
            "method": "destroy",
            "tool": "disintegrator, 2 mm particles",
            "signer": "Dr A. Tutkija",
        },
        expect=201,
    )
    assert (rest["item_count"], rest["whole_loan"]) == (2, True)
    accounted = await export.call("GET", f"/v1/loans/{loan_id}/attestations", export.auditor)
    assert accounted["outstanding"] == 0 and len(accounted["attestations"]) == 2
    assert (await export.call("GET", f"/v1/loans/{loan_id}/discrepancies", export.anna))[
        "discrepancies"
    ] == []

    closed = await export.call("POST", f"/v1/loans/{loan_id}/closure", export.anna)
    assert closed["status"] == "closed"

    # Every step went out through the outbox, in order, with pseudonyms only.
    async def loan_events() -> list[str] | None:
        records = await read_topic(env.settings, env.settings.topic(EXPORT_EVENTS_TOPIC))
        events = [parse_domain_event(record.value) for record in records if record.key == loan_id.encode()]
        types = [event.type for event, _ in events]
        return types if "export.loan_changed" in types and types.count("export.loan_changed") >= 3 else None

    types = await eventually(loan_events, attempts=100)
    assert types.index("export.items_lent") < types.index("export.items_accounted")
    assert types[0] == "export.loan_changed" and "export.notice_issued" in types

    # The auditor's register shows the loan with its legal basis and every item accounted for.
    register = await export.call("GET", "/v1/disclosures", export.auditor)
    entry = next(e for e in register["entries"] if e["id"] == loan_id)
    assert (entry["kind"], entry["legal_basis"], entry["items"], entry["accounted"], entry["status"]) == (
        "research_loan",
        AGREEMENT["legal_basis"],
        3,
        3,
        "closed",
    )


async def test_a_disclosure_to_the_police_is_registered_only_where_the_notice_names_the_police(
    export: Export, calls: dict[str, UUID]
) -> None:
    body = {
        "register": "hsy-customer-service",
        "recipient": "Itä-Uudenmaan poliisilaitos",
        "recipient_kind": "police",
        "legal_basis": "Police Act 872/2011 s. 4:3",
        "case_reference": "POL-2026/1182",
        "disclosed_on": "2026-11-18",
        "contact_refs": [str(calls["first"])],
        "description": "Call recording requested for a criminal investigation",
    }
    refused = await export.call(
        "POST", "/v1/disclosures", export.manager, {**body, "register": REGISTER}, expect=422
    )
    assert refused["errors"][0] == {
        "field": "body.recipient_kind",
        "reason": "the register's privacy notice names no such recipient",
    }
    made = await export.call("POST", "/v1/disclosures", export.manager, body, expect=201)
    assert (made["kind"], made["items"]) == ("disclosure", 1)
    register = await export.call("GET", "/v1/disclosures?register=hsy-customer-service", export.auditor)
    assert [e["reference"] for e in register["entries"]] == ["POL-2026/1182"]
    assert (await export.client.get("/v1/disclosures", headers=export.manager)).status_code == 403

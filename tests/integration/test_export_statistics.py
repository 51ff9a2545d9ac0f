"""Statistics for service development on the real services: contacts sent through ingest's HTTP intake, stored
by the record store, counted by export's GET /v1/statistics with small cells suppressed, as JSON and CSV.

The contacts are in weeks 37 and 38 of 2022 (12-25 September, Helsinki calendar), which no other test uses;
every assertion looks only at those weeks.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update

from services.export.app import create_app as create_export
from shared.platform.clock import FrozenClock
from shared.platform.settings import Settings
from shared.recordstore.models import Contact
from shared.security.auth import Role
from tests.integration.conftest import Ingest, eventually, new_id

pytestmark = pytest.mark.integration

HSY = "hsy-customer-service"
DVV = "dvv-personal-customer-service"
PRH_BO = "prh-beneficial-owner-customers"
W37, W38 = "2022-W37", "2022-W38"
OURS = {W37, W38}
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


@dataclass
class Sent:
    """What went in: the identifiers that must never come out, and the refs of the contacts."""

    secrets: set[str] = field(default_factory=set)
    refs: dict[str, uuid.UUID] = field(default_factory=dict)
    ended: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)


def _event(event_type: str, register: str, contact_id: str, at: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": new_id(),
        "type": event_type,
        "register": register,
        "contact_id": contact_id,
        "occurred_at": at,
        "producer": "statistics-test",
        "data": data,
    }


def _call(
    sent: Sent, ingest: Ingest, register: str, name: str, started: str, seconds: int | None, direction: str
) -> None:
    n = len(sent.refs)
    contact_id = f"stat-{name}-{new_id()}"
    number = f"+3584012{n:05d}"
    agent = f"agent-stat-{n:03d}"
    party = {"caller_number": number} if direction == "inbound" else {"callee_number": number}
    sent.events.append(
        _event("call.started", register, contact_id, started, {"direction": direction, **party})
    )
    sent.events.append(_event("call.answered", register, contact_id, started, {"agent": {"id": agent}}))
    if seconds is not None:
        start = datetime.fromisoformat(started)
        end = datetime.fromtimestamp(start.timestamp() + seconds, UTC).isoformat()
        sent.events.append(_event("call.ended", register, contact_id, end, {}))
        sent.ended += 1
    sent.secrets |= {contact_id, number, number.removeprefix("+358"), agent}
    sent.refs[name] = ingest.app.state.blind_index.pseudonym("contact", register, contact_id)


def _other(sent: Sent, ingest: Ingest, event_type: str, register: str, name: str, at: str, data: Any) -> None:
    contact_id = f"stat-{name}-{new_id()}"
    sent.events.append(_event(event_type, register, contact_id, at, data))
    sent.secrets.add(contact_id)
    sent.refs[name] = ingest.app.state.blind_index.pseudonym("contact", register, contact_id)


@pytest.fixture(scope="module")
async def sent(ingest: Ingest) -> Sent:
    """HSY week 37: 7 inbound calls of 60..420 s (one on Sunday 23:30 in Helsinki), 4 outbound calls, 5 chats.
    HSY week 38: 5 inbound calls (one on Monday 00:30 in Helsinki, still Sunday in UTC). DVV week 37: one
    e-mail case. PRH's beneficial-owner register week 37: one identification (no statistics purpose)."""
    s = Sent()
    for i in range(7):
        started = "2022-09-18T23:30:00+03:00" if i == 0 else f"2022-09-1{3 + i % 4}T10:0{i}:00+03:00"
        _call(s, ingest, HSY, f"in37-{i}", started, 60 * (i + 1), "inbound")
    for i in range(4):
        _call(s, ingest, HSY, f"out37-{i}", f"2022-09-14T12:0{i}:00+03:00", 30, "outbound")
    for i in range(5):
        _other(
            s,
            ingest,
            "chat.message",
            HSY,
            f"chat37-{i}",
            f"2022-09-15T09:0{i}:00+03:00",
            {"sender": "customer", "text": f"Jätehuolto kysymys {i}"},
        )
    for i in range(5):
        started = "2022-09-18T21:30:00+00:00" if i == 0 else f"2022-09-2{i}T10:00:00+03:00"
        _call(s, ingest, HSY, f"in38-{i}", started, 100, "inbound")
    case_number = "DVV-2022-004711"
    _other(
        s,
        ingest,
        "email.received",
        DVV,
        "mail37",
        "2022-09-13T08:00:00+03:00",
        {"from_address": "matti.asiakas@example.fi", "case_number": case_number, "subject": "Muutto"},
    )
    s.secrets |= {case_number, "matti.asiakas@example.fi"}
    _other(
        s,
        ingest,
        "identification",
        PRH_BO,
        "ident37",
        "2022-09-13T08:00:00+03:00",
        {"name": "Maija Meikäläinen", "personal_identity_code": "131052-308T"},
    )
    s.secrets |= {"131052-308T", "Maija Meikäläinen"}

    response = await ingest.client.post("/v1/events/batch", json=s.events, headers=ingest.auth())
    assert response.status_code == 202, response.text
    refs = list(s.refs.values())
    sessionmaker = ingest.app.state.runtime.sessionmaker

    async def stored() -> bool:
        async with sessionmaker() as session:
            row = (
                await session.execute(
                    select(func.count(), func.count(Contact.ended_at)).where(Contact.contact_ref.in_(refs))
                )
            ).one()
        return tuple(row) == (len(refs), s.ended)

    await eventually(stored, attempts=400, pause=0.05)
    return s


@pytest.fixture(scope="module")
async def export(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_export(settings.model_copy(update={"service_name": "export"}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://export.test") as client,
    ):
        yield client


def auth(token_for: Any, role: Role = Role.MANAGER) -> dict[str, str]:
    extra = (
        {"agent_id": "a-1"}
        if role is Role.AGENT
        else {"institute_id": "i-1"}
        if role is Role.INSTITUTE
        else {}
    )
    return {"Authorization": f"Bearer {token_for(role, **extra)}"}


def ours(report: dict[str, Any]) -> tuple[dict[tuple[str, str, str, str], dict[str, Any]], dict[Any, Any]]:
    cells = {
        (c["register"], c["week"], c["channel"], c["service"]): c
        for c in report["cells"]
        if c["week"] in OURS
    }
    totals = {(t["register"], t["week"]): t for t in report["totals"] if t["week"] in OURS}
    return cells, totals


def assert_no_personal_data(body: str, sent: Sent) -> None:
    for secret in sent.secrets:
        assert secret not in body, "an identifier of a contact left through the statistics"
    assert not UUID_TEXT.search(body), "a contact reference left through the statistics"


async def get(export: httpx.AsyncClient, token_for: Any, role: Role = Role.MANAGER, **params: str) -> Any:
    response = await export.get("/v1/statistics", params=params, headers=auth(token_for, role))
    assert response.status_code == 200, response.text
    return response


async def test_counts_durations_and_suppression_per_register_channel_service_and_week(
    sent: Sent, export: httpx.AsyncClient, token_for: Any
) -> None:
    response = await get(export, token_for, **{"from": "2022-09-12", "to": "2022-09-25"})
    assert response.headers["content-type"].startswith("application/json")
    report = response.json()
    assert report["threshold"] == 5
    assert (report["first_day"], report["last_day"]) == ("2022-09-12", "2022-09-25")
    cells, totals = ours(report)
    assert set(cells) == {
        (HSY, W37, "phone", "inbound"),
        (HSY, W37, "phone", "outbound"),
        (HSY, W37, "chat", "inbound"),
        (HSY, W38, "phone", "inbound"),
        (DVV, W37, "email", "inbound"),
    }, "PRH's beneficial-owner register names no statistics purpose: never counted"
    # Sunday 23:30 in Helsinki is week 37, Monday 00:30 in Helsinki week 38, whatever the UTC date says.
    inbound = cells[(HSY, W37, "phone", "inbound")]
    assert inbound == {
        "register": HSY,
        "week": W37,
        "channel": "phone",
        "service": "inbound",
        "contacts": 7,
        "ended": 7,
        "duration_total_seconds": 60 * (1 + 2 + 3 + 4 + 5 + 6 + 7),
        "duration_median_seconds": 240,
        "suppressed": False,
    }
    # 4 outbound calls: suppressed; the 5 chats go with them, else the week's total would give the 4 back.
    for key in ((HSY, W37, "phone", "outbound"), (HSY, W37, "chat", "inbound")):
        assert cells[key]["suppressed"] is True
        assert [cells[key][k] for k in ("contacts", "ended", "duration_total_seconds")] == [None] * 3
    assert totals[(HSY, W37)] == {"register": HSY, "week": W37, "contacts": 16, "suppressed": False}
    # A cell of 5 is shown.
    week38 = cells[(HSY, W38, "phone", "inbound")]
    assert (week38["contacts"], week38["ended"], week38["duration_total_seconds"]) == (5, 5, 500)
    assert week38["duration_median_seconds"] == 100
    # A week of one contact: the cell and the total are both withheld.
    assert cells[(DVV, W37, "email", "inbound")]["contacts"] is None
    assert totals[(DVV, W37)]["contacts"] is None and totals[(DVV, W37)]["suppressed"] is True
    assert_no_personal_data(response.text, sent)


async def test_restricted_contacts_are_not_counted(
    sent: Sent, export: httpx.AsyncClient, token_for: Any, ingest: Ingest
) -> None:
    restricted = sent.refs["in37-6"]  # the 420-second call
    sessionmaker = ingest.app.state.runtime.sessionmaker
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Contact).where(Contact.contact_ref == restricted).values(restricted_at=datetime.now(UTC))
        )
    try:
        report = (
            await get(export, token_for, register=HSY, **{"from": "2022-09-12", "to": "2022-09-18"})
        ).json()
        cells, totals = ours(report)
        inbound = cells[(HSY, W37, "phone", "inbound")]
        assert (inbound["contacts"], inbound["ended"]) == (6, 6)
        assert inbound["duration_total_seconds"] == 60 * (1 + 2 + 3 + 4 + 5 + 6)
        assert inbound["duration_median_seconds"] == 210
        assert totals[(HSY, W37)]["contacts"] == 15
    finally:
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(Contact).where(Contact.contact_ref == restricted).values(restricted_at=None)
            )


async def test_a_period_is_whole_weeks_and_a_register_filter_narrows_to_it(
    sent: Sent, export: httpx.AsyncClient, token_for: Any
) -> None:
    # A Wednesday alone gives its whole week.
    report = (await get(export, token_for, **{"from": "2022-09-14", "to": "2022-09-14"})).json()
    assert (report["first_day"], report["last_day"]) == ("2022-09-12", "2022-09-18")
    cells, _ = ours(report)
    assert {key[1] for key in cells} == {W37}
    assert cells[(HSY, W37, "phone", "inbound")]["contacts"] == 7
    only_dvv = (await get(export, token_for, register=DVV, **{"from": "2022-09-12"})).json()
    assert only_dvv["register"] == DVV
    assert {c["register"] for c in only_dvv["cells"]} == {DVV}


async def test_csv_has_a_header_row_withheld_values_and_the_totals(
    sent: Sent, export: httpx.AsyncClient, token_for: Any
) -> None:
    response = await get(
        export, token_for, register=HSY, format="csv", **{"from": "2022-09-12", "to": "2022-09-25"}
    )
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == [
        "register",
        "week",
        "channel",
        "service",
        "contacts",
        "ended",
        "duration_total_seconds",
        "duration_median_seconds",
    ]
    body = [row for row in rows[1:] if row[1] in OURS]
    assert body == [
        [HSY, W37, "chat", "inbound", "..", "..", "..", ".."],
        [HSY, W37, "phone", "inbound", "7", "7", "1680", "240"],
        [HSY, W37, "phone", "outbound", "..", "..", "..", ".."],
        [HSY, W37, "all", "all", "16", "", "", ""],
        [HSY, W38, "phone", "inbound", "5", "5", "500", "100"],
        [HSY, W38, "all", "all", "5", "", "", ""],
    ]
    assert_no_personal_data(response.text, sent)
    by_accept = await export.get(
        "/v1/statistics",
        params={"register": HSY, "from": "2022-09-12", "to": "2022-09-25"},
        headers={**auth(token_for), "Accept": "text/csv"},
    )
    assert by_accept.status_code == 200
    assert by_accept.headers["content-type"] == "text/csv; charset=utf-8"
    assert by_accept.text == response.text


async def test_the_week_in_progress_is_not_published(sent: Sent, settings: Settings, token_for: Any) -> None:
    # Wednesday of week 38: week 37 is complete, week 38 still growing.
    app = create_export(
        settings.model_copy(update={"service_name": "export"}),
        clock=FrozenClock(datetime(2022, 9, 21, 9, 0, tzinfo=UTC)),
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://export.test") as client,
    ):
        report = (await get(client, token_for, role=Role.RESEARCH_OFFICER, register=HSY)).json()
    assert report["last_day"] == "2022-09-18"
    weeks = {c["week"] for c in report["cells"]} | {t["week"] for t in report["totals"]}
    assert W37 in weeks
    assert all(week <= W37 for week in weeks)


@pytest.mark.parametrize("role", [Role.MANAGER, Role.RESEARCH_OFFICER, Role.AUDITOR])
async def test_the_roles_the_table_allows_may_read_and_every_call_is_audited(
    sent: Sent, export: httpx.AsyncClient, token_for: Any, ingest: Ingest, role: Role
) -> None:
    sessionmaker = ingest.app.state.runtime.sessionmaker
    # Pending in the outbox or already chained, counted in one statement (one snapshot): the relay moves
    # entries from one to the other meanwhile.
    count = text(
        "SELECT (SELECT count(*) FROM audit.outbox AS o WHERE o.entry @> CAST(:match AS jsonb)"
        "        AND jsonb_array_length(o.entry->'object_ids') = 0)"
        " + (SELECT count(*) FROM audit.entries AS e WHERE e.entry::jsonb @> CAST(:match AS jsonb)"
        "        AND jsonb_array_length(e.entry::jsonb->'object_ids') = 0)"
    )
    match = json.dumps(
        {"object_type": "statistics", "role": role.value, "action": "read", "service": "export"}
    )

    async def audited() -> int:
        async with sessionmaker() as session:
            return int(await session.scalar(count, {"match": match}) or 0)

    before = await audited()
    await get(export, token_for, role, register=HSY, **{"from": "2022-09-12"})

    async def one_more() -> bool:
        return await audited() == before + 1

    await eventually(one_more)


@pytest.mark.parametrize(
    "role",
    [
        Role.PLATFORM,
        Role.AGENT,
        Role.ADMIN,
        Role.CASEWORKER,
        Role.INSTITUTE,
        Role.OPERATOR,
        Role.LEGAL_CLAIMS,
    ],
)
async def test_other_roles_are_refused(export: httpx.AsyncClient, token_for: Any, role: Role) -> None:
    response = await export.get("/v1/statistics", headers=auth(token_for, role))
    assert response.status_code == 403
    assert response.json()["title"] == f"role {role.value} may not use this endpoint"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "0.0"}, "query.from"),
        ({"to": "20220918"}, "query.to"),
        ({"from": "2022-02-30"}, "from"),
        ({"to": "2022-13-01"}, "to"),
        ({"from": "2022-09-19", "to": "2022-09-12"}, "to"),
        ({"register": "no-such-register-7f3a"}, "register"),
        ({"register": "Not A Register 7f3a"}, "query.register"),
        ({"register": PRH_BO}, "register"),
        ({"format": "xlsx-7f3a-format"}, "query.format"),
    ],
)
async def test_bad_parameters_answer_422_naming_the_field_never_the_value(
    export: httpx.AsyncClient, token_for: Any, params: dict[str, str], field: str
) -> None:
    response = await export.get("/v1/statistics", params=params, headers=auth(token_for))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert field in [error["field"] for error in body["errors"]]
    for value in params.values():
        if value != PRH_BO:  # a register's name is public; what a caller made up is not repeated
            assert value not in response.text

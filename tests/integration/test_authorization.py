"""The authorisation table (shared/security/authorization.yaml), cell by cell, and its record rules, on the
real services.

Every (route, role) cell is one test: a role the table allows is let through (whatever the route then says about
the request), a role it does not list gets 403. The table must list exactly the routes the services have, so a
new route cannot ship without a decision about who may call it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text, update

from services.dsr.app import create_app as create_dsr
from services.export.app import create_app as create_export
from services.export.models import Loan
from services.ingest.app import create_app as create_ingest
from services.retention.app import create_app as create_retention_service
from shared.platform.settings import Settings
from shared.recordstore.keystore import DataKey
from shared.recordstore.models import Contact
from shared.security.access import apply_record_rules, load_authorization, render_markdown
from shared.security.auth import Principal, Role
from tests.integration.conftest import Ingest, eventually, new_id, wav_bytes

pytestmark = pytest.mark.integration


def create_retention(settings: Settings) -> Any:
    """Retention without its sweeper: these tests look at routes, and a sweeper would delete the session's
    example contacts (dated months back) while other modules still read them."""
    return create_retention_service(settings, run_sweeper=False)


TABLE = load_authorization()
FACTORIES = {
    "ingest": create_ingest,
    "retention": create_retention,
    "dsr": create_dsr,
    "export": create_export,
}


def token_headers(token_for: Any, role: Role) -> dict[str, str]:
    extra: dict[str, str] = {}
    if role is Role.AGENT:
        extra["agent_id"] = "cell-agent"
    if role is Role.INSTITUTE:
        extra["institute_id"] = "cell-institute"
    return {"Authorization": f"Bearer {token_for(role, **extra)}"}


def routes_of(app: FastAPI) -> set[str]:
    """Every operation the service serves, as its OpenAPI document lists it (the documentation pages aside)."""
    paths = app.openapi()["paths"]
    return {f"{method.upper()} {path}" for path, operations in paths.items() for method in operations}


@pytest.mark.parametrize("service", list(FACTORIES))
def test_the_table_lists_exactly_the_routes_each_service_has(settings: Settings, service: str) -> None:
    app = FACTORIES[service](settings)
    assert routes_of(app) == set(TABLE.routes[service]) | set(TABLE.public)


def test_the_readme_shows_the_table_as_it_is() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert render_markdown(TABLE) in readme


@pytest.fixture(scope="module")
async def clients(ingest: Ingest, settings: Settings) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Every service in-process on the session's database and broker (ingest is the shared fixture)."""
    async with AsyncExitStack() as stack:
        clients = {"ingest": ingest.client}
        for name in ("retention", "dsr", "export"):
            app = FACTORIES[name](settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}.test")
            )
        yield clients


def _cells() -> list[Any]:
    cells = []
    for service, rules in TABLE.routes.items():
        for route, rule in rules.items():
            for role in Role:
                allowed = role in rule.roles
                cells.append(
                    pytest.param(
                        service,
                        route,
                        role,
                        allowed,
                        id=f"{service} {route} {role.value} {'allow' if allowed else 'deny'}",
                    )
                )
    return cells


def _request_for(route: str) -> tuple[str, str, dict[str, Any]]:
    method, _, template = route.partition(" ")
    path = re.sub(r"\{loan_id\}", str(uuid.uuid4()), template)
    path = re.sub(r"\{[a-z_]+\}", f"cell-{new_id()}", path)
    kwargs: dict[str, Any] = {}
    if method in {"POST", "PUT"}:
        kwargs["json"] = {}
    return method, path, kwargs


@pytest.mark.parametrize(("service", "route", "role", "allowed"), _cells())
async def test_cell(
    clients: dict[str, httpx.AsyncClient], token_for: Any, service: str, route: str, role: Role, allowed: bool
) -> None:
    method, path, kwargs = _request_for(route)
    response = await clients[service].request(method, path, headers=token_headers(token_for, role), **kwargs)
    if allowed:
        # Let through: the route then answers about the request itself (404 unknown contact, 422 empty body).
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == 403, response.text
        assert response.json()["title"] == f"role {role.value} may not use this endpoint"


@pytest.mark.parametrize("service", list(FACTORIES))
@pytest.mark.parametrize("route", TABLE.public)
async def test_public_routes_answer_without_a_token(
    clients: dict[str, httpx.AsyncClient], service: str, route: str
) -> None:
    method, _, path = route.partition(" ")
    assert (await clients[service].request(method, path)).status_code == 200


@pytest.mark.parametrize("service", list(FACTORIES))
async def test_every_protected_route_refuses_a_missing_token(
    clients: dict[str, httpx.AsyncClient], service: str
) -> None:
    for route in TABLE.routes[service]:
        method, path, kwargs = _request_for(route)
        response = await clients[service].request(method, path, **kwargs)
        assert response.status_code == 401, (route, response.text)


# -- record rules -------------------------------------------------------------------------------------------


async def _contact(ingest: Ingest, agent: str, *, recording: bool = False) -> str:
    contact_id = f"call-{new_id()}"
    body = {
        **_example("call.answered"),
        "contact_id": contact_id,
        "register": "hsy-customer-service",
        "data": {"agent": {"id": agent, "name": "Agentti"}},
    }
    assert (await ingest.client.post("/v1/events", json=body, headers=ingest.auth())).status_code == 202

    async def stored() -> bool:
        got = await ingest.client.get(f"/v1/contacts/{contact_id}", headers=ingest.auth(Role.MANAGER))
        return got.status_code == 200

    await eventually(stored)
    if recording:
        put = await ingest.client.put(
            f"/v1/contacts/{contact_id}/recording",
            content=wav_bytes(0.5),
            headers={**ingest.auth(), "Content-Type": "audio/wav"},
        )
        assert put.status_code == 201, put.text
    return contact_id


def _example(event_type: str) -> dict[str, Any]:
    from shared.contracts.events import example_event

    return example_event(event_type, event_id=new_id())


async def test_an_agent_reads_and_hears_only_contacts_they_handled(ingest: Ingest, token_for: Any) -> None:
    mine = await _contact(ingest, "agent-7", recording=True)
    theirs = await _contact(ingest, "agent-8", recording=True)
    agent = {"Authorization": f"Bearer {token_for(Role.AGENT, agent_id='agent-7')}"}
    for suffix in ("", "/recording"):
        assert (await ingest.client.get(f"/v1/contacts/{mine}{suffix}", headers=agent)).status_code == 200
        other = await ingest.client.get(f"/v1/contacts/{theirs}{suffix}", headers=agent)
        # Exactly the answer for a contact that does not exist: nothing about the other agent's contact leaks.
        missing = await ingest.client.get(f"/v1/contacts/call-{new_id()}{suffix}", headers=agent)
        assert other.status_code == missing.status_code == 404
        assert other.json() == missing.json()


async def test_row_level_security_hides_other_agents_contacts_even_from_an_unfiltered_query(
    ingest: Ingest,
) -> None:
    await _contact(ingest, "agent-rls-1")
    await _contact(ingest, "agent-rls-2")
    sessionmaker = ingest.app.state.runtime.sessionmaker
    async with sessionmaker() as session:
        total = await session.scalar(select(func.count()).select_from(Contact))
        assert total is not None and total >= 2
    async with sessionmaker() as session:
        await apply_record_rules(session, Principal(subject="a", role=Role.AGENT, agent_id="agent-rls-1"))
        agents = set((await session.scalars(select(Contact.agent_id))).all())
        key_count = await session.scalar(select(func.count()).select_from(DataKey))
        own_keys = await session.scalar(
            text(
                "SELECT count(*) FROM keys.data_keys k JOIN records.contacts c USING (contact_ref)"
                " WHERE c.agent_id = 'agent-rls-1'"
            )
        )
    assert agents == {"agent-rls-1"}
    assert key_count == own_keys
    # The role switch ends with the transaction: the pooled connection is the service's own again.
    async with sessionmaker() as session:
        after = set((await session.scalars(select(Contact.agent_id))).all())
    assert {"agent-rls-1", "agent-rls-2"} <= after


async def test_a_restricted_contact_is_refused_to_everyone_but_the_legal_claims_role(
    ingest: Ingest, token_for: Any
) -> None:
    contact_id = await _contact(ingest, "agent-9", recording=True)
    blind_index = ingest.app.state.blind_index
    ref = blind_index.pseudonym("contact", "hsy-customer-service", contact_id)
    async with ingest.app.state.runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(Contact).where(Contact.contact_ref == ref).values(restricted_at=datetime.now(UTC))
        )
    callers = {
        Role.MANAGER: ingest.auth(Role.MANAGER),
        Role.AGENT: {"Authorization": f"Bearer {token_for(Role.AGENT, agent_id='agent-9')}"},
        Role.LEGAL_CLAIMS: {"Authorization": f"Bearer {token_for(Role.LEGAL_CLAIMS)}"},
    }
    for suffix in ("", "/recording"):
        for role, headers in callers.items():
            response = await ingest.client.get(f"/v1/contacts/{contact_id}{suffix}", headers=headers)
            expected = 200 if role is Role.LEGAL_CLAIMS else 403
            assert response.status_code == expected, (role, suffix, response.text)
            if expected == 403:
                assert response.json()["title"] == "Restricted"
    # Storage is the one processing a restriction allows: the platform may still deliver the recording.
    again = await ingest.client.put(
        f"/v1/contacts/{contact_id}/recording",
        content=wav_bytes(0.5),
        headers={**ingest.auth(), "Content-Type": "audio/wav"},
    )
    assert again.status_code == 200


async def test_an_institute_sees_only_its_own_loans(
    clients: dict[str, httpx.AsyncClient], token_for: Any, ingest: Ingest, settings: Settings
) -> None:
    export = clients["export"]
    officer = {"Authorization": f"Bearer {token_for(Role.RESEARCH_OFFICER)}"}
    loans = {}
    for institute in ("inst-a", "inst-b"):
        created = await export.post(
            "/v1/loans",
            json={
                "institute_id": institute,
                "agreement_ref": f"AGR-{institute}",
                "purpose": "service quality assessment",
                "study_ends_on": "2027-06-30",
                "institute_name": f"Institute {institute.upper()}",
                "contact_person": "Study lead",
                "legal_basis": "GDPR Art. 6(1)(e) and Art. 89",
                "commitment": "destroy",
            },
            headers=officer,
        )
        assert created.status_code == 201, created.text
        loans[institute] = created.json()["loan_id"]
    inst_a = {"Authorization": f"Bearer {token_for(Role.INSTITUTE, institute_id='inst-a')}"}
    listed = await export.get("/v1/loans", headers=inst_a)
    assert {loan["institute_id"] for loan in listed.json()["loans"]} == {"inst-a"}
    assert (await export.get(f"/v1/loans/{loans['inst-a']}", headers=inst_a)).status_code == 200
    other = await export.get(f"/v1/loans/{loans['inst-b']}", headers=inst_a)
    assert other.status_code == 404
    everyone = await export.get("/v1/loans", headers=officer)
    assert {"inst-a", "inst-b"} <= {loan["institute_id"] for loan in everyone.json()["loans"]}

    sessionmaker = ingest.app.state.runtime.sessionmaker
    async with sessionmaker() as session:
        await apply_record_rules(session, Principal(subject="i", role=Role.INSTITUTE, institute_id="inst-a"))
        seen = set((await session.scalars(select(Loan.institute_id))).all())
    assert seen == {"inst-a"}

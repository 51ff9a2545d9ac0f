"""Loan agreements with research institutes on real PostgreSQL: the whole agreement is recorded, and nothing
moves past draft on one person's word (four eyes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from services.export.app import create_app as create_export
from shared.platform.settings import Settings
from shared.security.auth import Role

pytestmark = pytest.mark.integration

AGREEMENT = {
    "institute_id": "puhelab",
    "institute_name": "Puheentutkimuksen laboratorio",
    "contact_person": "Tutkimusjohtaja A. Tutkija",
    "agreement_ref": "PRH-TUT-2026/14",
    "purpose": "Assessing the quality of telephone customer service",
    "legal_basis": "GDPR Art. 6(1)(e) and Art. 89; research permit PRH/2026/14",
    "study_ends_on": "2027-05-31",
    "commitment": "destroy",
}


@pytest.fixture(scope="module")
async def export(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_export(settings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        yield await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://export.test")
        )


def _officer(token_for: Any, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(Role.RESEARCH_OFFICER, subject=name)}"}


async def test_a_loan_records_the_agreement_and_needs_a_second_officer_to_approve(
    export: httpx.AsyncClient, token_for: Any
) -> None:
    first, second = _officer(token_for, "officer-anna"), _officer(token_for, "officer-ben")
    created = await export.post("/v1/loans", json=AGREEMENT, headers=first)
    assert created.status_code == 201, created.text
    loan = created.json()
    assert {key: loan[key] for key in AGREEMENT} == AGREEMENT
    assert (loan["status"], loan["approved_at"]) == ("draft", None)

    own = await export.post(f"/v1/loans/{loan['loan_id']}/approval", headers=first)
    assert own.status_code == 409 and own.json()["errors"][0]["field"] == "approver"
    institute = {"Authorization": f"Bearer {token_for(Role.INSTITUTE, institute_id='puhelab')}"}
    assert (await export.post(f"/v1/loans/{loan['loan_id']}/approval", headers=institute)).status_code == 403

    approved = await export.post(f"/v1/loans/{loan['loan_id']}/approval", headers=second)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved" and approved.json()["approved_at"]
    again = await export.post(f"/v1/loans/{loan['loan_id']}/approval", headers=second)
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "status"
    # The institute sees its agreement as approved.
    seen = await export.get(f"/v1/loans/{loan['loan_id']}", headers=institute)
    assert seen.status_code == 200 and seen.json()["status"] == "approved"


async def test_an_agreement_without_its_commitment_or_legal_basis_is_refused_naming_the_field(
    export: httpx.AsyncClient, token_for: Any
) -> None:
    officer = _officer(token_for, "officer-anna")
    for missing in ("commitment", "legal_basis", "contact_person"):
        body = {key: value for key, value in AGREEMENT.items() if key != missing}
        refused = await export.post("/v1/loans", json=body, headers=officer)
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == f"body.{missing}"
    odd = await export.post("/v1/loans", json={**AGREEMENT, "commitment": "keep"}, headers=officer)
    assert odd.status_code == 422 and odd.json()["errors"][0]["field"] == "body.commitment"
    assert "keep" not in odd.text

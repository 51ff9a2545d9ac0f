"""GET /v1/contacts/{contact_id}: a contact, decrypted, for a reader allowed to see it."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.ingest.api.common import (
    CallerDep,
    ContactIdPath,
    ContactsDep,
    RegisterQuery,
    contact_links,
    problem_responses,
)
from services.ingest.schemas import ContactRead
from shared.app import SessionDep

router = APIRouter(prefix="/v1", tags=["ingest"])


@router.get(
    "/contacts/{contact_id}",
    response_model=ContactRead,
    summary="Read a contact, decrypted",
    responses={
        200: {"description": "The contact", "links": contact_links("$response.body", "GetRecording")},
        **problem_responses(401, 403, 404, 409, 422),
    },
)
async def get_contact(
    request: Request,
    contact_id: ContactIdPath,
    caller: CallerDep,
    session: SessionDep,
    contacts: ContactsDep,
    register: RegisterQuery = None,
) -> ContactRead:
    """Managers read any contact; an agent reads only the contacts they handled; a restricted contact only the
    legal-claims role. Every read, and every refused one, leaves an audit entry."""

    def recording_href(contact_register: str) -> str:
        url = request.url_for("get_recording", contact_id=contact_id)
        return str(url.include_query_params(register=contact_register))

    return await contacts.read(
        session, caller, contact_id=contact_id, register=register, recording_href=recording_href
    )

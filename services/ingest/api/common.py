"""What ingest's routes share: who may call them, their path and query parameters, the services behind them,
reading a request body, and the OpenAPI pieces (problem answers, links between the contact's routes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request

from services.ingest.service.contacts import ContactService
from services.ingest.service.intake import IntakeService
from services.ingest.service.recordings import RecordingService
from shared.app import Caller, caller_of
from shared.contracts.wav import WAV_CONTENT_TYPES
from shared.platform.errors import ApiError
from shared.platform.http import PROBLEM_JSON, PROBLEM_SCHEMA
from shared.security.access import authorize
from shared.security.auth import Principal

SERVICE = "ingest"

# Which roles may call each route is in shared/security/authorization.yaml; record rules are applied in the queries.
authorized = authorize(SERVICE)
Authorized = Annotated[Principal, Depends(authorized)]
CallerDep = Annotated[Caller, Depends(caller_of(authorized))]

RegisterQuery = Annotated[
    str | None,
    Query(
        description="The register of the contact; needed only if the contact id exists in several registers",
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
    ),
]
ContactIdPath = Annotated[
    str,
    Path(
        description="The platform's id of the contact",
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9._:@+=-]+$",
    ),
]


def intake_service(request: Request) -> IntakeService:
    service = request.app.state.intake
    assert isinstance(service, IntakeService)
    return service


def contact_service(request: Request) -> ContactService:
    service = request.app.state.contacts
    assert isinstance(service, ContactService)
    return service


def recording_service(request: Request) -> RecordingService:
    service = request.app.state.recordings
    assert isinstance(service, RecordingService)
    return service


IntakeDep = Annotated[IntakeService, Depends(intake_service)]
ContactsDep = Annotated[ContactService, Depends(contact_service)]
RecordingsDep = Annotated[RecordingService, Depends(recording_service)]


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length")
    return int(declared) if declared is not None and declared.isdigit() else None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing it with 413 as soon as it is known to exceed `limit`."""
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise ApiError.field(413, "body", f"larger than {limit} bytes", title="Body too large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError.field(413, "body", f"larger than {limit} bytes", title="Body too large")
        chunks.append(chunk)
    return b"".join(chunks)


# A recording is uploaded as any of the WAV media types, and served back as the one it was uploaded as.
WAV_CONTENT = {
    media_type: {"schema": {"type": "string", "format": "binary"}}
    for media_type in sorted(
        WAV_CONTENT_TYPES, key=lambda media_type: (media_type != "audio/wav", media_type)
    )
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    content = {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}
    return {code: {"description": "Problem details", "content": content} for code in codes}


_CONTACT = "#/paths/~1v1~1contacts~1{contact_id}"


def contact_links(source: str, *targets: str) -> dict[str, Any]:
    """OpenAPI links from an answer to the contact's routes, its id and register taken from `source` (a runtime
    expression such as ``$request.body``): what a client (and stateful fuzzing) can call next."""
    operations = {
        "GetContact": f"{_CONTACT}/get",
        "GetRecording": f"{_CONTACT}~1recording/get",
        "PutRecording": f"{_CONTACT}~1recording/put",
    }
    parameters = {"contact_id": f"{source}#/contact_id", "register": f"{source}#/register"}
    return {name: {"operationRef": operations[name], "parameters": parameters} for name in targets}

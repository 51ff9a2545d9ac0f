"""PUT and GET /v1/contacts/{contact_id}/recording: upload a call recording, and listen to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from services.ingest.api.common import (
    WAV_CONTENT,
    CallerDep,
    ContactIdPath,
    RecordingsDep,
    RegisterQuery,
    contact_links,
    declared_length,
    media_type,
    problem_responses,
)
from services.ingest.ratelimit import enforce_rate_limit
from services.ingest.schemas import RecordingRead
from shared.app import SessionDep
from shared.contracts.wav import WAV_CONTENT_TYPES
from shared.platform.errors import ApiError

router = APIRouter(prefix="/v1", tags=["ingest"])


@router.put(
    "/contacts/{contact_id}/recording",
    response_model=RecordingRead,
    status_code=201,
    summary="Upload the call recording of a contact (streaming WAV)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": WAV_CONTENT,
        }
    },
    responses={
        200: {
            "description": "The same recording was already stored",
            "model": RecordingRead,
            "links": contact_links("$response.body", "GetRecording"),
        },
        201: {"description": "Stored", "links": contact_links("$response.body", "GetRecording")},
        **problem_responses(401, 403, 404, 409, 411, 413, 415, 422, 429),
    },
)
async def put_recording(
    request: Request,
    contact_id: ContactIdPath,
    caller: CallerDep,
    recordings: RecordingsDep,
    register: RegisterQuery = None,
) -> Response:
    """Streams the audio through SHA-256 and chunked AES-256-GCM into the blob store; nothing is kept in clear.
    The contact must already be known from its events."""
    # No SessionDep: the upload commits its data key before the audio streams in and its artifact after,
    # in transactions of its own (services.ingest.service.recordings says why).
    await enforce_rate_limit(request, caller.principal)
    media = media_type(request)
    if media not in WAV_CONTENT_TYPES:
        raise ApiError.field(415, "content-type", "must be audio/wav", title="Unsupported media type")
    recordings.check_declared_size(declared_length(request))

    async def body() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            yield chunk

    upload = await recordings.upload(
        caller, contact_id=contact_id, register=register, body=body(), content_type=media
    )
    artifact = upload.artifact
    read = RecordingRead(
        contact_id=contact_id,
        register_id=upload.contact.register,
        sha256=artifact.sha256 or "",
        size_bytes=artifact.size_bytes or 0,
        duration_ms=artifact.duration_ms,
        content_type=artifact.content_type or media,
        stored="created" if upload.created else "unchanged",
    )
    return JSONResponse(read.model_dump(mode="json"), status_code=201 if upload.created else 200)


@router.get(
    "/contacts/{contact_id}/recording",
    summary="Listen to a contact's recording (decrypting stream)",
    response_class=StreamingResponse,
    responses={
        200: {"content": WAV_CONTENT},
        **problem_responses(401, 403, 404, 409, 410, 422),
    },
)
async def get_recording(
    contact_id: ContactIdPath,
    caller: CallerDep,
    session: SessionDep,
    recordings: RecordingsDep,
    register: RegisterQuery = None,
) -> StreamingResponse:
    """Decrypts the stored recording chunk by chunk as it is sent; the listen is audited before it starts."""
    # The session commits (the listen's audit entry) when this returns, before the first byte is sent; the
    # stream reads only the blob store.
    artifact, audio = await recordings.listen(session, caller, contact_id=contact_id, register=register)
    return StreamingResponse(
        audio,
        media_type=artifact.content_type or "audio/wav",
        headers={"Content-Length": str(artifact.size_bytes)} if artifact.size_bytes is not None else None,
    )

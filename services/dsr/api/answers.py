"""The answer to a request: the decision carried out, the reply letter, and the access package."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from services.dsr.api.deps import CallerDep
from services.dsr.package import open_package
from services.dsr.schemas import AnswerCreate, RequestRead
from services.dsr.service import answers, lifecycle
from services.dsr.service.rectification import Changes, Correction
from shared.app import SessionDep, runtime
from shared.platform.http import json_body, json_body_openapi, problem_responses
from shared.storage.blobstore import BlobStore

router = APIRouter(prefix="/v1", tags=["requests"])


@router.post(
    "/requests/{request_id}/answer",
    response_model=RequestRead,
    summary="Decide per register, carry the decision out and write the reply",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(AnswerCreate),
)
async def answer_request(
    request: Request, request_id: UUID, session: SessionDep, caller: CallerDep
) -> RequestRead:
    body = await json_body(request, AnswerCreate)
    state = request.app.state
    settings = runtime(request).settings
    return await answers.answer(
        session,
        caller,
        request_id,
        keystore=state.keystore,
        blobs=state.blobs,
        kek=settings.kek_bytes,
        policies=state.policies,
        conditions_met={c.register_id: c.met for c in body.conditions},
        package_days=settings.dsr_package_days,
        blind_index=state.blind_index,
        changes=(
            Changes(
                corrections=tuple(Correction(c.field, c.value) for c in body.rectification.corrections),
                statement=body.rectification.statement,
            )
            if body.rectification is not None
            else None
        ),
    )


@router.get(
    "/requests/{request_id}/reply",
    response_class=PlainTextResponse,
    summary="The reply letter (Finnish, Swedish, English)",
    responses={200: {"content": {"text/plain": {}}}, **problem_responses(401, 403, 404, 409, 422)},
)
async def get_reply(request_id: UUID, session: SessionDep, caller: CallerDep) -> PlainTextResponse:
    reply = await lifecycle.reply(session, caller, request_id)
    return PlainTextResponse(reply, media_type="text/plain; charset=utf-8")


@router.get(
    "/requests/{request_id}/package",
    summary="Download the access package (ZIP), until it expires",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}, **problem_responses(401, 403, 404, 410, 422)},
)
async def download_package(
    request: Request, request_id: UUID, session: SessionDep, caller: CallerDep
) -> StreamingResponse:
    blobs: BlobStore = request.app.state.blobs
    # The session commits the download's audit entry when this returns, before the body streams: the stream
    # reads the blob store only.
    download = await lifecycle.download_package(
        session, caller, request_id, kek=runtime(request).settings.kek_bytes
    )

    async def body() -> AsyncIterator[bytes]:
        async for piece in open_package(
            blobs=blobs, package_key=download.package_key, blob_key=download.blob_key
        ):
            yield piece

    return StreamingResponse(
        body(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{download.case_number}.zip"'},
    )

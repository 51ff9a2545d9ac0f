"""Export's HTTP routes for a loan's package: building it, the manifest, and the institute's download and key
(services.export.service.packages).

The package and its key travel apart: the encrypted package (GET .../package) may go through any channel, the
key (GET .../package-key) only to the institute itself, and only once the loan is delivered. An institute sees
only its own loans, and another institute's loan answers 404 exactly as a missing one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from services.export.api.deps import CallerDep
from services.export.schemas import Manifest, PackageKey, PackageSummary
from services.export.service import packages
from shared.app import SessionDep, runtime
from shared.platform.http import problem_responses
from shared.storage.blobstore import BlobStore

router = APIRouter(prefix="/v1", tags=["packages"])

SHA256_HEADER: Final = "X-Package-SHA256"
"""Response header of the package download: the hex SHA-256 of the ciphertext, as the manifest's loan row keeps
it."""


@router.post(
    "/loans/{loan_id}/package",
    response_model=PackageSummary,
    summary="Build the loan's package: its selected recordings, a manifest, encrypted under a key of its own",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def build_package(
    request: Request, loan_id: UUID, session: SessionDep, caller: CallerDep
) -> PackageSummary:
    """Until the loan is delivered a new build replaces the previous package (and its key). Refused (409,
    field `items`) if a selected item's contact is restricted now without an override, or its recording is
    gone: the loan then needs a new selection."""
    return await packages.build_package(
        session,
        caller,
        loan_id,
        blobs=request.app.state.blobs,
        keystore=request.app.state.keystore,
        kek=runtime(request).settings.kek_bytes,
    )


@router.get(
    "/loans/{loan_id}/manifest",
    response_model=Manifest,
    summary="The package's manifest: each recording's item id, duration, size and SHA-256",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def get_manifest(loan_id: UUID, session: SessionDep, caller: CallerDep) -> Manifest:
    return await packages.get_manifest(session, caller, loan_id)


@router.get(
    "/loans/{loan_id}/package",
    summary="Download the encrypted package (the institute once the loan is delivered); its key comes apart",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": f"The encrypted package; {SHA256_HEADER} gives its SHA-256",
            "content": {"application/octet-stream": {}},
        },
        **problem_responses(401, 403, 404, 409, 422),
    },
)
async def download_package(
    request: Request, loan_id: UUID, session: SessionDep, caller: CallerDep
) -> StreamingResponse:
    # The session's work (the checks and the audit entry) is done before the stream starts and commits when this
    # returns, before the body is sent: the stream reads only the blob store, never the database.
    download = await packages.release_package(session, caller, loan_id)
    blobs: BlobStore = request.app.state.blobs
    source = blobs.open_stream(download.blob_key)

    async def body() -> AsyncIterator[bytes]:
        async for piece in source:
            yield piece

    return StreamingResponse(
        body(),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(download.size),
            "Content-Disposition": f'attachment; filename="loan-{loan_id}.zip.enc"',
            SHA256_HEADER: download.sha256,
        },
    )


@router.get(
    "/loans/{loan_id}/package-key",
    response_model=PackageKey,
    summary="The institute's key to its delivered package, released apart from the package",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def get_package_key(
    request: Request, response: Response, loan_id: UUID, session: SessionDep, caller: CallerDep
) -> PackageKey:
    key = await packages.release_key(session, caller, loan_id, kek=runtime(request).settings.kek_bytes)
    # A key has no business in a cache, the browser's or a proxy's.
    response.headers["Cache-Control"] = "no-store"
    return key

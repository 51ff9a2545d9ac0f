"""Export's HTTP routes for a loan's package: building it, the manifest, and the institute's download and key.

The package and its key travel apart: the encrypted package (GET .../package) may go through any channel, the
key (GET .../package-key) only to the institute itself, and only once the loan is delivered. Who may call each
route is in shared/security/authorization.yaml; an institute sees only its own loans, and another institute's loan
answers 404 exactly as a missing one.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Final
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import update

from services.export.loans import Authorized, audit, load_loan, selected_items
from services.export.models import Loan
from services.export.package import (
    ALGORITHM,
    ItemsUnavailable,
    build_loan_package,
    key_context,
    package_aad,
)
from shared.app import runtime
from shared.audit.chain import Action
from shared.platform.crypto import generate_data_key, unwrap_data_key, wrap_data_key
from shared.platform.errors import ApiError
from shared.platform.http import problem_responses
from shared.platform.logging import get_logger
from shared.recordstore.keystore import KeyStore
from shared.security.access import apply_record_rules
from shared.security.auth import Role
from shared.storage.blobstore import BlobStore

router = APIRouter(prefix="/v1", tags=["packages"])
log = get_logger(__name__)

SHA256_HEADER: Final = "X-Package-SHA256"
"""Response header of the package download: the hex SHA-256 of the ciphertext, as the manifest's loan row keeps
it."""


class PackageSummary(BaseModel):
    loan_id: UUID
    items: int = Field(description="Recordings in the package")
    package_bytes: int = Field(description="Size of the encrypted package")
    package_sha256: str = Field(description="Hex SHA-256 of the encrypted package, as downloaded")
    packaged_at: datetime


class ManifestItem(BaseModel):
    item_id: UUID = Field(description="The item's pseudonymous id, drawn at random for this loan")
    file: str
    duration_ms: int | None
    size_bytes: int
    sha256: str = Field(description="Hex SHA-256 of the recording")


class Manifest(BaseModel):
    """The package's manifest.json: the loan and, per recording, its checks; nothing about the customer."""

    loan_id: UUID
    agreement_ref: str
    institute_id: str
    created_at: datetime
    commitment: str
    study_ends_on: date
    items: list[ManifestItem]


class PackageKey(BaseModel):
    loan_id: UUID
    key: str = Field(description="The package key, 32 bytes, base64")
    algorithm: str = Field(description="How the package is encrypted with it")
    associated_data: str = Field(description="The associated data to decrypt with (UTF-8)")
    package_sha256: str = Field(description="Hex SHA-256 of the encrypted package it opens")


def _not_packaged() -> ApiError:
    return ApiError.field(409, "status", "the loan has not been packaged yet")


@router.post(
    "/loans/{loan_id}/package",
    response_model=PackageSummary,
    summary="Build the loan's package: its selected recordings, a manifest, encrypted under a key of its own",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def build_package(request: Request, loan_id: UUID, principal: Authorized) -> PackageSummary:
    """Until the loan is delivered a new build replaces the previous package (and its key). Refused (409,
    field `items`) if a selected item's contact is restricted now without an override, or its recording is
    gone: the loan then needs a new selection."""
    rt = runtime(request)
    blobs: BlobStore = request.app.state.blobs
    keystore: KeyStore = request.app.state.keystore
    now = rt.clock.now()
    async with rt.sessionmaker() as session:
        # Locked for the build: two builds of one loan wait for each other rather than race.
        loan = await load_loan(request, session, principal, loan_id, lock=True)
        if loan.status != "approved":
            raise ApiError.field(409, "status", f"a loan that is {loan.status} cannot be packaged")
        if loan.delivered_at is not None:
            raise ApiError.field(409, "status", "the loan is delivered; its package can no longer change")
        items = await selected_items(session, loan)
        if not items:
            raise ApiError.field(409, "items", "the loan has no selected items to package")
        package_key = generate_data_key()
        blob_key = f"loans/{loan.loan_id}/{uuid.uuid4()}.zip.enc"
        try:
            built = await build_loan_package(
                session,
                keystore=keystore,
                blobs=blobs,
                loan=loan,
                items=items,
                package_key=package_key,
                blob_key=blob_key,
                created_at=now,
            )
        except ItemsUnavailable as exc:
            await session.rollback()
            raise ApiError.field(
                409,
                "items",
                f"{exc.count} selected item(s) can no longer be lent (restricted or deleted since the "
                "selection); select the loan's items again",
            ) from None
        previous = loan.package_blob_key
        try:
            loan.package_blob_key = built.blob_key
            loan.package_sha256 = built.sha256
            loan.package_bytes = built.size
            loan.package_key = wrap_data_key(
                rt.settings.kek_bytes, package_key, context=key_context(loan.loan_id)
            )
            loan.manifest = built.manifest
            loan.packaged_at = now
            by_id = {entry.item_id: entry for entry in built.items}
            for item in items:
                entry = by_id[item.item_id]
                item.duration_ms = entry.duration_ms
                item.size_bytes = entry.size_bytes
                item.sha256 = entry.sha256
            await audit(request, session, principal, Action.EXPORT_STEP, [loan.loan_id], reason="packaged")
            await session.commit()
        except BaseException:
            # The loan does not point at it: nothing would ever read or delete it.
            await blobs.delete(built.blob_key)
            raise
    if previous is not None and previous != built.blob_key:
        # After the commit: a failed build leaves the previous package in place. A crash right here leaves an
        # unreferenced ciphertext whose key is already gone from the loan.
        await blobs.delete(previous)
    return PackageSummary(
        loan_id=loan_id,
        items=len(built.items),
        package_bytes=built.size,
        package_sha256=built.sha256,
        packaged_at=now,
    )


@router.get(
    "/loans/{loan_id}/manifest",
    response_model=Manifest,
    summary="The package's manifest: each recording's item id, duration, size and SHA-256",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def get_manifest(request: Request, loan_id: UUID, principal: Authorized) -> Manifest:
    async with runtime(request).sessionmaker() as session:
        await apply_record_rules(session, principal)
        loan = await load_loan(request, session, principal, loan_id)
        if loan.manifest is None:
            raise _not_packaged()
        manifest = Manifest.model_validate(loan.manifest)
        await audit(request, session, principal, Action.READ, [loan.loan_id], reason="manifest")
        await session.commit()
    return manifest


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
async def download_package(request: Request, loan_id: UUID, principal: Authorized) -> StreamingResponse:
    blobs: BlobStore = request.app.state.blobs
    institute = principal.role is Role.INSTITUTE
    async with runtime(request).sessionmaker() as session:
        await apply_record_rules(session, principal)
        loan = await load_loan(request, session, principal, loan_id)
        if institute and loan.delivered_at is None:
            raise ApiError.field(
                409, "status", "the package is released to the institute once it is delivered"
            )
        if loan.package_blob_key is None or loan.package_bytes is None or loan.package_sha256 is None:
            raise _not_packaged()
        blob_key, size, sha256 = loan.package_blob_key, loan.package_bytes, loan.package_sha256
        await audit(
            request,
            session,
            principal,
            Action.DISCLOSE if institute else Action.READ,
            [loan.loan_id],
            reason="package_downloaded",
        )
        await session.commit()

    source = blobs.open_stream(blob_key)

    async def body() -> AsyncIterator[bytes]:
        async for piece in source:
            yield piece

    return StreamingResponse(
        body(),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="loan-{loan_id}.zip.enc"',
            SHA256_HEADER: sha256,
        },
    )


@router.get(
    "/loans/{loan_id}/package-key",
    response_model=PackageKey,
    summary="The institute's key to its delivered package, released apart from the package",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def get_package_key(
    request: Request, response: Response, loan_id: UUID, principal: Authorized
) -> PackageKey:
    rt = runtime(request)
    now = rt.clock.now()
    async with rt.sessionmaker() as session:
        await apply_record_rules(session, principal)
        loan = await load_loan(request, session, principal, loan_id)
        if loan.closed_at is not None or loan.status == "closed":
            raise ApiError.field(409, "status", "the loan is closed; its key is no longer released")
        if loan.delivered_at is None:
            raise ApiError.field(409, "status", "the key is released once the loan is delivered")
        if loan.package_key is None or loan.package_sha256 is None:
            raise _not_packaged()
        key = unwrap_data_key(rt.settings.kek_bytes, loan.package_key, context=key_context(loan.loan_id))
        # Only the first release is recorded on the loan; the audit log has every one. Under the institute's
        # database role: migration 0011 lets it set this one column of its own loans.
        await session.execute(
            update(Loan)
            .where(Loan.loan_id == loan.loan_id, Loan.key_released_at.is_(None))
            .values(key_released_at=now)
        )
        await audit(
            request, session, principal, Action.DISCLOSE, [loan.loan_id], reason="package_key_released"
        )
        package_sha256 = loan.package_sha256
        await session.commit()
    # A key has no business in a cache, the browser's or a proxy's.
    response.headers["Cache-Control"] = "no-store"
    return PackageKey(
        loan_id=loan_id,
        key=base64.b64encode(key).decode("ascii"),
        algorithm=ALGORITHM,
        associated_data=package_aad(loan_id).decode("ascii"),
        package_sha256=package_sha256,
    )

"""A loan's package: building it, the manifest, the institute's download and key.

The package and its key travel apart: the encrypted package may go through any channel, the key only to the
institute itself, and only once the loan is delivered.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.export import repository
from services.export.package import ALGORITHM, ItemsUnavailable, build_loan_package, key_context, package_aad
from services.export.schemas import Manifest, PackageKey, PackageSummary
from services.export.service import lifecycle
from services.export.service.common import load_loan
from shared.app import Caller
from shared.audit.chain import Action
from shared.platform.crypto import generate_data_key, unwrap_data_key, wrap_data_key
from shared.platform.errors import ApiError
from shared.recordstore.keystore import KeyStore
from shared.security.access import apply_record_rules
from shared.security.auth import Role
from shared.storage.blobstore import BlobStore


def _not_packaged() -> ApiError:
    return ApiError.field(409, "status", "the loan has not been packaged yet")


async def build_package(
    session: AsyncSession, caller: Caller, loan_id: UUID, *, blobs: BlobStore, keystore: KeyStore, kek: bytes
) -> PackageSummary:
    """Build the loan's package; until the loan is delivered a new build replaces the previous one (and its key).

    Refused (409, field `items`) if a selected item's contact is restricted now without an override, or its
    recording is gone: the loan then needs a new selection.

    Commits itself (the exception among these steps): the package is a blob outside the database, so the new
    one is deleted if the loan's row does not commit, and the previous one only once it has.
    """
    now = caller.now()
    # Locked for the build: two builds of one loan wait for each other rather than race.
    loan = await load_loan(session, caller, loan_id, lock=True)
    lifecycle.check(lifecycle.PACKAGE, loan)
    if loan.delivered_at is not None:
        raise ApiError.field(409, "status", "the loan is delivered; its package can no longer change")
    items = await repository.selected_items(session, loan.loan_id)
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
        loan.package_key = wrap_data_key(kek, package_key, context=key_context(loan.loan_id))
        loan.manifest = built.manifest
        loan.packaged_at = now
        by_id = {entry.item_id: entry for entry in built.items}
        for item in items:
            entry = by_id[item.item_id]
            item.duration_ms = entry.duration_ms
            item.size_bytes = entry.size_bytes
            item.sha256 = entry.sha256
        await caller.audit(session, Action.EXPORT_STEP, "loan", [loan.loan_id], reason="packaged")
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


async def get_manifest(session: AsyncSession, caller: Caller, loan_id: UUID) -> Manifest:
    await apply_record_rules(session, caller.principal)
    loan = await load_loan(session, caller, loan_id)
    if loan.manifest is None:
        raise _not_packaged()
    manifest = Manifest.model_validate(loan.manifest)
    await caller.audit(session, Action.READ, "loan", [loan.loan_id], reason="manifest")
    return manifest


@dataclass(frozen=True)
class Download:
    """Where the package to stream is and what the answer says of it."""

    blob_key: str
    size: int
    sha256: str


async def release_package(session: AsyncSession, caller: Caller, loan_id: UUID) -> Download:
    """The package the caller may download (the institute only once the loan is delivered), audited as a
    disclosure to an institute and a read by anyone else."""
    institute = caller.principal.role is Role.INSTITUTE
    await apply_record_rules(session, caller.principal)
    loan = await load_loan(session, caller, loan_id)
    if institute and loan.delivered_at is None:
        raise ApiError.field(409, "status", "the package is released to the institute once it is delivered")
    if loan.package_blob_key is None or loan.package_bytes is None or loan.package_sha256 is None:
        raise _not_packaged()
    await caller.audit(
        session,
        Action.DISCLOSE if institute else Action.READ,
        "loan",
        [loan.loan_id],
        reason="package_downloaded",
    )
    return Download(loan.package_blob_key, loan.package_bytes, loan.package_sha256)


async def release_key(session: AsyncSession, caller: Caller, loan_id: UUID, *, kek: bytes) -> PackageKey:
    """The institute's key to its delivered package, released apart from the package."""
    now = caller.now()
    await apply_record_rules(session, caller.principal)
    loan = await load_loan(session, caller, loan_id)
    if loan.closed_at is not None or loan.status == lifecycle.CLOSED:
        raise ApiError.field(409, "status", "the loan is closed; its key is no longer released")
    if loan.delivered_at is None:
        raise ApiError.field(409, "status", "the key is released once the loan is delivered")
    if loan.package_key is None or loan.package_sha256 is None:
        raise _not_packaged()
    key = unwrap_data_key(kek, loan.package_key, context=key_context(loan.loan_id))
    # Only the first release is recorded on the loan; the audit log has every one. Under the institute's
    # database role: migration 0011 lets it set this one column of its own loans.
    await repository.mark_key_released(session, loan.loan_id, now)
    await caller.audit(session, Action.DISCLOSE, "loan", [loan.loan_id], reason="package_key_released")
    return PackageKey(
        loan_id=loan_id,
        key=base64.b64encode(key).decode("ascii"),
        algorithm=ALGORITHM,
        associated_data=package_aad(loan_id).decode("ascii"),
        package_sha256=loan.package_sha256,
    )

"""A research loan's package: the recordings lent to an institute, zipped with a manifest and encrypted under a
key of the loan's own. No HTTP here: the routes (services.export.api.packages) and `sailo loan fetch` use it.

The package is one ZIP, in this order:

- ``manifest.json``: the loan (loan_id, agreement_ref, institute_id, created_at, commitment, study_ends_on) and,
  per item, its item_id, its file, duration_ms, size_bytes and the SHA-256 of the audio.
- ``recordings/<item_id>.wav``: each recording, byte for byte as uploaded.

An item is known only by its `item_id`, a random number drawn for this loan. Nothing else of the customer is
in the package: no contact_ref, register, times, agent or case; what the audio itself says is what is lent.
The institute can only link an item back to us through the notices we send about it.

Like the DSR access copy, the package never exists in clear outside this process: the ZIP is produced piece by
piece (shared.storage.ziparchive), encrypted as it goes under a fresh random 256-bit key with the loan id bound as
associated data, hashed (SHA-256 of the ciphertext, which the institute can check on download) and written with
the blob store's atomic `put_stream`. A recording is decrypted and checked against its upload while it streams
through: never held whole in memory. services.export.packer does this in two worker threads side by side.

`unpack_package` is the institute's side: it decrypts a downloaded package with the key, unpacks it and checks
every recording against the manifest.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
import zipfile
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final
from uuid import UUID

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from services.export.models import Loan, LoanItem
from services.export.packer import pack
from shared.contracts.wav import HEADER_PROBE_BYTES, wav_duration_ms
from shared.platform.crypto import decrypt_stream
from shared.platform.logging import get_logger
from shared.recordstore.keystore import KeyStore
from shared.recordstore.lending import restricted_contacts
from shared.recordstore.recordings import RecordingStream, read_recordings
from shared.storage.blobstore import BlobNotFound, BlobStore, validate_key

__all__ = [
    "ALGORITHM",
    "MANIFEST_FILE",
    "BuiltPackage",
    "ItemsUnavailable",
    "PackedItem",
    "UnpackReport",
    "build_loan_package",
    "key_context",
    "package_aad",
    "recording_file",
    "unpack_package",
]

log = get_logger(__name__)

MANIFEST_FILE: Final = "manifest.json"
ALGORITHM: Final = (
    "AES-256-GCM in 64 KiB chunks (STREAM construction, Sailo stream format v1); associated data: "
    "'sailo:stream:v1' NUL 'sailo-loan-package:' and the loan id"
)
"""How the package is encrypted, as the institute is told with its key."""

_AAD_PREFIX: Final = b"sailo-loan-package:"
_KEY_CONTEXT_PREFIX: Final = "sailo-loan-package-key:"
_RECORDING_NAME = re.compile(
    r"^recordings/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.wav$"
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Unpacking copies members in pieces of this size; also the size of each write of the decrypted ZIP.
_COPY_BYTES = 1024 * 1024


def package_aad(loan_id: UUID) -> bytes:
    """Associated data of the package's encryption: the ciphertext only opens as this loan's package."""
    return _AAD_PREFIX + str(loan_id).encode()


def key_context(loan_id: UUID) -> bytes:
    """Context of the package key's wrapping under the KEK: the wrapped key only unwraps on its own loan."""
    return f"{_KEY_CONTEXT_PREFIX}{loan_id}".encode()


def recording_file(item_id: UUID) -> str:
    """The item's file in the package."""
    return f"recordings/{item_id}.wav"


class ItemsUnavailable(Exception):
    """Selected items that can no longer be lent: their contact is restricted now (and no research officer
    overrode that exclusion for the item), or their recording is gone. The loan needs a new selection.

    The message gives the count only, never which items or whose.
    """

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} selected item(s) can no longer be lent")
        self.count = count


@dataclass(frozen=True, slots=True)
class PackedItem:
    """What the manifest says of one item."""

    item_id: UUID
    file: str
    duration_ms: int | None
    size_bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class BuiltPackage:
    blob_key: str
    size: int
    """Bytes stored: the ciphertext."""
    sha256: str
    """Hex SHA-256 of the ciphertext as stored, which is what the institute downloads."""
    manifest: dict[str, Any]
    items: list[PackedItem]


async def build_loan_package(
    session: AsyncSession,
    *,
    keystore: KeyStore,
    blobs: BlobStore,
    loan: Loan,
    items: Sequence[LoanItem],
    package_key: bytes,
    blob_key: str,
    created_at: datetime,
) -> BuiltPackage:
    """Build the package of `items` for `loan`, encrypt it under `package_key` and store it at `blob_key`.

    Every item is checked first, and ItemsUnavailable raised (nothing stored) if any can no longer be lent.
    While the audio streams, BlobNotFound means a recording was deleted meanwhile (also reported as
    ItemsUnavailable); DecryptionError or RecordingIntegrityError mean stored data is damaged. Nothing is
    stored under `blob_key` when this raises.
    """
    validate_key(blob_key)
    ordered = sorted(items, key=lambda item: item.item_id)
    recordings = await _recordings(session, keystore=keystore, blobs=blobs, items=ordered)
    packed = [entry for entry, _ in recordings]
    manifest = _manifest(loan, packed, created_at)
    digest = hashlib.sha256()
    ciphertext = pack(
        manifest_name=MANIFEST_FILE,
        manifest=orjson.dumps(manifest, option=orjson.OPT_INDENT_2),
        members=[(entry.file, stream) for entry, stream in recordings],
        package_key=package_key,
        aad=package_aad(loan.loan_id),
        digest=digest,
        # The ZIP's times are those of the manifest's created_at, in UTC like it.
        modified=created_at,
        comment=f"Sailo research loan {loan.loan_id}",
    )
    try:
        size = await blobs.put_stream(blob_key, ciphertext)
    except BlobNotFound:
        # The sweeper deleted a recording after it was checked: that item needs selecting again.
        raise ItemsUnavailable(1) from None
    finally:
        await ciphertext.aclose()  # stops the packing threads at once if the store gave up
        for _, stream in recordings:
            await stream.aclose()
    log.info("export.loan_package_stored", loan_id=str(loan.loan_id), blob_key=blob_key, size=size)
    return BuiltPackage(
        blob_key=blob_key, size=size, sha256=digest.hexdigest(), manifest=manifest, items=packed
    )


async def _recordings(
    session: AsyncSession, *, keystore: KeyStore, blobs: BlobStore, items: Sequence[LoanItem]
) -> list[tuple[PackedItem, RecordingStream]]:
    """Each item's manifest entry and recording, ready to stream, in the items' order; ItemsUnavailable if any
    cannot be lent."""
    restricted = await restricted_contacts(session, {item.contact_ref for item in items})
    lendable = [
        item for item in items if item.contact_ref not in restricted or item.overridden_exclusion is not None
    ]
    streams = await read_recordings(
        session, keystore=keystore, blobs=blobs, contact_refs=[item.contact_ref for item in lendable]
    )
    found: list[tuple[PackedItem, RecordingStream]] = []
    unavailable = len(items) - len(lendable)
    try:
        for item in lendable:
            stream = streams.pop(item.contact_ref, None)
            if stream is None:
                unavailable += 1
                continue
            if stream.size_bytes is None or stream.sha256 is None:
                # Ingest records both for every upload; without them the manifest could not vouch for the audio.
                await stream.aclose()
                unavailable += 1
                continue
            entry = PackedItem(
                item_id=item.item_id,
                file=recording_file(item.item_id),
                duration_ms=stream.duration_ms,
                size_bytes=stream.size_bytes,
                sha256=stream.sha256,
            )
            found.append((entry, stream))
        if unavailable:
            raise ItemsUnavailable(unavailable)
    except BaseException:
        for _, stream in found:
            await stream.aclose()
        raise
    finally:
        for (
            stream
        ) in streams.values():  # none left unless two items share a contact, which selection prevents
            await stream.aclose()
    return found


def _manifest(loan: Loan, items: Sequence[PackedItem], created_at: datetime) -> dict[str, Any]:
    # JSON values only, so what the loan row keeps is exactly what the package holds.
    return {
        "loan_id": str(loan.loan_id),
        "agreement_ref": loan.agreement_ref,
        "institute_id": loan.institute_id,
        "created_at": created_at.isoformat(),
        "commitment": loan.commitment,
        "study_ends_on": loan.study_ends_on.isoformat(),
        "items": [
            {
                "item_id": str(item.item_id),
                "file": item.file,
                "duration_ms": item.duration_ms,
                "size_bytes": item.size_bytes,
                "sha256": item.sha256,
            }
            for item in items
        ],
    }


# ------------------------------------------------------------------------------------ the institute's side


@dataclass(slots=True)
class UnpackReport:
    """What unpacking a package found. Problems name the package's files, never anything of the audio."""

    loan_id: UUID
    ciphertext_bytes: int = 0
    ciphertext_sha256: str = ""
    manifest: dict[str, Any] | None = None
    items: int = 0
    """Items the manifest lists."""
    verified: int = 0
    """Items unpacked whose size, SHA-256 and (where the manifest gives one) duration match it."""
    audio_bytes: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.manifest is not None and self.verified == self.items


async def unpack_package(
    ciphertext: AsyncIterable[bytes], *, package_key: bytes, loan_id: UUID, out_dir: Path
) -> UnpackReport:
    """Decrypt a loan's package, unpack it into `out_dir` and check every recording against the manifest.

    `out_dir` gets ``manifest.json`` and ``recordings/<item_id>.wav``. A recording that differs from the
    manifest in size, SHA-256 or duration is reported and its file not kept; so is a file the manifest does not
    list (never unpacked: only names of the package's own form are written, so nothing lands outside
    `out_dir`). The decrypted ZIP goes through a temporary file in `out_dir`, removed at the end.

    Raises DecryptionError for a wrong key or loan id, or a package altered or cut short; nothing of it is
    unpacked then.
    """
    report = UnpackReport(loan_id=loan_id)
    digest = hashlib.sha256()

    async def counted() -> AsyncIterator[bytes]:
        async for piece in ciphertext:
            digest.update(piece)
            report.ciphertext_bytes += len(piece)
            yield piece

    handle, spooled = await asyncio.to_thread(_temporary, out_dir)
    try:
        plaintext = decrypt_stream(package_key, counted(), aad=package_aad(loan_id))
        try:
            await _write_batched(handle, plaintext)
        finally:
            await _aclose(plaintext)
        await asyncio.to_thread(handle.close)
        report.ciphertext_sha256 = digest.hexdigest()
        # The whole ZIP authenticated (decrypt_stream ends only after the final chunk): safe to read now.
        await asyncio.to_thread(_unpack, spooled, out_dir, report)
    finally:
        handle.close()
        spooled.unlink(missing_ok=True)
    return report


def _temporary(out_dir: Path) -> tuple[IO[bytes], Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=out_dir, prefix=".package-", suffix=".zip.partial")
    return os.fdopen(descriptor, "wb"), Path(name)


async def _write_batched(handle: IO[bytes], pieces: AsyncIterator[bytes]) -> None:
    batch: list[bytes] = []
    gathered = 0
    async for piece in pieces:
        batch.append(piece)
        gathered += len(piece)
        if gathered >= _COPY_BYTES:
            await asyncio.to_thread(handle.writelines, batch)
            batch, gathered = [], 0
    await asyncio.to_thread(handle.writelines, batch)


def _unpack(spooled: Path, out_dir: Path, report: UnpackReport) -> None:
    try:
        archive = zipfile.ZipFile(spooled)
    except zipfile.BadZipFile:
        report.mismatches.append("the package is not a readable ZIP file")
        return
    with archive:
        names = set(archive.namelist())
        if MANIFEST_FILE not in names:
            report.mismatches.append(f"{MANIFEST_FILE}: missing")
            return
        try:
            manifest = orjson.loads(archive.read(MANIFEST_FILE))
            listed = _listed_items(manifest, report.loan_id)
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError):
            report.mismatches.append(f"{MANIFEST_FILE}: not a loan manifest of this loan")
            return
        report.manifest = manifest
        report.items = len(listed)
        (out_dir / MANIFEST_FILE).write_bytes(archive.read(MANIFEST_FILE))
        recordings = out_dir / "recordings"
        recordings.mkdir(exist_ok=True)
        for name in sorted(names - {MANIFEST_FILE} - {item.file for item in listed}):
            report.mismatches.append(f"{_shown(name)}: not in the manifest, not unpacked")
        for item in listed:
            if item.file not in names:
                report.mismatches.append(f"{item.file}: missing")
                continue
            target = recordings / f"{item.item_id}.wav"
            problem = _extract(archive, item, target)
            if problem is None:
                report.verified += 1
                report.audio_bytes += item.size_bytes
            else:
                report.mismatches.append(f"{item.file}: {problem}")


def _listed_items(manifest: Any, loan_id: UUID) -> list[PackedItem]:
    if not isinstance(manifest, dict) or UUID(manifest["loan_id"]) != loan_id:
        raise ValueError("not this loan's manifest")
    listed = []
    for entry in manifest["items"]:
        item_id = UUID(entry["item_id"])
        duration, size, sha256 = entry["duration_ms"], entry["size_bytes"], entry["sha256"]
        if (
            entry["file"] != recording_file(item_id)
            or not isinstance(size, int)
            or not (duration is None or isinstance(duration, int))
            or not (isinstance(sha256, str) and _SHA256.fullmatch(sha256))
        ):
            raise ValueError("malformed manifest item")
        listed.append(PackedItem(item_id, entry["file"], duration, size, sha256))
    if len({item.item_id for item in listed}) != len(listed):
        raise ValueError("an item is listed twice")
    return listed


def _shown(name: str) -> str:
    # A name of our own form is shown as is; anything else only by its length (it came from the file).
    return name if _RECORDING_NAME.fullmatch(name) else f"a file with a {len(name)}-character name"


def _extract(archive: zipfile.ZipFile, item: PackedItem, target: Path) -> str | None:
    """Copy the item's member to `target`, checking it on the way; the problem found, or None."""
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        with archive.open(item.file) as member, partial.open("wb") as out:
            while piece := member.read(_COPY_BYTES):
                digest.update(piece)
                size += len(piece)
                if len(head) < HEADER_PROBE_BYTES:
                    head += piece[: HEADER_PROBE_BYTES - len(head)]
                out.write(piece)
    except (zipfile.BadZipFile, OSError, EOFError):
        partial.unlink(missing_ok=True)
        return "cannot be read from the package"
    problem = None
    if size != item.size_bytes:
        problem = "size differs from the manifest"
    elif digest.hexdigest() != item.sha256:
        problem = "SHA-256 differs from the manifest"
    elif item.duration_ms is not None and wav_duration_ms(head, size) != item.duration_ms:
        problem = "duration differs from the manifest"
    if problem is not None:
        partial.unlink(missing_ok=True)
        return problem
    partial.replace(target)
    return None


async def _aclose(iterator: AsyncIterator[bytes]) -> None:
    if isinstance(iterator, AsyncGenerator):
        await iterator.aclose()

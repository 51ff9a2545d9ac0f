"""Reading a contact's call recording back: the decrypted WAV as a stream, with what the record store knows of it.

Ingest stores each recording encrypted chunk by chunk under the contact's data key for the `recording` class
(services.ingest.recordings). Everything that later hands the audio to someone (an access package to the data
subject, a research loan) reads it through `read_recording`, so the key look-up, the associated data and the
integrity check live in one place.

A recording whose data key is gone has been crypto-shredded: it no longer exists for any reader, and
`read_recording` answers None exactly as for a contact that never had one.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.blobstore import BlobStore
from shared.crypto import decrypt_stream
from shared.keystore import KeyStore
from shared.policy import ArtifactClass
from shared.records import Artifact, sealed_aad

__all__ = ["RecordingIntegrityError", "RecordingStream", "read_recording"]

_RECORDING = ArtifactClass.RECORDING.value


class RecordingIntegrityError(Exception):
    """The decrypted audio differs in size or SHA-256 from what was recorded when it was uploaded.

    The message is fixed and names nothing of the content, so it is safe to log.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStream:
    """A recording ready to be read: iterate it (once) for the plaintext WAV bytes.

    Nothing is fetched from the blob store until iteration starts. The bytes already yielded are authentic (the
    encryption authenticates every chunk), but the recording is only known to be complete and identical to the
    upload once iteration ends without an exception: a consumer must not publish a partial copy before that.
    A consumer that stops early should call `aclose` so the blob's file handle or connection is released now.
    """

    content_type: str | None
    size_bytes: int | None
    """Plaintext bytes, as counted on upload."""
    sha256: str | None
    """Hex SHA-256 of the plaintext, as computed on upload."""
    duration_ms: int | None
    """From the WAV header on upload; None when the header did not allow it to be computed."""
    chunks: AsyncGenerator[bytes, None]

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks

    async def aclose(self) -> None:
        await self.chunks.aclose()


async def read_recording(
    session: AsyncSession, *, keystore: KeyStore, blobs: BlobStore, contact_ref: UUID
) -> RecordingStream | None:
    """The contact's recording, decrypted while it streams; None if it has none or it has been deleted.

    Only the metadata and the data key are read here, in `session`; the audio is read from `blobs` while the
    stream is iterated, after the session may have moved on. If the blob has vanished in between (the sweeper
    deleted the recording meanwhile) iteration raises `BlobNotFound`; if the blob does not decrypt to the
    uploaded bytes it raises `DecryptionError` or `RecordingIntegrityError`.
    """
    artifact = await session.scalar(
        select(Artifact).where(Artifact.contact_ref == contact_ref, Artifact.artifact_class == _RECORDING)
    )
    if artifact is None or artifact.blob_key is None or artifact.status != "active":
        return None
    keys = await keystore.get(session, {(contact_ref, _RECORDING)})
    data_key = keys.get((contact_ref, _RECORDING))
    if data_key is None:
        return None
    return RecordingStream(
        content_type=artifact.content_type,
        size_bytes=artifact.size_bytes,
        sha256=artifact.sha256,
        duration_ms=artifact.duration_ms,
        chunks=_plaintext(
            blobs,
            artifact.blob_key,
            data_key,
            aad=sealed_aad(contact_ref, _RECORDING, "audio"),
            size_bytes=artifact.size_bytes,
            sha256=artifact.sha256,
        ),
    )


async def _plaintext(
    blobs: BlobStore,
    blob_key: str,
    data_key: bytes,
    *,
    aad: bytes,
    size_bytes: int | None,
    sha256: str | None,
) -> AsyncGenerator[bytes, None]:
    # The chunk authentication already rules out tampering by anyone without the key. The size and hash check
    # also catches a blob that is authentic but not the one the row describes (another upload of the same
    # contact under the same key), so a copy handed out is provably the uploaded file.
    source = blobs.open_stream(blob_key)
    digest = hashlib.sha256()
    # The SHA-256 is taken as the pieces are decrypted (in a worker thread for large ones).
    plaintext = decrypt_stream(data_key, source, aad=aad, digest=digest)
    received = 0
    try:
        async for piece in plaintext:
            received += len(piece)
            yield piece
    finally:
        await _aclose(plaintext)
        await _aclose(source)
    if (size_bytes is not None and received != size_bytes) or (
        sha256 is not None and digest.hexdigest() != sha256
    ):
        raise RecordingIntegrityError("the decrypted recording does not match its stored size and SHA-256")


async def _aclose(iterator: AsyncIterator[bytes]) -> None:
    # Both blob stores and decrypt_stream hand out async generators; closing one releases its file handle or
    # HTTP connection at once instead of at garbage collection.
    if isinstance(iterator, AsyncGenerator):
        await iterator.aclose()

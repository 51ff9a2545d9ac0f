"""Reading a contact's call recording back: the decrypted WAV as a stream, with what the record store knows of it.

Ingest stores each recording encrypted chunk by chunk under the contact's data key for the `recording` class
(services.ingest.service.recordings). Everything that later hands the audio to someone (an access package to the data
subject, a research loan) reads it through `read_recording`, so the key look-up, the associated data and the
integrity check live in one place.

A recording whose data key is gone has been crypto-shredded: it no longer exists for any reader, and
`read_recording` answers None exactly as for a contact that never had one.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from functools import partial
from io import BufferedReader
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.vocabulary import ArtifactClass
from shared.platform.crypto import OFFLOAD_BYTES, PieceDecryptor
from shared.recordstore.keystore import KeyStore
from shared.recordstore.models import Artifact, sealed_aad
from shared.storage.blobstore import BlobStore, FileBlobStore

__all__ = [
    "RecordingCheck",
    "RecordingIntegrityError",
    "RecordingStream",
    "read_recording",
    "read_recordings",
]

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
    ciphertext: AsyncIterator[bytes] = field(repr=False)
    """The blob as stored, for a reader that decrypts in a thread of its own with `check()` instead of
    iterating the stream. Read it or the stream, not both."""
    open_file: Callable[[], BufferedReader] | None = field(default=None, repr=False)
    """Opens the blob as stored for that thread to read itself (blocking), where the blob store is local; None
    for a store that can only be read through `ciphertext`."""
    _check: Callable[[], RecordingCheck] = field(repr=False)

    @classmethod
    def of_blob(
        cls,
        blobs: BlobStore,
        blob_key: str,
        data_key: bytes,
        *,
        aad: bytes,
        content_type: str | None,
        size_bytes: int | None,
        sha256: str | None,
        duration_ms: int | None,
    ) -> RecordingStream:
        """The recording stored at `blob_key`, encrypted under `data_key` with `aad` as ingest stores it."""
        check = partial(RecordingCheck, data_key, aad=aad, size_bytes=size_bytes, sha256=sha256)
        ciphertext = blobs.open_stream(blob_key)
        open_file = partial(blobs.open_file, blob_key) if isinstance(blobs, FileBlobStore) else None
        return cls(
            content_type=content_type,
            size_bytes=size_bytes,
            sha256=sha256,
            duration_ms=duration_ms,
            chunks=_plaintext(ciphertext, check()),
            ciphertext=ciphertext,
            open_file=open_file,
            _check=check,
        )

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks

    def check(self) -> RecordingCheck:
        """A fresh decryption and check of `ciphertext`, for use in one thread."""
        return self._check()

    async def aclose(self) -> None:
        await self.chunks.aclose()
        await _aclose(self.ciphertext)


class RecordingCheck:
    """Decrypts one recording's blob piece by piece and checks it against its upload, synchronously: for a
    worker thread that carries the whole recording (SHA-256 releases the GIL meanwhile, and so does AES-GCM in
    `update_into`).

    The chunk authentication already rules out tampering by anyone without the key. The size and hash check
    also catches a blob that is authentic but not the one the row describes (another upload of the same contact
    under the same key), so a copy handed out is provably the uploaded file.
    """

    def __init__(self, data_key: bytes, *, aad: bytes, size_bytes: int | None, sha256: str | None) -> None:
        self._digest = hashlib.sha256()
        self._decryptor = PieceDecryptor(data_key, aad=aad, digest=self._digest)
        self._size_bytes = size_bytes
        self._sha256 = sha256
        self.received = 0

    @property
    def waiting(self) -> int:
        return self._decryptor.waiting

    def update(self, piece: bytes) -> bytes:
        """The plaintext of every chunk `piece` completes; DecryptionError if it does not authenticate."""
        plaintext = self._decryptor.update(piece)
        self.received += len(plaintext)
        return plaintext

    def plaintext_size(self, piece_size: int) -> int:
        """How many bytes `update_into` writes for a piece of `piece_size` bytes."""
        return self._decryptor.plaintext_size(piece_size)

    def update_into(self, piece: bytes | memoryview, buffer: bytearray) -> memoryview:
        """`update`, writing the plaintext into `buffer` (at least `plaintext_size` bytes) instead of new bytes:
        the part of `buffer` written. For a thread that reuses its buffers (shared.platform.crypto.PieceDecryptor)."""
        plaintext = self._decryptor.update_into(piece, buffer)
        self.received += len(plaintext)
        return plaintext

    def finish(self) -> bytes:
        """The last plaintext; DecryptionError if the blob was cut short, RecordingIntegrityError if the whole
        differs from the upload."""
        last = self._decryptor.finish()
        self.received += len(last)
        if (self._size_bytes is not None and self.received != self._size_bytes) or (
            self._sha256 is not None and self._digest.hexdigest() != self._sha256
        ):
            raise RecordingIntegrityError(
                "the decrypted recording does not match its stored size and SHA-256"
            )
        return last


async def read_recording(
    session: AsyncSession, *, keystore: KeyStore, blobs: BlobStore, contact_ref: UUID
) -> RecordingStream | None:
    """The contact's recording, decrypted while it streams; None if it has none or it has been deleted.

    Only the metadata and the data key are read here, in `session`; the audio is read from `blobs` while the
    stream is iterated, after the session may have moved on. If the blob has vanished in between (the sweeper
    deleted the recording meanwhile) iteration raises `BlobNotFound`; if the blob does not decrypt to the
    uploaded bytes it raises `DecryptionError` or `RecordingIntegrityError`.
    """
    found = await read_recordings(session, keystore=keystore, blobs=blobs, contact_refs=[contact_ref])
    return found.get(contact_ref)


async def read_recordings(
    session: AsyncSession, *, keystore: KeyStore, blobs: BlobStore, contact_refs: Collection[UUID]
) -> dict[UUID, RecordingStream]:
    """`read_recording` for many contacts in two queries, whatever their number: the recordings of those that
    have one, by contact."""
    if not contact_refs:
        return {}
    artifacts = [
        artifact
        for artifact in await session.scalars(
            select(Artifact).where(
                Artifact.contact_ref.in_(set(contact_refs)), Artifact.artifact_class == _RECORDING
            )
        )
        if artifact.blob_key is not None and artifact.status == "active"
    ]
    keys = await keystore.get(session, {(artifact.contact_ref, _RECORDING) for artifact in artifacts})
    found: dict[UUID, RecordingStream] = {}
    for artifact in artifacts:
        data_key = keys.get((artifact.contact_ref, _RECORDING))
        if data_key is None or artifact.blob_key is None:
            continue
        found[artifact.contact_ref] = RecordingStream.of_blob(
            blobs,
            artifact.blob_key,
            data_key,
            aad=sealed_aad(artifact.contact_ref, _RECORDING, "audio"),
            content_type=artifact.content_type,
            size_bytes=artifact.size_bytes,
            sha256=artifact.sha256,
            duration_ms=artifact.duration_ms,
        )
    return found


async def _plaintext(ciphertext: AsyncIterator[bytes], check: RecordingCheck) -> AsyncGenerator[bytes, None]:
    try:
        async for piece in ciphertext:
            if check.waiting + len(piece) >= OFFLOAD_BYTES:  # large amounts in a worker thread
                plaintext = await asyncio.to_thread(check.update, piece)
            else:
                plaintext = check.update(piece)
            if plaintext:
                yield plaintext
    finally:
        await _aclose(ciphertext)
    yield check.finish()


async def _aclose(iterator: AsyncIterator[bytes]) -> None:
    # Both blob stores and decrypt_stream hand out async generators; closing one releases its file handle or
    # HTTP connection at once instead of at garbage collection.
    if isinstance(iterator, AsyncGenerator):
        await iterator.aclose()

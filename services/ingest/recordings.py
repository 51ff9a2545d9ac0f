"""Call recordings: streamed in, checked as WAV, hashed and encrypted on the fly, stored as a blob; streamed out.

The audio is never held whole in memory nor written anywhere in clear: it is encrypted chunk by chunk under the
contact's data key for the `recording` class, so destroying that key shreds the blob too.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.platform.crypto import decrypt_stream, encrypt_stream
from shared.platform.errors import ApiError, FieldError
from shared.recordstore.keystore import KeyStore
from shared.recordstore.models import Artifact, Contact, sealed_aad
from shared.storage.blobstore import BlobStore

WAV_CONTENT_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
RECORDING = "recording"
# Enough to hold the RIFF header and the fmt chunk of any ordinary WAV file.
HEADER_PROBE_BYTES = 4096


@dataclass
class WavInfo:
    byte_rate: int | None
    data_bytes: int | None

    def duration_ms(self, total_bytes: int) -> int | None:
        if not self.byte_rate:
            return None
        # A streaming recorder may leave the data size unset (0 or 0xFFFFFFFF): use the bytes we received.
        data = self.data_bytes if self.data_bytes not in (None, 0, 0xFFFFFFFF) else max(total_bytes - 44, 0)
        return int(data * 1000 // self.byte_rate)


def parse_wav_header(head: bytes) -> WavInfo:
    """Check the RIFF/WAVE header; raises ApiError(415) if this is not a WAV file."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise ApiError.field(
            415, "body", "not a WAV file (RIFF/WAVE header missing)", title="Unsupported audio"
        )
    byte_rate = data_bytes = None
    offset = 12
    while offset + 8 <= len(head):
        chunk_id, size = head[offset : offset + 4], struct.unpack("<I", head[offset + 4 : offset + 8])[0]
        if chunk_id == b"fmt " and offset + 20 <= len(head):
            byte_rate = struct.unpack("<I", head[offset + 16 : offset + 20])[0]
        if chunk_id == b"data":
            data_bytes = size
            break
        offset += 8 + size + (size & 1)
    if byte_rate is None:
        raise ApiError.field(415, "body", "WAV file has no fmt chunk", title="Unsupported audio")
    return WavInfo(byte_rate, data_bytes)


class RecordingService:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        keystore: KeyStore,
        blobs: BlobStore,
        max_bytes: int,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.keystore = keystore
        self.blobs = blobs
        self.max_bytes = max_bytes

    async def store(
        self,
        contact: Contact,
        body: AsyncIterator[bytes],
        *,
        content_type: str,
        audit: Callable[[AsyncSession], Awaitable[None]] | None = None,
    ) -> tuple[Artifact, bool]:
        """Encrypt and store the upload; returns the artifact and whether it was newly created.

        `audit` records the new recording in the transaction that makes it known, so one never exists without
        the other."""
        ref = contact.contact_ref
        async with self.sessionmaker() as session, session.begin():
            keys = await self.keystore.get_or_create(session, {(ref, RECORDING)})
        data_key = keys[(ref, RECORDING)]

        plain_hash = hashlib.sha256()
        cipher_hash = hashlib.sha256()
        received = 0
        info: WavInfo | None = None

        async def checked_plaintext() -> AsyncIterator[bytes]:
            nonlocal received, info
            head = b""
            async for piece in body:
                received += len(piece)
                if received > self.max_bytes:
                    raise ApiError.field(
                        413, "body", f"recording exceeds {self.max_bytes} bytes", title="Too large"
                    )
                if info is None:
                    head += piece
                    if len(head) < HEADER_PROBE_BYTES:
                        continue
                    info = parse_wav_header(head)
                    piece, head = head, b""
                plain_hash.update(piece)
                yield piece
            if info is None:
                info = parse_wav_header(head)
                plain_hash.update(head)
                if head:
                    yield head

        async def ciphertext() -> AsyncIterator[bytes]:
            async for piece in encrypt_stream(
                data_key, checked_plaintext(), aad=sealed_aad(ref, RECORDING, "audio")
            ):
                cipher_hash.update(piece)
                yield piece

        blob_key = f"recordings/{ref.hex[:2]}/{ref}/{uuid.uuid4()}.wav.enc"
        await self.blobs.put_stream(blob_key, ciphertext())
        assert info is not None
        sha256 = plain_hash.hexdigest()

        async with self.sessionmaker() as session, session.begin():
            # The key is held until the artifact row is in: a retention sweep of this contact's recordings
            # either waits and removes this one too, or went first, and then the upload is refused.
            if not await self.keystore.get(session, {(ref, RECORDING)}, hold=True):
                await self.blobs.delete(blob_key)
                raise ApiError(
                    409,
                    "The recordings of this contact were deleted",
                    [FieldError("body", "the recordings of this contact were deleted during the upload")],
                )
            existing = await session.scalar(
                select(Artifact)
                .where(Artifact.contact_ref == ref, Artifact.artifact_class == RECORDING)
                .with_for_update()
            )
            if existing is not None and existing.blob_key is not None:
                await self.blobs.delete(blob_key)
                if existing.sha256 == sha256:
                    return existing, False
                raise ApiError(
                    409,
                    "A different recording is already stored for this contact",
                    [FieldError("body", "a different recording is already stored for this contact")],
                )
            values = {
                "register": contact.register,
                "first_at": contact.started_at,
                "last_at": contact.ended_at or contact.started_at,
                "status": "active",
                "blob_key": blob_key,
                "content_type": content_type,
                "size_bytes": received,
                "duration_ms": info.duration_ms(received),
                "sha256": sha256,
                "ciphertext_sha256": cipher_hash.hexdigest(),
            }
            stmt = insert(Artifact).values(contact_ref=ref, artifact_class=RECORDING, **values)
            artifact = await session.scalar(
                stmt.on_conflict_do_update(
                    index_elements=[Artifact.contact_ref, Artifact.artifact_class], set_=values
                ).returning(Artifact)
            )
            assert artifact is not None
            if audit is not None:
                await audit(session)
            return artifact, True

    async def recording_of(self, session: AsyncSession, contact: Contact) -> tuple[Artifact, bytes]:
        artifact = await session.scalar(
            select(Artifact).where(
                Artifact.contact_ref == contact.contact_ref, Artifact.artifact_class == RECORDING
            )
        )
        if artifact is None or artifact.blob_key is None:
            raise ApiError.field(
                404, "recording", "this contact has no recording", title="Recording not found"
            )
        keys = await self.keystore.get(session, {(contact.contact_ref, RECORDING)})
        key = keys.get((contact.contact_ref, RECORDING))
        if key is None or artifact.status != "active":
            raise ApiError.field(
                410, "recording", "the recording has been deleted", title="Recording deleted"
            )
        return artifact, key

    def stream(self, artifact: Artifact, key: bytes) -> AsyncIterator[bytes]:
        assert artifact.blob_key is not None
        return decrypt_stream(
            key,
            self.blobs.open_stream(artifact.blob_key),
            aad=sealed_aad(artifact.contact_ref, RECORDING, "audio"),
        )

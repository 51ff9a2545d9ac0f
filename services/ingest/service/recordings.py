"""Call recordings: streamed in, checked as WAV, hashed and encrypted on the fly, stored as a blob; streamed out.

The audio is never held whole in memory nor written anywhere in clear: it is encrypted chunk by chunk under the
contact's data key for the `recording` class, so destroying that key shreds the blob too.

An upload opens its own transactions instead of working in a route's session: the data key is committed before
the audio streams in (the upload may take minutes, and no transaction should stay open that long), and the
artifact row and its audit entry are committed together once the blob is stored.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.service.contacts import ContactService
from shared.app import Caller
from shared.audit.chain import Action
from shared.contracts.vocabulary import ArtifactClass
from shared.contracts.wav import HEADER_PROBE_BYTES, NotWav, WavInfo, read_wav_header
from shared.platform.crypto import encrypt_stream
from shared.platform.errors import ApiError, FieldError
from shared.recordstore.contacts import StoredContact, recording_of, stream_recording
from shared.recordstore.keystore import KeyStore
from shared.recordstore.store import StoredArtifact, lock_recording, put_recording, sealed_part_aad
from shared.storage.blobstore import BlobStore

RECORDING = ArtifactClass.RECORDING.value


@dataclass(frozen=True)
class Upload:
    """A stored upload: the contact, its recording, and whether this upload stored it (else it was there)."""

    contact: StoredContact
    artifact: StoredArtifact
    created: bool


class RecordingService:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        contacts: ContactService,
        keystore: KeyStore,
        blobs: BlobStore,
        max_bytes: int,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.contacts = contacts
        self.keystore = keystore
        self.blobs = blobs
        self.max_bytes = max_bytes

    def check_declared_size(self, declared: int | None) -> None:
        """Refuse at once an upload whose declared length is already too large."""
        if declared is not None and declared > self.max_bytes:
            raise ApiError.field(413, "body", f"recording exceeds {self.max_bytes} bytes", title="Too large")

    async def upload(
        self,
        caller: Caller,
        *,
        contact_id: str,
        register: str | None,
        body: AsyncIterator[bytes],
        content_type: str,
    ) -> Upload:
        """Store the recording of a contact already known from its events, in a register that keeps
        recordings. The same recording again is `created=False`; a different one is refused with 409."""
        async with self.sessionmaker() as session:
            contact = await self.contacts.find(session, contact_id=contact_id, register=register)
        policy = self.contacts.policies.version_at(contact.register, contact.started_at)
        if policy is None or policy.retention_for(RECORDING) is None:
            raise ApiError.field(422, "register", f"register {contact.register} keeps no recordings")
        artifact, created = await self.store(contact, body, content_type=content_type, caller=caller)
        return Upload(contact, artifact, created)

    async def store(
        self,
        contact: StoredContact,
        body: AsyncIterator[bytes],
        *,
        content_type: str,
        caller: Caller | None = None,
    ) -> tuple[StoredArtifact, bool]:
        """Encrypt and store the upload; returns the artifact and whether it was newly created.

        A new recording is audited as the `caller`'s in the transaction that makes it known, so one never exists
        without the other."""
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
                data_key, checked_plaintext(), aad=sealed_part_aad(ref, RECORDING, "audio")
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
            existing = await lock_recording(session, ref)
            if existing is not None and existing.blob_key is not None:
                await self.blobs.delete(blob_key)
                if existing.sha256 == sha256:
                    return existing, False
                raise ApiError(
                    409,
                    "A different recording is already stored for this contact",
                    [FieldError("body", "a different recording is already stored for this contact")],
                )
            artifact = await put_recording(
                session,
                ref,
                register=contact.register,
                first_at=contact.started_at,
                last_at=contact.ended_at or contact.started_at,
                blob_key=blob_key,
                content_type=content_type,
                size_bytes=received,
                duration_ms=info.duration_ms(received),
                sha256=sha256,
                ciphertext_sha256=cipher_hash.hexdigest(),
            )
            if caller is not None:
                await caller.audit(session, Action.CREATE, "recording", [ref])
            return artifact, True

    async def listen(
        self, session: AsyncSession, caller: Caller, *, contact_id: str, register: str | None
    ) -> tuple[StoredArtifact, AsyncIterator[bytes]]:
        """A reader's listen: the recording and its audio, decrypted as it is read. The listen is audited in
        `session` before a byte is sent; a refusal is audited too (see ContactService.find_for_reader)."""
        contact = await self.contacts.find_for_reader(
            session, caller, contact_id=contact_id, register=register, action=Action.LISTEN
        )
        artifact, key = await recording_of(session, self.keystore, contact.contact_ref)
        if artifact is None or artifact.blob_key is None:
            raise ApiError.field(
                404, "recording", "this contact has no recording", title="Recording not found"
            )
        if key is None or artifact.status != "active":
            raise ApiError.field(
                410, "recording", "the recording has been deleted", title="Recording deleted"
            )
        await caller.audit(session, Action.LISTEN, "recording", [contact.contact_ref])
        return artifact, stream_recording(self.blobs, artifact, key)


def parse_wav_header(head: bytes) -> WavInfo:
    """Check the RIFF/WAVE header; raises ApiError(415) naming what is missing if this is not a WAV file."""
    try:
        return read_wav_header(head)
    except NotWav as exc:
        raise ApiError.field(415, "body", str(exc), title="Unsupported audio") from None

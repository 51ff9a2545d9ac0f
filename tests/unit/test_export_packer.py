"""The loan package's two packing threads (services.export.packer) on a real file blob store: the output is the
ZIP of the manifest and the recordings, encrypted and hashed as it goes; a recording that is gone, tampered
with or not the upload stops the package with that error; and a consumer that gives up stops every stage."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import os
import uuid
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest

from services.export.packer import pack
from shared.platform.crypto import DecryptionError, decrypt_stream, encrypt_stream
from shared.recordstore.models import sealed_aad
from shared.recordstore.recordings import RecordingCheck, RecordingIntegrityError, RecordingStream
from shared.storage.blobstore import BlobNotFound, FileBlobStore

AAD = b"sailo-loan-package:test"
MODIFIED = datetime(2026, 11, 24, 9, tzinfo=UTC)


async def pieces(data: bytes, size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def stored(store: FileBlobStore, audio: bytes) -> tuple[str, bytes, bytes]:
    """Store `audio` as ingest does (under a contact's data key); its blob key, data key and associated data."""
    contact = uuid.uuid4()
    key, aad, blob_key = os.urandom(32), sealed_aad(contact, "recording", "audio"), f"recordings/{contact}"
    await store.put_stream(blob_key, encrypt_stream(key, pieces(audio), aad=aad))
    return blob_key, key, aad


def recording(store: FileBlobStore, blob_key: str, key: bytes, aad: bytes, audio: bytes) -> RecordingStream:
    return RecordingStream.of_blob(
        store,
        blob_key,
        key,
        aad=aad,
        content_type="audio/wav",
        size_bytes=len(audio),
        sha256=hashlib.sha256(audio).hexdigest(),
        duration_ms=None,
    )


async def packed(members: list[tuple[str, RecordingStream]], key: bytes, digest: hashlib._Hash) -> bytes:
    output = pack(
        manifest_name="manifest.json",
        manifest=b'{"items": []}',
        members=members,
        package_key=key,
        aad=AAD,
        digest=digest,
        modified=MODIFIED,
        comment="Sailo research loan",
    )
    try:
        return b"".join([piece async for piece in output])
    finally:
        await output.aclose()


@pytest.fixture
def store(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


async def test_the_package_is_the_encrypted_zip_of_the_manifest_and_every_recording(
    store: FileBlobStore,
) -> None:
    audios = [os.urandom(size) for size in (3_000_000, 1, 0, 65_536, 200_000)]
    members = []
    for number, audio in enumerate(audios):
        members.append((f"recordings/{number}.wav", recording(store, *await stored(store, audio), audio)))
    key, digest = os.urandom(32), hashlib.sha256()
    package = await packed(members, key, digest)
    assert digest.hexdigest() == hashlib.sha256(package).hexdigest()
    opened = b"".join([piece async for piece in decrypt_stream(key, pieces(package, 70_000), aad=AAD)])
    with zipfile.ZipFile(io.BytesIO(opened)) as archive:
        assert archive.testzip() is None
        assert archive.read("manifest.json") == b'{"items": []}'
        assert [archive.read(f"recordings/{n}.wav") for n in range(len(audios))] == audios


async def test_blob_pieces_of_any_size_make_the_same_package(store: FileBlobStore) -> None:
    # The file store reads 1 MiB at a time, which the lanes' buffers are sized for; another store may hand out
    # larger pieces, or odd ones.
    audio = os.urandom(3_500_000)
    blob_key, key, aad = await stored(store, audio)
    blob = (store.root / blob_key).read_bytes()

    def in_pieces(size: int) -> RecordingStream:
        async def ciphertext() -> AsyncIterator[bytes]:
            for start in range(0, len(blob), size):
                yield blob[start : start + size]

        sha256 = hashlib.sha256(audio).hexdigest()
        return RecordingStream(
            content_type="audio/wav",
            size_bytes=len(audio),
            sha256=sha256,
            duration_ms=None,
            chunks=ciphertext(),
            ciphertext=ciphertext(),
            open_file=None,  # read through the event loop, as from S3
            _check=partial(RecordingCheck, key, aad=aad, size_bytes=len(audio), sha256=sha256),
        )

    package_key = os.urandom(32)
    package = await packed(
        [("a.wav", in_pieces(3_000_001)), ("b.wav", in_pieces(70_001)), ("c.wav", in_pieces(777))],
        package_key,
        hashlib.sha256(),
    )
    opened = b"".join([piece async for piece in decrypt_stream(package_key, pieces(package), aad=AAD)])
    with zipfile.ZipFile(io.BytesIO(opened)) as archive:
        assert archive.testzip() is None
        assert [archive.read(name) for name in ("a.wav", "b.wav", "c.wav")] == [audio] * 3


async def test_recordings_read_in_the_lane_and_through_the_event_loop_keep_their_order(
    store: FileBlobStore,
) -> None:
    # The file store's blobs are read by the recording lane itself; a store that can only stream (S3) hands its
    # pieces over from the event loop. One package may hold both, in the members' order.
    audios = [os.urandom(size) for size in (2_200_000, 10, 1_300_000, 0)]
    members = []
    for number, audio in enumerate(audios):
        member = recording(store, *await stored(store, audio), audio)
        assert member.open_file is not None
        if number % 2:
            member = dataclasses.replace(member, open_file=None)
        members.append((f"{number}.wav", member))
    package_key = os.urandom(32)
    package = await packed(members, package_key, hashlib.sha256())
    opened = b"".join([piece async for piece in decrypt_stream(package_key, pieces(package), aad=AAD)])
    with zipfile.ZipFile(io.BytesIO(opened)) as archive:
        assert archive.testzip() is None
        assert [archive.read(f"{n}.wav") for n in range(len(audios))] == audios


async def test_a_tampered_recording_stops_the_package(store: FileBlobStore) -> None:
    audio = os.urandom(2_500_000)
    blob_key, key, aad = await stored(store, audio)
    path = store.root / blob_key
    damaged = bytearray(path.read_bytes())
    damaged[1_500_000] ^= 1
    path.write_bytes(bytes(damaged))
    with pytest.raises(DecryptionError):
        await packed(
            [("recordings/a.wav", recording(store, blob_key, key, aad, audio))],
            os.urandom(32),
            hashlib.sha256(),
        )


async def test_a_recording_that_is_not_the_upload_stops_the_package(store: FileBlobStore) -> None:
    audio = os.urandom(1_000_000)
    blob_key, key, aad = await stored(store, audio)
    other = audio[:-1] + bytes([audio[-1] ^ 1])  # what the row says was uploaded differs in one byte
    with pytest.raises(RecordingIntegrityError):
        await packed(
            [("recordings/a.wav", recording(store, blob_key, key, aad, other))],
            os.urandom(32),
            hashlib.sha256(),
        )


async def test_a_recording_deleted_meanwhile_stops_the_package(store: FileBlobStore) -> None:
    first, second = os.urandom(3_000_000), os.urandom(3_000_000)
    kept = await stored(store, first)
    gone = await stored(store, second)
    members = [
        ("recordings/a.wav", recording(store, *kept, first)),
        ("recordings/b.wav", recording(store, *gone, second)),
    ]
    await store.delete(gone[0])
    with pytest.raises(BlobNotFound):
        await packed(members, os.urandom(32), hashlib.sha256())


async def test_a_consumer_that_gives_up_stops_every_stage(store: FileBlobStore) -> None:
    audio = os.urandom(8_000_000)  # more than the queues between the stages hold
    members = [
        (f"recordings/{n}.wav", recording(store, *await stored(store, audio), audio)) for n in range(3)
    ]
    output = pack(
        manifest_name="manifest.json",
        manifest=b"{}",
        members=members,
        package_key=os.urandom(32),
        aad=AAD,
        digest=hashlib.sha256(),
        modified=MODIFIED,
        comment="",
    )
    await anext(output)  # the stages are running and soon waiting for room
    # A hang guard, not a timing check: closing must end the stages instead of leaving them waiting.
    await asyncio.wait_for(output.aclose(), timeout=60)
    running = {task.get_name() for task in asyncio.all_tasks()}
    assert not running & {"loan-package-read", "loan-package-recordings", "loan-package-encrypt"}

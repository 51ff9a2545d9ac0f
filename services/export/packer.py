"""The loan package's bytes, made by two worker threads of its own while the event loop only moves the blobs.

Packaging decrypts every recording, checks it against its upload (SHA-256), zips it (CRC-32), encrypts the ZIP
under the loan's key and hashes the result (SHA-256): five passes over the audio. Done as a chain of async
generators these take turns, and every piece crosses the event loop several times. Here they run in two
threads side by side, which on two cores is about twice as fast:

- the *recording* lane decrypts and checks each recording and zips it (services' `RecordingCheck`,
  shared.ziparchive.ZipWriter);
- the *package* lane encrypts and hashes the ZIP (shared.crypto.PieceEncryptor).

The event loop reads each recording's blob into the first lane and takes the second lane's ciphertext to the
blob store; both stores stay async, so this works for the file store and S3 alike. AES-GCM, SHA-256 and the
CRC release the GIL, so the loop stays responsive meanwhile. Every queue between the stages is bounded (about
`_DEPTH` pieces of 1 MiB each), so a package of any size takes a few megabytes of memory.

An error in any stage (a blob gone, a recording that does not authenticate, a failed write) stops all of them
and is raised to the caller; nothing is left running.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncGenerator, Awaitable, Sequence
from datetime import datetime
from typing import Final

from shared.crypto import Hash, PieceEncryptor
from shared.recordings import RecordingStream
from shared.ziparchive import ZipWriter

__all__ = ["pack"]

_DEPTH: Final = 4
_POLL_SECONDS: Final = 0.1
"""How often a waiting lane looks whether the package was abandoned."""


_END_OF_MEMBER: Final = object()
_END: Final = object()


class _Abandoned(Exception):
    """The package was given up elsewhere; a lane that sees this just stops."""


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


async def pack(
    *,
    manifest_name: str,
    manifest: bytes,
    members: Sequence[tuple[str, RecordingStream]],
    package_key: bytes,
    aad: bytes,
    digest: Hash,
    modified: datetime,
    comment: str,
) -> AsyncGenerator[bytes, None]:
    """The encrypted package: a ZIP of the manifest (deflated) and each member's recording (stored, in order),
    encrypted under `package_key` with `aad`; `digest` is updated with every byte yielded.

    Whatever a stage raises (BlobNotFound, DecryptionError, RecordingIntegrityError) is raised here. The
    output is complete only when this generator ends without an exception.
    """
    loop = asyncio.get_running_loop()
    abandoned = threading.Event()
    ciphertexts: queue.Queue[object] = queue.Queue(_DEPTH)
    zipped: queue.Queue[object] = queue.Queue(_DEPTH)
    sealed: asyncio.Queue[object] = asyncio.Queue(_DEPTH)

    def emit(item: object) -> None:
        # From the package lane to the event loop; waits while the blob store is behind. Once the package is
        # abandoned the loop drains the queue, so a put waiting for room always ends.
        if abandoned.is_set():
            raise _Abandoned
        asyncio.run_coroutine_threadsafe(sealed.put(item), loop).result()

    def recording_lane() -> None:
        writer = ZipWriter(modified=modified, comment=comment)
        _put(zipped, writer.add_bytes(manifest_name, manifest), abandoned)
        for name, recording in members:
            check = recording.check()
            _put(zipped, writer.start_member(name, recording.size_bytes), abandoned)
            while (piece := _get(ciphertexts, abandoned)) is not _END_OF_MEMBER:
                assert isinstance(piece, bytes)
                plaintext = check.update(piece)
                if plaintext:
                    _put(zipped, writer.add_piece(plaintext), abandoned)
            last = check.finish()
            if last:
                _put(zipped, writer.add_piece(last), abandoned)
            _put(zipped, writer.end_member(), abandoned)
        _put(zipped, writer.finish(), abandoned)
        _put(zipped, _END, abandoned)

    def package_lane() -> None:
        encryptor = PieceEncryptor(package_key, aad=aad, digest=digest)
        emit(encryptor.header())
        while (piece := _get(zipped, abandoned)) is not _END:
            assert isinstance(piece, bytes)
            out = encryptor.update(piece)
            if out:
                emit(out)
        emit(encryptor.finish())
        emit(_END)

    async def read_blobs() -> None:
        for _, recording in members:
            async for piece in recording.ciphertext:
                await _put_from_loop(ciphertexts, piece, abandoned)
            await _put_from_loop(ciphertexts, _END_OF_MEMBER, abandoned)

    async def guarded(stage: Awaitable[None]) -> None:
        # A stage that fails passes its error down the line, to the loop's queue, and stops the others.
        try:
            await stage
        except _Abandoned:
            pass
        except BaseException as exc:
            abandoned.set()
            if sealed.full():  # of pieces nobody will write now: the error takes the oldest one's place
                sealed.get_nowait()
            sealed.put_nowait(_Failed(exc))
            if not isinstance(exc, Exception):
                raise

    tasks = [
        asyncio.create_task(guarded(read_blobs()), name="loan-package-read"),
        asyncio.create_task(guarded(asyncio.to_thread(recording_lane)), name="loan-package-recordings"),
        asyncio.create_task(guarded(asyncio.to_thread(package_lane)), name="loan-package-encrypt"),
    ]
    try:
        while (item := await sealed.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            assert isinstance(item, bytes)
            yield item
    finally:
        abandoned.set()
        stopped = asyncio.gather(*tasks, return_exceptions=True)
        while not stopped.done():
            while not sealed.empty():  # lets a lane waiting to hand on a piece see that it is abandoned
                sealed.get_nowait()
            await asyncio.wait({stopped}, timeout=_POLL_SECONDS)


async def _put_from_loop(channel: queue.Queue[object], item: object, abandoned: threading.Event) -> None:
    try:
        channel.put_nowait(item)
    except queue.Full:  # the recording lane is behind: wait for room in a thread, not on the loop
        await asyncio.to_thread(_put, channel, item, abandoned)


def _put(channel: queue.Queue[object], item: object, abandoned: threading.Event) -> None:
    while not abandoned.is_set():
        try:
            channel.put(item, timeout=_POLL_SECONDS)
            return
        except queue.Full:
            continue
    raise _Abandoned


def _get(channel: queue.Queue[object], abandoned: threading.Event) -> object:
    while not abandoned.is_set():
        try:
            return channel.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            continue
    raise _Abandoned

"""The loan package's bytes, made by two worker threads of its own while the event loop only moves the blobs.

Packaging decrypts every recording, checks it against its upload (SHA-256), zips it (CRC-32), encrypts the ZIP
under the loan's key and hashes the result (SHA-256): five passes over the audio. Done as a chain of async
generators these take turns, and every piece crosses the event loop several times. Here they run in two
threads side by side:

- the *recording* lane decrypts and checks each recording and zips it (shared.recordstore.recordings.RecordingCheck,
  shared.storage.ziparchive.ZipWriter);
- the *package* lane encrypts and hashes the ZIP (shared.platform.crypto.EvenPieceEncryptor).

The recording lane reads each recording's blob itself where the blob store is local (the file store), into
one reused buffer; from any other store (S3) the event loop reads the blob and hands the lane its pieces. The
event loop takes the package lane's ciphertext to the blob store, whichever store it is.

Two threads only beat one on two cores if they keep out of each other's way, and every hand-over between
threads costs a wake-up that is dear in a virtual machine (bench.export measures it against a plain copy):

- The heavy calls run without the GIL: SHA-256, the CRC, and AES-GCM, which releases it only when it writes
  into a buffer it is given (`update_into`, EvenPieceEncryptor), not when it returns new bytes.
- Little fresh memory: every page of a new large object costs a page fault and zeroing, several times what
  AES-GCM takes for the same bytes. The recording lane decrypts into a few buffers that the package lane hands
  back once it has encrypted them; the package lane's output comes in pieces of one size (2 MiB, which the
  blob store writes in one go), whose memory the allocator can mostly reuse.
- No round trips: the stages meet in `_Channel`s, where handing on a piece wakes the other side only if it
  waits, and never waits for the event loop's reply. ZIP headers travel with the next piece of audio.

Every channel is bounded (`_DEPTH` items of 1 or 2 MiB), so a package of any size takes some 20 MiB of memory.
An error in any stage (a blob gone, a recording that does not authenticate, a failed write) stops all of them
and is raised to the caller; nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Generator, Sequence
from datetime import datetime
from typing import Final, NamedTuple

from shared.platform.crypto import EvenPieceEncryptor, Hash
from shared.recordstore.recordings import RecordingStream
from shared.storage.blobstore import READ_CHUNK_SIZE
from shared.storage.ziparchive import ZipWriter

__all__ = ["pack"]

_DEPTH: Final = 4
_BUFFERS: Final = _DEPTH + 2
"""Plaintext buffers: enough for a full channel, one being filled and one being encrypted."""
_BUFFER_SIZE: Final = READ_CHUNK_SIZE
"""A piece of ciphertext as the file store reads them decrypts to at most as many bytes."""
_PIECE_FRAMES: Final = 32
"""Encrypted frames in each piece of output: 2 MiB, so the blob store writes it in one go."""
_POLL_SECONDS: Final = 0.1
"""How often a waiting lane looks whether the package was abandoned, should it miss being woken."""


_END_OF_MEMBER: Final = object()
_END: Final = object()


class _Abandoned(Exception):
    """The package was given up elsewhere; a lane that sees this just stops."""


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Zipped(NamedTuple):
    """What the recording lane hands the package lane: a piece of the ZIP."""

    before: list[bytes]
    """Headers and descriptors, which are small: they travel with the next piece of audio."""
    audio: memoryview | None
    """Decrypted audio, in `buffer`."""
    buffer: bytearray | None
    """To hand back to the recording lane once `audio` is encrypted."""


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
    ciphertexts = _Channel(_DEPTH, loop, abandoned)
    zipped = _Channel(_DEPTH, loop, abandoned)
    sealed = _Channel(_DEPTH, loop, abandoned)
    free = _Channel(_BUFFERS, loop, abandoned)
    for _ in range(_BUFFERS):
        free.put(bytearray(_BUFFER_SIZE))
    # The recording lane's, for blobs it reads itself: each piece is decrypted before the next is read.
    read_buffer = bytearray(READ_CHUNK_SIZE)

    def give_up() -> None:
        # On the loop. Every stage waiting on a channel wakes up, sees this and stops.
        abandoned.set()
        for channel in (ciphertexts, zipped, sealed, free):
            channel.wake_all()

    def recording_lane() -> None:
        writer = ZipWriter(modified=modified, comment=comment)
        before = [writer.add_bytes(manifest_name, manifest)]
        for name, recording in members:
            check = recording.check()
            before.append(writer.start_member(name, recording.size_bytes))
            # Closed at once if a piece fails, so the blob's file is not left open until the error is dropped.
            with contextlib.closing(ciphertext_of(recording)) as ciphertext:
                for piece in ciphertext:
                    buffer = free.get()
                    assert isinstance(buffer, bytearray)
                    needed = check.plaintext_size(len(piece))
                    if len(buffer) < needed:  # from a store that reads larger pieces than the file store
                        buffer = bytearray(needed)
                    audio = check.update_into(piece, buffer)
                    if audio:
                        zipped.put(_Zipped(before, writer.add_piece(audio), buffer))
                        before = []
                    else:
                        free.put(buffer)
            last = check.finish()
            if last:
                before.append(writer.add_piece(last))
            before.append(writer.end_member())
        before.append(writer.finish())
        zipped.put(_Zipped(before, None, None))
        zipped.put(_END)

    def ciphertext_of(recording: RecordingStream) -> Generator[bytes | memoryview, None, None]:
        if recording.open_file is None:  # read_blobs hands its pieces over
            while (piece := ciphertexts.get()) is not _END_OF_MEMBER:
                assert isinstance(piece, bytes)
                yield piece
            return
        with recording.open_file() as blob:
            while read := blob.readinto(read_buffer):
                if abandoned.is_set():
                    raise _Abandoned
                yield memoryview(read_buffer)[:read]

    def package_lane() -> None:
        encryptor = EvenPieceEncryptor(package_key, aad=aad, digest=digest, piece_frames=_PIECE_FRAMES)
        sealed.put([encryptor.header()])
        while (item := zipped.get()) is not _END:
            assert isinstance(item, _Zipped)
            out: list[bytes] = []
            for part in item.before:
                out += encryptor.update(part)
            if item.audio is not None:
                out += encryptor.update(item.audio)
                free.put(item.buffer)  # the encryptor keeps nothing of it
            if out:
                sealed.put(out)
        sealed.put([encryptor.finish()])
        sealed.put(_END)

    async def read_blobs() -> None:
        for _, recording in members:
            if recording.open_file is not None:  # the recording lane reads it
                continue
            async for piece in recording.ciphertext:
                await ciphertexts.aput(piece)
            await ciphertexts.aput(_END_OF_MEMBER)

    async def guarded(stage: Awaitable[None]) -> None:
        # A stage that fails passes its error on to the loop, in place of the pieces nobody will write now, and
        # stops the others.
        try:
            await stage
        except _Abandoned:
            pass
        except BaseException as exc:
            sealed.fail(exc)
            give_up()
            if not isinstance(exc, Exception):
                raise

    tasks = [
        asyncio.create_task(guarded(read_blobs()), name="loan-package-read"),
        asyncio.create_task(guarded(asyncio.to_thread(recording_lane)), name="loan-package-recordings"),
        asyncio.create_task(guarded(asyncio.to_thread(package_lane)), name="loan-package-encrypt"),
    ]
    try:
        while (item := await sealed.aget()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            assert isinstance(item, list)
            for piece in item:
                yield piece
    finally:
        give_up()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Channel:
    """A bounded FIFO between two stages: the lanes call `put` and `get` from their threads, the event loop
    `aput` and `aget`.

    Unlike a queue.Queue reached from the loop through asyncio.to_thread or run_coroutine_threadsafe, a piece
    costs no round trip through the loop: a thread wakes the loop only when it waits on this channel, and the
    loop wakes a thread through a condition variable.
    """

    def __init__(self, depth: int, loop: asyncio.AbstractEventLoop, abandoned: threading.Event) -> None:
        self._items: deque[object] = deque()
        self._depth = depth
        self._lock = threading.Lock()
        self._readable = threading.Condition(self._lock)
        self._writable = threading.Condition(self._lock)
        self._loop = loop
        self._loop_waiter: asyncio.Future[None] | None = None
        self._abandoned = abandoned

    def put(self, item: object) -> None:
        with self._lock:
            while len(self._items) >= self._depth:
                self._wait(self._writable)
            self._items.append(item)
            self._readable.notify()
            self._wake_loop()

    def get(self) -> object:
        with self._lock:
            while not self._items:
                self._wait(self._readable)
            item = self._items.popleft()
            self._writable.notify()
            self._wake_loop()
            return item

    async def aput(self, item: object) -> None:
        while True:
            with self._lock:
                if self._abandoned.is_set():
                    raise _Abandoned
                if len(self._items) < self._depth:
                    self._items.append(item)
                    self._readable.notify()
                    return
                waiter = self._loop_waiter = self._loop.create_future()
            await waiter

    async def aget(self) -> object:
        while True:
            with self._lock:
                if self._items:  # before looking at `abandoned`: a failure comes as an item
                    item = self._items.popleft()
                    self._writable.notify()
                    return item
                if self._abandoned.is_set():
                    raise _Abandoned
                waiter = self._loop_waiter = self._loop.create_future()
            await waiter

    def fail(self, error: BaseException) -> None:
        """On the loop: `error` replaces whatever waits to be taken."""
        with self._lock:
            self._items.clear()
            self._items.append(_Failed(error))
            self._readable.notify()
            waiter, self._loop_waiter = self._loop_waiter, None
        _resolve(waiter)

    def wake_all(self) -> None:
        """On the loop: every waiter looks again (whether the package was abandoned)."""
        with self._lock:
            self._readable.notify_all()
            self._writable.notify_all()
            waiter, self._loop_waiter = self._loop_waiter, None
        _resolve(waiter)

    def _wait(self, condition: threading.Condition) -> None:
        # The lock is held. The timeout is a safety net: abandoning wakes every waiter.
        if self._abandoned.is_set():
            raise _Abandoned
        condition.wait(_POLL_SECONDS)

    def _wake_loop(self) -> None:
        # The lock is held, in a lane's thread.
        waiter, self._loop_waiter = self._loop_waiter, None
        if waiter is not None:
            self._loop.call_soon_threadsafe(_resolve, waiter)


def _resolve(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)

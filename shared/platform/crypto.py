"""Encryption of personal data at rest: envelope encryption, blind indexes and streaming encryption.

Key hierarchy (crypto-shredding):

* A key-encryption key (KEK), held outside the database, wraps one random data key per contact
  (:func:`wrap_data_key`). The wrap's ``context`` binds the wrapped key to its contact.
* The data key seals that contact's field values and documents (:func:`seal`) and encrypts its audio in
  chunks (:class:`StreamEncryptor`, :func:`encrypt_stream`).
* Destroying the wrapped data key makes every ciphertext of the contact unreadable, including copies left in
  backups and blob-store replicas that cannot be deleted one by one.

:class:`BlindIndex` gives keyed, deterministic digests for equality look-ups and pseudonymous ids, so neither
the database nor the logs hold the value itself.

Every ciphertext starts with a one-byte format version so the format can evolve without guessing. Every
failure to decrypt raises :class:`DecryptionError` with a fixed message: nothing derived from plaintext or
keys ever reaches an exception, a log line or a traceback.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "CHUNK_SIZE",
    "KEY_SIZE",
    "TAG_SIZE",
    "BlindIndex",
    "DecryptionError",
    "EvenPieceEncryptor",
    "PieceDecryptor",
    "PieceEncryptor",
    "StreamDecryptor",
    "StreamEncryptor",
    "ciphertext_size",
    "decrypt_stream",
    "encrypt_stream",
    "generate_data_key",
    "open_sealed",
    "seal",
    "unwrap_data_key",
    "wrap_data_key",
]

KEY_SIZE = 32
"""Bytes in every key this module takes: AES-256 keys, the KEK and the blind-index key."""
TAG_SIZE = 16
"""Bytes of GCM authentication tag added to every ciphertext and stream chunk."""
CHUNK_SIZE = 64 * 1024
"""Plaintext bytes per stream chunk; every chunk but the final one has exactly this size."""
OFFLOAD_BYTES = 512 * 1024
"""Once this many bytes of a stream wait, they are en- or decrypted in a worker thread, frames at a time."""

_VERSION = 1
_NONCE_SIZE = 12
_SEALED_OVERHEAD = 1 + _NONCE_SIZE + TAG_SIZE

# Prefixed to the caller's associated data so a ciphertext made for one purpose never authenticates as
# another, even if a caller mixes up keys. The labels are fixed and none is a prefix of another, so
# label + caller data cannot collide across purposes.
_WRAP_LABEL = b"sailo:wrap:v1\x00"
_SEAL_LABEL = b"sailo:seal:v1\x00"
_STREAM_LABEL = b"sailo:stream:v1\x00"

_STREAM_PREFIX_SIZE = 7
_STREAM_HEADER_SIZE = 1 + _STREAM_PREFIX_SIZE
_STREAM_FRAME_SIZE = CHUNK_SIZE + TAG_SIZE
_STREAM_MAX_CHUNKS = 2**32  # the nonce's 4-byte counter; 256 TiB of plaintext

_CHUNK_FAILED = "stream chunk failed authentication (wrong key, wrong aad, reordered, truncated or tampered)"

_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")

_Bytes = bytes | bytearray | memoryview
_Writable = bytearray | memoryview


class KeyUnavailable(Exception):
    """The data key was destroyed (the data expired or was erased) or never existed."""


class DecryptionError(Exception):
    """A ciphertext could not be decrypted or authenticated.

    Raised for a wrong key, wrong context/aad, any tampering, truncation, reordering, appended data or an
    unknown format version. The message is one of a few fixed strings and never contains plaintext,
    ciphertext or key material, so it is safe to log.
    """


def _aesgcm(key: bytes) -> AESGCM:
    # AESGCM also accepts 128- and 192-bit keys; insisting on 32 bytes turns a truncated or mis-decoded key
    # into an error instead of a silent downgrade. ValueError, not DecryptionError: a programming error.
    if len(key) != KEY_SIZE:
        raise ValueError(f"key must be {KEY_SIZE} bytes, got {len(key)}")
    return AESGCM(key)


def _seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    # Random 96-bit nonces stay safe up to about 2**32 messages per key (NIST SP 800-38D). A data key seals a
    # handful of values of one contact and the KEK wraps one key per contact: both far below that bound.
    nonce = os.urandom(_NONCE_SIZE)
    return bytes([_VERSION]) + nonce + _aesgcm(key).encrypt(nonce, plaintext, associated_data)


def _open(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    aead = _aesgcm(key)
    if len(sealed) < _SEALED_OVERHEAD:
        raise DecryptionError("ciphertext is truncated")
    if sealed[0] != _VERSION:
        raise DecryptionError("unknown ciphertext format version")
    try:
        return aead.decrypt(sealed[1 : 1 + _NONCE_SIZE], sealed[1 + _NONCE_SIZE :], associated_data)
    except InvalidTag:
        # "from None": InvalidTag carries nothing useful and would only lengthen tracebacks.
        raise DecryptionError(
            "ciphertext failed authentication (wrong key, wrong context or tampered)"
        ) from None


def generate_data_key() -> bytes:
    """Return a new random 256-bit data key from the operating system's CSPRNG."""
    return os.urandom(KEY_SIZE)


def data_key_id(data_key: bytes) -> str:
    """A short public fingerprint of a data key (HMAC under the key itself, so it reveals nothing of it).

    A copy of an event sealed under a key that was destroyed and then created afresh (data arriving again
    after its class was shredded) fails authentication under the new key just as tampered data would; the
    fingerprint it carries tells the two apart.
    """
    return hmac.new(data_key, b"sailo data key id", hashlib.sha256).hexdigest()[:16]


def wrap_data_key(kek: bytes, data_key: bytes, *, context: bytes) -> bytes:
    """Encrypt ``data_key`` under ``kek`` with AES-256-GCM: ``version(1) | nonce(12) | ciphertext+tag``.

    ``context`` is authenticated, not encrypted. Pass what identifies the key's owner (e.g. contact id and
    retention class) so a wrapped key cannot be moved onto another contact's row.
    """
    if len(data_key) != KEY_SIZE:
        raise ValueError(f"data key must be {KEY_SIZE} bytes, got {len(data_key)}")
    return _seal(kek, data_key, _WRAP_LABEL + context)


def unwrap_data_key(kek: bytes, wrapped: bytes, *, context: bytes) -> bytes:
    """Decrypt a key made by :func:`wrap_data_key`; :class:`DecryptionError` unless kek and context match."""
    return _open(kek, wrapped, _WRAP_LABEL + context)


def seal(data_key: bytes, plaintext: bytes, *, aad: bytes) -> bytes:
    """Encrypt a field value or document: ``version(1) | nonce(12) | ciphertext+tag``.

    ``aad`` is authenticated, not encrypted; use it to bind the value to where it is stored (e.g. contact id
    and field name) so ciphertexts cannot be swapped between fields or rows.
    """
    return _seal(data_key, plaintext, _SEAL_LABEL + aad)


def open_sealed(data_key: bytes, sealed: bytes, *, aad: bytes) -> bytes:
    """Decrypt a value made by :func:`seal`; raise :class:`DecryptionError` unless key and aad match."""
    return _open(data_key, sealed, _SEAL_LABEL + aad)


class BlindIndex:
    """Keyed HMAC-SHA256 digests of personal data, for equality look-ups and pseudonymous identifiers.

    Without the key the digests cannot be brute-forced from the small spaces phone numbers and emails live
    in. Every HMAC message starts with a purpose label ending in NUL (and kinds cannot contain NUL), so a
    digest, a pseudonym and a content fingerprint never collide with one another.
    """

    __slots__ = ("_mac",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"blind index key must be {KEY_SIZE} bytes, got {len(key)}")
        # Keyed once; copy() per call reuses the precomputed HMAC pads.
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def _hmac(self, *message: bytes) -> bytes:
        mac = self._mac.copy()
        for part in message:
            mac.update(part)
        return mac.digest()

    def digest(self, kind: str, normalised_value: str) -> bytes:
        """Return the 32-byte blind index of ``normalised_value`` as a ``kind`` such as ``"phone"``.

        The kind is mixed in, so one string indexed as two kinds gives unrelated digests. ``kind`` must be a
        short lower-case ascii identifier (``[a-z][a-z0-9_]{0,31}``); anything else raises ValueError. Callers
        normalise the value first: the digest is only as good as that normalisation.
        """
        # The error leaves the kind out: a caller who swapped the arguments would log a personal value.
        if not _KIND.fullmatch(kind):
            raise ValueError("kind must be a short lower-case ascii identifier")
        return self._hmac(b"digest\x00", kind.encode("ascii"), b"\x00", normalised_value.encode())

    def pseudonym(self, *parts: str) -> uuid.UUID:
        """Return a deterministic keyed UUID for ``parts``, a pseudonymous id for logs and certificates.

        It is the first 16 bytes of an HMAC over the length-prefixed parts (so ``("ab", "c")`` and
        ``("a", "bc")`` differ), with the RFC 9562 variant bits and **version 8** ("custom") set: the id is
        not random, and claiming version 4 would mislead anyone reading it. Without the key it cannot be
        linked back to the parts.
        """
        if not parts:
            raise ValueError("pseudonym needs at least one part")
        message = [b"pseudonym\x00"]
        for part in parts:
            encoded = part.encode()
            message += (len(encoded).to_bytes(4, "big"), encoded)
        raw = bytearray(self._hmac(*message)[:16])
        raw[6] = (raw[6] & 0x0F) | 0x80  # version 8
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122/9562 variant
        return uuid.UUID(bytes=bytes(raw))

    def content_digest(self, data: bytes) -> str:
        """Return a hex HMAC of ``data``: an idempotency fingerprint revealing nothing of the content."""
        return self._hmac(b"content\x00", data).hex()


def _stream_nonce(prefix: bytes, counter: int, final: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


class StreamEncryptor:
    """Encrypts one stream (an audio recording) chunk by chunk with AES-256-GCM.

    Write :meth:`header` first, then each :meth:`encrypt_chunk` output in order. This is the STREAM
    construction (Hoang, Reyhanitabar, Rogaway and Vizár, 2015; also used by Tink): the nonce of chunk *i* is
    ``prefix(7, random, in the header) | i(4, big-endian) | final(1, 0x01 on the last chunk, else 0x00)``.
    The counter pins every chunk to its position, so reordered or dropped chunks fail to authenticate; the
    final flag means a stream cut at a chunk boundary has no final chunk and fails too.

    Every chunk but the last holds exactly :data:`CHUNK_SIZE` plaintext bytes; the last holds at most that and
    may be empty. Each encrypted chunk is its plaintext plus a :data:`TAG_SIZE`-byte tag.
    """

    HEADER_SIZE = _STREAM_HEADER_SIZE

    def __init__(self, data_key: bytes, *, aad: bytes) -> None:
        self._aead = _aesgcm(data_key)
        # A fresh random prefix per stream keeps nonces unique when one data key encrypts several streams;
        # 56 bits make a collision negligible for the few recordings that share a contact's key.
        self._prefix = os.urandom(_STREAM_PREFIX_SIZE)
        self._aad = _STREAM_LABEL + aad
        self._counter = 0
        self._finished = False

    def header(self) -> bytes:
        """Return the stream header, ``version(1) | nonce prefix(7)``, to be written before the chunks."""
        return bytes([_VERSION]) + self._prefix

    def encrypt_chunk(self, chunk: _Bytes, *, final: bool) -> bytes:
        """Encrypt the next chunk; ``final=True`` on the last one, after which the encryptor refuses more."""
        nonce = self._nonce(len(chunk), final)
        ciphertext = self._aead.encrypt(nonce, chunk, self._aad)
        self._advance(final)
        return ciphertext

    def encrypt_chunk_into(self, chunk: _Bytes, out: _Writable, *, final: bool) -> None:
        """:meth:`encrypt_chunk`, writing the encrypted chunk into `out` (exactly ``len(chunk) + TAG_SIZE`` bytes).

        Unlike :meth:`encrypt_chunk`, AES-GCM then runs without holding the GIL, and it writes to memory the
        caller can reuse instead of to a new object's fresh pages.
        """
        nonce = self._nonce(len(chunk), final)
        self._aead.encrypt_into(nonce, chunk, self._aad, out)
        self._advance(final)

    def _nonce(self, size: int, final: bool) -> bytes:
        if self._finished:
            raise ValueError("the stream already has its final chunk")
        if size > CHUNK_SIZE or (not final and size != CHUNK_SIZE):
            raise ValueError(f"chunks hold exactly {CHUNK_SIZE} bytes, only the final one may hold fewer")
        if self._counter >= _STREAM_MAX_CHUNKS:
            raise OverflowError("stream has too many chunks for the nonce counter")
        return _stream_nonce(self._prefix, self._counter, final)

    def _advance(self, final: bool) -> None:
        self._counter += 1
        self._finished = final


class StreamDecryptor:
    """Decrypts a stream made by :class:`StreamEncryptor`, chunk by chunk and in order.

    Pass the :attr:`HEADER_SIZE`-byte header to :meth:`read_header`, then each encrypted chunk to
    :meth:`decrypt_chunk`, saying which one is the last. Plaintext of earlier chunks is authentic, but the
    stream is only known to be complete once the final chunk has decrypted (:attr:`finished`).
    """

    HEADER_SIZE = _STREAM_HEADER_SIZE

    def __init__(self, data_key: bytes, *, aad: bytes) -> None:
        self._aead = _aesgcm(data_key)
        self._aad = _STREAM_LABEL + aad
        self._prefix: bytes | None = None
        self._counter = 0
        self._finished = False

    @property
    def finished(self) -> bool:
        """True once the final chunk has been decrypted and authenticated."""
        return self._finished

    def read_header(self, header: bytes) -> None:
        """Take the stream header; :class:`DecryptionError` if it is malformed or of an unknown version."""
        if len(header) != self.HEADER_SIZE:
            raise DecryptionError("stream header has the wrong size")
        if header[0] != _VERSION:
            raise DecryptionError("unknown stream format version")
        self._prefix = bytes(header[1:])

    def decrypt_chunk(self, chunk: _Bytes, *, final: bool) -> bytes:
        """Decrypt the next chunk; raise :class:`DecryptionError` on tampering, reordering or truncation."""
        nonce = self._nonce(len(chunk), final)
        try:
            plaintext = self._aead.decrypt(nonce, chunk, self._aad)
        except InvalidTag:
            raise DecryptionError(_CHUNK_FAILED) from None
        self._advance(final)
        return plaintext

    def decrypt_chunk_into(self, chunk: _Bytes, out: _Writable, *, final: bool) -> None:
        """:meth:`decrypt_chunk`, writing the plaintext into `out` (exactly ``len(chunk) - TAG_SIZE`` bytes).

        Unlike :meth:`decrypt_chunk`, AES-GCM then runs without holding the GIL, and it writes to memory the
        caller can reuse instead of to a new object's fresh pages. AES-GCM writes the plaintext before it checks
        the tag, so on :class:`DecryptionError` `out` has been zeroed: nothing unauthenticated is left in it.
        """
        nonce = self._nonce(len(chunk), final)
        try:
            self._aead.decrypt_into(nonce, chunk, self._aad, out)
        except InvalidTag:
            view = memoryview(out)
            view[:] = bytes(len(view))
            raise DecryptionError(_CHUNK_FAILED) from None
        self._advance(final)

    def _nonce(self, size: int, final: bool) -> bytes:
        if self._prefix is None:
            raise ValueError("read_header() must be called before decrypt_chunk()")
        if self._finished:
            raise DecryptionError("stream has data after its final chunk")
        if not TAG_SIZE <= size <= _STREAM_FRAME_SIZE or (not final and size != _STREAM_FRAME_SIZE):
            raise DecryptionError("stream chunk has the wrong size")
        if self._counter >= _STREAM_MAX_CHUNKS:
            raise DecryptionError("stream has too many chunks")
        return _stream_nonce(self._prefix, self._counter, final)

    def _advance(self, final: bool) -> None:
        self._counter += 1
        self._finished = final


class Hash(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...


class _NoDigest:
    def update(self, data: bytes | memoryview, /) -> None:
        pass


class _Frames:
    """Cuts a stream's pieces into frames of `frame_size` bytes.

    Every whole frame is handed out as a view into its piece, so nothing is copied but the frame that spans from
    one piece into the next and the bytes held over for it (each less than a frame). Nothing of a piece is kept
    once :meth:`split` returns, so the caller may reuse a buffer it passed in as soon as it is done with the
    frames.
    """

    def __init__(self, frame_size: int, *, hold_back: bool) -> None:
        self._frame_size = frame_size
        # Decryption holds back one whole frame: a frame is only known not to be the final one once more bytes
        # follow it.
        self._hold_back = hold_back
        self._held = bytearray()

    @property
    def waiting(self) -> int:
        return len(self._held)

    def count(self, size: int) -> int:
        """How many whole frames :meth:`split` hands out for a piece of `size` bytes."""
        total = len(self._held) + size
        if self._hold_back:
            return max(total - 1, 0) // self._frame_size
        return total // self._frame_size

    def split(self, piece: _Bytes) -> list[_Bytes]:
        """The frames `piece` completes (often none); what is left of it is held for the next piece."""
        count = self.count(len(piece))
        if not count:
            self._held += piece
            return []
        view = memoryview(piece)
        size = self._frame_size
        frames: list[_Bytes] = []
        start = 0
        if self._held:
            start = size - len(self._held)
            frames.append(self._held + view[:start])
        while len(frames) < count:
            frames.append(view[start : start + size])
            start += size
        self._held = bytearray(view[start:])
        return frames

    def rest(self) -> bytes:
        """What is left once the input has ended: the final frame's bytes."""
        return bytes(self._held)


class PieceEncryptor:
    """Encrypts a stream given in pieces of any size, in the format of :func:`encrypt_stream`, synchronously:
    for a worker thread that carries a whole stream (SHA-256 releases the GIL meanwhile; for AES-GCM to release
    it too, see :class:`EvenPieceEncryptor`).

    Write :meth:`header`, then what :meth:`update` returns for each piece, then :meth:`finish`. `digest`, if
    given, is updated with all of it.
    """

    def __init__(self, data_key: bytes, *, aad: bytes, digest: Hash | None = None) -> None:
        self._encryptor = StreamEncryptor(data_key, aad=aad)
        self._digest = digest or _NoDigest()
        self._frames = _Frames(CHUNK_SIZE, hold_back=False)

    @property
    def waiting(self) -> int:
        """Input bytes held until a frame is whole."""
        return self._frames.waiting

    def header(self) -> bytes:
        header = self._encryptor.header()
        self._digest.update(header)
        return header

    def update(self, piece: bytes | memoryview) -> bytes:
        """The encrypted frames `piece` completes, joined (often empty)."""
        frames = self._frames.split(piece)
        if not frames:
            return b""
        output = b"".join([self._encryptor.encrypt_chunk(frame, final=False) for frame in frames])
        self._digest.update(output)
        return output

    def finish(self) -> bytes:
        last = self._encryptor.encrypt_chunk(self._frames.rest(), final=True)
        self._digest.update(last)
        return last


class EvenPieceEncryptor:
    """:class:`PieceEncryptor`'s stream, handed out in pieces of one size: `piece_frames` encrypted frames each,
    the last piece shorter. For a worker thread that encrypts much and shares the process with other busy ones.

    Every frame is encrypted straight into one reused buffer, so AES-GCM runs without holding the GIL; each full
    buffer is hashed (also without the GIL) and copied out once, as bytes the consumer may keep. As those copies
    all have the same size, the memory allocator can give each one the memory of one freed earlier, instead of
    fresh pages that the kernel must fault in and zero first.
    """

    def __init__(
        self, data_key: bytes, *, aad: bytes, digest: Hash | None = None, piece_frames: int = 16
    ) -> None:
        self._encryptor = StreamEncryptor(data_key, aad=aad)
        self._digest = digest or _NoDigest()
        self._frames = _Frames(CHUNK_SIZE, hold_back=False)
        self._buffer = memoryview(bytearray(piece_frames * _STREAM_FRAME_SIZE))
        self._filled = 0

    def header(self) -> bytes:
        header = self._encryptor.header()
        self._digest.update(header)
        return header

    def update(self, piece: _Bytes) -> list[bytes]:
        """The pieces of ciphertext that `piece` completes (often none). Nothing of `piece` is kept once this
        returns: a caller may reuse the buffer it passed in."""
        pieces = []
        for frame in self._frames.split(piece):
            end = self._filled + _STREAM_FRAME_SIZE
            self._encryptor.encrypt_chunk_into(frame, self._buffer[self._filled : end], final=False)
            self._filled = end
            if end == len(self._buffer):
                pieces.append(self._take())
        return pieces

    def finish(self) -> bytes:
        """The last piece: the frames not handed out yet and the final one."""
        rest = self._frames.rest()
        # Room for the final frame (shorter than a whole one) is always left: a full buffer is taken at once.
        end = self._filled + len(rest) + TAG_SIZE
        self._encryptor.encrypt_chunk_into(rest, self._buffer[self._filled : end], final=True)
        self._filled = end
        return self._take()

    def _take(self) -> bytes:
        filled = self._buffer[: self._filled]
        self._digest.update(filled)
        self._filled = 0
        return bytes(filled)


class PieceDecryptor:
    """Decrypts a stream made by :func:`encrypt_stream`, given in pieces of any size, synchronously.

    :meth:`update` returns the plaintext of every chunk the piece completes, :meth:`finish` the last; it raises
    :class:`DecryptionError` as :func:`decrypt_stream` does. `digest`, if given, is updated with the plaintext.
    :meth:`update_into` is :meth:`update` for a worker thread that reuses its buffers.
    """

    def __init__(self, data_key: bytes, *, aad: bytes, digest: Hash | None = None) -> None:
        self._decryptor = StreamDecryptor(data_key, aad=aad)
        self._digest = digest or _NoDigest()
        self._frames = _Frames(_STREAM_FRAME_SIZE, hold_back=True)
        self._header = b""

    @property
    def waiting(self) -> int:
        """Input bytes held until a frame is whole (and known not to be the last)."""
        return self._frames.waiting

    def update(self, piece: bytes | memoryview) -> bytes:
        frames = self._frames.split(self._after_header(piece))
        if not frames:
            return b""
        plaintext = b"".join([self._decryptor.decrypt_chunk(frame, final=False) for frame in frames])
        self._digest.update(plaintext)
        return plaintext

    def plaintext_size(self, piece_size: int) -> int:
        """How many bytes :meth:`update_into` writes for a piece of `piece_size` bytes."""
        header_missing = StreamDecryptor.HEADER_SIZE - len(self._header)
        return self._frames.count(max(piece_size - header_missing, 0)) * CHUNK_SIZE

    def update_into(self, piece: _Bytes, buffer: _Writable) -> memoryview:
        """:meth:`update`, writing the plaintext into `buffer` (at least :meth:`plaintext_size` bytes); returns the
        part of `buffer` written.

        AES-GCM then runs without holding the GIL, and writes to memory already in use instead of to fresh pages.
        Nothing of `piece` is kept once this returns. If it raises, what `buffer` holds must not be used.
        """
        out = memoryview(buffer)
        if len(out) < self.plaintext_size(len(piece)):
            raise ValueError("the buffer is too small for the piece's plaintext")
        frames = self._frames.split(self._after_header(piece))
        for index, frame in enumerate(frames):
            start = index * CHUNK_SIZE
            self._decryptor.decrypt_chunk_into(frame, out[start : start + CHUNK_SIZE], final=False)
        plaintext = out[: len(frames) * CHUNK_SIZE]
        self._digest.update(plaintext)
        return plaintext

    def finish(self) -> bytes:
        if len(self._header) < StreamDecryptor.HEADER_SIZE:
            raise DecryptionError("stream is shorter than its header")
        # What is left is the final frame; if the real final chunk was cut off, this fails the final-flag check.
        last = self._decryptor.decrypt_chunk(self._frames.rest(), final=True)
        self._digest.update(last)
        return last

    def _after_header(self, piece: _Bytes) -> _Bytes:
        """What follows the stream header in `piece`, once the header is read."""
        if len(self._header) < StreamDecryptor.HEADER_SIZE:
            missing = StreamDecryptor.HEADER_SIZE - len(self._header)
            self._header += bytes(piece[:missing])
            piece = memoryview(piece)[missing:]  # no copy of the rest
            if len(self._header) < StreamDecryptor.HEADER_SIZE:
                return b""
            self._decryptor.read_header(self._header)
        return piece


async def encrypt_stream(
    data_key: bytes, chunks: AsyncIterator[bytes], *, aad: bytes, digest: Hash | None = None
) -> AsyncIterator[bytes]:
    """Encrypt pieces of any size; yield the header, then the encrypted chunks, one per :data:`CHUNK_SIZE`
    bytes, gathered into pieces of about the input's size.

    The last chunk carries the final flag and holds the remainder, so it is empty when the input is empty or
    a multiple of :data:`CHUNK_SIZE` (full chunks are never final: the input's end is only known afterwards).
    The total output length is :func:`ciphertext_size` of the input length. `digest`, if given, is updated
    with every byte yielded. Once :data:`OFFLOAD_BYTES` wait, they are encrypted in a worker thread.
    """
    encryptor = PieceEncryptor(data_key, aad=aad, digest=digest)
    yield encryptor.header()
    async for piece in chunks:
        sealed = await _step(encryptor.update, encryptor.waiting, piece)
        if sealed:
            yield sealed
    yield encryptor.finish()


async def decrypt_stream(
    data_key: bytes, chunks: AsyncIterator[bytes], *, aad: bytes, digest: Hash | None = None
) -> AsyncIterator[bytes]:
    """Decrypt a stream made by :func:`encrypt_stream`, given as pieces of any size; yield the plaintext in
    pieces of about the input's size.

    Raises :class:`DecryptionError` on any tampering, reordering, truncation or appended data, including a
    stream that ends without its final chunk. Pieces already yielded are authentic, but the plaintext is only
    complete once the generator finishes without error: consumers must not commit partial output before.
    `digest`, if given, is updated with every byte yielded.
    """
    decryptor = PieceDecryptor(data_key, aad=aad, digest=digest)
    async for piece in chunks:
        opened = await _step(decryptor.update, decryptor.waiting, piece)
        if opened:
            yield opened
    yield decryptor.finish()


async def _step(update: Callable[[bytes], bytes], waiting: int, piece: bytes) -> bytes:
    # Large amounts in a worker thread, so the event loop (and the other stages of a pipeline) go on meanwhile.
    if waiting + len(piece) >= OFFLOAD_BYTES:
        return await asyncio.to_thread(update, piece)
    return update(piece)


def ciphertext_size(plaintext_size: int) -> int:
    """Return the exact length of :func:`encrypt_stream`'s output for ``plaintext_size`` bytes of input."""
    if plaintext_size < 0:
        raise ValueError("plaintext size cannot be negative")
    chunk_count = plaintext_size // CHUNK_SIZE + 1  # the full chunks plus the final, possibly empty, one
    return _STREAM_HEADER_SIZE + plaintext_size + TAG_SIZE * chunk_count

"""Unit tests for shared.platform.crypto: envelope encryption, blind indexes and streaming encryption."""

from __future__ import annotations

import hashlib
import json
import os
import random
import uuid
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.platform.crypto import (
    CHUNK_SIZE,
    TAG_SIZE,
    BlindIndex,
    DecryptionError,
    EvenPieceEncryptor,
    PieceDecryptor,
    StreamDecryptor,
    StreamEncryptor,
    ciphertext_size,
    decrypt_stream,
    encrypt_stream,
    generate_data_key,
    open_sealed,
    seal,
    unwrap_data_key,
    wrap_data_key,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
AAD = b"contact:6f1c;class:complaint"
FRAME = CHUNK_SIZE + TAG_SIZE
HEADER = StreamDecryptor.HEADER_SIZE
SECRET = b"Matti Meikalainen 010190-123X"


async def _pieces(data: bytes, sizes: Sequence[int] = (4096,)) -> AsyncIterator[bytes]:
    """Yield ``data`` cut into pieces whose sizes cycle through ``sizes`` (0 gives empty pieces)."""
    position, index = 0, 0
    while position < len(data):
        size = sizes[index % len(sizes)]
        yield data[position : position + size]
        position, index = position + size, index + 1


async def _encrypt(
    data: bytes, *, key: bytes = KEY, aad: bytes = AAD, sizes: Sequence[int] = (4096,)
) -> bytes:
    return b"".join([piece async for piece in encrypt_stream(key, _pieces(data, sizes), aad=aad)])


async def _decrypt(
    data: bytes, *, key: bytes = KEY, aad: bytes = AAD, sizes: Sequence[int] = (4096,)
) -> bytes:
    return b"".join([piece async for piece in decrypt_stream(key, _pieces(data, sizes), aad=aad)])


def _split(ciphertext: bytes) -> tuple[bytes, list[bytes]]:
    body = ciphertext[HEADER:]
    return ciphertext[:HEADER], [body[i : i + FRAME] for i in range(0, len(body), FRAME)]


def _flip(data: bytes, bit: int) -> bytes:
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


# --- envelope encryption ---------------------------------------------------------------------------------


def test_generate_data_key_is_random_256_bit() -> None:
    keys = {generate_data_key() for _ in range(8)}
    assert len(keys) == 8
    assert all(len(key) == 32 for key in keys)


def test_wrap_round_trip_and_format() -> None:
    data_key = generate_data_key()
    wrapped = wrap_data_key(KEY, data_key, context=AAD)
    assert wrapped[0] == 1
    assert len(wrapped) == 1 + 12 + 32 + 16
    assert unwrap_data_key(KEY, wrapped, context=AAD) == data_key
    assert wrap_data_key(KEY, data_key, context=AAD) != wrapped  # fresh nonce every time


@pytest.mark.parametrize(
    ("kek", "context"), [(OTHER_KEY, AAD), (KEY, b"contact:other;class:complaint"), (KEY, b"")]
)
def test_unwrap_rejects_wrong_kek_or_context(kek: bytes, context: bytes) -> None:
    wrapped = wrap_data_key(KEY, generate_data_key(), context=AAD)
    with pytest.raises(DecryptionError):
        unwrap_data_key(kek, wrapped, context=context)


def test_bad_key_lengths_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        wrap_data_key(KEY[:16], generate_data_key(), context=AAD)
    with pytest.raises(ValueError, match="32 bytes"):
        wrap_data_key(KEY, KEY[:31], context=AAD)
    with pytest.raises(ValueError, match="32 bytes"):
        seal(KEY + b"x", b"value", aad=AAD)


@pytest.mark.parametrize(
    "plaintext",
    [b"", b"x", json.dumps({"name": "Matti", "phone": "+358401234567"}).encode(), os.urandom(100_000)],
)
def test_seal_round_trip(plaintext: bytes) -> None:
    sealed = seal(KEY, plaintext, aad=AAD)
    assert sealed[0] == 1
    assert len(sealed) == 1 + 12 + len(plaintext) + 16
    assert open_sealed(KEY, sealed, aad=AAD) == plaintext


@pytest.mark.parametrize(("key", "aad"), [(OTHER_KEY, AAD), (KEY, AAD + b"x"), (KEY, b"")])
def test_open_sealed_rejects_wrong_key_or_aad(key: bytes, aad: bytes) -> None:
    with pytest.raises(DecryptionError):
        open_sealed(key, seal(KEY, SECRET, aad=AAD), aad=aad)


def test_a_flipped_bit_anywhere_fails() -> None:
    sealed = seal(KEY, SECRET, aad=AAD)
    wrapped = wrap_data_key(KEY, OTHER_KEY, context=AAD)
    for bit in range(len(sealed) * 8):
        with pytest.raises(DecryptionError):
            open_sealed(KEY, _flip(sealed, bit), aad=AAD)
    for bit in range(len(wrapped) * 8):
        with pytest.raises(DecryptionError):
            unwrap_data_key(KEY, _flip(wrapped, bit), context=AAD)


def test_truncated_extended_or_unknown_version_fails() -> None:
    sealed = seal(KEY, SECRET, aad=AAD)
    for length in range(len(sealed)):
        with pytest.raises(DecryptionError):
            open_sealed(KEY, sealed[:length], aad=AAD)
    with pytest.raises(DecryptionError):
        open_sealed(KEY, sealed + b"\x00", aad=AAD)
    with pytest.raises(DecryptionError, match="version"):
        open_sealed(KEY, b"\x02" + sealed[1:], aad=AAD)


def test_sealed_values_and_wrapped_keys_are_not_interchangeable() -> None:
    # Even with the same key and associated data, a value sealed as a field never unwraps as a data key.
    with pytest.raises(DecryptionError):
        unwrap_data_key(KEY, seal(KEY, OTHER_KEY, aad=AAD), context=AAD)
    with pytest.raises(DecryptionError):
        open_sealed(KEY, wrap_data_key(KEY, OTHER_KEY, context=AAD), aad=AAD)


async def test_decryption_error_message_contains_no_plaintext_or_key() -> None:
    sealed = seal(KEY, SECRET, aad=AAD)
    stream = await _encrypt(SECRET)
    failures = [
        lambda: open_sealed(OTHER_KEY, sealed, aad=AAD),
        lambda: open_sealed(KEY, sealed, aad=SECRET),
        lambda: open_sealed(KEY, sealed[:20], aad=AAD),
        lambda: open_sealed(KEY, _flip(sealed, 100), aad=AAD),
        lambda: unwrap_data_key(KEY, wrap_data_key(KEY, OTHER_KEY, context=AAD), context=SECRET),
    ]
    errors = []
    for failure in failures:
        with pytest.raises(DecryptionError) as caught:
            failure()
        errors.append(caught.value)
    with pytest.raises(DecryptionError) as caught:
        await _decrypt(stream, key=OTHER_KEY)
    errors.append(caught.value)
    forbidden = [
        SECRET.decode(),
        repr(SECRET),
        SECRET.hex(),
        KEY.hex(),
        repr(KEY),
        OTHER_KEY.hex(),
        repr(OTHER_KEY),
    ]
    for error in errors:
        shown = f"{error} {error!r} {error.args!r}"
        assert not [secret for secret in forbidden if secret in shown]
        # Nothing chained either: a traceback shows only the fixed message.
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__


# --- blind index -----------------------------------------------------------------------------------------


def test_digest_is_deterministic_and_keyed() -> None:
    digest = BlindIndex(KEY).digest("phone", "+358401234567")
    assert len(digest) == 32
    assert BlindIndex(KEY).digest("phone", "+358401234567") == digest
    assert BlindIndex(OTHER_KEY).digest("phone", "+358401234567") != digest
    assert BlindIndex(KEY).digest("phone", "+358401234568") != digest


def test_digest_is_domain_separated_by_kind() -> None:
    index = BlindIndex(KEY)
    assert index.digest("phone", "matti@example.fi") != index.digest("email", "matti@example.fi")
    # The kind/value boundary is unambiguous too.
    assert index.digest("phone", "x") != index.digest("phonex", "")


@pytest.mark.parametrize("kind", ["", "Phone", "phone number", "pühelin", "1phone", "a\x00b", "k" * 33])
def test_digest_rejects_bad_kind(kind: str) -> None:
    with pytest.raises(ValueError, match="kind") as caught:
        BlindIndex(KEY).digest(kind, "+358401234567")
    assert "+358401234567" not in str(caught.value)


def test_blind_index_rejects_short_key() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        BlindIndex(KEY[:16])


def test_pseudonym_is_deterministic_keyed_version_8() -> None:
    pseudonym = BlindIndex(KEY).pseudonym("contact", "6f1c")
    assert isinstance(pseudonym, uuid.UUID)
    assert pseudonym.version == 8
    assert pseudonym.variant == uuid.RFC_4122
    assert BlindIndex(KEY).pseudonym("contact", "6f1c") == pseudonym
    assert BlindIndex(OTHER_KEY).pseudonym("contact", "6f1c") != pseudonym


def test_pseudonym_parts_are_unambiguous() -> None:
    index = BlindIndex(KEY)
    ids = {
        index.pseudonym("ab", "c"),
        index.pseudonym("a", "bc"),
        index.pseudonym("abc"),
        index.pseudonym("abc", ""),
    }
    assert len(ids) == 4
    with pytest.raises(ValueError):
        index.pseudonym()


def test_content_digest_is_keyed_hex_and_separated_from_digest() -> None:
    fingerprint = BlindIndex(KEY).content_digest(b"audio bytes")
    assert len(fingerprint) == 64
    assert int(fingerprint, 16) >= 0
    assert BlindIndex(KEY).content_digest(b"audio bytes") == fingerprint
    assert BlindIndex(OTHER_KEY).content_digest(b"audio bytes") != fingerprint
    assert BlindIndex(KEY).content_digest(b"audio bytez") != fingerprint


# --- streaming encryption --------------------------------------------------------------------------------


def test_ciphertext_size() -> None:
    assert ciphertext_size(0) == HEADER + TAG_SIZE
    assert ciphertext_size(1) == HEADER + 1 + TAG_SIZE
    assert ciphertext_size(CHUNK_SIZE) == HEADER + CHUNK_SIZE + 2 * TAG_SIZE
    assert ciphertext_size(2 * CHUNK_SIZE + 7) == HEADER + 2 * CHUNK_SIZE + 7 + 3 * TAG_SIZE
    with pytest.raises(ValueError):
        ciphertext_size(-1)


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 3 * CHUNK_SIZE + 5]
)
async def test_stream_round_trip(size: int) -> None:
    data = os.urandom(size)
    ciphertext = await _encrypt(data)
    assert len(ciphertext) == ciphertext_size(size)
    assert await _decrypt(ciphertext) == data


async def test_exact_multiple_ends_with_an_empty_final_chunk() -> None:
    _, frames = _split(await _encrypt(os.urandom(2 * CHUNK_SIZE)))
    assert [len(frame) for frame in frames] == [FRAME, FRAME, TAG_SIZE]
    _, frames = _split(await _encrypt(b""))
    assert [len(frame) for frame in frames] == [TAG_SIZE]


@pytest.mark.parametrize(("key", "aad"), [(OTHER_KEY, AAD), (KEY, AAD + b"x")])
async def test_stream_rejects_wrong_key_or_aad(key: bytes, aad: bytes) -> None:
    ciphertext = await _encrypt(os.urandom(CHUNK_SIZE + 10))
    with pytest.raises(DecryptionError):
        await _decrypt(ciphertext, key=key, aad=aad)


def _swap_chunks(header: bytes, frames: list[bytes]) -> bytes:
    return header + frames[1] + frames[0] + b"".join(frames[2:])


def _drop_last_chunk(header: bytes, frames: list[bytes]) -> bytes:
    return header + b"".join(frames[:-1])


def _drop_middle_chunk(header: bytes, frames: list[bytes]) -> bytes:
    return header + frames[0] + b"".join(frames[2:])


def _append_copy_of_last(header: bytes, frames: list[bytes]) -> bytes:
    return header + b"".join(frames) + frames[-1]


def _append_byte(header: bytes, frames: list[bytes]) -> bytes:
    return header + b"".join(frames) + b"\x00"


def _truncate_one_byte(header: bytes, frames: list[bytes]) -> bytes:
    return (header + b"".join(frames))[:-1]


def _truncate_mid_chunk(header: bytes, frames: list[bytes]) -> bytes:
    return header + frames[0][:1000]


def _header_only(header: bytes, frames: list[bytes]) -> bytes:
    return header


def _short_header(header: bytes, frames: list[bytes]) -> bytes:
    return header[:-1]


def _unknown_version(header: bytes, frames: list[bytes]) -> bytes:
    return b"\x02" + header[1:] + b"".join(frames)


@pytest.mark.parametrize(
    "tamper",
    [
        _swap_chunks,
        _drop_last_chunk,
        _drop_middle_chunk,
        _append_copy_of_last,
        _append_byte,
        _truncate_one_byte,
        _truncate_mid_chunk,
        _header_only,
        _short_header,
        _unknown_version,
    ],
)
@pytest.mark.parametrize("size", [3 * CHUNK_SIZE + 100, 3 * CHUNK_SIZE])
async def test_stream_manipulation_fails(tamper: Callable[[bytes, list[bytes]], bytes], size: int) -> None:
    header, frames = _split(await _encrypt(os.urandom(size)))
    with pytest.raises(DecryptionError):
        await _decrypt(tamper(header, frames))


async def test_chunks_cannot_move_between_streams_under_the_same_key() -> None:
    data = os.urandom(2 * CHUNK_SIZE)
    header_a, frames_a = _split(await _encrypt(data))
    _, frames_b = _split(await _encrypt(data))
    with pytest.raises(DecryptionError):
        await _decrypt(header_a + frames_a[0] + frames_b[1] + frames_a[2])


async def test_stream_without_input_pieces_is_not_a_stream() -> None:
    with pytest.raises(DecryptionError):
        await _decrypt(b"")


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=3 * CHUNK_SIZE + 10),
    seed=st.integers(min_value=0, max_value=2**32),
    encrypt_sizes=st.lists(st.integers(min_value=0, max_value=3 * CHUNK_SIZE), min_size=1, max_size=5),
    decrypt_sizes=st.lists(st.integers(min_value=0, max_value=3 * CHUNK_SIZE), min_size=1, max_size=5),
)
async def test_stream_round_trip_property(
    size: int, seed: int, encrypt_sizes: list[int], decrypt_sizes: list[int]
) -> None:
    # The content comes from a seed: hypothesis cannot draw hundreds of kilobytes directly.
    data = random.Random(seed).randbytes(size)
    # A piece size of 0 everywhere would never advance; one positive size is enough.
    encrypt_sizes = [*encrypt_sizes, 1]
    decrypt_sizes = [*decrypt_sizes, 1]
    ciphertext = await _encrypt(data, sizes=encrypt_sizes)
    assert len(ciphertext) == ciphertext_size(size)
    assert await _decrypt(ciphertext, sizes=decrypt_sizes) == data


@settings(max_examples=60, deadline=None)
@given(position=st.data())
async def test_stream_flipped_bit_anywhere_fails(position: st.DataObject) -> None:
    ciphertext = await _encrypt(b"x" * (2 * CHUNK_SIZE + 50))
    # Bias towards the interesting places: header, chunk boundaries and the end, then anywhere.
    boundaries = [0, HEADER - 1, HEADER, HEADER + FRAME - 1, HEADER + FRAME, len(ciphertext) - 1]
    byte = position.draw(
        st.sampled_from(boundaries) | st.integers(min_value=0, max_value=len(ciphertext) - 1)
    )
    bit = position.draw(st.integers(min_value=0, max_value=7))
    with pytest.raises(DecryptionError):
        await _decrypt(_flip(ciphertext, byte * 8 + bit), sizes=(FRAME,))


def test_manual_stream_api() -> None:
    encryptor = StreamEncryptor(KEY, aad=AAD)
    first = encryptor.encrypt_chunk(b"a" * CHUNK_SIZE, final=False)
    last = encryptor.encrypt_chunk(b"b" * CHUNK_SIZE, final=True)  # a full final chunk is allowed by hand
    with pytest.raises(ValueError):
        encryptor.encrypt_chunk(b"", final=True)

    decryptor = StreamDecryptor(KEY, aad=AAD)
    with pytest.raises(ValueError):
        decryptor.decrypt_chunk(first, final=False)
    decryptor.read_header(encryptor.header())
    assert decryptor.decrypt_chunk(first, final=False) == b"a" * CHUNK_SIZE
    assert not decryptor.finished
    with pytest.raises(DecryptionError):
        decryptor.decrypt_chunk(last, final=False)  # the final flag is authenticated
    assert decryptor.decrypt_chunk(last, final=True) == b"b" * CHUNK_SIZE
    assert decryptor.finished
    with pytest.raises(DecryptionError):
        decryptor.decrypt_chunk(last, final=True)


async def test_decrypt_stream_accepts_a_full_final_chunk() -> None:
    # StreamEncryptor allows a full final chunk; decrypt_stream frames it correctly as the last frame.
    encryptor = StreamEncryptor(KEY, aad=AAD)
    header = encryptor.header()
    ciphertext = header + encryptor.encrypt_chunk(b"a" * CHUNK_SIZE, final=False)
    ciphertext += encryptor.encrypt_chunk(b"b" * CHUNK_SIZE, final=True)
    assert await _decrypt(ciphertext, sizes=(FRAME,)) == b"a" * CHUNK_SIZE + b"b" * CHUNK_SIZE


def test_stream_encryptor_rejects_short_non_final_chunks() -> None:
    encryptor = StreamEncryptor(KEY, aad=AAD)
    with pytest.raises(ValueError):
        encryptor.encrypt_chunk(b"short", final=False)
    with pytest.raises(ValueError):
        encryptor.encrypt_chunk(b"x" * (CHUNK_SIZE + 1), final=True)


# --- streams through reused buffers (update_into, EvenPieceEncryptor) ------------------------------------


def _cut(data: bytes, sizes: Sequence[int]) -> list[bytearray]:
    pieces, position, index = [], 0, 0
    while position < len(data):
        size = sizes[index % len(sizes)]
        pieces.append(bytearray(data[position : position + size]))
        position, index = position + size, index + 1
    return pieces


def _decrypt_into(ciphertext: bytes, sizes: Sequence[int]) -> tuple[bytes, str]:
    """The plaintext and its SHA-256, decrypted through one buffer that is scribbled over after every piece, as
    are the pieces themselves: neither may be read again once update_into has returned."""
    digest = hashlib.sha256()
    decryptor = PieceDecryptor(KEY, aad=AAD, digest=digest)
    buffer = bytearray(FRAME)
    plaintext = []
    for piece in _cut(ciphertext, sizes):
        if len(buffer) < decryptor.plaintext_size(len(piece)):
            buffer = bytearray(decryptor.plaintext_size(len(piece)))
        plaintext.append(bytes(decryptor.update_into(piece, buffer)))
        buffer[:] = b"\xff" * len(buffer)
        piece[:] = b"\xff" * len(piece)
    plaintext.append(decryptor.finish())
    return b"".join(plaintext), digest.hexdigest()


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=3 * CHUNK_SIZE + 10),
    seed=st.integers(min_value=0, max_value=2**32),
    sizes=st.lists(st.integers(min_value=0, max_value=3 * CHUNK_SIZE), min_size=1, max_size=5),
)
async def test_update_into_decrypts_like_decrypt_stream(size: int, seed: int, sizes: list[int]) -> None:
    data = random.Random(seed).randbytes(size)
    ciphertext = await _encrypt(data, sizes=(5000,))
    assert _decrypt_into(ciphertext, [*sizes, 1]) == (data, hashlib.sha256(data).hexdigest())


def test_update_into_wants_room_for_the_plaintext() -> None:
    decryptor = PieceDecryptor(KEY, aad=AAD)
    assert decryptor.plaintext_size(HEADER + FRAME) == 0  # the only frame might be the final one
    assert decryptor.plaintext_size(HEADER + 2 * FRAME) == CHUNK_SIZE
    with pytest.raises(ValueError):
        decryptor.update_into(bytes(HEADER + 2 * FRAME), bytearray(CHUNK_SIZE - 1))


async def test_update_into_rejects_tampering_and_leaves_nothing_unauthenticated() -> None:
    data = os.urandom(3 * CHUNK_SIZE)
    ciphertext = _flip(await _encrypt(data), (HEADER + FRAME + 100) * 8)  # in the second chunk
    decryptor = PieceDecryptor(KEY, aad=AAD)
    buffer = bytearray(3 * CHUNK_SIZE)
    with pytest.raises(DecryptionError):
        decryptor.update_into(ciphertext, buffer)
    # AES-GCM wrote the second chunk's plaintext before it checked the tag: it must not stay in the buffer.
    assert buffer[CHUNK_SIZE : 2 * CHUNK_SIZE] == bytes(CHUNK_SIZE)


def test_decrypt_chunk_into_zeroes_its_output_on_failure() -> None:
    encryptor = StreamEncryptor(KEY, aad=AAD)
    chunk = encryptor.encrypt_chunk(SECRET, final=True)
    decryptor = StreamDecryptor(KEY, aad=AAD + b"x")
    decryptor.read_header(encryptor.header())
    out = bytearray(len(SECRET))
    with pytest.raises(DecryptionError):
        decryptor.decrypt_chunk_into(chunk, out, final=True)
    assert out == bytes(len(SECRET))


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=5 * CHUNK_SIZE + 10),
    seed=st.integers(min_value=0, max_value=2**32),
    sizes=st.lists(st.integers(min_value=0, max_value=3 * CHUNK_SIZE), min_size=1, max_size=5),
    piece_frames=st.integers(min_value=1, max_value=3),
)
async def test_even_pieces_are_the_stream_in_pieces_of_one_size(
    size: int, seed: int, sizes: list[int], piece_frames: int
) -> None:
    data = random.Random(seed).randbytes(size)
    digest = hashlib.sha256()
    encryptor = EvenPieceEncryptor(KEY, aad=AAD, digest=digest, piece_frames=piece_frames)
    pieces = [encryptor.header()]
    for piece in _cut(data, [*sizes, 1]):
        pieces += encryptor.update(piece)
        piece[:] = b"\xff" * len(piece)  # nothing of the input may be kept
    pieces.append(encryptor.finish())
    assert all(len(piece) == piece_frames * FRAME for piece in pieces[1:-1])
    assert 0 < len(pieces[-1]) <= piece_frames * FRAME
    ciphertext = b"".join(pieces)
    assert len(ciphertext) == ciphertext_size(size)
    assert digest.hexdigest() == hashlib.sha256(ciphertext).hexdigest()
    assert await _decrypt(ciphertext) == data

"""The streamed ZIP writer (shared.storage.ziparchive): what it writes opens in Python's zipfile and in Info-ZIP's unzip
with every CRC right, in plain and in ZIP64 form, and a streamed member's audio passes through uncopied."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import zipfile
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from shared.storage import ziparchive
from shared.storage.ziparchive import ZipEntry, zip_stream

MODIFIED = datetime(2026, 11, 24, 9, 30, 16)


class Member:
    """Audio in pieces of `piece` bytes; `known=False` leaves its size unannounced, as a stream of unknown
    length would."""

    def __init__(self, data: bytes, *, piece: int = 300_000, known: bool = True) -> None:
        self.data = data
        self.pieces = [data[start : start + piece] for start in range(0, len(data), piece)]
        self.known = known

    @property
    def size_bytes(self) -> int | None:
        return len(self.data) if self.known else None

    async def _pieces(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces()


async def archive(entries: list[ZipEntry], comment: str = "") -> list[bytes]:
    return [piece async for piece in zip_stream(entries, modified=MODIFIED, comment=comment)]


def contents(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as opened:
        assert opened.testzip() is None  # every member's CRC-32 checked
        return {info.filename: opened.read(info) for info in opened.infolist()}


def members(audio: bytes, *, known: bool = True) -> list[ZipEntry]:
    return [
        ("manifest.json", b'{"items": []}' * 50),
        ("recordings/a.wav", Member(audio, known=known)),
        ("recordings/ääni.wav", Member(audio[:1000], piece=100, known=known)),
        ("empty.wav", Member(b"", known=known)),
    ]


@pytest.mark.parametrize("known", [True, False], ids=["sizes announced", "sizes unknown (ZIP64)"])
async def test_an_archive_opens_with_every_member_byte_for_byte(known: bool, tmp_path: Path) -> None:
    audio = os.urandom(2_000_000)
    data = b"".join(await archive(members(audio, known=known), comment="Sailo research loan"))
    assert contents(data) == {
        "manifest.json": b'{"items": []}' * 50,
        "recordings/a.wav": audio,
        "recordings/ääni.wav": audio[:1000],
        "empty.wav": b"",
    }
    with zipfile.ZipFile(io.BytesIO(data)) as opened:
        assert opened.comment == b"Sailo research loan"
        infos = opened.infolist()
        assert {info.date_time for info in infos} == {(2026, 11, 24, 9, 30, 16)}
        assert {info.external_attr >> 16 for info in infos} == {0o100644}
        assert infos[0].compress_type == zipfile.ZIP_DEFLATED
        assert {info.compress_type for info in infos[1:]} == {zipfile.ZIP_STORED}
    if shutil.which("unzip"):
        path = tmp_path / "archive.zip"
        path.write_bytes(data)
        tested = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True, check=False)
        assert tested.returncode == 0, tested.stdout + tested.stderr


async def test_zip64_offsets_and_end_records_open(monkeypatch: pytest.MonkeyPatch) -> None:
    # Gigabytes are too many for a unit test: lowering the thresholds writes every size, offset and the end
    # record in their ZIP64 form, as a package past 4 GiB or 65,535 members would have them.
    monkeypatch.setattr(ziparchive, "_ZIP64_FROM", 1000)
    monkeypatch.setattr(ziparchive, "_ZIP64_COUNT_FROM", 3)
    audio = os.urandom(50_000)
    data = b"".join(await archive(members(audio)))
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data  # the ZIP64 end record and its locator
    assert contents(data)["recordings/a.wav"] == audio
    assert contents(data)["recordings/ääni.wav"] == audio[:1000]


async def test_a_streamed_members_pieces_pass_through_uncopied() -> None:
    audio = Member(os.urandom(1_000_000))
    pieces = await archive([("recordings/a.wav", audio)])
    passed = [piece for piece in pieces if any(piece is original for original in audio.pieces)]
    assert len(passed) == len(audio.pieces)


def test_a_piece_may_be_a_view_of_a_buffer_that_is_reused() -> None:
    # The export packer zips audio it decrypted into a few buffers it reuses: the writer keeps nothing of a piece.
    audio = os.urandom(300_000)
    writer = ziparchive.ZipWriter(modified=MODIFIED)
    parts = [writer.start_member("recordings/a.wav", len(audio))]
    buffer = bytearray(100_000)
    for start in range(0, len(audio), len(buffer)):
        buffer[:] = audio[start : start + len(buffer)]
        view = memoryview(buffer)
        assert writer.add_piece(view) is view
        parts.append(bytes(view))  # written out before the buffer is filled again
    parts += [writer.end_member(), writer.finish()]
    assert contents(b"".join(parts)) == {"recordings/a.wav": audio}


async def test_a_member_shorter_than_announced_leaves_the_archive_unfinished() -> None:
    class Short(Member):
        @property
        def size_bytes(self) -> int | None:
            return len(self.data) + 1

    with pytest.raises(ValueError, match="holds 5000 bytes, not the 5001 announced"):
        await archive([("recordings/a.wav", Short(os.urandom(5000)))])


async def test_an_error_inside_a_member_reaches_the_consumer() -> None:
    class Failing(Member):
        async def _pieces(self) -> AsyncIterator[bytes]:
            yield b"x" * 100_000
            raise OSError("blob store gone")

    with pytest.raises(OSError, match="blob store gone"):
        await archive([("recordings/a.wav", Failing(b"x" * 200_000))])

"""Streaming ZIP writing: an archive produced piece by piece, never whole in memory or on disk.

`zip_stream` turns a list of members into the bytes of one ZIP file, yielded as they are made, so a package can
be encrypted and stored while it is written (the DSR access copy, a research loan's package). A member is either
small bytes (a letter, a manifest: deflated) or a stream of audio (stored as is: PCM hardly compresses, and
storing it costs no CPU). The sizes and CRC-32 of a streamed member follow its data in a data descriptor, as a
streamed archive must have them, and the central directory at the end lists every member with its sizes, so
any unzip tool reads the result (APPNOTE.TXT 6.3, with ZIP64 where a size or offset needs it).

A streamed member's pieces are handed on as the very bytes objects they came in: the archive adds its headers
around them and copies nothing. Their CRC-32 comes from zlib-ng, at several gigabytes a second, so it is taken
on the spot.
"""

from __future__ import annotations

import stat
import struct
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol, TypeVar

from zlib_ng.zlib_ng import crc32

__all__ = ["StreamedMember", "ZipEntry", "ZipWriter", "zip_stream"]


class StreamedMember(Protocol):
    """A member's content as an async stream of bytes, e.g. a decrypted recording (shared.recordstore.recordings)."""

    @property
    def size_bytes(self) -> int | None:
        """The content's length if known beforehand: it decides whether the member needs ZIP64 sizes."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...


ZipEntry = tuple[str, bytes | StreamedMember]
"""A member's name in the archive and its content."""

_Piece = TypeVar("_Piece", bytes, memoryview)

_LOCAL_HEADER: Final = struct.Struct("<IHHHHHIIIHH")
_CENTRAL_HEADER: Final = struct.Struct("<IHHHHHHIIIHHHHHII")
_DESCRIPTOR: Final = struct.Struct("<IIII")
_DESCRIPTOR_64: Final = struct.Struct("<IIQQ")
_END: Final = struct.Struct("<IHHHHIIH")
_END_64: Final = struct.Struct("<IQHHIIQQQQ")
_END_64_LOCATOR: Final = struct.Struct("<IIQI")

_STORED: Final = 0
_DEFLATED: Final = 8
_HAS_DESCRIPTOR: Final = 0x0008  # general purpose flag bit 3: sizes and CRC follow the data
_UTF8_NAME: Final = 0x0800  # bit 11: the name is UTF-8
_VERSION: Final = 20  # 2.0: deflate, data descriptors
_VERSION_64: Final = 45  # 4.5: ZIP64
_MADE_ON_UNIX: Final = 3 << 8
_FULL_4: Final = 0xFFFFFFFF  # a 4-byte field that says "see the ZIP64 record"
_FULL_2: Final = 0xFFFF  # the same for a 2-byte member count
_ZIP64_FROM = _FULL_4  # a size or offset this large needs ZIP64 (lowered in tests, to exercise ZIP64)
_ZIP64_COUNT_FROM = _FULL_2  # as many members as this need the ZIP64 end record
# As Python's zipfile decides: a member whose size is known takes ZIP64 sizes only when it could come near 4 GiB.
_ZIP64_MARGIN: Final = 1.05


@dataclass(slots=True)
class _Written:
    """What the central directory says of a member once it is written."""

    name: bytes
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    offset: int
    zip64_sizes: bool


class ZipWriter:
    """The bytes of one ZIP file, member by member, synchronously: for a worker thread that carries a whole
    archive. `zip_stream` is the same for async code.

    For a bytes member call :meth:`add_bytes`; for a streamed one :meth:`start_member`, :meth:`add_piece` for
    each piece (whose return value is the piece itself: it is written as it is) and :meth:`end_member`; at the
    end :meth:`finish`. Output each call's bytes in order.
    """

    def __init__(self, *, modified: datetime, comment: str = "") -> None:
        self._time = modified.hour << 11 | modified.minute << 5 | modified.second // 2
        self._date = (modified.year - 1980) << 9 | modified.month << 5 | modified.day
        self._comment = comment.encode("utf-8")
        self._written: list[_Written] = []
        self._offset = 0
        self._member: _Written | None = None
        self._announced: int | None = None

    def add_bytes(self, name: str, body: bytes) -> bytes:
        """A small member, deflated: its header and data."""
        encoded = name.encode("utf-8")
        member, data = _deflated(encoded, _flags(encoded), body, self._offset)
        header = _local_header(member, self._time, self._date, descriptor=False)
        self._offset += len(header) + len(data)
        self._written.append(member)
        return header + data

    def start_member(self, name: str, size_bytes: int | None) -> bytes:
        """A streamed member, stored: its header. `size_bytes` is its length if known beforehand."""
        encoded = name.encode("utf-8")
        self._member = _Written(
            name=encoded,
            flags=_flags(encoded) | _HAS_DESCRIPTOR,
            method=_STORED,
            crc=0,
            compressed=0,
            size=0,
            offset=self._offset,
            zip64_sizes=size_bytes is None or size_bytes * _ZIP64_MARGIN > _ZIP64_FROM,
        )
        self._announced = size_bytes
        header = _local_header(self._member, self._time, self._date, descriptor=True)
        self._offset += len(header)
        return header

    def add_piece(self, piece: _Piece) -> _Piece:
        """The piece itself, its CRC taken: it is written as it is. Nothing of it is kept, so a view of a buffer
        that the caller reuses will do."""
        member = self._member
        assert member is not None, "start_member() first"
        member.crc = crc32(piece, member.crc)
        member.size += len(piece)
        return piece

    def end_member(self) -> bytes:
        """The streamed member's data descriptor; ValueError if its length differs from the one announced."""
        member = self._member
        assert member is not None, "start_member() first"
        if self._announced is not None and member.size != self._announced:
            name = member.name.decode("utf-8")
            raise ValueError(
                f"member {name!r} holds {member.size} bytes, not the {self._announced} announced"
            )
        member.compressed = member.size
        descriptor = (
            _DESCRIPTOR_64.pack(0x08074B50, member.crc, member.compressed, member.size)
            if member.zip64_sizes
            else _DESCRIPTOR.pack(0x08074B50, member.crc, member.compressed, member.size)
        )
        self._offset += member.size + len(descriptor)
        self._written.append(member)
        self._member = None
        return descriptor

    def finish(self) -> bytes:
        """The central directory and end records."""
        return _central_directory(self._written, self._time, self._date, self._offset, self._comment)


async def zip_stream(
    entries: Sequence[ZipEntry],
    *,
    modified: datetime,
    comment: str = "",
) -> AsyncGenerator[bytes, None]:
    """The ZIP file of `entries`, in their order, as pieces of bytes.

    `modified` is every member's modification time; ZIP times have no zone, so pass it in the zone the reader
    should see. `comment` is the archive's comment (UTF-8). Bytes members are deflated; streamed members are
    stored, each piece handed on as it comes, uncopied. A streamed member is iterated once, when its turn comes;
    whatever it raises propagates and the archive is left unfinished, so a consumer must treat the output as
    complete only once this generator ends without an exception. The same goes for a member whose length
    differs from its `size_bytes` (ValueError).
    """
    writer = ZipWriter(modified=modified, comment=comment)
    for name, body in entries:
        if isinstance(body, bytes):
            yield writer.add_bytes(name, body)
            continue
        yield writer.start_member(name, body.size_bytes)
        async for piece in body:
            if piece:
                yield writer.add_piece(piece)
        yield writer.end_member()
    yield writer.finish()


def _flags(name: bytes) -> int:
    return 0 if name.isascii() else _UTF8_NAME


def _deflated(name: bytes, flags: int, body: bytes, offset: int) -> tuple[_Written, bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)  # raw deflate, as ZIP stores it
    data = compressor.compress(body) + compressor.flush()
    member = _Written(
        name=name,
        flags=flags,
        method=_DEFLATED,
        crc=zlib.crc32(body),
        compressed=len(data),
        size=len(body),
        offset=offset,
        zip64_sizes=len(body) >= _ZIP64_FROM or len(data) >= _ZIP64_FROM,
    )
    return member, data


def _local_header(member: _Written, time: int, date: int, *, descriptor: bool) -> bytes:
    if member.zip64_sizes:
        # Sizes in the ZIP64 extra field; zero here when a data descriptor gives them after the data.
        extra = struct.pack("<HHQQ", 0x0001, 16, member.size, member.compressed)
        crc, compressed, size, version = member.crc, _FULL_4, _FULL_4, _VERSION_64
    else:
        extra = b""
        crc, compressed, size, version = member.crc, member.compressed, member.size, _VERSION
    return (
        _LOCAL_HEADER.pack(
            0x04034B50,
            version,
            member.flags,
            member.method,
            time,
            date,
            0 if descriptor else crc,
            compressed if not descriptor or member.zip64_sizes else 0,
            size if not descriptor or member.zip64_sizes else 0,
            len(member.name),
            len(extra),
        )
        + member.name
        + extra
    )


def _central_directory(
    members: Sequence[_Written], time: int, date: int, start: int, comment: bytes
) -> bytes:
    records: list[bytes] = []
    for member in members:
        fields: list[int] = []
        size, compressed, offset = member.size, member.compressed, member.offset
        if size >= _ZIP64_FROM or member.zip64_sizes:
            fields.append(size)
            size = _FULL_4
        if compressed >= _ZIP64_FROM or member.zip64_sizes:
            fields.append(compressed)
            compressed = _FULL_4
        if offset >= _ZIP64_FROM:
            fields.append(offset)
            offset = _FULL_4
        extra = struct.pack(f"<HH{len(fields)}Q", 0x0001, 8 * len(fields), *fields) if fields else b""
        version = _VERSION_64 if fields else _VERSION
        records.append(
            _CENTRAL_HEADER.pack(
                0x02014B50,
                _MADE_ON_UNIX | version,
                version,
                member.flags,
                member.method,
                time,
                date,
                member.crc,
                compressed,
                size,
                len(member.name),
                len(extra),
                0,  # comment length
                0,  # disk number
                0,  # internal attributes
                (stat.S_IFREG | 0o644) << 16,  # a plain rw-r--r-- file when unpacked on Unix
                offset,
            )
            + member.name
            + extra
        )
    directory = b"".join(records)
    end = start + len(directory)
    tail = b""
    zip64_end = len(members) >= _ZIP64_COUNT_FROM or start >= _ZIP64_FROM or len(directory) >= _ZIP64_FROM
    if zip64_end:
        tail = _END_64.pack(
            0x06064B50,
            44,  # size of the rest of this record
            _MADE_ON_UNIX | _VERSION_64,
            _VERSION_64,
            0,
            0,
            len(members),
            len(members),
            len(directory),
            start,
        ) + _END_64_LOCATOR.pack(0x07064B50, 0, end, 1)
    return (
        directory
        + tail
        + _END.pack(
            0x06054B50,
            0,
            0,
            _FULL_2 if zip64_end else len(members),
            _FULL_2 if zip64_end else len(members),
            _FULL_4 if zip64_end else len(directory),
            _FULL_4 if zip64_end else start,
            len(comment),
        )
        + comment
    )

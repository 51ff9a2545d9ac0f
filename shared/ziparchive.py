"""Streaming ZIP writing: an archive produced piece by piece, never whole in memory or on disk.

`zip_stream` turns a list of members into the bytes of one ZIP file, yielded as they are made, so a package can
be encrypted and stored while it is written (the DSR access copy, a research loan's package). A member is either
small bytes (a letter, a manifest: deflated) or a stream of audio (stored as is: PCM hardly compresses, and
storing it costs no CPU). Each member's CRC-32 is computed as it passes; the sizes and CRC follow its data in a
data descriptor, as a streamed archive must have them, and the central directory at the end lists every member
with its sizes, so any unzip tool reads the result.
"""

from __future__ import annotations

import asyncio
import stat
import zipfile
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol

from shared.crypto import OFFLOAD_BYTES

__all__ = ["FLUSH_BYTES", "StreamedMember", "ZipEntry", "zip_stream"]

FLUSH_BYTES = 256 * 1024
"""Bytes gathered inside a streamed member before they are handed on; bounds the memory a member takes."""


class StreamedMember(Protocol):
    """A member's content as an async stream of bytes, e.g. a decrypted recording (shared.recordings)."""

    @property
    def size_bytes(self) -> int | None:
        """The content's length if known beforehand: it decides whether the member needs ZIP64 sizes."""
        ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...


ZipEntry = tuple[str, bytes | StreamedMember]
"""A member's name in the archive and its content."""


class _Spool:
    """A write-only file for zipfile that keeps what was written until `take` hands it on.

    It has no tell() or seek(), so zipfile writes a streamable archive (sizes and CRC after each member's
    data) instead of going back to patch headers.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __len__(self) -> int:
        return len(self._buffer)

    def take(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


async def zip_stream(
    entries: Sequence[ZipEntry],
    *,
    modified: datetime,
    comment: str = "",
    flush_bytes: int = FLUSH_BYTES,
) -> AsyncGenerator[bytes, None]:
    """The ZIP file of `entries`, in their order, as pieces of bytes.

    `modified` is every member's modification time; ZIP times have no zone, so pass it in the zone the reader
    should see. `comment` is the archive's comment (UTF-8). Bytes members are deflated; streamed members are
    stored, their bytes handed on whenever `flush_bytes` have gathered. A streamed member is iterated once,
    when its turn comes; whatever it raises propagates and the archive is left unfinished, so a consumer must
    treat the output as complete only once this generator ends without an exception.
    """
    date_time = (modified.year, modified.month, modified.day, modified.hour, modified.minute, modified.second)
    spool = _Spool()
    with zipfile.ZipFile(spool, "w") as archive:
        archive.comment = comment.encode("utf-8")
        for name, body in entries:
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.external_attr = (stat.S_IFREG | 0o644) << 16  # a plain rw-r--r-- file when unpacked on Unix
            if isinstance(body, bytes):
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, body)
            else:
                info.compress_type = zipfile.ZIP_STORED
                size = body.size_bytes
                if size is not None:
                    info.file_size = size  # lets zipfile decide whether ZIP64 is needed
                with archive.open(info, "w", force_zip64=size is None) as member:
                    async for piece in body:
                        if len(piece) >= OFFLOAD_BYTES:
                            # The CRC-32 (zlib releases the GIL) and the copy, off the event loop.
                            await asyncio.to_thread(member.write, piece)
                        else:
                            member.write(piece)
                        if len(spool) >= flush_bytes:
                            yield spool.take()
            yield spool.take()
    yield spool.take()

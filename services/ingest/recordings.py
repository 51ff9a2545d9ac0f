"""The recording format ingest accepts: WAV, recognised by its RIFF header (which also gives the duration).

No I/O: the upload itself is services.ingest.service.recordings.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from shared.platform.errors import ApiError

WAV_CONTENT_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
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

"""The recording format Sailo takes from platforms and hands on: WAV, recognised by its RIFF header, which also
gives the duration.

Ingest refuses an upload whose header does not parse; export checks a lent recording's duration against what
ingest recorded. Both read the header here, so the two can never disagree on what a WAV file is or how long it
lasts. No I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

WAV_CONTENT_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
HEADER_PROBE_BYTES = 4096
"""Enough to hold the RIFF header and the fmt chunk of any ordinary WAV file."""


class NotWav(ValueError):
    """The bytes are not a WAV file Sailo can read; the message is a fixed reason, safe to return."""


@dataclass(frozen=True)
class WavInfo:
    byte_rate: int | None
    data_bytes: int | None

    def duration_ms(self, total_bytes: int) -> int | None:
        if not self.byte_rate:
            return None
        # A streaming recorder may leave the data size unset (0 or 0xFFFFFFFF): then the length tells.
        data = self.data_bytes if self.data_bytes not in (None, 0, 0xFFFFFFFF) else max(total_bytes - 44, 0)
        return int(data * 1000 // self.byte_rate)


def read_wav_header(head: bytes) -> WavInfo:
    """The byte rate and data size from a WAV file's first bytes; raises NotWav naming what is missing."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise NotWav("not a WAV file (RIFF/WAVE header missing)")
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
        raise NotWav("WAV file has no fmt chunk")
    return WavInfo(byte_rate, data_bytes)


def wav_duration_ms(head: bytes, total_bytes: int) -> int | None:
    """A WAV file's duration from its first bytes and its length, as ingest recorded it on upload; None if the
    header does not allow it."""
    try:
        return read_wav_header(head).duration_ms(total_bytes)
    except NotWav:
        return None

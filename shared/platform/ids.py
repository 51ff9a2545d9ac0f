"""Time-ordered identifiers (UUID version 7, RFC 9562).

Rows written in large numbers with a UUID key (certificates of deletion) get version-7 ids: they sort by creation
time, so each insert lands at the right edge of the primary-key index instead of on a random page of it, and an
id still reveals nothing but a millisecond.
"""

from __future__ import annotations

import os
import time
from uuid import UUID


def uuid7() -> UUID:
    """A version-7 UUID: 48 bits of Unix milliseconds, then 74 random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= (rand >> 68) << 64  # rand_a: 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b: 62 bits
    return UUID(int=value)


def uuid7s(count: int) -> list[UUID]:
    """`count` version-7 UUIDs of one moment, in ascending order."""
    return sorted(uuid7() for _ in range(count))

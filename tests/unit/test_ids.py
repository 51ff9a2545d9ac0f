"""Version-7 UUIDs: valid RFC 9562 ids that sort by creation time."""

from __future__ import annotations

import time
from uuid import UUID

from shared.platform.ids import uuid7, uuid7s


def test_uuid7_is_a_valid_version_7_uuid_carrying_the_time() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert value.version == 7
    assert value.variant == "specified in RFC 4122"
    assert before <= value.int >> 80 <= after
    assert UUID(str(value)) == value


def test_ids_of_later_milliseconds_sort_after_earlier_ones_and_never_repeat() -> None:
    first = uuid7()
    time.sleep(0.002)
    batch = uuid7s(1000)
    assert batch == sorted(batch)
    assert len(set(batch)) == 1000
    assert all(first < later for later in batch)

"""Forced crash points for fault tests: the process dies (like kill -9) at a named place in the code.

Off unless SAILO_FAULTS is set, e.g. `SAILO_FAULTS=ingest-record-store.after_db_commit:2` kills the process the
second time that point is reached. Several points are separated by commas. Each point names a place where a
crash is dangerous (between a database commit and an offset commit, ...), so tests prove nothing is lost or
done twice when it happens there.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

_hits: Counter[str] = Counter()


def _armed() -> dict[str, int]:
    spec = os.environ.get("SAILO_FAULTS", "")
    points: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition(":")
        points[name] = int(count or "1")
    return points


def fault_point(name: str) -> None:
    """Die here if this point is armed and has been reached the armed number of times."""
    armed = _armed()
    if name not in armed:
        return
    _hits[name] += 1
    if _hits[name] >= armed[name]:
        sys.stderr.write(f"fault injected at {name}\n")
        sys.stderr.flush()
        os._exit(137)

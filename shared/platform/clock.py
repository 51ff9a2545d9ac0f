"""The time source and the calendar Sailo counts in.

Everything that asks "what time is it" takes a Clock, so tests move time instead of waiting. Periods in the
notices and in the law (months of retention, a month to answer a data subject) are counted on the Helsinki
calendar, so the zone and the month arithmetic live here once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final, Protocol
from zoneinfo import ZoneInfo

HELSINKI: Final = ZoneInfo("Europe/Helsinki")
"""The zone every register's calendar runs in: the notices' months, days and office hours are Finnish."""


def days_in_month(year: int, month: int) -> int:
    following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return (following - date(year, month, 1)).days


def add_months(day: date, months: int) -> date:
    """`day` plus `months` calendar months, clamped to the last day of a shorter target month (the rule of
    both the notices' retention periods and Regulation 1182/71 Art. 3(2)(c) for statutory deadlines).

    Periods only run forward: a negative count is a programming error.
    """
    if months < 0:
        raise ValueError("periods only run forward")
    year, month_index = divmod(day.year * 12 + day.month - 1 + months, 12)
    month = month_index + 1
    return date(year, month, min(day.day, days_in_month(year, month)))


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that stands still until moved; for tests."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware datetime")
        self._at = at

    def now(self) -> datetime:
        return self._at

    def advance(self, delta: timedelta) -> None:
        self._at += delta

    def set(self, at: datetime) -> None:
        self._at = at

"""Calendar arithmetic: adding a policy `Period` to an instant in the register's time zone.

Pure functions: no I/O and no clock reads. docs/retention.md ("Calendar arithmetic") states the same rules for
readers outside the code.

The rules, in the order they apply:

1. The start is read as a wall-clock date and time in the register's zone (Europe/Helsinki unless the policy
   names another). A start in the second pass of a repeated hour (fold=1: 03:00-03:59 winter time on the last
   Sunday of October in Helsinki, e.g. 03:30 EET on 25 October 2026) is read as the end of that hour, 04:00: the
   clock has already shown every wall time of that hour once, and counting from one of them again would let a
   later contact fall due before an earlier one. This only applies when the period has calendar parts (years,
   months or days); a period of hours and minutes never reads the wall clock.
2. Years and months are added together, as one count of calendar months (P1Y = P12M), to the local date. A day
   the target month lacks is clamped to its last day: 31 January + P1M = 28 February (29 in a leap year),
   29 February 2024 + P1Y = 28 February 2025, 31 August + P6M = 28 February. Adding them together keeps
   29 February 2024 + P1Y1M at 29 March 2025 rather than clamping in February first. A clamped date counts
   from the end of that last day (23:59:59.999999), as Regulation 1182/71 Art. 3(2)(c) ends such a period with
   the last hour of the month's last day: every start on a day the target month lacks falls due together, at
   or after every start on the last day itself, so a later start never falls due first.
3. Days are then added as calendar days with the wall-clock time kept, so a day that a DST change shortens or
   lengthens still counts as one day (23 or 25 hours elapse).
4. The resulting local date and time becomes the FIRST INSTANT AT WHICH THE REGISTER'S CLOCK SHOWS IT OR LATER:
   - a wall time that does not exist (03:00-03:59 on the last Sunday of March in Helsinki, when clocks go from
     03:00 EET to 04:00 EEST) becomes the end of the gap, 04:00 summer time;
   - a wall time that occurs twice (03:00-03:59 on the last Sunday of October) takes its first occurrence, the
     earlier instant (fold=0, summer time).
5. Hours and minutes are then added as elapsed time: PT1H is 3,600 seconds whatever the clocks do.

The result is an aware datetime in UTC. Every step is non-decreasing in the start, so a later start never gives
an earlier due time, and no step lands before the instant the local clock reaches the promised wall time, so
nothing falls due early. (Python's own reading of a non-existent wall time would move it forward by the length
of the gap, 03:30 -> 04:30, which breaks the first property: a start at 04:05 on the same day would then fall due
at 04:05, before the one that started at 03:30.)
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.platform.clock import HELSINKI, add_months
from shared.policy.model import Period

__all__ = [
    "add_period",
    "first_instant_at",
    "wall_clock",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def wall_clock(instant: datetime, tz: ZoneInfo = HELSINKI) -> datetime:
    """The local wall-clock reading a period counts from (naive), per rule 1 of the module docstring."""
    _require_aware(instant)
    local = instant.astimezone(tz)
    first_pass = local.replace(fold=0)
    if local.fold == 1 and first_pass.utcoffset() != local.utcoffset():
        # Second pass of a repeated hour: count from its end, the first wall time not shown twice.
        offset_before = first_pass.utcoffset()
        assert offset_before is not None  # a ZoneInfo always has an offset
        second_pass_starts = _first_offset_change(first_pass.astimezone(UTC), instant.astimezone(UTC), tz)
        return (second_pass_starts + offset_before).replace(tzinfo=None)
    return local.replace(tzinfo=None)


def first_instant_at(wall: datetime, tz: ZoneInfo = HELSINKI) -> datetime:
    """The first instant (aware, UTC) at which the clock in `tz` shows the naive wall time `wall` or later."""
    if wall.tzinfo is not None:
        raise ValueError("first_instant_at takes a naive local wall time")
    earlier = wall.replace(tzinfo=tz, fold=0)
    if earlier.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall:
        # Exists; when it exists twice, fold=0 is the first occurrence.
        return earlier.astimezone(UTC)
    # In a gap. fold=1 reads it with the offset after the change (an instant before the change), fold=0 with the
    # offset before it (an instant after the change): the change lies between, and is the answer.
    before_change = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    after_change = earlier.astimezone(UTC)
    return _first_offset_change(before_change, after_change, tz)


def add_period(start: datetime, period: Period, tz: ZoneInfo = HELSINKI) -> datetime:
    """`start` (aware) plus `period`, counted in the zone `tz`; an aware UTC datetime.

    Rules in the module docstring: months (years as 12) with end-of-month clamping, then calendar days with the
    wall-clock time kept, then the first instant the local clock shows that time, then hours and minutes as
    elapsed time.
    """
    _require_aware(start)
    due = start.astimezone(UTC)
    if period.years or period.months or period.days:
        wall = wall_clock(start, tz)
        day = add_months(wall.date(), period.years * 12 + period.months)
        time_of_day = wall.time()
        if day.day < wall.day:
            # Clamped (rule 2): keeping the start's time of day would let 31 October 00:00 + P1M (30 November
            # 00:00) fall due before 30 October 23:59 + P1M (30 November 23:59).
            time_of_day = time.max
        day += timedelta(days=period.days)
        due = first_instant_at(datetime.combine(day, time_of_day), tz)
    return due + timedelta(hours=period.hours, minutes=period.minutes)


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("retention arithmetic needs a timezone-aware datetime")


def _first_offset_change(low: datetime, high: datetime, tz: ZoneInfo) -> datetime:
    """The first whole second in (low, high] (aware UTC) at which `tz`'s offset differs from its offset at low.

    The zone database records changes on whole seconds, so a search over seconds finds the exact instant.
    """
    offset_at_low = low.astimezone(tz).utcoffset()
    lo = (low - _EPOCH) // _SECOND
    hi = -((_EPOCH - high) // _SECOND)  # ceiling
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if (_EPOCH + middle * _SECOND).astimezone(tz).utcoffset() == offset_at_low:
            lo = middle
        else:
            hi = middle
    return _EPOCH + hi * _SECOND

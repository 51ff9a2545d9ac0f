"""Retention calendar arithmetic: month-end clamping, calendar days across DST, and the gap and fold of 2026."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.retention.calendar import add_period, first_instant_at, wall_clock
from shared.platform.clock import HELSINKI, add_months
from shared.policy.model import Period

MICROSECOND = timedelta(microseconds=1)


def helsinki(year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, fold: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=HELSINKI, fold=fold)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def last_sunday(year: int, month: int) -> date:
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - 6) % 7)


def local_reading(instant: datetime) -> datetime:
    return instant.astimezone(HELSINKI).replace(tzinfo=None)


# ----------------------------------------------------------------------------------------------- strategies

any_instant = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2080, 1, 1), timezones=st.just(UTC)
)


def months_before(day: date, months: int) -> date:
    year, month_index = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month_index + 1, min(day.day, calendar.monthrange(year, month_index + 1)[1]))


@st.composite
def dst_change_ahead(draw: st.DrawFn) -> tuple[datetime, Period]:
    """A start and a period where the start or the due time is within hours of a Helsinki DST change.

    Uniform instants almost never touch the two odd hours a year; these start in them, or start whole months
    and days before a change, the period being those months and days, and land in them.
    """
    change = last_sunday(draw(st.integers(2001, 2070)), draw(st.sampled_from([3, 10])))
    months = draw(st.sampled_from([0, 1, 6, 12, 24, 60]))
    days = draw(st.sampled_from([0, 1, 35]))
    # Either land on the change day, or start on it and go as far.
    lands = draw(st.booleans())
    day = months_before(change - timedelta(days=days), months) if lands else change
    # Helsinki changes at 03:00 or 04:00 local time; draw wall times around then (either pass of a repeated
    # hour), sometimes further out.
    minutes = draw(st.integers(170, 250) | st.integers(170, 250) | st.integers(-24 * 60, 48 * 60))
    wall = datetime.combine(day, time(0)) + timedelta(minutes=minutes, seconds=draw(st.integers(0, 59)))
    start = wall.replace(tzinfo=HELSINKI, fold=draw(st.integers(0, 1))).astimezone(UTC)
    return start, Period(months=months, days=days)


instants = st.one_of(any_instant, dst_change_ahead().map(lambda pair: pair[0]))

periods = st.builds(
    Period,
    years=st.integers(0, 5),
    months=st.integers(0, 36),
    days=st.integers(0, 400),
    hours=st.integers(0, 48),
    minutes=st.integers(0, 120),
)
calendar_periods = st.one_of(
    st.builds(Period, years=st.integers(0, 5)),
    st.builds(Period, months=st.integers(0, 36)),
    st.builds(Period, days=st.integers(0, 60)),
    periods,
)
starts_and_periods = st.one_of(st.tuples(instants, calendar_periods), dst_change_ahead())

other_zones = st.sampled_from(
    [
        UTC,
        HELSINKI,
        ZoneInfo("America/New_York"),
        ZoneInfo("Australia/Lord_Howe"),
        timezone(timedelta(hours=5)),
    ]
)


# ----------------------------------------------------------------------------------------------- properties


@given(start=instants, months=st.integers(0, 1300))
def test_adding_months_lands_in_the_target_month_clamped_to_its_length(start: datetime, months: int) -> None:
    wall = wall_clock(start)
    due = local_reading(add_period(start, Period(months=months)))
    year, month_index = divmod(wall.year * 12 + wall.month - 1 + months, 12)
    target_length = calendar.monthrange(year, month_index + 1)[1]
    assert (due.year, due.month) == (year, month_index + 1)  # never spills into the month after
    assert due.day == min(wall.day, target_length)


@given(start=instants, years=st.integers(0, 100))
def test_years_are_twelve_months(start: datetime, years: int) -> None:
    assert add_period(start, Period(years=years)) == add_period(start, Period(months=12 * years))


@given(start=instants, period=periods, zone=other_zones)
def test_result_is_an_aware_utc_instant_not_before_the_start(
    start: datetime, period: Period, zone: timezone | ZoneInfo
) -> None:
    due = add_period(start.astimezone(zone), period)
    assert due.tzinfo is UTC
    assert due.utcoffset() == timedelta(0)
    assert due >= start
    # The same instant given in any zone is the same start.
    assert due == add_period(start, period)


@given(
    start_and_period=starts_and_periods,
    later_by=st.one_of(
        st.timedeltas(timedelta(0), timedelta(minutes=90)), st.timedeltas(timedelta(0), timedelta(days=2))
    ),
)
def test_a_later_start_never_falls_due_earlier(
    start_and_period: tuple[datetime, Period], later_by: timedelta
) -> None:
    first, period = start_and_period
    assert add_period(first + later_by, period) >= add_period(first, period)


@settings(max_examples=1000)
@given(start_and_period=dst_change_ahead(), later_by=st.timedeltas(timedelta(0), timedelta(minutes=65)))
def test_order_is_kept_through_dst_gaps_and_folds(
    start_and_period: tuple[datetime, Period], later_by: timedelta
) -> None:
    first, period = start_and_period
    assert add_period(first + later_by, period) >= add_period(first, period)


@given(first=instants, second=instants, period=calendar_periods)
def test_order_of_any_two_starts_is_kept(first: datetime, second: datetime, period: Period) -> None:
    earlier, later = sorted((first, second))
    assert add_period(later, period) >= add_period(earlier, period)


@given(start=instants)
def test_one_month_twice_against_two_months_once(start: datetime) -> None:
    once = add_period(start, Period(months=2))
    step = add_period(start, Period(months=1))
    twice = add_period(step, Period(months=1))
    wall = wall_clock(start)
    middle = add_months(wall.date(), 1)
    # Clamping in the middle month can only lose days, never add them.
    assert local_reading(twice).date() <= local_reading(once).date()
    if wall.day <= calendar.monthrange(middle.year, middle.month)[1]:
        assert local_reading(twice).date() == local_reading(once).date()
        if wall_clock(step) == datetime.combine(middle, wall.time()):
            # The middle step kept the wall time (it did not land in a DST gap): the two are the same instant.
            assert twice == once
    else:
        assert local_reading(twice).date() < local_reading(once).date()


@given(start=instants, days=st.integers(1, 800))
def test_days_keep_the_wall_clock_time(start: datetime, days: int) -> None:
    wall = wall_clock(start)
    assume(wall.hour != 3)  # 03:xx is the one hour that can fail to exist (March) on the target day
    due = local_reading(add_period(start, Period(days=days)))
    assert due == wall + timedelta(days=days)


@given(start=instants, hours=st.integers(0, 200), minutes=st.integers(0, 600))
def test_hours_and_minutes_are_elapsed_time(start: datetime, hours: int, minutes: int) -> None:
    assert add_period(start, Period(hours=hours, minutes=minutes)) == start + timedelta(
        hours=hours, minutes=minutes
    )


@given(instant=instants)
def test_first_instant_at_is_the_first_instant_showing_that_wall_time(instant: datetime) -> None:
    wall = local_reading(instant)
    found = first_instant_at(wall)
    assert found <= instant
    assert local_reading(found) >= wall
    assert local_reading(found - MICROSECOND) < wall


# ------------------------------------------------------------------------------------ pinned: month ends


# A clamped date falls due at the end of the target month's last day, whatever the start's time of day; a date
# the target month has keeps it.
END_OF_DAY = time.max


@pytest.mark.parametrize(
    ("start", "period", "due"),
    [
        (date(2026, 1, 31), Period(months=1), datetime.combine(date(2026, 2, 28), END_OF_DAY)),
        (date(2028, 1, 31), Period(months=1), datetime.combine(date(2028, 2, 29), END_OF_DAY)),
        (date(2024, 2, 29), Period(years=1), datetime.combine(date(2025, 2, 28), END_OF_DAY)),
        (date(2024, 2, 29), Period(years=4), datetime(2028, 2, 29, 12, 0)),
        (date(2024, 2, 29), Period(years=1, months=1), datetime(2025, 3, 29, 12, 0)),
        (date(2026, 8, 31), Period(months=6), datetime.combine(date(2027, 2, 28), END_OF_DAY)),
        (date(2026, 3, 31), Period(months=6), datetime.combine(date(2026, 9, 30), END_OF_DAY)),
        (date(2026, 12, 31), Period(months=2), datetime.combine(date(2027, 2, 28), END_OF_DAY)),
        (date(2026, 1, 31), Period(months=1, days=1), datetime.combine(date(2026, 3, 1), END_OF_DAY)),
        (date(2026, 1, 28), Period(months=1), datetime(2026, 2, 28, 12, 0)),
    ],
)
def test_month_end_examples(start: date, period: Period, due: datetime) -> None:
    assert local_reading(add_period(datetime.combine(start, time(12, 0), tzinfo=HELSINKI), period)) == due


def test_a_start_on_a_day_the_target_month_lacks_never_falls_due_before_an_earlier_start() -> None:
    # A minute apart across midnight; one month on, the target month has no 31st.
    earlier = add_period(helsinki(2026, 10, 30, 23, 59), Period(months=1))
    later = add_period(helsinki(2026, 10, 31, 0, 0), Period(months=1))
    assert local_reading(earlier) == datetime(2026, 11, 30, 23, 59)
    assert local_reading(later) == datetime.combine(date(2026, 11, 30), END_OF_DAY)


# ------------------------------------------------------------------ pinned: 29 March 2026, clocks go forward


def test_the_2026_dst_changes_are_the_last_sundays() -> None:
    assert last_sunday(2026, 3) == date(2026, 3, 29)
    assert last_sunday(2026, 10) == date(2026, 10, 25)
    assert helsinki(2026, 3, 29, 2, 59).utcoffset() == timedelta(hours=2)
    assert helsinki(2026, 3, 29, 4, 0).utcoffset() == timedelta(hours=3)


def test_a_missing_wall_time_becomes_the_end_of_the_gap() -> None:
    # 03:30 does not exist on 29 March 2026 (03:00 EET -> 04:00 EEST); the clock first shows 03:30 or later at 04:00.
    assert first_instant_at(datetime(2026, 3, 29, 3, 30)) == utc(2026, 3, 29, 1, 0)
    assert add_period(helsinki(2026, 3, 28, 3, 30), Period(days=1)) == utc(2026, 3, 29, 1, 0)
    assert add_period(helsinki(2025, 3, 29, 3, 30), Period(years=1)) == utc(2026, 3, 29, 1, 0)
    assert add_period(helsinki(2026, 2, 28, 3, 0), Period(months=1, days=1)) == utc(2026, 3, 29, 1, 0)


def test_starts_on_both_sides_of_the_gap_keep_their_order() -> None:
    before_gap_time = add_period(helsinki(2026, 3, 28, 3, 30), Period(days=1))
    after_gap_time = add_period(helsinki(2026, 3, 28, 4, 5), Period(days=1))
    assert before_gap_time == utc(2026, 3, 29, 1, 0)
    assert after_gap_time == utc(2026, 3, 29, 1, 5)
    assert before_gap_time < after_gap_time


def test_a_day_across_the_spring_change_is_23_hours() -> None:
    due = add_period(helsinki(2026, 3, 28, 12, 0), Period(days=1))
    assert due == utc(2026, 3, 29, 9, 0)
    assert due.astimezone(HELSINKI) == helsinki(2026, 3, 29, 12, 0)
    assert due - helsinki(2026, 3, 28, 12, 0) == timedelta(hours=23)


def test_an_hour_across_the_spring_change_is_sixty_minutes() -> None:
    due = add_period(utc(2026, 3, 29, 0, 30), Period(hours=1))  # 02:30 EET
    assert due == utc(2026, 3, 29, 1, 30)
    assert due.astimezone(HELSINKI) == helsinki(2026, 3, 29, 4, 30)


# ------------------------------------------------------------------- pinned: 25 October 2026, clocks go back


def test_a_repeated_wall_time_takes_its_first_occurrence() -> None:
    # 03:30 happens at 00:30 UTC (EEST) and again at 01:30 UTC (EET); the earlier one counts.
    assert first_instant_at(datetime(2026, 10, 25, 3, 30)) == utc(2026, 10, 25, 0, 30)
    assert add_period(helsinki(2026, 10, 24, 3, 30), Period(days=1)) == utc(2026, 10, 25, 0, 30)
    assert add_period(helsinki(2025, 10, 25, 3, 30), Period(years=1)) == utc(2026, 10, 25, 0, 30)


def test_a_start_in_the_first_pass_keeps_its_wall_time() -> None:
    start = utc(2026, 10, 25, 0, 30)  # 03:30 EEST, fold=0
    assert wall_clock(start) == datetime(2026, 10, 25, 3, 30)
    assert add_period(start, Period(days=1)) == utc(2026, 10, 26, 1, 30)  # 03:30 EET


def test_a_start_in_the_second_pass_counts_from_the_end_of_the_repeated_hour() -> None:
    start = utc(2026, 10, 25, 1, 30)  # 03:30 EET, fold=1
    assert start.astimezone(HELSINKI).fold == 1
    assert wall_clock(start) == datetime(2026, 10, 25, 4, 0)
    assert add_period(start, Period(days=1)) == utc(2026, 10, 26, 2, 0)  # 04:00 EET
    # 03:50 in the first pass (00:50 UTC) is earlier than 03:10 in the second (01:10 UTC): so are their due times.
    first_pass = add_period(utc(2026, 10, 25, 0, 50), Period(days=1))
    second_pass = add_period(utc(2026, 10, 25, 1, 10), Period(days=1))
    assert first_pass == utc(2026, 10, 26, 1, 50)
    assert second_pass == utc(2026, 10, 26, 2, 0)
    assert first_pass < second_pass
    # The same instant written as a fold=1 Helsinki time is the same start.
    assert add_period(helsinki(2026, 10, 25, 3, 30, fold=1), Period(days=1)) == utc(2026, 10, 26, 2, 0)


def test_a_day_across_the_autumn_change_is_25_hours() -> None:
    due = add_period(helsinki(2026, 10, 24, 12, 0), Period(days=1))
    assert due == utc(2026, 10, 25, 10, 0)
    assert due - helsinki(2026, 10, 24, 12, 0) == timedelta(hours=25)


def test_an_hour_across_the_autumn_change_is_sixty_minutes() -> None:
    due = add_period(utc(2026, 10, 25, 0, 30), Period(hours=1))  # 03:30 EEST + 1 h = 03:30 EET
    assert due == utc(2026, 10, 25, 1, 30)
    assert due.astimezone(HELSINKI).fold == 1


def test_an_hours_only_period_does_not_move_a_second_pass_start() -> None:
    assert add_period(utc(2026, 10, 25, 1, 30), Period(minutes=30)) == utc(2026, 10, 25, 2, 0)


# ----------------------------------------------------------------------------------------- zones and input


def test_the_zone_parameter_is_honoured() -> None:
    new_york = ZoneInfo("America/New_York")
    # 8 March 2026: 02:00 EST -> 03:00 EDT, so 02:30 the day after 7 March 02:30 becomes 03:00 EDT (07:00 UTC).
    start = datetime(2026, 3, 7, 2, 30, tzinfo=new_york)
    assert add_period(start, Period(days=1), new_york) == utc(2026, 3, 8, 7, 0)
    # The same instant counted in Helsinki: 09:30 EET on 7 March plus a day is 09:30 EET on 8 March.
    assert add_period(start, Period(days=1)) == utc(2026, 3, 8, 7, 30)
    assert add_period(start, Period(months=1), ZoneInfo("UTC")) == utc(2026, 4, 7, 7, 30)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        add_period(datetime(2026, 3, 2, 9, 15), Period(months=6))
    with pytest.raises(ValueError, match="naive"):
        first_instant_at(helsinki(2026, 3, 2, 9, 15))
    with pytest.raises(ValueError, match="forward"):
        add_months(date(2026, 3, 2), -1)

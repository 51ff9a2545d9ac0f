"""The Art. 12(3) deadline calendar: 1182/71 month counting, Finnish non-working days, extension and reminders."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.dsr.deadlines import (
    MAX_EXTENSION_MONTHS,
    Deadline,
    easter_sunday,
    finnish_public_holidays,
    is_working_day,
    next_working_day,
    non_working_reason,
    reminder_at,
    statutory_deadline,
)
from shared.platform.clock import HELSINKI, add_months

ONE_DAY = timedelta(days=1)


def helsinki(year: int, month: int, day: int, hour: int = 12, minute: int = 0, *, fold: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=HELSINKI, fold=fold)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def days_between(first: date, last: date) -> list[date]:
    """The days strictly after `first` and strictly before `last`."""
    return [first + ONE_DAY * offset for offset in range(1, (last - first).days)]


def days_from_until(first: date, last: date) -> list[date]:
    """The days from `first` on, up to but not including `last`."""
    return [first + ONE_DAY * offset for offset in range((last - first).days)]


# ----------------------------------------------------------------------------------------------- strategies

# The calendar in force since 1992; the upper end is arbitrary but far enough to meet every Easter pattern.
calendar_days = st.dates(min_value=date(1992, 1, 1), max_value=date(2200, 12, 31))

other_zones = st.sampled_from(
    [UTC, HELSINKI, ZoneInfo("America/New_York"), ZoneInfo("Asia/Tokyo"), timezone(timedelta(hours=-11))]
)


@st.composite
def receipts(draw: st.DrawFn) -> datetime:
    """An aware instant, in any zone, some of them in the early Helsinki hours when UTC is still on the day before."""
    day = draw(calendar_days)
    wall = draw(st.times() | st.times(max_value=time(3, 59, 59)))
    local = datetime.combine(day, wall).replace(tzinfo=HELSINKI, fold=draw(st.integers(0, 1)))
    return local.astimezone(draw(other_zones))


extensions = st.integers(0, MAX_EXTENSION_MONTHS)


# ----------------------------------------------------------------------------------------------- Easter


@pytest.mark.parametrize(
    "expected",
    [
        date(2024, 3, 31),
        date(2025, 4, 20),
        date(2026, 4, 5),
        date(2027, 3, 28),
        date(2038, 4, 25),
        date(2008, 3, 23),
        date(2011, 4, 24),
        date(2000, 4, 23),
        # The earliest and latest possible dates, and years where Gauss's simpler formula needs its exceptions.
        date(1818, 3, 22),
        date(2285, 3, 22),
        date(1943, 4, 25),
        date(1954, 4, 18),
        date(1981, 4, 19),
        date(2049, 4, 18),
        date(2076, 4, 19),
    ],
)
def test_easter_sunday_of_known_years(expected: date) -> None:
    assert easter_sunday(expected.year) == expected


@given(year=st.integers(1583, 9999))
def test_easter_is_a_sunday_between_22_march_and_25_april(year: int) -> None:
    easter = easter_sunday(year)
    assert easter.weekday() == 6
    assert date(year, 3, 22) <= easter <= date(year, 4, 25)


def test_easter_before_the_gregorian_calendar_is_refused() -> None:
    with pytest.raises(ValueError, match="1583"):
        easter_sunday(1582)


# ----------------------------------------------------------------------------------------------- holidays


def test_finnish_public_holidays_2026() -> None:
    assert finnish_public_holidays(2026) == {
        date(2026, 1, 1): "New Year's Day",
        date(2026, 1, 6): "Epiphany",
        date(2026, 4, 3): "Good Friday",
        date(2026, 4, 5): "Easter Sunday",
        date(2026, 4, 6): "Easter Monday",
        date(2026, 5, 1): "May Day",
        date(2026, 5, 14): "Ascension Day",
        date(2026, 5, 24): "Whit Sunday",
        date(2026, 6, 19): "Midsummer Eve",
        date(2026, 6, 20): "Midsummer Day",
        date(2026, 10, 31): "All Saints' Day",
        date(2026, 12, 6): "Independence Day",
        date(2026, 12, 24): "Christmas Eve",
        date(2026, 12, 25): "Christmas Day",
        date(2026, 12, 26): "St Stephen's Day",
    }


def test_ascension_day_on_may_day_carries_both_names() -> None:
    holidays = finnish_public_holidays(2008)
    assert holidays[date(2008, 5, 1)] == "May Day and Ascension Day"
    assert len(holidays) == 14


def test_the_returned_holidays_are_a_copy() -> None:
    finnish_public_holidays(2026).clear()
    assert not is_working_day(date(2026, 12, 24))


@given(year=st.integers(1992, 2200))
def test_movable_holidays_fall_where_the_act_puts_them(year: int) -> None:
    # Ascension Day can share May Day's entry; every other holiday has a day of its own.
    by_name = {name: day for day, name in finnish_public_holidays(year).items() if " and " not in name}
    easter = easter_sunday(year)
    assert by_name["Easter Sunday"] == easter
    assert by_name["Good Friday"] == easter - 2 * ONE_DAY
    assert by_name["Easter Monday"] == easter + ONE_DAY
    assert by_name["Whit Sunday"] == easter + 49 * ONE_DAY
    assert by_name.get("Ascension Day", date(year, 5, 1)) == easter + 39 * ONE_DAY
    midsummer_day = by_name["Midsummer Day"]
    assert midsummer_day.weekday() == 5
    assert date(year, 6, 20) <= midsummer_day <= date(year, 6, 26)
    assert by_name["Midsummer Eve"] == midsummer_day - ONE_DAY
    all_saints = by_name["All Saints' Day"]
    assert all_saints.weekday() == 5
    assert date(year, 10, 31) <= all_saints <= date(year, 11, 6)


@given(day=calendar_days)
def test_a_holiday_or_weekend_is_never_a_working_day(day: date) -> None:
    named = day in finnish_public_holidays(day.year)
    assert is_working_day(day) == (not named and day.weekday() < 5)
    assert (non_working_reason(day) is None) == is_working_day(day)


@pytest.mark.parametrize(
    ("day", "reason"),
    [
        (date(2026, 2, 28), "Saturday"),
        (date(2026, 3, 1), "Sunday"),
        (date(2026, 3, 2), None),
        # A holiday on a weekend is named by the holiday.
        (date(2025, 11, 1), "All Saints' Day"),
        (date(2026, 4, 5), "Easter Sunday"),
        (date(2027, 12, 25), "Christmas Day"),
    ],
)
def test_non_working_reason(day: date, reason: str | None) -> None:
    assert non_working_reason(day) == reason


@given(day=calendar_days)
def test_next_working_day_is_the_first_working_day_from_the_day_itself(day: date) -> None:
    following = next_working_day(day)
    assert is_working_day(following)
    assert following >= day
    assert (following == day) == is_working_day(day)
    assert not any(is_working_day(skipped) for skipped in days_from_until(day, following))
    # The longest run of non-working days is Christmas on a Wednesday: Eve, Christmas Day, St Stephen's Day,
    # Saturday, Sunday (24.12.2025 moves to Monday the 29th).
    assert following - day <= 5 * ONE_DAY


def test_christmas_on_a_wednesday_is_the_longest_run_of_days_off() -> None:
    assert next_working_day(date(2025, 12, 24)) == date(2025, 12, 29)
    assert next_working_day(date(2121, 12, 24)) == date(2121, 12, 29)


# ----------------------------------------------------------------------------------------------- add_months


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 3, 2), 1, date(2026, 4, 2)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2026, 11, 30), 1, date(2026, 12, 30)),
        (date(2026, 12, 31), 1, date(2027, 1, 31)),
        (date(2026, 3, 31), 1, date(2026, 4, 30)),
        (date(2026, 11, 30), 3, date(2027, 2, 28)),
        (date(2027, 11, 30), 3, date(2028, 2, 29)),
        (date(2026, 5, 15), 0, date(2026, 5, 15)),
    ],
)
def test_add_months_clamps_to_the_end_of_a_shorter_month(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


def test_add_months_refuses_negative_months() -> None:
    with pytest.raises(ValueError, match="forward"):
        add_months(date(2026, 3, 2), -1)


@given(first=calendar_days, second=calendar_days, months=st.integers(0, 36))
def test_add_months_is_monotone(first: date, second: date, months: int) -> None:
    earlier, later = sorted((first, second))
    assert add_months(earlier, months) <= add_months(later, months)


@given(day=calendar_days, months=st.integers(0, 36))
def test_add_months_lands_in_the_target_month_on_the_same_date_or_its_last_day(
    day: date, months: int
) -> None:
    result = add_months(day, months)
    assert (result.year * 12 + result.month) - (day.year * 12 + day.month) == months
    assert result.day == day.day or (result.day < day.day and (result + ONE_DAY).day == 1)


# ----------------------------------------------------------------------------------------------- known deadlines


@pytest.mark.parametrize(
    ("received_on", "nominal", "last_day", "rolled_because"),
    [
        (date(2026, 3, 2), date(2026, 4, 2), date(2026, 4, 2), None),
        (date(2024, 1, 31), date(2024, 2, 29), date(2024, 2, 29), None),
        (date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 2), "Saturday"),
        (date(2026, 11, 30), date(2026, 12, 30), date(2026, 12, 30), None),
        (date(2026, 2, 1), date(2026, 3, 1), date(2026, 3, 2), "Sunday"),
        # Christmas Eve on a Wednesday: Christmas Day, St Stephen's Day and a weekend follow.
        (date(2025, 11, 24), date(2025, 12, 24), date(2025, 12, 29), "Christmas Eve"),
        (date(2026, 5, 19), date(2026, 6, 19), date(2026, 6, 22), "Midsummer Eve"),
        (date(2026, 3, 6), date(2026, 4, 6), date(2026, 4, 7), "Easter Monday"),
        (date(2026, 3, 3), date(2026, 4, 3), date(2026, 4, 7), "Good Friday"),
        (date(2027, 11, 6), date(2027, 12, 6), date(2027, 12, 7), "Independence Day"),
        (date(2025, 10, 1), date(2025, 11, 1), date(2025, 11, 3), "All Saints' Day"),
        (date(2026, 4, 14), date(2026, 5, 14), date(2026, 5, 15), "Ascension Day"),
        (date(2026, 4, 1), date(2026, 5, 1), date(2026, 5, 4), "May Day"),
        (date(2008, 4, 1), date(2008, 5, 1), date(2008, 5, 2), "May Day and Ascension Day"),
        (date(2026, 12, 1), date(2027, 1, 1), date(2027, 1, 4), "New Year's Day"),
        (date(2026, 12, 6), date(2027, 1, 6), date(2027, 1, 7), "Epiphany"),
    ],
)
def test_known_deadlines(
    received_on: date, nominal: date, last_day: date, rolled_because: str | None
) -> None:
    deadline = statutory_deadline(helsinki(received_on.year, received_on.month, received_on.day))
    assert deadline.received_on == received_on
    assert deadline.nominal_last_day == nominal
    assert deadline.last_day == last_day
    assert deadline.rolled_because == rolled_because
    assert deadline.rolled == (rolled_because is not None)
    assert deadline.extension_months == 0
    assert deadline.ends_at == datetime.combine(last_day + ONE_DAY, time(0), tzinfo=HELSINKI)
    assert deadline.extension_notice_by == deadline.ends_at


def test_the_whole_deadline_for_2_march_2026() -> None:
    assert statutory_deadline(helsinki(2026, 3, 2, 10, 15)) == Deadline(
        received_on=date(2026, 3, 2),
        extension_months=0,
        nominal_last_day=date(2026, 4, 2),
        last_day=date(2026, 4, 2),
        ends_at=utc(2026, 4, 2, 21),  # 00:00 EEST on 3 April
        rolled_because=None,
        extension_notice_by=utc(2026, 4, 2, 21),
    )


def test_an_extension_counts_from_receipt_not_from_the_first_deadline() -> None:
    received = helsinki(2024, 1, 31)
    first = statutory_deadline(received)
    one_more = statutory_deadline(received, extension_months=1)
    two_more = statutory_deadline(received, extension_months=2)
    assert first.last_day == date(2024, 2, 29)
    # 31 March 2024 is Easter Sunday, and Easter Monday follows.
    assert (one_more.nominal_last_day, one_more.last_day) == (date(2024, 3, 31), date(2024, 4, 2))
    assert one_more.rolled_because == "Easter Sunday"
    assert (two_more.nominal_last_day, two_more.last_day) == (date(2024, 4, 30), date(2024, 4, 30))
    assert two_more.ends_at == utc(2024, 4, 30, 21)
    # The extension had to be notified by the end of 29 February, winter time.
    for deadline in (first, one_more, two_more):
        assert deadline.extension_notice_by == utc(2024, 2, 29, 22)


def test_an_extension_clamps_and_rolls_from_the_receipt_date() -> None:
    deadline = statutory_deadline(helsinki(2026, 11, 30), extension_months=2)
    assert deadline.nominal_last_day == date(2027, 2, 28)
    assert deadline.last_day == date(2027, 3, 1)
    assert deadline.rolled_because == "Sunday"
    assert deadline.extension_notice_by == utc(2026, 12, 30, 22)


@pytest.mark.parametrize("extension_months", [-1, 3, 12])
def test_an_extension_beyond_two_months_is_refused(extension_months: int) -> None:
    with pytest.raises(ValueError, match="extension_months"):
        statutory_deadline(helsinki(2026, 3, 2), extension_months=extension_months)


def test_a_naive_receipt_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        statutory_deadline(datetime(2026, 3, 2, 12, 0))


# ----------------------------------------------------------------------------------------------- day of receipt


def test_early_hours_in_helsinki_count_as_that_day_although_utc_is_still_on_the_day_before() -> None:
    # 23:30 UTC on 2 March is 01:30 on 3 March in Helsinki: received 3 March, and 3 April 2026 is Good Friday.
    deadline = statutory_deadline(utc(2026, 3, 2, 23, 30))
    assert deadline.received_on == date(2026, 3, 3)
    assert deadline.last_day == date(2026, 4, 7)


def test_late_evening_in_helsinki_is_still_that_day() -> None:
    deadline = statutory_deadline(helsinki(2026, 3, 2, 23, 59).replace(second=59, microsecond=999_999))
    assert deadline.received_on == date(2026, 3, 2)
    assert deadline.last_day == date(2026, 4, 2)


def test_late_evening_elsewhere_is_read_in_helsinki() -> None:
    # 18:30 in New York on 2 March is 01:30 on 3 March in Helsinki.
    received = datetime(2026, 3, 2, 18, 30, tzinfo=ZoneInfo("America/New_York"))
    assert statutory_deadline(received).received_on == date(2026, 3, 3)
    assert statutory_deadline(received) == statutory_deadline(received.astimezone(UTC))


def test_midnight_helsinki_starts_the_new_day() -> None:
    assert statutory_deadline(helsinki(2026, 3, 3, 0, 0)).received_on == date(2026, 3, 3)
    assert statutory_deadline(utc(2026, 3, 2, 22, 0)).received_on == date(2026, 3, 3)
    assert statutory_deadline(utc(2026, 3, 2, 21, 59)).received_on == date(2026, 3, 2)


# ----------------------------------------------------------------------------------------------- DST


def test_ends_at_before_and_after_the_spring_change() -> None:
    # Clocks go forward at 03:00 on Sunday 29 March 2026.
    before = statutory_deadline(helsinki(2026, 2, 27))
    assert before.last_day == date(2026, 3, 27)
    assert before.ends_at == utc(2026, 3, 27, 22)  # 00:00 EET
    after = statutory_deadline(helsinki(2026, 2, 28))
    assert after.nominal_last_day == date(2026, 3, 28)
    assert after.last_day == date(2026, 3, 30)
    assert after.ends_at == utc(2026, 3, 30, 21)  # 00:00 EEST


def test_received_in_summer_time_due_in_winter_time() -> None:
    # Clocks go back at 04:00 on Sunday 25 October 2026.
    deadline = statutory_deadline(helsinki(2026, 9, 25))
    assert (deadline.nominal_last_day, deadline.last_day) == (date(2026, 10, 25), date(2026, 10, 26))
    assert deadline.ends_at == utc(2026, 10, 26, 22)
    local_end = deadline.ends_at.astimezone(HELSINKI)
    assert (local_end.date(), local_end.time(), local_end.utcoffset()) == (
        date(2026, 10, 27),
        time(0),
        timedelta(hours=2),
    )


def test_received_in_either_pass_of_the_repeated_hour_is_the_same_day() -> None:
    first_pass = statutory_deadline(helsinki(2026, 10, 25, 3, 30, fold=0))
    second_pass = statutory_deadline(helsinki(2026, 10, 25, 3, 30, fold=1))
    assert first_pass == second_pass
    assert first_pass.received_on == date(2026, 10, 25)
    assert first_pass.last_day == date(2026, 11, 25)


def test_received_in_the_skipped_hour() -> None:
    # 03:30 on 29 March 2026 never shows on a Helsinki clock; 01:30 UTC is 04:30 EEST, still 29 March.
    deadline = statutory_deadline(utc(2026, 3, 29, 1, 30))
    assert deadline.received_on == date(2026, 3, 29)
    assert deadline.last_day == date(2026, 4, 29)


# ----------------------------------------------------------------------------------------------- reminders


def test_reminder_skips_the_christmas_holidays_and_the_weekend() -> None:
    deadline = statutory_deadline(helsinki(2025, 11, 24))
    assert deadline.last_day == date(2025, 12, 29)
    assert reminder_at(deadline) == utc(2025, 12, 17, 7)  # 09:00 EET on Wednesday 17 December
    assert reminder_at(deadline, working_days_before=1) == utc(2025, 12, 23, 7)
    assert reminder_at(deadline, working_days_before=0) == utc(2025, 12, 29, 7)


def test_reminder_in_summer_time_for_a_deadline_in_winter_time() -> None:
    deadline = statutory_deadline(helsinki(2026, 9, 30))
    assert deadline.last_day == date(2026, 10, 30)
    assert reminder_at(deadline) == utc(2026, 10, 23, 6)  # 09:00 EEST
    assert deadline.ends_at == utc(2026, 10, 30, 22)  # 00:00 EET


def test_a_negative_reminder_offset_is_refused() -> None:
    with pytest.raises(ValueError, match="working_days_before"):
        reminder_at(statutory_deadline(helsinki(2026, 3, 2)), working_days_before=-1)


# ----------------------------------------------------------------------------------------------- properties


@given(received_at=receipts(), extension_months=extensions)
def test_last_day_is_the_first_working_day_from_the_nominal_day(
    received_at: datetime, extension_months: int
) -> None:
    deadline = statutory_deadline(received_at, extension_months=extension_months)
    assert is_working_day(deadline.last_day)
    assert deadline.last_day >= deadline.nominal_last_day
    assert not any(is_working_day(day) for day in days_between(deadline.nominal_last_day, deadline.last_day))
    assert deadline.last_day == next_working_day(deadline.nominal_last_day)
    assert deadline.rolled_because == non_working_reason(deadline.nominal_last_day)
    assert (deadline.rolled_because is None) == (deadline.last_day == deadline.nominal_last_day)


@given(received_at=receipts())
def test_the_nominal_day_is_one_calendar_month_after_receipt(received_at: datetime) -> None:
    deadline = statutory_deadline(received_at)
    assert deadline.received_on == received_at.astimezone(HELSINKI).date()
    assert 28 <= (deadline.nominal_last_day - deadline.received_on).days <= 31
    assert deadline.nominal_last_day == add_months(deadline.received_on, 1)


@given(received_at=receipts(), extension_months=extensions)
def test_ends_at_is_midnight_in_helsinki_after_the_last_day(
    received_at: datetime, extension_months: int
) -> None:
    deadline = statutory_deadline(received_at, extension_months=extension_months)
    assert deadline.ends_at.tzinfo is UTC
    local = deadline.ends_at.astimezone(HELSINKI)
    assert (local.date(), local.time()) == (deadline.last_day + ONE_DAY, time(0))
    assert (deadline.ends_at - timedelta(microseconds=1)).astimezone(HELSINKI).date() == deadline.last_day
    assert deadline.ends_at > received_at


@given(received_at=receipts())
def test_an_extended_deadline_is_later_and_keeps_the_first_notice_deadline(received_at: datetime) -> None:
    first, one_more, two_more = (statutory_deadline(received_at, extension_months=m) for m in range(3))
    assert first.last_day < one_more.last_day < two_more.last_day
    assert first.ends_at < one_more.ends_at < two_more.ends_at
    assert first.extension_notice_by == one_more.extension_notice_by == two_more.extension_notice_by
    assert first.extension_notice_by == first.ends_at
    assert two_more.nominal_last_day == add_months(first.received_on, 3)


@given(first=receipts(), second=receipts(), extension_months=extensions)
def test_a_later_receipt_never_has_an_earlier_deadline(
    first: datetime, second: datetime, extension_months: int
) -> None:
    earlier, later = sorted((first, second))
    assert (
        statutory_deadline(earlier, extension_months=extension_months).ends_at
        <= statutory_deadline(later, extension_months=extension_months).ends_at
    )


@given(received_at=receipts(), zone=other_zones)
def test_only_the_helsinki_date_of_receipt_matters(received_at: datetime, zone: ZoneInfo | timezone) -> None:
    day = received_at.astimezone(HELSINKI).date()
    start_of_day = datetime.combine(day, time(0), tzinfo=HELSINKI)
    assert statutory_deadline(received_at.astimezone(zone)) == statutory_deadline(start_of_day)


@given(received_at=receipts(), extension_months=extensions, working_days_before=st.integers(0, 30))
def test_reminder_is_at_nine_on_a_working_day_that_many_working_days_before(
    received_at: datetime, extension_months: int, working_days_before: int
) -> None:
    deadline = statutory_deadline(received_at, extension_months=extension_months)
    reminder = reminder_at(deadline, working_days_before=working_days_before)
    assert reminder.tzinfo is UTC
    assert reminder < deadline.ends_at
    local = reminder.astimezone(HELSINKI)
    assert local.time() == time(9, 0)
    assert is_working_day(local.date())
    working_days = [day for day in days_from_until(local.date(), deadline.last_day) if is_working_day(day)]
    assert len(working_days) == working_days_before
